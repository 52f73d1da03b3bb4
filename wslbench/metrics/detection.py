"""Cell detection scores: one-to-one centroid matching within ``ρ``, precision, recall, F1.

Xue et al. (CNNCS), section 4.2, adopting the ICPR 2012 mitosis contest rule:
"A detection would be counted as true positive (TP) if the distance between the
predicted centroid and ground truth cell centroid is less than ρ. Otherwise, a
detection is considered as false positives (FP). The missed ground truth cells
are counted as false negatives (FN)", with ``P = TP / (TP + FP)``,
``R = TP / (TP + FN)`` and ``F1 = 2PR / (P + R)``; ``ρ`` is the radius of the
smallest cell of the data set.

Conventions fixed here (the paper is silent on them):

* **Strict distance.** A prediction and a ground-truth centroid can match only
  when their Euclidean distance is *strictly* less than ``ρ`` ("less than ρ"); a
  pair exactly ``ρ`` apart is not a match.
* **One-to-one.** A prediction matches at most one ground-truth cell and a cell
  at most one prediction, so two detections of one cell give one TP and one FP.
* **Matching method.** ``"hungarian"`` (default) finds a matching with the
  largest number of pairs and, among those, the smallest total distance
  (:func:`scipy.optimize.linear_sum_assignment` with every pair at distance
  ``≥ ρ`` priced so that it is never worth taking). ``"greedy"`` takes pairs by
  increasing distance while both ends are free (ties: lower prediction index,
  then lower ground-truth index); it can miss matches Hungarian finds, never
  the reverse, so its TP count is a lower bound.
* **Pooled scores** (the contest's rule) come from TP, FP and FN summed over
  every image. **Per-image scores** use the same formulas on each image.
* **Empty cases.** A ratio ``0 / 0`` scores ``empty_score`` (default 1.0):
  precision with no prediction, recall with no ground truth, F1 with neither
  (then ``F1 = 2 TP / (2 TP + FP + FN)`` is ``0 / 0``). So an image without cells
  and without detections scores P = R = F1 = 1; cells and no detection score
  P = 1, R = 0, F1 = 0; detections and no cell score P = 0, R = 1, F1 = 0.
  ``empty_score=float("nan")`` leaves such ratios undefined instead; per-image
  means then skip them.

Coordinates are ``(row, col)`` pixels (any two coordinates in the same units as
``ρ`` work).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.validation import check_number

__all__ = [
    "MATCHING_METHODS",
    "DetectionMetric",
    "DetectionScores",
    "Matching",
    "best_f1_threshold",
    "compute_detection_scores",
    "match_detections",
]

MATCHING_METHODS = ("hungarian", "greedy")

PointsLike = np.ndarray | torch.Tensor | Sequence[Sequence[float]]


def _points(points: object, name: str, ncol: int = 2) -> np.ndarray:
    """``points`` as a finite ``(k, ncol)`` float64 array (an empty input gives ``(0, ncol)``)."""
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{name} must be a numeric (k, {ncol}) array, got {type(points).__name__}"
        ) from exc
    if arr.size == 0:
        return np.zeros((0, ncol), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != ncol:
        raise InvalidInputError(f"{name} must have shape (k, {ncol}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{name} contains NaN or Inf; expected finite coordinates")
    return arr


def _check_method(method: str) -> None:
    if method not in MATCHING_METHODS:
        raise ConfigError(
            f"matching method {method!r} unknown; expected one of {list(MATCHING_METHODS)}"
        )


def _check_empty_score(empty_score: float) -> float:
    if isinstance(empty_score, bool) or not isinstance(empty_score, int | float | np.number):
        raise InvalidInputError(f"empty_score must be a number in [0, 1] or NaN, got {empty_score!r}")
    value = float(empty_score)
    if not (math.isnan(value) or 0.0 <= value <= 1.0):
        raise InvalidInputError(f"empty_score must lie in [0, 1] or be NaN, got {empty_score}")
    return value


# ---------------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class Matching:
    """One-to-one matching of an image's predicted centroids to its ground truth.

    Attributes:
        pairs: ``(m, 2)`` int, rows of ``(prediction index, ground-truth index)``,
            sorted by prediction index.
        distances: ``(m,)`` Euclidean distance of each pair (all ``< ρ``).
        n_pred: number of predictions.
        n_gt: number of ground-truth centroids.
    """

    pairs: np.ndarray
    distances: np.ndarray
    n_pred: int
    n_gt: int

    @property
    def tp(self) -> int:
        """Matched predictions."""
        return int(self.pairs.shape[0])

    @property
    def fp(self) -> int:
        """Unmatched predictions."""
        return self.n_pred - self.tp

    @property
    def fn(self) -> int:
        """Unmatched ground-truth centroids."""
        return self.n_gt - self.tp

    @property
    def unmatched_pred(self) -> np.ndarray:
        """Indices of the false-positive predictions."""
        return np.setdiff1d(np.arange(self.n_pred), self.pairs[:, 0])

    @property
    def unmatched_gt(self) -> np.ndarray:
        """Indices of the missed (false-negative) ground-truth centroids."""
        return np.setdiff1d(np.arange(self.n_gt), self.pairs[:, 1])


def _hungarian(dist: np.ndarray, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-cardinality matching of minimum total distance among pairs ``< ρ``."""
    allowed = dist < rho
    rows = np.flatnonzero(allowed.any(axis=1))
    cols = np.flatnonzero(allowed.any(axis=0))
    if rows.size == 0:
        return rows, cols
    sub = dist[np.ix_(rows, cols)]
    # An allowed matching of n pairs costs less than n·ρ, so a forbidden pair priced
    # above min(shape)·ρ costs more than any allowed matching: cardinality comes first.
    forbidden_cost = (min(sub.shape) + 1) * rho
    r, c = linear_sum_assignment(np.where(sub < rho, sub, forbidden_cost))
    keep = sub[r, c] < rho
    return rows[r[keep]], cols[c[keep]]


def _greedy(dist: np.ndarray, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``< ρ`` taken by increasing distance while both ends are free."""
    pi, gi = np.nonzero(dist < rho)  # row-major: ties keep (prediction, gt) index order
    order = np.argsort(dist[pi, gi], kind="stable")
    used_p = np.zeros(dist.shape[0], dtype=bool)
    used_g = np.zeros(dist.shape[1], dtype=bool)
    rows: list[int] = []
    cols: list[int] = []
    for p, g in zip(pi[order], gi[order]):
        if not (used_p[p] or used_g[g]):
            used_p[p] = used_g[g] = True
            rows.append(int(p))
            cols.append(int(g))
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


def match_detections(
    pred: PointsLike, gt: PointsLike, rho: float, *, method: str = "hungarian"
) -> Matching:
    """Match predicted to ground-truth centroids one-to-one within distance ``< ρ``.

    Xue et al., section 4.2 (ICPR 2012 contest criterion); the strict inequality,
    one-to-one rule and methods are described in the module docstring.

    Args:
        pred: ``(k, 2)`` predicted centroids ``(row, col)``; an empty array or list
            means no detection.
        gt: ``(g, 2)`` ground-truth centroids.
        rho: match radius ``ρ > 0`` (the radius of the smallest cell in the paper).
        method: ``"hungarian"`` (most matches, then least total distance) or
            ``"greedy"`` (closest pairs first).

    Returns:
        A :class:`Matching`.
    """
    p = _points(pred, "pred")
    g = _points(gt, "gt")
    rho = check_number("rho", rho, error=InvalidInputError)
    _check_method(method)
    if p.shape[0] == 0 or g.shape[0] == 0:
        empty = np.zeros((0, 2), dtype=np.int64)
        return Matching(empty, np.zeros(0), p.shape[0], g.shape[0])
    dist = cdist(p, g)
    rows, cols = (_hungarian if method == "hungarian" else _greedy)(dist, rho)
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    return Matching(
        pairs=np.stack([rows, cols], axis=1).astype(np.int64).reshape(-1, 2),
        distances=dist[rows, cols],
        n_pred=p.shape[0],
        n_gt=g.shape[0],
    )


# ---------------------------------------------------------------------------------- scores


def _ratio(num: np.ndarray | int, den: np.ndarray | int, empty_score: float) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, empty_score, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


@dataclass(frozen=True)
class DetectionScores:
    """Detection scores over a set of images (conventions in the module docstring).

    Attributes:
        tp, fp, fn: counts summed over the images.
        precision, recall, f1: pooled scores from the summed counts (the contest's rule).
        per_image_tp, per_image_fp, per_image_fn: ``(N,)`` int counts per image.
        per_image_precision, per_image_recall, per_image_f1: ``(N,)`` scores per image.
        mean_precision, mean_recall, mean_f1: means of the per-image scores
            (NaN entries skipped).
        mean_distance: mean distance of the matched pairs (localisation error),
            NaN when nothing matched.
        mean_absolute_count_error: mean over images of ``|#predictions − #cells|``.
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    per_image_tp: np.ndarray
    per_image_fp: np.ndarray
    per_image_fn: np.ndarray
    per_image_precision: np.ndarray
    per_image_recall: np.ndarray
    per_image_f1: np.ndarray
    mean_precision: float
    mean_recall: float
    mean_f1: float
    mean_distance: float
    mean_absolute_count_error: float

    @property
    def n_images(self) -> int:
        """Number of images scored."""
        return int(self.per_image_tp.size)

    def as_dict(self) -> dict[str, float]:
        """The scalar fields (counts as floats), e.g. for a run record or a table row."""
        names = (
            "tp", "fp", "fn", "precision", "recall", "f1", "mean_precision", "mean_recall",
            "mean_f1", "mean_distance", "mean_absolute_count_error",
        )  # fmt: skip
        return {name: float(getattr(self, name)) for name in names}


def _scores(counts: np.ndarray, distances: np.ndarray, empty_score: float) -> DetectionScores:
    """Scores from ``(N, 3)`` per-image ``(tp, fp, fn)`` counts and all matched distances."""
    if counts.shape[0] == 0:
        raise InvalidInputError("detection scores need at least one image; expected one or more")
    tp_i, fp_i, fn_i = counts.T
    tp, fp, fn = (int(v) for v in counts.sum(axis=0))
    per_p = _ratio(tp_i, tp_i + fp_i, empty_score)
    per_r = _ratio(tp_i, tp_i + fn_i, empty_score)
    per_f1 = _ratio(2 * tp_i, 2 * tp_i + fp_i + fn_i, empty_score)
    return DetectionScores(
        tp=tp,
        fp=fp,
        fn=fn,
        precision=float(_ratio(tp, tp + fp, empty_score)),
        recall=float(_ratio(tp, tp + fn, empty_score)),
        f1=float(_ratio(2 * tp, 2 * tp + fp + fn, empty_score)),
        per_image_tp=tp_i.copy(),
        per_image_fp=fp_i.copy(),
        per_image_fn=fn_i.copy(),
        per_image_precision=per_p,
        per_image_recall=per_r,
        per_image_f1=per_f1,
        mean_precision=_mean(per_p),
        mean_recall=_mean(per_r),
        mean_f1=_mean(per_f1),
        mean_distance=float(distances.mean()) if distances.size else math.nan,
        mean_absolute_count_error=float(np.abs(fp_i - fn_i).mean()),
    )


def _is_single(points: object) -> bool:
    """True when ``points`` is one image's ``(k, 2)`` array rather than a list of them."""
    return isinstance(points, np.ndarray | torch.Tensor)


class DetectionMetric:
    """Accumulates per-image TP/FP/FN and match distances (Xue et al., section 4.2).

    Args:
        rho: match radius ``ρ > 0``; matches need distance ``< ρ``.
        method: ``"hungarian"`` or ``"greedy"`` (see :func:`match_detections`).
        empty_score: value of a ``0 / 0`` ratio (1.0, or NaN to leave it undefined).

    Example:
        >>> metric = DetectionMetric(rho=8.0)
        >>> for preds, gts in batches:  # doctest: +SKIP
        ...     metric(preds, gts)  # lists of (k, 2) arrays, or one array each
        >>> metric.aggregate().f1  # doctest: +SKIP
    """

    def __init__(self, rho: float, method: str = "hungarian", empty_score: float = 1.0) -> None:
        self.rho = check_number("rho", rho, error=InvalidInputError)
        _check_method(method)
        self.method = method
        self.empty_score = _check_empty_score(empty_score)
        self.reset()

    def __call__(
        self,
        pred: PointsLike | Sequence[PointsLike],
        gt: PointsLike | Sequence[PointsLike],
    ) -> None:
        """Add one image (two ``(k, 2)`` arrays) or several (two lists of arrays)."""
        if _is_single(pred):
            pairs = [(pred, gt)]
        else:
            if _is_single(gt) or len(pred) != len(gt):
                n_gt = 1 if _is_single(gt) else len(gt)
                raise InvalidInputError(
                    f"got {len(pred)} prediction arrays but {n_gt} ground-truth arrays; "
                    "expected one of each per image"
                )
            pairs = list(zip(pred, gt))
        matches = [match_detections(p, g, self.rho, method=self.method) for p, g in pairs]
        for m in matches:
            self._counts.append((m.tp, m.fp, m.fn))
            self._distances.append(m.distances)

    def aggregate(self) -> DetectionScores:
        """:class:`DetectionScores` of every image since the last :meth:`reset`."""
        if not self._counts:
            raise InvalidInputError(
                "DetectionMetric has no data; expected a call on at least one image before "
                "aggregate()")
        counts = np.asarray(self._counts, dtype=np.int64).reshape(-1, 3)
        return _scores(counts, np.concatenate(self._distances), self.empty_score)

    def reset(self) -> None:
        """Forget every accumulated image."""
        self._counts: list[tuple[int, int, int]] = []
        self._distances: list[np.ndarray] = []


def compute_detection_scores(
    preds: Sequence[PointsLike],
    gts: Sequence[PointsLike],
    rho: float,
    *,
    method: str = "hungarian",
    empty_score: float = 1.0,
) -> DetectionScores:
    """Pooled and per-image precision, recall and F1 of centroid detections.

    Xue et al., section 4.2: TP if within distance ``< ρ`` of a ground-truth
    centroid (one-to-one), ``P = TP/(TP+FP)``, ``R = TP/(TP+FN)``,
    ``F1 = 2PR/(P+R)``; pooled over the images from summed counts, as in the ICPR
    2012 contest. Empty-image rules are in the module docstring.

    Args:
        preds: one ``(k_i, 2)`` array of predicted ``(row, col)`` per image.
        gts: one ``(g_i, 2)`` array of ground-truth centroids per image.
        rho: match radius ``ρ > 0``.
        method: ``"hungarian"`` or ``"greedy"``.
        empty_score: value of a ``0 / 0`` ratio.

    Returns:
        :class:`DetectionScores`.
    """
    if _is_single(preds) or _is_single(gts):
        raise InvalidInputError(
            "preds and gts must be sequences with one (k, 2) array per image; wrap a "
            "single image in a list"
        )
    if len(preds) != len(gts):
        raise InvalidInputError(
            f"got {len(preds)} prediction arrays but {len(gts)} ground-truth arrays; "
            "expected one of each per image"
        )
    metric = DetectionMetric(rho, method=method, empty_score=empty_score)
    metric(list(preds), list(gts))
    return metric.aggregate()


# ---------------------------------------------------------------------------------- threshold


def best_f1_threshold(
    candidates: Sequence[PointsLike],
    gts: Sequence[PointsLike],
    rho: float,
    *,
    method: str = "hungarian",
    max_thresholds: int = 100,
) -> tuple[float, float]:
    """The score threshold that maximises the pooled F1 of scored candidates.

    Used to give baselines a fair operating point chosen on training images.
    Detections are the candidates with ``score > threshold``. The thresholds tried
    are the midpoints between consecutive distinct candidate scores (so a fitted
    threshold sits halfway between the classes it separates, not on a training
    score), the value just below the lowest score (keeps all) and the highest
    score (keeps none); when that makes more than ``max_thresholds``, the
    midpoints are subsampled evenly in rank. Ties in F1 go to the higher
    threshold (fewer detections).

    Args:
        candidates: one ``(k_i, 3)`` array of ``(row, col, score)`` per image (e.g.
            from :func:`~wslbench.metrics.extract_candidates`).
        gts: one ``(g_i, 2)`` array of ground-truth centroids per image.
        rho: match radius ``ρ > 0``.
        method: ``"hungarian"`` or ``"greedy"``.
        max_thresholds: largest number of thresholds tried, at least 2 (keep all, keep none).

    Returns:
        ``(threshold, pooled_f1)``.
    """
    if len(candidates) != len(gts):
        raise InvalidInputError(
            f"got {len(candidates)} candidate arrays but {len(gts)} ground-truth arrays; "
            "expected one of each per image"
        )
    if (
        isinstance(max_thresholds, bool)
        or not isinstance(max_thresholds, int)
        or max_thresholds < 2
    ):
        raise InvalidInputError(f"max_thresholds must be an int >= 2, got {max_thresholds!r}")
    cands = [_points(c, "candidates", ncol=3) for c in candidates]
    gt_arrays = [_points(g, "gt") for g in gts]
    scores = np.unique(np.concatenate([c[:, 2] for c in cands])) if cands else np.zeros(0)
    if scores.size == 0:
        raise InvalidInputError("best_f1_threshold needs at least one candidate")
    cuts = (scores[:-1] + scores[1:]) / 2
    if cuts.size > max_thresholds - 2:
        cuts = cuts[np.linspace(0, cuts.size - 1, max_thresholds - 2).round().astype(int)]
    thresholds = np.r_[np.nextafter(scores[0], -np.inf), cuts, scores[-1]]
    best_t, best_f1 = thresholds[-1], -1.0
    for t in thresholds:
        metric = DetectionMetric(rho, method=method)
        metric([c[c[:, 2] > t, :2] for c in cands], gt_arrays)
        f1 = metric.aggregate().f1
        if f1 >= best_f1:
            best_t, best_f1 = float(t), f1
    return best_t, best_f1
