"""Figures of notebook 05: the group mask next to the true atrophy, session masks of two
subjects side by side (Thibeau-Sutre et al. 2020, Fig. 3, 5 and 6 show masks on slices).

Means over the AD sessions are streamed batch by batch (:func:`~wslbench.data.volume_store.mean_volume`),
so a cohort read lazily from disk is never materialised. A cohort without ground truth
(real data, ``atrophy_maps`` is ``None``) shows the masks alone, through the voxel the mask
perturbs most."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import ndimage

from wslbench.data.volume_store import mean_volume
from wslbench.errors import InvalidInputError
from wslbench.experiments.mri.data import MRIData
from wslbench.experiments.mri.masks import SessionMasks
from wslbench.viz.volume import AXIS_NAMES, orthogonal_slices

__all__ = ["atrophy_centre", "group_vs_truth_figure", "session_masks_figure"]


def _ad_indices(data: MRIData) -> np.ndarray:
    ad = np.flatnonzero((data.cohort.labels == 1).numpy())
    if ad.size == 0:
        raise InvalidInputError("the cohort holds no AD session; there is no atrophy to show")
    return ad


def _argmax(volume: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(i) for i in np.unravel_index(int(volume.argmax()), volume.shape))  # type: ignore[return-value]


def atrophy_centre(data: MRIData, mask: torch.Tensor | None = None) -> tuple[int, int, int]:
    """Voxel of the highest mean true atrophy over the AD sessions (the slices go through it).

    Without ground truth (``atrophy_maps`` is ``None``): the voxel of the highest ``1 − m``
    of ``mask`` (one mask, or the mean of several), smoothed (Gaussian, σ = 1 voxel, so an
    isolated voxel does not win) and restricted to the atlas's regions; without a mask, the
    grid's centre."""
    ad = _ad_indices(data)
    if data.cohort.atrophy_maps is not None:
        return _argmax(mean_volume(data.cohort.atrophy_maps, ad)[0].numpy())
    shape = tuple(int(s) for s in data.cohort.volumes.shape[2:])
    if mask is None:
        return tuple(s // 2 for s in shape)  # type: ignore[return-value]
    weight = ndimage.gaussian_filter(1.0 - mask.reshape(-1, *shape).mean(0).numpy(), 1.0)
    return _argmax(np.where(data.atlas.labels > 0, weight, -np.inf))


def _row(axes: np.ndarray, background: np.ndarray, overlay: np.ndarray, index: tuple[int, int, int],
         title: str) -> None:
    vmax = max(float(overlay.max()), 1e-6)
    for ax, back, over, name in zip(axes, orthogonal_slices(background, index),
                                    orthogonal_slices(overlay, index), AXIS_NAMES):
        ax.imshow(back, cmap="gray")
        ax.imshow(np.ma.masked_less_equal(over, 0.05 * vmax), cmap="hot", vmin=0, vmax=vmax, alpha=0.7)
        ax.set_title(f"{title} — {name}", fontsize=9)
        ax.axis("off")


def group_vs_truth_figure(data: MRIData, mask: torch.Tensor) -> Figure:
    """Two rows of sagittal, coronal and axial slices through :func:`atrophy_centre`: the group
    mask's ``1 − m`` (top) and the mean true atrophy of the AD sessions (bottom), both on the
    mean GM map of the AD sessions; one row (the mask) for a cohort without ground truth."""
    ad = _ad_indices(data)
    background = mean_volume(data.cohort.volumes, ad)[0].numpy()
    truth = (None if data.cohort.atrophy_maps is None
             else mean_volume(data.cohort.atrophy_maps, ad)[0].numpy())
    index = atrophy_centre(data, mask)
    fig, axes = plt.subplots(1 if truth is None else 2, 3, figsize=(9, 3 if truth is None else 6),
                             squeeze=False)
    _row(axes[0], background, 1.0 - mask.reshape(background.shape).numpy(), index, "group mask 1 − m")
    if truth is not None:
        _row(axes[1], background, truth, index, "true atrophy")
    fig.tight_layout()
    return fig


def session_masks_figure(data: MRIData, sessions: SessionMasks, n_subjects: int = 2) -> Figure:
    """Coronal slices of the session masks' ``1 − m`` on their own GM map: one row per subject
    (the first ``n_subjects``), one column per session, with the session's true atrophy
    outlined (cyan) when the cohort has ground truth."""
    subjects = list(dict.fromkeys(sessions.subjects))[:n_subjects]
    rows = [[i for i, s in enumerate(sessions.subjects) if s == subject] for subject in subjects]
    if not rows:
        raise InvalidInputError("no session mask to show")
    j = atrophy_centre(data, sessions.masks)[1]
    volumes, truths = data.cohort.volumes, data.cohort.atrophy_maps
    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(3 * cols, 3 * len(rows)), squeeze=False)
    for r, members in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(members):
                continue
            i = members[c]
            k = int(sessions.indices[i])
            gm = np.rot90(volumes[[k]][0, 0, :, j, :].numpy())
            over = np.rot90(1.0 - sessions.masks[i, 0, :, j, :].numpy())
            ax.imshow(gm, cmap="gray")
            ax.imshow(np.ma.masked_less_equal(over, 0.05), cmap="hot", vmin=0, vmax=1, alpha=0.7)
            truth = None if truths is None else np.rot90(truths[[k]][0, 0, :, j, :].numpy())
            if truth is not None and truth.max() > 0.05:
                ax.contour(truth, levels=[0.05], colors="cyan", linewidths=1)
            ax.set_title(f"{sessions.subjects[i]} {data.cohort.session_ids[k]}", fontsize=9)
    fig.tight_layout()
    return fig
