"""Figures of notebook 05: the group mask next to the true atrophy, session masks of two
subjects side by side (Thibeau-Sutre et al. 2020, Fig. 3, 5 and 6 show masks on slices)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from wslbench.errors import InvalidInputError
from wslbench.experiments.mri.data import MRIData
from wslbench.experiments.mri.masks import SessionMasks
from wslbench.viz.volume import AXIS_NAMES, orthogonal_slices

__all__ = ["atrophy_centre", "group_vs_truth_figure", "session_masks_figure"]


def atrophy_centre(data: MRIData) -> tuple[int, int, int]:
    """Voxel of the highest mean true atrophy over the AD sessions (the slices go through it)."""
    ad = data.cohort.labels == 1
    if not bool(ad.any()):
        raise InvalidInputError("the cohort holds no AD session; there is no atrophy to show")
    mean = data.cohort.atrophy_maps[ad].mean(0)[0].numpy()
    return tuple(int(i) for i in np.unravel_index(int(mean.argmax()), mean.shape))  # type: ignore[return-value]


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
    mean GM map of the AD sessions."""
    ad = data.cohort.labels == 1
    background = data.cohort.volumes[ad].mean(0)[0].numpy()
    truth = data.cohort.atrophy_maps[ad].mean(0)[0].numpy()
    index = atrophy_centre(data)
    fig, axes = plt.subplots(2, 3, figsize=(9, 6))
    _row(axes[0], background, 1.0 - mask.reshape(background.shape).numpy(), index, "group mask 1 − m")
    _row(axes[1], background, truth, index, "true atrophy")
    fig.tight_layout()
    return fig


def session_masks_figure(data: MRIData, sessions: SessionMasks, n_subjects: int = 2) -> Figure:
    """Coronal slices of the session masks' ``1 − m`` on their own GM map: one row per subject
    (the first ``n_subjects``), one column per session, with the session's true atrophy
    outlined (cyan)."""
    subjects = list(dict.fromkeys(sessions.subjects))[:n_subjects]
    rows = [[i for i, s in enumerate(sessions.subjects) if s == subject] for subject in subjects]
    if not rows:
        raise InvalidInputError("no session mask to show")
    j = atrophy_centre(data)[1]
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
            gm = np.rot90(data.cohort.volumes[k, 0, :, j, :].numpy())
            over = np.rot90(1.0 - sessions.masks[i, 0, :, j, :].numpy())
            truth = np.rot90(data.cohort.atrophy_maps[k, 0, :, j, :].numpy())
            ax.imshow(gm, cmap="gray")
            ax.imshow(np.ma.masked_less_equal(over, 0.05), cmap="hot", vmin=0, vmax=1, alpha=0.7)
            if truth.max() > 0.05:
                ax.contour(truth, levels=[0.05], colors="cyan", linewidths=1)
            ax.set_title(f"{sessions.subjects[i]} {data.cohort.session_ids[k]}", fontsize=9)
    fig.tight_layout()
    return fig
