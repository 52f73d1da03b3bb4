"""Three orthogonal slices of a 3D volume with an optional overlay (MRI masks, atrophy maps).

Used by :class:`wslbench.widgets.VolumeViewer` and the MRI notebook
(Thibeau-Sutre et al. 2020, Fig. 3: masks on sagittal, coronal, axial slices).
Axis convention: a volume is ``(D, H, W)`` = (x, y, z) voxel axes as nibabel
loads them; the sagittal slice fixes axis 0, coronal axis 1, axial axis 2.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from wslbench.errors import InvalidInputError

__all__ = ["AXIS_NAMES", "as_volume", "orthogonal_slices", "orthogonal_slices_figure"]

AXIS_NAMES = ("sagittal", "coronal", "axial")


def as_volume(volume: object, name: str = "volume") -> np.ndarray:
    """A finite ``(D, H, W)`` float array from an array/tensor, dropping leading axes of 1."""
    arr = np.asarray(volume.detach().cpu() if hasattr(volume, "detach") else volume, dtype=np.float64)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise InvalidInputError(f"{name} must be (D, H, W), got shape {np.shape(volume)}")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{name} contains NaN or Inf; expected finite values")
    return arr


def orthogonal_slices(volume: np.ndarray, index: tuple[int, int, int]) -> list[np.ndarray]:
    """The sagittal, coronal and axial slices through voxel ``index``, rotated for display."""
    if len(index) != 3:
        raise InvalidInputError(f"index must have 3 entries, got {index!r}")
    for axis, (i, n) in enumerate(zip(index, volume.shape)):
        if not 0 <= i < n:
            raise InvalidInputError(f"{AXIS_NAMES[axis]} index {i} out of range [0, {n})")
    i, j, k = index
    return [np.rot90(volume[i, :, :]), np.rot90(volume[:, j, :]), np.rot90(volume[:, :, k])]


def orthogonal_slices_figure(
    volume: object,
    index: tuple[int, int, int] | None = None,
    *,
    overlay: object | None = None,
    opacity: float = 0.5,
    threshold: float = 0.0,
    cmap: str = "hot",
    scale: tuple[float, float] | None = None,
    panel_size: float = 3.0,
) -> Figure:
    """Figure of the three orthogonal slices through ``index`` (default: the centre).

    Args:
        volume: ``(D, H, W)`` background volume (grey levels).
        index: voxel ``(i, j, k)`` the slices pass through.
        overlay: optional map of the same shape drawn on top (mask, relevance).
        opacity: overlay alpha in [0, 1].
        threshold: overlay values below this fraction of its scale are transparent.
        cmap: overlay colour map.
        scale: overlay ``(vmin, vmax)``; default its min and max.
        panel_size: inches per panel.
    """
    vol = as_volume(volume)
    if index is None:
        index = tuple(n // 2 for n in vol.shape)  # type: ignore[assignment]
    if not 0.0 <= opacity <= 1.0 or not 0.0 <= threshold < 1.0:
        raise InvalidInputError(
            f"opacity must be in [0, 1] and threshold in [0, 1), got {opacity}, {threshold}"
        )
    over = None
    if overlay is not None:
        over = as_volume(overlay, "overlay")
        if over.shape != vol.shape:
            raise InvalidInputError(
                f"overlay has shape {over.shape}, expected the volume's {vol.shape}"
            )
    fig, axes = plt.subplots(1, 3, figsize=(3 * panel_size, panel_size))
    backgrounds = orthogonal_slices(vol, index)  # type: ignore[arg-type]
    overlays = orthogonal_slices(over, index) if over is not None else [None] * 3  # type: ignore[arg-type]
    vmin, vmax = scale if scale is not None else (
        (float(over.min()), float(over.max())) if over is not None else (0.0, 1.0)
    )
    cut = vmin + threshold * (vmax - vmin)
    for ax, name, bg, ov in zip(axes, AXIS_NAMES, backgrounds, overlays):
        ax.imshow(bg, cmap="gray")
        if ov is not None:
            shown = np.ma.masked_where(ov < cut, ov) if threshold > 0 else ov
            ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, alpha=opacity)
        ax.set_title(name)
        ax.set_axis_off()
    return fig
