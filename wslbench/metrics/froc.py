"""Lesion-level FROC analysis: candidates from heatmaps, matching, curve and limited area.

Quellec et al. 2017, section 5.5: "Performance at the lesion level was assessed
using a free-response ROC (FROC) analysis in the DiaretDB1 dataset [...] we used
as performance metric the area ``A_z`` under the FROC curve for ``0 ≤ x ≤ μ``,
divided by ``μ`` (with ``μ = 10``). Performance is computed for each lesion type
independently, and an average performance metric ``Ā_z`` is also computed"
(Tables 2 and 3).

The paper does not spell out how detections are counted, so this module fixes
the conventions below (the same as MONAI's ``compute_froc_curve_data`` for
CAMELYON16):

* **Candidates** are local maxima of the heatmap after non-maximum suppression
  (:func:`extract_candidates`); each carries the heatmap value as its score.
* **Lesions** are the connected components (full connectivity: 8 neighbours in
  2D, 26 in 3D) of a binary lesion mask, or the labels of a labelled mask.
* **Matching** (:func:`match_candidates`): a candidate whose pixel lies inside a
  lesion hits it. For each lesion, the highest-scoring candidate that hits it is
  the true positive; further candidates in the same lesion are *ignored* (neither
  TP nor FP), because the lesion is already found at every threshold where they
  would be kept. A candidate outside every lesion is a false positive — which is
  why, as the paper notes, unannotated true lesions count as false alarms.
* **Curve** (:func:`compute_froc`): sweeping the score threshold ``t`` (keep
  candidates with ``score >= t``) gives sensitivity = detected lesions / all
  lesions against the average number of FPs per image, starting at (0, 0).
* **Area** (:func:`compute_froc_area`): operating points are joined by straight
  lines (ties move the curve diagonally, as in ROC), the curve is cut at
  ``x = μ``, and beyond its last point (every candidate kept) it is extended
  horizontally at its last sensitivity up to ``μ``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from wslbench.errors import InvalidInputError

__all__ = [
    "CandidateMatch",
    "FROCMetric",
    "MultiLesionFROCMetric",
    "compute_froc",
    "compute_froc_area",
    "compute_froc_areas",
    "extract_candidates",
    "extract_candidates_batch",
    "label_lesions",
    "match_candidates",
]


def _to_numpy(x: object, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be an array, got {type(x).__name__}") from exc


# ---------------------------------------------------------------------------------- candidates


def extract_candidates(
    heatmap: np.ndarray | torch.Tensor,
    *,
    min_distance: int,
    threshold: float | None = None,
    max_candidates: int | None = None,
) -> np.ndarray:
    """Lesion candidates: local maxima of a heatmap with non-maximum suppression.

    A pixel is a local maximum when it equals the maximum of the heatmap over the
    ``(2·min_distance + 1)``-wide window centred on it (the border is padded by
    repetition). Maxima are then visited by decreasing score (ties in row-major
    order) and one is kept unless a kept maximum lies within Chebyshev distance
    ``min_distance``; this thins plateaus, where many pixels tie. The candidates
    feed the FROC analysis of Quellec 2017, section 5.5.

    Args:
        heatmap: ``(H, W)`` (or ``(D, H, W)``) finite array or tensor.
        min_distance: suppression radius in pixels, at least 1.
        threshold: keep only maxima with ``score > threshold``; ``None`` keeps all.
        max_candidates: keep at most this many (the highest-scoring); ``None``: all.

    Returns:
        ``(K, ndim + 1)`` float64 array of ``(row, col, score)`` (``(z, row, col,
        score)`` in 3D), sorted by decreasing score.
    """
    h = _to_numpy(heatmap, "heatmap").astype(np.float64, copy=False)
    if h.ndim not in (2, 3):
        raise InvalidInputError(
            f"heatmap must be (H, W) or (D, H, W), got shape {h.shape}; use "
            "extract_candidates_batch for (B, 1, H, W)"
        )
    if not np.isfinite(h).all():
        raise InvalidInputError("heatmap contains NaN or Inf; expected finite values")
    if isinstance(min_distance, bool) or not isinstance(min_distance, int | np.integer):
        raise InvalidInputError(f"min_distance must be an int >= 1, got {min_distance!r}")
    if min_distance < 1:
        raise InvalidInputError(f"min_distance must be >= 1, got {min_distance}")
    if max_candidates is not None and max_candidates < 0:
        raise InvalidInputError(f"max_candidates must be >= 0 or None, got {max_candidates}")
    ncol = h.ndim + 1
    window = 2 * int(min_distance) + 1
    is_max = h == ndimage.maximum_filter(h, size=window, mode="nearest")
    if threshold is not None:
        is_max &= h > threshold
    flat = np.flatnonzero(is_max)
    if flat.size == 0 or max_candidates == 0:
        return np.zeros((0, ncol), dtype=np.float64)
    values = h.ravel()[flat]
    order = np.argsort(-values, kind="mergesort")  # stable: ties stay in row-major order
    flat, values = flat[order], values[order]
    coords = np.stack(np.unravel_index(flat, h.shape), axis=1)
    suppressed = np.zeros(h.shape, dtype=bool)
    kept: list[int] = []
    d = int(min_distance)
    limit = max_candidates if max_candidates is not None else flat.size
    for i, c in enumerate(coords):
        if suppressed[tuple(c)]:
            continue
        kept.append(i)
        if len(kept) >= limit:
            break
        sl = tuple(slice(max(0, ci - d), ci + d + 1) for ci in c)
        suppressed[sl] = True
    idx = np.asarray(kept, dtype=np.int64)
    return np.concatenate([coords[idx].astype(np.float64), values[idx, None]], axis=1)


def extract_candidates_batch(
    heatmaps: np.ndarray | torch.Tensor,
    *,
    min_distance: int,
    threshold: float | None = None,
    max_candidates: int | None = None,
) -> list[np.ndarray]:
    """:func:`extract_candidates` for each map of a ``(B, 1, H, W)`` or ``(B, 1, D, H, W)`` batch.

    Returns:
        A list of ``B`` arrays of shape ``(K_b, ndim_spatial + 1)``.
    """
    h = _to_numpy(heatmaps, "heatmaps")
    if h.ndim not in (4, 5) or h.shape[1] != 1:
        raise InvalidInputError(
            f"heatmaps must be (B, 1, H, W) or (B, 1, D, H, W), got shape {h.shape}"
        )
    return [
        extract_candidates(
            h[b, 0], min_distance=min_distance, threshold=threshold, max_candidates=max_candidates
        )
        for b in range(h.shape[0])
    ]


# ---------------------------------------------------------------------------------- matching


def label_lesions(mask: np.ndarray | torch.Tensor) -> tuple[np.ndarray, int]:
    """Lesion labels of a mask: ``(labels int array, number of lesions)``.

    A boolean mask, or a numeric mask holding only 0 and 1, is split into connected
    components with full connectivity (8-connected in 2D, 26 in 3D). A numeric mask
    holding other non-negative integers is taken as already labelled: 0 is
    background and each positive value is one lesion (a lesion may then be
    disconnected). Note that a labelled mask in which the only lesion is labelled
    1 is read as binary, which changes nothing unless that lesion is disconnected.
    """
    m = _to_numpy(mask, "lesion_mask")
    if m.ndim not in (2, 3):
        raise InvalidInputError(f"lesion_mask must be (H, W) or (D, H, W), got shape {m.shape}")
    if m.dtype == bool:
        binary = m
    else:
        if not np.issubdtype(m.dtype, np.number) or not np.isfinite(m).all():
            raise InvalidInputError("lesion_mask must be bool or hold finite non-negative integers")
        if (m < 0).any() or (m != np.round(m)).any():
            raise InvalidInputError(
                "lesion_mask must be bool, 0/1, or a labelled mask of non-negative integers"
            )
        if m.max(initial=0) <= 1:
            binary = m.astype(bool)
        else:
            labels = m.astype(np.int64)
            present = np.unique(labels[labels > 0])
            relabel = np.zeros(int(labels.max()) + 1, dtype=np.int64)
            relabel[present] = np.arange(1, present.size + 1)
            return relabel[labels], int(present.size)
    structure = ndimage.generate_binary_structure(binary.ndim, binary.ndim)
    labels, n = ndimage.label(binary, structure=structure)
    return labels.astype(np.int64), int(n)


@dataclass(frozen=True)
class CandidateMatch:
    """Outcome of matching an image's candidates against its lesions.

    Attributes:
        lesion: ``(K,)`` int, label (1..n_lesions) of the lesion each candidate lies
            in, 0 for background.
        tp: ``(K,)`` bool, the highest-scoring candidate of each hit lesion.
        fp: ``(K,)`` bool, candidates outside every lesion.
        scores: ``(K,)`` candidate scores.
        n_lesions: number of lesions in the mask.
    """

    lesion: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    scores: np.ndarray
    n_lesions: int

    @property
    def ignored(self) -> np.ndarray:
        """``(K,)`` bool, further candidates in an already-hit lesion (neither TP nor FP)."""
        return ~(self.tp | self.fp)


def _check_candidates(candidates: object, ndim: int) -> np.ndarray:
    c = _to_numpy(candidates, "candidates").astype(np.float64, copy=False)
    if c.ndim == 1 and c.size == 0:
        c = c.reshape(0, ndim + 1)
    if c.ndim != 2 or c.shape[1] != ndim + 1:
        raise InvalidInputError(
            f"candidates for a {ndim}D mask must be (K, {ndim + 1}) rows of "
            f"(coordinates..., score), got shape {c.shape}"
        )
    if not np.isfinite(c).all():
        raise InvalidInputError("candidates contain NaN or Inf; expected finite values")
    return c


def match_candidates(
    candidates: np.ndarray | torch.Tensor, lesion_mask: np.ndarray | torch.Tensor
) -> CandidateMatch:
    """Match candidates to the lesions of one image (conventions in the module docstring).

    A candidate at (rounded) coordinates inside lesion ``k`` hits ``k``. The
    highest-scoring hit of each lesion is its true positive (ties: the first in
    the given order); other hits of that lesion are ignored; candidates on
    background are false positives. Quellec 2017, section 5.5 (FROC in DiaretDB1).

    Args:
        candidates: ``(K, 3)`` rows of ``(row, col, score)`` (``(K, 4)`` in 3D), e.g.
            from :func:`extract_candidates`.
        lesion_mask: ``(H, W)`` binary or labelled mask (see :func:`label_lesions`).

    Returns:
        A :class:`CandidateMatch`.
    """
    labels, n_lesions = label_lesions(lesion_mask)
    c = _check_candidates(candidates, labels.ndim)
    pos = np.rint(c[:, :-1]).astype(np.int64)
    scores = c[:, -1].copy()
    shape = np.asarray(labels.shape)
    outside = ((pos < 0) | (pos >= shape)).any(axis=1)
    if outside.any():
        first = c[np.flatnonzero(outside)[0], :-1].tolist()
        raise InvalidInputError(
            f"{int(outside.sum())} candidate(s) lie outside the mask of shape "
            f"{tuple(labels.shape)}, e.g. at {first}"
        )
    lesion = labels[tuple(pos.T)] if len(pos) else np.zeros(0, dtype=np.int64)
    tp = np.zeros(len(c), dtype=bool)
    hit = np.flatnonzero(lesion > 0)
    if hit.size:
        order = hit[np.argsort(-scores[hit], kind="mergesort")]
        _, first = np.unique(lesion[order], return_index=True)
        tp[order[first]] = True
    return CandidateMatch(lesion=lesion, tp=tp, fp=lesion == 0, scores=scores, n_lesions=n_lesions)


# ---------------------------------------------------------------------------------- curve / area


def _froc_from_scores(
    tp_scores: np.ndarray, fp_scores: np.ndarray, n_lesions: int, n_images: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if n_images <= 0:
        raise InvalidInputError("FROC analysis needs at least one image")
    if n_lesions <= 0:
        raise InvalidInputError(
            f"FROC analysis needs at least one lesion over the {n_images} image(s); "
            "sensitivity is undefined without lesions"
        )
    scores = np.concatenate([tp_scores, fp_scores])
    is_tp = np.r_[np.ones(tp_scores.size, bool), np.zeros(fp_scores.size, bool)]
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], is_tp[order]
    last_of_run = np.r_[s[1:] != s[:-1], True] if s.size else np.zeros(0, bool)
    tp_cum = np.cumsum(t)[last_of_run]
    fp_cum = np.cumsum(~t)[last_of_run]
    fp_per_image = np.r_[0.0, fp_cum / n_images]
    sensitivity = np.r_[0.0, tp_cum / n_lesions]
    thresholds = np.r_[np.inf, s[last_of_run]]
    return fp_per_image, sensitivity, thresholds


def compute_froc(
    candidates_per_image: Sequence[np.ndarray | torch.Tensor],
    masks_per_image: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FROC curve of one lesion type over a set of images (Quellec 2017, section 5.5).

    Candidates are matched per image with :func:`match_candidates`; the threshold
    sweeps every distinct TP/FP score (keep ``score >= t``).

    Args:
        candidates_per_image: one ``(K_i, 3)`` array of ``(row, col, score)`` per image.
        masks_per_image: one lesion mask per image (a list, or a ``(N, H, W)`` stack).

    Returns:
        ``(fp_per_image, sensitivity, thresholds)``: average false positives per
        image, fraction of lesions detected, and the thresholds (the first is
        ``+inf``, the point (0, 0)); non-decreasing in both coordinates.
    """
    if len(candidates_per_image) != len(masks_per_image):
        raise InvalidInputError(
            f"got {len(candidates_per_image)} candidate arrays but {len(masks_per_image)} masks; "
            "expected one of each per image"
        )
    metric = FROCMetric()
    for cand, mask in zip(candidates_per_image, masks_per_image):
        metric(cand, mask)
    return metric.curve()


def compute_froc_area(
    fp_per_image: np.ndarray | Sequence[float],
    sensitivity: np.ndarray | Sequence[float],
    max_fp: float = 10.0,
) -> float:
    """Area under the FROC curve for ``0 ≤ FP/image ≤ μ``, divided by ``μ``.

    Quellec 2017, section 5.5 and Table 3 (``μ = 10``). Points are joined by
    straight lines; if the curve does not start at ``x = 0`` the point (0, 0) is
    prepended; the curve is cut at ``x = μ`` (interpolating the crossing
    segment), and if it ends before ``μ`` it is extended horizontally at its last
    sensitivity up to ``μ``. The result lies in [0, 1].

    Args:
        fp_per_image: ``(P,)`` non-decreasing average FPs per image.
        sensitivity: ``(P,)`` sensitivities in [0, 1], non-decreasing.
        max_fp: ``μ > 0``.

    Returns:
        The normalised area.
    """
    x = np.asarray(fp_per_image, dtype=np.float64).reshape(-1)
    y = np.asarray(sensitivity, dtype=np.float64).reshape(-1)
    if x.shape != y.shape or x.size == 0:
        raise InvalidInputError(
            f"fp_per_image and sensitivity must be non-empty and of equal length, got "
            f"{x.size} and {y.size}"
        )
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InvalidInputError("FROC curve contains NaN or Inf; expected finite values")
    if (x < 0).any() or (np.diff(x) < 0).any():
        raise InvalidInputError("fp_per_image must be non-negative and non-decreasing")
    if (y < 0).any() or (y > 1).any():
        raise InvalidInputError("sensitivity must lie in [0, 1]")
    if not np.isfinite(max_fp) or max_fp <= 0:
        raise InvalidInputError(f"max_fp (μ) must be a positive number, got {max_fp}")
    if x[0] > 0:
        x, y = np.r_[0.0, x], np.r_[0.0, y]
    area = 0.0
    for x0, y0, x1, y1 in zip(x[:-1], y[:-1], x[1:], y[1:]):
        if x0 >= max_fp:
            break
        if x1 <= max_fp:
            area += 0.5 * (y0 + y1) * (x1 - x0)
        else:
            y_cut = y0 + (y1 - y0) * (max_fp - x0) / (x1 - x0)
            area += 0.5 * (y0 + y_cut) * (max_fp - x0)
    if x[-1] < max_fp:
        area += y[-1] * (max_fp - x[-1])
    return float(area / max_fp)


# ---------------------------------------------------------------------------------- accumulators


def _is_single(candidates: object) -> bool:
    """True when ``candidates`` is one image's ``(K, d)`` array rather than a list of them."""
    return isinstance(candidates, np.ndarray | torch.Tensor)


class FROCMetric:
    """Accumulates matched candidates over images for one lesion type.

    Only scores and TP/FP flags are kept, never the masks. :meth:`aggregate`
    returns :func:`compute_froc_area`; :meth:`curve` the FROC curve.

    Args:
        max_fp: ``μ`` of the limited area (Quellec 2017 uses 10).
    """

    def __init__(self, max_fp: float = 10.0) -> None:
        if not np.isfinite(max_fp) or max_fp <= 0:
            raise InvalidInputError(f"max_fp (μ) must be a positive number, got {max_fp}")
        self.max_fp = max_fp
        self.reset()

    def __call__(
        self,
        candidates: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
        masks: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
    ) -> None:
        """Add one image (a ``(K, 3)`` array and an ``(H, W)`` mask) or a batch (a list of
        arrays and a list or ``(B, H, W)`` stack of masks)."""
        if _is_single(candidates):
            pairs = [(candidates, masks)]
        else:
            if len(candidates) != len(masks):
                raise InvalidInputError(
                    f"got {len(candidates)} candidate arrays but {len(masks)} masks"
                )
            pairs = list(zip(candidates, masks))
        for cand, mask in pairs:
            match = match_candidates(cand, mask)
            self._tp.append(match.scores[match.tp])
            self._fp.append(match.scores[match.fp])
            self._n_lesions += match.n_lesions
            self._n_images += 1

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(fp_per_image, sensitivity, thresholds)`` of everything accumulated."""
        tp = np.concatenate(self._tp) if self._tp else np.zeros(0)
        fp = np.concatenate(self._fp) if self._fp else np.zeros(0)
        return _froc_from_scores(tp, fp, self._n_lesions, self._n_images)

    def aggregate(self) -> float:
        """Area under the FROC curve for ``0 ≤ FP/image ≤ max_fp``, divided by ``max_fp``."""
        fp, sens, _ = self.curve()
        return compute_froc_area(fp, sens, self.max_fp)

    def reset(self) -> None:
        """Forget every accumulated image."""
        self._tp: list[np.ndarray] = []
        self._fp: list[np.ndarray] = []
        self._n_lesions = 0
        self._n_images = 0


class MultiLesionFROCMetric:
    """One :class:`FROCMetric` per lesion type plus the average area ``Ā_z``.

    Quellec 2017, section 5.5 and Table 2: "Performance is computed for each
    lesion type independently, and an average performance metric ``Ā_z`` is also
    computed" (the plain mean over lesion types).

    Args:
        lesion_types: names, e.g. ``("hard_exudates", "soft_exudates",
            "small_red_dots", "hemorrhages")``.
        max_fp: ``μ`` of the limited area.
    """

    def __init__(self, lesion_types: Sequence[str], max_fp: float = 10.0) -> None:
        names = list(lesion_types)
        if not names or len(set(names)) != len(names) or "mean" in names:
            raise InvalidInputError(
                f"lesion_types must be non-empty distinct names other than 'mean', got {names}"
            )
        self.lesion_types = tuple(names)
        self.max_fp = max_fp
        self.metrics = {name: FROCMetric(max_fp) for name in names}

    def __call__(
        self,
        candidates: object,
        masks: Mapping[str, object],
    ) -> None:
        """Add images for every lesion type.

        Args:
            candidates: the candidates shared by every lesion type (one array or a list,
                as for :meth:`FROCMetric.__call__`), or a mapping lesion type → candidates
                when each type has its own heatmap.
            masks: mapping lesion type → mask(s) of the same images.
        """
        missing = set(self.lesion_types) - set(masks)
        extra = set(masks) - set(self.lesion_types)
        if missing or extra:
            raise InvalidInputError(
                f"masks must have exactly the keys {list(self.lesion_types)}; missing "
                f"{sorted(missing)}, unexpected {sorted(extra)}"
            )
        if isinstance(candidates, Mapping) and set(candidates) != set(self.lesion_types):
            raise InvalidInputError(
                f"candidates given per lesion type must have the keys {list(self.lesion_types)}, "
                f"got {sorted(candidates)}"
            )
        for name in self.lesion_types:
            cand = candidates[name] if isinstance(candidates, Mapping) else candidates
            self.metrics[name](cand, masks[name])

    def aggregate(self) -> dict[str, float]:
        """Area per lesion type and their mean under the key ``"mean"``."""
        out = {name: metric.aggregate() for name, metric in self.metrics.items()}
        out["mean"] = float(np.mean(list(out.values())))
        return out

    def reset(self) -> None:
        """Forget every accumulated image of every lesion type."""
        for metric in self.metrics.values():
            metric.reset()


def compute_froc_areas(
    candidates_per_image: Sequence[np.ndarray | torch.Tensor]
    | Mapping[str, Sequence[np.ndarray | torch.Tensor]],
    masks_per_type: Mapping[str, Sequence[np.ndarray | torch.Tensor]],
    max_fp: float = 10.0,
) -> dict[str, float]:
    """Limited FROC area per lesion type and their mean ``Ā_z`` (Quellec 2017, Tables 2–3).

    Args:
        candidates_per_image: one candidate array per image, shared by all lesion
            types, or a mapping lesion type → such a list.
        masks_per_type: mapping lesion type → one mask per image.
        max_fp: ``μ``.

    Returns:
        ``{lesion_type: area, ..., "mean": average area}``.
    """
    metric = MultiLesionFROCMetric(list(masks_per_type), max_fp)
    metric(
        candidates_per_image
        if isinstance(candidates_per_image, Mapping)
        else list(candidates_per_image),
        masks_per_type,
    )
    return metric.aggregate()
