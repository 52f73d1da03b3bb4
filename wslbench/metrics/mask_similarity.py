"""Similarity of perturbation masks: ROI vectors, cosine similarity, prob_CNN (Thibeau-Sutre 2020, 2.4).

Section 2.4 compares two masks (eq. 1 masks, low values = perturbed) in two ways.

- **prob_CNN**: "the output probabilities of the CNN for the true class for an
  input masked by two masks optimized in two different contexts": a mask
  optimised in one context (run, fold, session, data set) is applied to the
  images of another, and the CNN's mean probability of the true class is read
  (:func:`prob_cnn`). Close to 1: the mask does not perturb the other context's
  images, i.e. the two masks are *dissimilar*.
- **ROI-based similarity**: "For each ROI, 1 minus the sum of the values in the
  ROI is computed, resulting in a ROI-vector of size 120 for each mask. Each
  value in the ROI-vector represents the density of the mask in the associated
  ROI. The ROI-based similarity between two masks is then the cosine similarity
  of two ROI-vectors." Read literally, ``1 − Σ_{u ∈ R} m(u)`` is negative for any
  ROI of more than one untouched voxel and grows with the ROI's size, which is no
  density; :func:`roi_vector` uses the density the text describes,
  ``1 − Σ_{u ∈ R} m(u) / |R| = mean_{u ∈ R} (1 − m(u))``, the share of the ROI
  that is perturbed, in [0, 1]. The 120 ROIs are those of the AAL2 atlas; any
  integer label volume in the images' space works (label 0 = background is not
  an ROI unless asked for).

The session-level analysis (2.3.4) averages the similarities of all pairs of
sessions of a subject (intra-subject, then the mean over subjects) and of all
pairs of baseline sessions of different subjects (inter-subject):
:func:`intra_inter_similarity`. The hyper-parameter tables (Tables 2–3: β₁ ∈
{0.1, 0.5, 1, 2}, β₂ ∈ {1, 2, 3}, λ₁, λ₂ grids) and the fold/run comparisons
(3.4) are pairwise ROI similarities of named masks: :func:`similarity_table`
and :func:`mean_offdiagonal` ("the mean value of all pairs", 2.3.3).

:func:`mask_overlap` scores a mask against a known atrophy map (synthetic data):
Dice and IoU of the perturbed region and the share of ``1 − m`` inside the map.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

# a module reference, not ``from … import perturb``: importing wslbench.attribution loads
# wslbench.training, whose MRI module loads wslbench.metrics, which lands here while
# meaningful_perturbation is still initialising
import wslbench.attribution.meaningful_perturbation as meaningful_perturbation
from wslbench.data.volume_store import VolumeStore, as_volume_store
from wslbench.errors import InvalidInputError
from wslbench.metrics._arrays import as_float_array
from wslbench.metrics.localisation import energy_in_mask
from wslbench.metrics.segmentation import dice_from_counts, iou_from_counts
from wslbench.model_state import preserved_model_state

__all__ = [
    "MaskOverlap",
    "cosine_similarity",
    "intra_inter_similarity",
    "mask_overlap",
    "mean_offdiagonal",
    "prob_cnn",
    "roi_vector",
    "similarity_matrix",
    "similarity_table",
]

MaskLike = torch.Tensor | np.ndarray


def _mask_array(mask: MaskLike, name: str) -> np.ndarray:
    """``mask`` as a finite float64 array with values in [0, 1]."""
    m = as_float_array(mask, name)
    if m.min() < 0 or m.max() > 1:
        raise InvalidInputError(f"{name} values must lie in [0, 1], got [{m.min()}, {m.max()}]")
    return m


def _atlas(labels: MaskLike) -> np.ndarray:
    """``labels`` as a ``(D, H, W)`` non-negative int64 array."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(
            f"labels must be a (D, H, W) integer atlas volume, got {arr.dtype} of shape {arr.shape}"
        )
    if arr.min() < 0:
        raise InvalidInputError("labels must be non-negative region ids (0 = background)")
    return arr.astype(np.int64)


def _spatial_masks(m: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """``(M, D, H, W)`` from a ``(D, H, W)`` mask or ``(M, 1, D, H, W)`` masks."""
    if m.shape == shape:
        return m[None]
    if m.ndim == 5 and m.shape[1] == 1 and m.shape[2:] == shape:
        return m[:, 0]
    raise InvalidInputError(
        f"{name} must be (D, H, W) = {shape} or (M, 1, *{shape}) masks, got {m.shape}"
    )


def roi_vector(
    mask: MaskLike, labels: MaskLike, *, region_ids: Sequence[int] | None = None
) -> np.ndarray:
    """Density of the mask in every ROI: ``mean_{u ∈ R} (1 − m(u))`` (2.4, see module docstring).

    Args:
        mask: one mask ``(D, H, W)``, or ``(M, 1, D, H, W)`` masks (the layout of
            :class:`~wslbench.attribution.PerturbationResult`), values in [0, 1].
        labels: ``(D, H, W)`` integer atlas (e.g. AAL2's 120 regions), 0 = background.
        region_ids: the ROIs, in this order (each must occur in ``labels``);
            default: every non-zero label, in increasing order.

    Returns:
        float64 ``(R,)`` for one mask or ``(M, R)`` for ``M`` masks, in [0, 1].
    """
    atlas = _atlas(labels)
    m_all = _mask_array(mask, "mask")
    masks = _spatial_masks(m_all, atlas.shape, "mask")
    flat = atlas.ravel()
    sizes = np.bincount(flat)
    if region_ids is None:
        ids = np.flatnonzero(sizes[1:]) + 1
        if ids.size == 0:
            raise InvalidInputError("labels hold no region (every voxel is background 0)")
    else:
        ids = np.asarray(region_ids)
        if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise InvalidInputError("region_ids must be a non-empty sequence of integer ids")
        if np.unique(ids).size != ids.size:
            raise InvalidInputError("region_ids must not repeat an id")
        valid = (ids >= 0) & (ids < sizes.size)
        present = np.zeros(ids.size, dtype=bool)
        present[valid] = sizes[ids[valid]] > 0
        missing = ids[~present]
        if missing.size:
            raise InvalidInputError(
                f"region_ids {missing.tolist()[:10]} do not occur in labels; a ROI needs voxels"
            )
    out = np.stack(
        [
            np.bincount(flat, weights=1.0 - m.ravel(), minlength=sizes.size)[ids] / sizes[ids]
            for m in masks
        ]
    )
    return out[0] if m_all.ndim == atlas.ndim else out


def _vectors(vectors: object, name: str) -> np.ndarray:
    v = as_float_array(vectors, name)
    if v.ndim != 2 or v.shape[0] < 1:
        raise InvalidInputError(f"{name} must be (N, R) ROI vectors, got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise InvalidInputError(
            f"{name} {zero.tolist()[:10]} are zero vectors (masks that perturb no ROI); "
            "their cosine similarity is undefined"
        )
    return v / norms[:, None]


def cosine_similarity(u: MaskLike | Sequence[float], v: MaskLike | Sequence[float]) -> float:
    """``⟨u, v⟩ / (‖u‖ ‖v‖)`` of two ROI vectors (2.4); zero vectors raise an error."""
    a = as_float_array(u, "u")
    b = as_float_array(v, "v")
    if a.ndim != 1 or a.shape != b.shape:
        raise InvalidInputError(
            f"u and v must be 1-D vectors of equal length, got {a.shape} and {b.shape}"
        )
    unit = _vectors(np.stack([a, b]), "vectors")
    return float(np.clip(unit[0] @ unit[1], -1.0, 1.0))


def similarity_matrix(vectors: MaskLike | Sequence[Sequence[float]]) -> np.ndarray:
    """``(N, N)`` pairwise cosine similarities of ``(N, R)`` ROI vectors (1 on the diagonal)."""
    unit = _vectors(vectors, "vectors")
    sim = np.clip(unit @ unit.T, -1.0, 1.0)
    np.fill_diagonal(sim, 1.0)
    return sim


def mean_offdiagonal(matrix: MaskLike | Sequence[Sequence[float]]) -> float:
    """Mean of the entries ``(i, j)``, ``i ≠ j``, of a square matrix ("mean value of all pairs").

    For a symmetric similarity matrix this is the mean over unordered pairs.
    """
    s = as_float_array(matrix, "matrix")
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] < 2:
        raise InvalidInputError(f"matrix must be square with at least 2 rows, got {s.shape}")
    n = s.shape[0]
    return float((s.sum() - np.trace(s)) / (n * (n - 1)))


def intra_inter_similarity(
    vectors: MaskLike | Sequence[Sequence[float]], subject_ids: Sequence[object] | np.ndarray
) -> tuple[float, float]:
    """Mean intra-subject and inter-subject ROI similarity of session masks (2.3.4).

    Intra-subject: for every subject with two or more sessions, the mean
    similarity of all pairs of its sessions; then the mean over those subjects.
    Inter-subject: the mean similarity of all pairs of *baseline* sessions of
    different subjects, the baseline being a subject's first session in the given
    order (list sessions in time order).

    Args:
        vectors: ``(N, R)`` ROI vectors, one per session (:func:`roi_vector`).
        subject_ids: ``(N,)`` subject of every session.

    Returns:
        ``(intra, inter)``.
    """
    sim = similarity_matrix(vectors)
    ids = np.asarray(subject_ids)
    if ids.shape != (sim.shape[0],):
        raise InvalidInputError(
            f"subject_ids must have one entry per vector ({sim.shape[0]}), got shape {ids.shape}"
        )
    subjects, first, subject_of, counts = np.unique(
        ids, return_index=True, return_inverse=True, return_counts=True
    )
    repeated = np.flatnonzero(counts >= 2)
    if repeated.size == 0 or subjects.size < 2:
        raise InvalidInputError(
            "intra/inter-subject similarity needs at least one subject with two sessions and "
            f"at least two subjects; got {subjects.size} subject(s), none with two sessions"
            if repeated.size == 0
            else "intra/inter-subject similarity needs at least two subjects; got one"
        )
    intra = np.mean(
        [mean_offdiagonal(sim[np.ix_(subject_of == s, subject_of == s)]) for s in repeated]
    )
    inter = mean_offdiagonal(sim[np.ix_(first, first)])
    return float(intra), inter


def similarity_table(
    masks: Mapping[Hashable, MaskLike],
    labels: MaskLike,
    *,
    region_ids: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Pairwise ROI-based similarities of named masks, as in Tables 2–3 (3.3).

    Args:
        masks: ``{name: (D, H, W) mask}``, e.g. ``{0.1: m, 0.5: m, 1: m, 2: m}`` for
            the β₁ grid; at least two.
        labels: ``(D, H, W)`` integer atlas.
        region_ids: as in :func:`roi_vector` (the same ROIs for every mask).

    Returns:
        ``(K, K)`` DataFrame of cosine similarities, index and columns the names in
        the mapping's order.
    """
    if not isinstance(masks, Mapping) or len(masks) < 2:
        raise InvalidInputError("masks must be a mapping of at least two named masks")
    atlas = _atlas(labels)
    if region_ids is None:
        region_ids = (np.flatnonzero(np.bincount(atlas.ravel())[1:]) + 1).tolist()
    vectors = []
    for name, mask in masks.items():
        vector = roi_vector(mask, atlas, region_ids=region_ids)
        if vector.ndim != 1:
            raise InvalidInputError(f"mask {name!r} must be one (D, H, W) mask, got several")
        vectors.append(vector)
    names = list(masks)
    return pd.DataFrame(similarity_matrix(np.stack(vectors)), index=names, columns=names)


def prob_cnn(
    model: nn.Module,
    volumes: torch.Tensor | VolumeStore,
    targets: int | Sequence[int] | torch.Tensor,
    mask: torch.Tensor,
    *,
    mu: float = 1.0,
    batch_size: int = 8,
) -> float:
    """Mean probability of the true class on ``X'_m = m·X + (1 − m)·μ`` (2.4, eq. 1).

    The mask may come from another context than the volumes (another run, fold,
    session or data set): this is the paper's prob_CNN cross-application. The
    model runs in eval mode without gradients (its modes are restored), one
    batch of volumes at a time.

    Args:
        model: maps ``(B, C, D, H, W)`` to ``(B, K)`` logits, ``K >= 2``; the
            probability is the softmax of the target class.
        volumes: ``(N, C, D, H, W)`` images (a large CPU tensor, or a lazy
            :class:`~wslbench.data.volume_store.VolumeStore` read batch by batch).
        targets: the true class, one int for all or ``(N,)`` indices.
        mask: one mask for every volume, ``(D, H, W)`` or ``(1, 1, D, H, W)``, or
            one per volume, ``(N, 1, D, H, W)``; values in [0, 1].
        mu: the replacement value μ (1 in the paper: full gray matter).
        batch_size: volumes per forward pass.

    Returns:
        The mean over the ``N`` volumes, in [0, 1].
    """
    volumes = as_volume_store(volumes, "volumes")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    n, spatial = volumes.shape[0], tuple(volumes.shape[2:])
    m = torch.as_tensor(_mask_array(mask, "mask"), dtype=torch.float32)
    if tuple(m.shape) == spatial:
        m = m[None, None]
    if m.ndim != 5 or m.shape[1] != 1 or tuple(m.shape[2:]) != spatial or m.shape[0] not in (1, n):
        raise InvalidInputError(
            f"mask must be {spatial}, (1, 1, *{spatial}) or ({n}, 1, *{spatial}) for these "
            f"volumes, got {tuple(m.shape)}"
        )
    t = torch.as_tensor(targets)
    t = t.expand(n) if t.ndim == 0 else t
    if t.shape != (n,) or t.is_floating_point() or t.dtype == torch.bool:
        raise InvalidInputError(f"targets must be one class index or {n} of them")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    m = m.to(device)
    total = 0.0
    with preserved_model_state(model), torch.no_grad():
        model.eval()
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            x = volumes[sl].to(device=device, dtype=torch.float32)
            out = model(meaningful_perturbation.perturb(x, m if m.shape[0] == 1 else m[sl], mu))
            if out.ndim != 2 or out.shape[1] < 2:
                raise InvalidInputError(
                    f"prob_cnn needs (B, K >= 2) logits from the model, got {tuple(out.shape)}"
                )
            target = t[sl].to(device=device, dtype=torch.int64)
            if target.min() < 0 or target.max() >= out.shape[1]:
                raise InvalidInputError(f"targets must be class indices in 0 … {out.shape[1] - 1}")
            prob = torch.softmax(out.double(), dim=1).gather(1, target[:, None])
            total += float(prob.sum())
    return total / n


@dataclass(frozen=True)
class MaskOverlap:
    """Agreement of a mask with a known atrophy region (see :func:`mask_overlap`).

    Attributes:
        dice: Dice index of the perturbed region ``{m ≤ threshold}`` and the truth.
        iou: IoU (Jaccard) of the same two regions.
        energy: share of the perturbation ``Σ (1 − m)`` that lies inside the truth.
    """

    dice: float
    iou: float
    energy: float


def mask_overlap(mask: MaskLike, truth_map: MaskLike, *, threshold: float = 0.95) -> MaskOverlap:
    """Dice, IoU and energy of a mask's perturbed region against a true atrophy region.

    The perturbed region is ``{u : m(u) ≤ threshold}``: with the paper's
    post-processing (2.3: "values above 0.95 are set to 1") these are the voxels
    the mask keeps below 1. Dice and IoU are those of Rony 2020 eqs. 2.3 and 3.12
    (:func:`~wslbench.metrics.dice_from_counts`); the energy is
    :func:`~wslbench.metrics.energy_in_mask` of the map ``1 − m`` (0 for a mask
    of ones).

    Args:
        mask: ``(D, H, W)`` or ``(1, 1, D, H, W)`` mask, values in [0, 1].
        truth_map: ``(D, H, W)`` bool or 0/1 true region (e.g. the region a
            synthetic generator dimmed), not empty.
        threshold: in [0, 1).

    Returns:
        :class:`MaskOverlap`.
    """
    if not (isinstance(threshold, int | float) and 0.0 <= threshold < 1.0):
        raise InvalidInputError(f"threshold must be in [0, 1), got {threshold!r}")
    truth = as_float_array(truth_map, "truth_map")
    if truth.ndim != 3 or not np.isin(truth, (0.0, 1.0)).all():
        raise InvalidInputError(
            f"truth_map must be a (D, H, W) bool or 0/1 volume, got shape {truth.shape}"
        )
    truth = truth.astype(bool)
    if not truth.any():
        raise InvalidInputError("truth_map is empty; expected at least one true voxel")
    m = _spatial_masks(_mask_array(mask, "mask"), truth.shape, "mask")
    if m.shape[0] != 1:
        raise InvalidInputError(f"mask must be one mask, got {m.shape[0]}")
    m = m[0]
    perturbed = m <= threshold
    tp = torch.tensor(int((perturbed & truth).sum()))
    fp = torch.tensor(int((perturbed & ~truth).sum()))
    fn = torch.tensor(int((~perturbed & truth).sum()))
    energy = energy_in_mask(
        torch.from_numpy(1.0 - m)[None, None], torch.from_numpy(truth)[None, None]
    )
    return MaskOverlap(
        dice=float(dice_from_counts(tp, fp, fn)),
        iou=float(iou_from_counts(tp, fp, fn)),
        energy=float(energy[0]),
    )
