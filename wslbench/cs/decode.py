"""Decoding recovered sparse codes into cell centres: peaks, mean-shift (Xue et al., §4.3, Fig. 6).

**Signed-distance codes** (the paper's, :class:`~wslbench.cs.codec.ProjectionCodec`
with ``encoding="signed"``): every line alone locates every cell (Fig. 6: "Green
crosses indicate cell positions predicted by an observation axes. Red cross
indicates the final detected cell position, which is the average of green
crosses"):

1. **Threshold and peaks.** On each line, bins with ``â ≥ threshold`` (§4.3: "we
   apply a threshold value to it to prune out noises [...] we set it at 15
   pixels") that are the maximum of their window ``b ± peak_radius``. A peak's
   distance is the sum of the window's positive values and its position their
   weighted mean of the window's bin centres: a predicted code that is unsure of
   a cell's bin spreads its distance over neighbouring bins, and the sum restores
   it (the peak value alone would put the point too far from the axis by the
   part spilled over). ``peak_radius = 0``: every bin above the threshold on its
   own, as in the authors' ``Decode_recovery.m``.
2. **One 2-D point per peak and line**: ``p = c + (t − R)·u_l + (R − d)·v_l``
   (the green crosses); points outside the patch (by more than one bin) are dropped.
3. **Mean-shift** of all lines' points with a flat kernel of radius
   ``bandwidth`` (40 px in §4.3), seeded at the points (as the authors'
   ``MeanShiftCluster.m``; grid seeds between two cells closer than twice the
   bandwidth would pull them into one mode), then each point joins its nearest mode and a
   cell is the **average** of its cluster (the red cross), scored by the
   cluster's size. Clusters of fewer than ``min_votes`` points (default
   ``⌈L/3⌉``, our choice: a true cell gets one point from nearly every line,
   noise a few) are dropped; with a predicted ``count`` only the ``round(count)``
   largest are kept.

**Count codes** (``encoding="count"``, the alternative): one line gives a 1-D
position only, so cells come from intersecting lines:

"After reconstructing signal â, we apply a threshold value to it to prune out
noises" and "multiple predictions by multiple observations require clustering.
Thus, we needed to perform mean shift clustering [...] The bandwidth for mean
shift method is tuned as a hyper parameter" (§4.3; Fig. 6: green crosses are
the predictions of the observation axes, the red cross their average). For
count codes these steps are ours, image by image (vectorised over lines):

1. **Peaks.** On each line, bin ``b`` is a peak when ``â[b] >= threshold`` and it
   is the maximum of the window ``b ± peak_radius`` (ties go to the leftmost
   bin), so a cell spread over two adjacent bins gives one peak. Its position is
   the ``max(â, 0)``-weighted mean of the window's bin centres ``j + 0.5``
   (positions as in :meth:`ProjectionCodec.positions`). Only the ``max_peaks``
   highest peaks of a line are kept.
2. **Back-projection.** A peak at position ``t`` on line ``l`` says the cell lies
   on the line ``(p − c)·u_l = t − R``. Every pair of lines whose orientations
   differ by at least ``min_angle`` (well-conditioned intersections) and every
   pair of their peaks give one candidate point, the intersection; candidates
   farther than ``tolerance`` outside the patch are dropped.
3. **Voting.** A candidate gets one vote from each line having a peak within
   ``tolerance`` pixels of the candidate's projection; candidates with fewer than
   ``min_votes`` votes (default ``max(2, ⌈L/2⌉)``) are ghosts (pairs of peaks from
   different cells) and are dropped. The rest are the green crosses of Fig. 6.
4. **Mean-shift** with a flat kernel of radius ``bandwidth`` (Cheng 1995, the
   paper's ref. [37]; seeding and mode merging as scikit-learn's ``MeanShift``
   with ``bin_seeding=True``): each mode is the average of the candidates within
   ``bandwidth`` of it (the red cross of Fig. 6). Modes are sorted by their
   support, the number of candidates within ``bandwidth``. Cells closer than
   about ``bandwidth`` share one mode, at their midpoint.
5. **Refinement and explaining away** (our addition, for sub-pixel centres and
   no ghost detections): each mode restarts from its best-voted candidate within
   ``bandwidth`` (so a merged pair yields one of its cells, not their midpoint),
   moved to the least-squares point of the peaks within ``tolerance`` of its
   projections. Then, best supported first, a centre is kept only if at least
   ``min_votes`` of its supporting peaks are not already claimed by a kept centre;
   it claims them. Two cells sharing a bin on a few lines both survive; a ghost,
   made of other cells' peaks, does not. With a predicted ``count``, only the
   ``round(count)`` first centres are kept. Centres are clipped into the patch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.spatial import cKDTree
from torch import Tensor

from wslbench.cs.codec import ProjectionCodec
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.validation import check_number

__all__ = ["Decoded", "decode", "find_peaks", "mean_shift"]


@dataclass
class Decoded:
    """Decoded cells of a batch (one list entry per image).

    Attributes:
        centres: ``(k, 2)`` ``(row, col)`` cell centres, best supported first.
        candidates: ``(c, 2)`` per-line points (signed codes) or back-projected points
            that passed the vote (count codes): the green crosses of Fig. 6.
        peaks: per line, the ``(p_l,)`` peak positions on that line.
        support: ``(k,)`` number of candidates within ``bandwidth`` of each centre,
            a detection score.
    """

    centres: list[np.ndarray]
    candidates: list[np.ndarray]
    peaks: list[list[np.ndarray]]
    support: list[np.ndarray]


def find_peaks(
    a_hat: np.ndarray, *, threshold: float, radius: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholded local maxima of every line of one image's codes (step 1).

    Args:
        a_hat: ``(L, n)`` recovered sparse codes.
        threshold: minimum value of a peak bin.
        radius: half-width of the non-maximum-suppression and refinement window.

    Returns:
        ``(line, position, height)`` of every peak, sorted by line then bin: the line
        index, the refined position and the value of the peak bin.

    Raises:
        InvalidInputError: ``a_hat`` is not a finite ``(L, n)`` array.
        ConfigError: ``threshold`` is not positive or ``radius`` is negative.
    """
    line, position, weights = _peak_windows(a_hat, threshold, radius)
    return line, position, weights[:, radius]


def _peak_windows(
    a_hat: np.ndarray, threshold: float, radius: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(line, refined position, (P, 2r+1) positive window values)`` of every peak."""
    a_hat = np.asarray(a_hat, dtype=np.float64)
    if a_hat.ndim != 2 or not np.isfinite(a_hat).all():
        raise InvalidInputError(f"a_hat must be a finite (L, n) array, got shape {a_hat.shape}")
    check_number("threshold", threshold)
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise ConfigError(f"peak radius must be an integer >= 0, got {radius!r}")
    padded = np.pad(a_hat, ((0, 0), (radius, radius)), constant_values=-np.inf)
    windows = sliding_window_view(padded, 2 * radius + 1, axis=1)  # (L, n, 2r+1)
    left = windows[..., :radius].max(axis=-1, initial=-np.inf)
    right = windows[..., radius + 1 :].max(axis=-1, initial=-np.inf)
    line, index = np.nonzero((a_hat >= threshold) & (a_hat > left) & (a_hat >= right))
    weights = np.clip(windows[line, index], 0, None)
    centres = index[:, None] + np.arange(-radius, radius + 1) + 0.5
    position = (weights * centres).sum(axis=1) / weights.sum(axis=1)
    return line, position, weights


def _neighbours(centres: np.ndarray, tree: cKDTree, radius: float) -> np.ndarray:
    """Pairs ``(i, j, v)`` with point ``j`` of ``tree`` within ``radius`` of centre ``i``."""
    return cKDTree(centres).sparse_distance_matrix(tree, radius, output_type="ndarray")


def mean_shift(
    points: np.ndarray, bandwidth: float, max_iter: int = 300, *, bin_seeding: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Flat-kernel mean-shift modes of 2D points (step 4; Cheng 1995).

    Seeds are the points binned on a grid of step ``bandwidth``; each seed moves to
    the mean of the points within ``bandwidth`` until it moves less than
    ``1e-3·bandwidth``; modes closer than ``bandwidth`` to a better supported one
    are merged into it (scikit-learn's ``MeanShift(bin_seeding=True)``). With
    ``bin_seeding=False`` the seeds are the distinct points themselves (as the
    authors' ``MeanShiftCluster.m``), so no seed starts between two groups of
    points and groups more than ``bandwidth`` apart stay apart.

    Args:
        points: ``(N, 2)``.
        bandwidth: kernel radius.
        max_iter: iteration cap.
        bin_seeding: seeds on a grid (fewer seeds) or at the points.

    Returns:
        Modes ``(k, 2)`` sorted by decreasing support, and their support ``(k,)`` (points
        within ``bandwidth``).

    Raises:
        InvalidInputError: ``points`` is not a finite ``(N, 2)`` array.
        ConfigError: ``bandwidth`` is not positive.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise InvalidInputError(f"points must be a finite (N, 2) array, got shape {points.shape}")
    check_number("bandwidth", bandwidth)
    if len(points) == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    seeds = (np.unique(np.round(points / bandwidth), axis=0) * bandwidth if bin_seeding
             else np.unique(points, axis=0))
    tree = cKDTree(points)
    active = np.arange(len(seeds))
    for _ in range(max_iter):
        pairs = _neighbours(seeds[active], tree, bandwidth)
        i, j = pairs["i"], pairs["j"]
        counts = np.bincount(i, minlength=len(active))[:, None]
        sums = np.stack([np.bincount(i, points[j, k], minlength=len(active)) for k in (0, 1)], 1)
        moved = np.where(counts > 0, sums / np.maximum(counts, 1), seeds[active])
        still = np.linalg.norm(moved - seeds[active], axis=1) > 1e-3 * bandwidth
        seeds[active] = moved
        active = active[still]
        if len(active) == 0:
            break
    support = tree.query_ball_point(seeds, bandwidth, return_length=True).astype(np.int64)
    order = np.argsort(-support, kind="stable")
    first = order[_first_apart(seeds[order], bandwidth)]
    return seeds[first], support[first]


def _pairs(angles: np.ndarray, min_angle: float) -> np.ndarray:
    i, j = np.triu_indices(len(angles), k=1)
    diff = np.abs(angles[i] - angles[j]) % math.pi
    diff = np.minimum(diff, math.pi - diff)
    ok = diff >= min_angle - 1e-9
    return np.stack([i[ok], j[ok]], axis=1)


class _PeakTable:
    """All peaks of one image in one sorted array, ``position + line·stride``, framed by ±inf,
    so that the nearest peak of every line to many projections is one ``searchsorted``."""

    def __init__(
        self, codec: ProjectionCodec, line: np.ndarray, position: np.ndarray, tolerance: float
    ) -> None:
        stride = 3.0 * (codec.n * codec.bin_size + tolerance)
        self.values = np.sort(np.concatenate([[-np.inf], position + line * stride, [np.inf]]))
        self.shift = np.arange(codec.n_lines) * stride
        self.projection = codec.directions.T  # (2, L)
        self.offset = codec.radius - codec.centre @ self.projection + self.shift

    def _search(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        query = points @ self.projection + self.offset
        index = np.searchsorted(self.values, query)
        return index, query - self.values[index - 1], self.values[index] - query

    def distance(self, points: np.ndarray) -> np.ndarray:
        """``(C, L)`` distance from each projection of points ``(C, 2)`` to its line's
        nearest peak."""
        _, below, above = self._search(points)
        return np.minimum(below, above)

    def nearest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`distance`, plus the nearest peaks' positions and table indices."""
        index, below, above = self._search(points)
        index = np.where(below <= above, index - 1, index)
        return np.minimum(below, above), self.values[index] - self.shift, index


def _least_squares(
    codec: ProjectionCodec, support: np.ndarray, position: np.ndarray, start: np.ndarray
) -> np.ndarray:
    """Point fitting the supporting peaks: ``min_p Σ_l (u_l·(p − c) − (t_l − R))²``.

    ``support`` ``(K, L)`` marks the lines used, ``position`` ``(K, L)`` their peaks; a
    point with fewer than two independent supporting lines stays at ``start``.
    """
    u = codec.directions
    weight = support.astype(float)
    normal = np.einsum("kl,li,lj->kij", weight, u, u)
    rhs = np.einsum("kl,kl,li->ki", weight, np.where(support, position - codec.radius, 0), u)
    solvable = np.linalg.det(normal) > 1e-6
    fitted = start.copy()
    fitted[solvable] = (
        codec.centre + np.linalg.solve(normal[solvable], rhs[solvable][..., None])[..., 0]
    )
    return fitted


def _first_apart(points: np.ndarray, distance: float) -> np.ndarray:
    """Indices of the points kept when each drops those within ``distance`` after it."""
    keep = np.ones(len(points), dtype=bool)
    for i in range(len(points)):
        if keep[i]:
            keep[i + 1 :] &= ((points[i + 1 :] - points[i]) ** 2).sum(axis=1) > distance**2
    return np.flatnonzero(keep)


def _claim(support: np.ndarray, index: np.ndarray, min_votes: int) -> np.ndarray:
    """Indices of the centres kept when, best first, each needs ``min_votes`` lines whose
    supporting peak no better centre has claimed (explaining away the ghosts)."""
    claimed = np.zeros(int(index.max(initial=0)) + 1, dtype=bool)
    kept = []
    for k in range(len(support)):
        peaks = index[k, support[k]]
        if (~claimed[peaks]).sum() >= min_votes:
            kept.append(k)
            claimed[peaks] = True
    return np.array(kept, dtype=np.int64)


def _decode_one(
    codec: ProjectionCodec,
    a_hat: np.ndarray,
    pairs: np.ndarray,
    inverses: np.ndarray,
    *,
    threshold: float,
    bandwidth: float,
    tolerance: float,
    min_votes: int,
    peak_radius: int,
    max_peaks: int,
    keep: int | None,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    lines = codec.n_lines
    line, position, height = find_peaks(a_hat, threshold=threshold, radius=peak_radius)
    position = position * codec.bin_size  # bin units → pixels along the line
    order = np.lexsort((-height, line))  # by line, highest peak first
    height_rank = np.empty_like(line)
    height_rank[order] = np.arange(len(line)) - np.searchsorted(line[order], line[order])
    line, position = line[height_rank < max_peaks], position[height_rank < max_peaks]
    per_line = np.bincount(line, minlength=lines)
    peaks = np.split(position, np.cumsum(per_line)[:-1])
    empty = np.zeros((0, 2))
    if len(position) == 0 or len(pairs) == 0:
        return empty, empty, peaks, np.zeros(0, dtype=np.int64)

    # 2. back-projection: padded (L, P) offsets s = t − R, pairs of peaks of pairs of lines
    offsets = np.full((lines, per_line.max()), np.nan)
    rank = np.arange(len(line)) - np.repeat(np.cumsum(per_line) - per_line, per_line)
    offsets[line, rank] = position - codec.radius
    s1 = offsets[pairs[:, 0]][:, :, None, None]  # (Q, P, 1, 1)
    s2 = offsets[pairs[:, 1]][:, None, :, None]  # (Q, 1, P, 1)
    points = inverses[:, None, None, :, 0] * s1 + inverses[:, None, None, :, 1] * s2
    points = points.reshape(-1, 2)
    points = points[~np.isnan(points[:, 0])] + codec.centre
    inside = (
        (points[:, 0] >= -tolerance)
        & (points[:, 0] <= codec.height + tolerance)
        & (points[:, 1] >= -tolerance)
        & (points[:, 1] <= codec.width + tolerance)
    )
    points = points[inside]

    # 3. voting
    table = _PeakTable(codec, line, position, tolerance)
    distance = table.distance(points)
    votes = (distance <= tolerance).sum(axis=1)
    points, votes = points[votes >= min_votes], votes[votes >= min_votes]

    # 4. mean-shift; refinement from the best-voted candidate of each mode; explaining away
    modes, support = mean_shift(points, bandwidth)
    start = modes.copy()
    if len(modes):
        pairs = _neighbours(modes, cKDTree(points), bandwidth)  # most votes, then nearest
        score = votes[pairs["j"]] * (bandwidth**2 + 1) - pairs["v"] ** 2
        order = np.lexsort((-score, pairs["i"]))
        first = order[np.unique(pairs["i"][order], return_index=True)[1]]
        start[pairs["i"][first]] = points[pairs["j"][first]]
    distance, nearest, _ = table.nearest(start)
    centres = _least_squares(codec, distance <= tolerance, nearest, start)
    distance, _, index = table.nearest(centres)
    kept = _claim(distance <= tolerance, index, min_votes)[:keep]
    centres = np.clip(centres[kept], 0, [codec.height, codec.width])
    return centres, points, peaks, support[kept]


def _decode_signed_one(
    codec: ProjectionCodec,
    a_hat: np.ndarray,
    *,
    threshold: float,
    bandwidth: float,
    min_votes: int,
    peak_radius: int,
    keep: int | None,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    """Signed-distance codes of one image → centres (steps 1–3 of the module docstring)."""
    line, position, weights = _peak_windows(a_hat, threshold, peak_radius)
    t = position * codec.bin_size  # bin units → pixels along the axis
    d = weights.sum(axis=1)
    points = (codec.centre + (t - codec.radius)[:, None] * codec.directions[line]
              + (codec.radius - d)[:, None] * codec.normals[line])
    margin = codec.bin_size
    inside = ((points >= -margin) & (points <= np.array([codec.height, codec.width]) + margin)).all(1)
    line, t, points = line[inside], t[inside], points[inside]
    peaks = [t[line == k] for k in range(codec.n_lines)]
    empty = np.zeros((0, 2))
    if len(points) == 0:
        return empty, points, peaks, np.zeros(0, dtype=np.int64)
    modes, _ = mean_shift(points, bandwidth, bin_seeding=False)
    distance, nearest = cKDTree(modes).query(points)
    member = distance <= bandwidth
    size = np.bincount(nearest[member], minlength=len(modes))
    sums = np.stack([np.bincount(nearest[member], points[member, k], minlength=len(modes))
                     for k in (0, 1)], axis=1)
    order = np.argsort(-size, kind="stable")
    order = order[size[order] >= min_votes][:keep]
    centres = np.clip(sums[order] / size[order, None], 0, [codec.height, codec.width])
    return centres, points, peaks, size[order]


def decode(
    codec: ProjectionCodec,
    a_hat: Tensor,
    *,
    threshold: float,
    bandwidth: float,
    count: Tensor | None = None,
    min_votes: int | None = None,
    tolerance: float | None = None,
    peak_radius: int = 1,
    max_peaks: int = 32,
    min_angle: float = 5 * math.pi / 12,
) -> Decoded:
    """Cell centres from recovered sparse codes â (§4.3: threshold, mean-shift; Fig. 6).

    The codec's ``encoding`` chooses the decoder (module docstring): per-line 2-D
    points and mean-shift for signed distances, intersections and voting for counts.

    Args:
        codec: the codec that made the codes.
        a_hat: ``(B, L, n)`` recovered sparse codes (true codes decode to within a
            fraction of a pixel of the centroids).
        threshold: minimum value of a peak in â: a distance in pixels for signed codes
            (§4.3: 15 px), a number of cells for count codes (``1`` is one cell).
        bandwidth: mean-shift radius in pixels (paper: 40 for 260-px patches); of
            cells closer than about ``bandwidth`` only one is found.
        count: ``(B,)`` predicted counts (e.g. from :meth:`ProjectionCodec.split`); if
            given, at most ``round(count)`` centres are kept per image.
        min_votes: signed codes: the smallest cluster of per-line points kept as a cell,
            ``1 … L``, default ``⌈L/3⌉``; count codes: lines that must support a
            candidate, ``2 … L``, default ``max(2, ⌈L/2⌉)``.
        tolerance: count codes only: distance in pixels between a candidate's
            projection and a peak for that line to vote for it; ``None``:
            max(2, ``codec.bin_size``).
        peak_radius: half-width in bins of the peak window (non-maximum suppression).
        max_peaks: count codes only: the highest peaks kept per line; the work grows
            with its square, so it bounds the time spent on noisy codes.
        min_angle: count codes only: smallest orientation difference of two lines
            whose peaks are intersected, in radians; the default 75° keeps an
            intersection's error within ``1/√(1 − cos 75°) ≈ 1.16×`` the norm of the
            two position errors and intersects each line with 4 others when ``L = 27``.

    Returns:
        :class:`Decoded`; images without peaks give ``(0, 2)`` arrays.

    Raises:
        InvalidInputError: ``a_hat`` or ``count`` has the wrong shape or non-finite values.
        ConfigError: a parameter is out of range, or the codec has fewer than 2 lines.
    """
    lines = codec.n_lines
    if not isinstance(a_hat, Tensor) or a_hat.ndim != 3 or a_hat.shape[1:] != (lines, codec.n):
        got = tuple(a_hat.shape) if isinstance(a_hat, Tensor) else type(a_hat).__name__
        raise InvalidInputError(f"a_hat must be a (B, L={lines}, n={codec.n}) tensor, got {got}")
    values = a_hat.detach().cpu().double().numpy()
    if not np.isfinite(values).all():
        raise InvalidInputError("a_hat contains NaN or infinite values; expected finite codes")
    signed = codec.encoding == "signed"
    if lines < 2 and not signed:
        raise ConfigError(f"count decoding needs at least 2 observation lines, the codec has {lines}")
    fewest = 1 if signed else 2
    if min_votes is None:
        min_votes = math.ceil(lines / 3) if signed else max(2, math.ceil(lines / 2))
    check_number("threshold", threshold)
    check_number("bandwidth", bandwidth)
    if tolerance is None:  # 2 px, or one bin when bins are coarser
        tolerance = max(2.0, codec.bin_size)
    check_number("tolerance", tolerance)
    if isinstance(min_votes, bool) or not isinstance(min_votes, int) \
            or not fewest <= min_votes <= lines:
        raise ConfigError(f"min_votes must be an integer in [{fewest}, {lines}], got {min_votes!r}")
    if isinstance(peak_radius, bool) or not isinstance(peak_radius, int) or peak_radius < 0:
        raise ConfigError(f"peak_radius must be an integer >= 0, got {peak_radius!r}")
    if isinstance(max_peaks, bool) or not isinstance(max_peaks, int) or max_peaks < 1:
        raise ConfigError(f"max_peaks must be an integer >= 1, got {max_peaks!r}")
    if isinstance(min_angle, bool) or not isinstance(min_angle, int | float) \
            or not 0 < min_angle <= math.pi / 2:
        raise ConfigError(f"min_angle must be in (0, π/2] radians, got {min_angle!r}")
    keeps: list[int | None] = [None] * len(values)
    if count is not None:
        if not isinstance(count, Tensor) or count.shape != (len(values),):
            got = tuple(count.shape) if isinstance(count, Tensor) else type(count).__name__
            raise InvalidInputError(f"count must be a ({len(values)},) tensor, got {got}")
        counts = count.detach().cpu().double().numpy()
        if not np.isfinite(counts).all():
            raise InvalidInputError("count contains NaN or infinite values; expected finite counts")
        keeps = [max(round(c), 0) for c in counts]

    out = Decoded(centres=[], candidates=[], peaks=[], support=[])
    if signed:
        for image, keep in zip(values, keeps):
            decoded = _decode_signed_one(codec, image, threshold=threshold, bandwidth=bandwidth,
                                         min_votes=min_votes, peak_radius=peak_radius, keep=keep)
            for field, value in zip(("centres", "candidates", "peaks", "support"), decoded):
                getattr(out, field).append(value)
        return out
    pairs = _pairs(codec.angles.numpy(), min_angle)
    u = codec.directions
    inverses = np.linalg.inv(np.stack([u[pairs[:, 0]], u[pairs[:, 1]]], axis=1))  # (Q, 2, 2)
    for image, keep in zip(values, keeps):
        centres, candidates, peaks, support = _decode_one(
            codec,
            image,
            pairs,
            inverses,
            threshold=threshold,
            bandwidth=bandwidth,
            tolerance=tolerance,
            min_votes=min_votes,
            peak_radius=peak_radius,
            max_peaks=max_peaks,
            keep=keep,
        )
        out.centres.append(centres)
        out.candidates.append(candidates)
        out.peaks.append(peaks)
        out.support.append(support)
    return out


