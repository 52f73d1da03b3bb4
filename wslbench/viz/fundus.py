"""Fundus figures: synthetic cases with their lesion masks, preprocessing before/after."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from wslbench.viz.heatmaps import as_display_image

__all__ = ["LESION_COLOURS", "lesion_outline_image", "fundus_grid_figure", "before_after_figure"]

#: Outline colour of each lesion type in :func:`lesion_outline_image`.
LESION_COLOURS: dict[str, tuple[float, float, float]] = {
    "microaneurysm": (0.0, 1.0, 1.0),
    "hemorrhage": (0.2, 0.4, 1.0),
    "hard_exudate": (0.0, 1.0, 0.0),
    "cotton_wool": (1.0, 0.0, 1.0),
}


def lesion_outline_image(image: object, masks: object, lesion_types: Sequence[str]) -> np.ndarray:
    """The image with each lesion type's mask border drawn in its :data:`LESION_COLOURS`."""
    from scipy import ndimage as ndi

    out = np.array(as_display_image(image), dtype=float)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    stack = np.asarray(masks.cpu() if hasattr(masks, "cpu") else masks, dtype=bool)
    for kind, mask in zip(lesion_types, stack):
        border = mask & ~ndi.binary_erosion(mask)
        grown = ndi.binary_dilation(border) if mask.sum() < 30 else border
        out[grown] = LESION_COLOURS.get(kind, (1.0, 1.0, 1.0))
    return out


def fundus_grid_figure(
    images: object,
    masks: object,
    grades: Sequence[int],
    lesion_types: Sequence[str],
    *,
    columns: int = 4,
    panel_size: float = 2.6,
) -> Figure:
    """A grid of cases ``(N, 3, S, S)`` with lesion outlines and their grade in the title."""
    n = len(grades)
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * panel_size, rows * panel_size),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, ax in enumerate(axes.flat[:n]):
        ax.imshow(lesion_outline_image(images[i], masks[i], lesion_types))
        ax.set_title(f"grade {int(grades[i])}", fontsize=9)
    handles = [plt.Line2D([], [], color=LESION_COLOURS[k], lw=3, label=k)
               for k in lesion_types if k in LESION_COLOURS]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    return fig


def before_after_figure(pairs: Sequence[tuple[str, object]], *, panel_size: float = 3.2) -> Figure:
    """Images side by side with titles (e.g. a fundus before and after preprocessing)."""
    fig, axes = plt.subplots(1, len(pairs), figsize=(panel_size * len(pairs), panel_size),
                             squeeze=False)
    for ax, (title, image) in zip(axes[0], pairs):
        img = as_display_image(image)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return fig
