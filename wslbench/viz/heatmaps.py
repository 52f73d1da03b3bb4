"""Static heatmap figures: an image next to N heatmaps on one shared colour scale.

Used by :class:`wslbench.widgets.HeatmapComparisonPanel` and by the notebooks
for saved figures (π₀ next to the sparsity-enhanced π, Quellec 2017, Fig. 4;
CAMs next to ground truth, Rony 2020, Fig. 3.3).

How a map is drawn over the photograph (Fig. 4 of Quellec 2017 shows heat over the
image): one colour scale per figure (:func:`shared_scale`), so π₀ and the
sparsity-enhanced π are compared in the same units; a sequential colour map
(:data:`SEQUENTIAL_CMAP`) when every map is non-negative (π, ω, CAMs) and a diverging
one (:data:`DIVERGING_CMAP`) centred on 0 when a map is signed (LRP); and a colour map
whose opacity rises from 0 at the map's zero to full at :data:`FULL_OPACITY_AT` of the
scale, so near-zero heat leaves the photograph visible (a zero map leaves it unchanged).
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import Colormap, ListedColormap
from matplotlib.figure import Figure

from wslbench.errors import InvalidInputError

__all__ = ["as_display_image", "as_heatmap", "shared_scale", "overlay_cmap", "heatmap_comparison_figure",
           "SEQUENTIAL_CMAP", "DIVERGING_CMAP", "FULL_OPACITY_AT"]

#: Colour map of non-negative maps (π, ω, Grad-CAM, CAMs).
SEQUENTIAL_CMAP = "inferno"
#: Colour map of signed maps (LRP), centred on 0.
DIVERGING_CMAP = "RdBu_r"
#: Fraction of the scale (from the map's zero) at which the overlay reaches full opacity.
FULL_OPACITY_AT = 0.25


def as_display_image(image: object) -> np.ndarray:
    """An ``(H, W)`` or ``(H, W, 3)`` float array in [0, 1] from an array or tensor.

    Accepts ``(H, W)``, ``(H, W, C)``, ``(C, H, W)`` and a leading batch axis of 1,
    with C in {1, 3}; values are min-max scaled when they leave [0, 1].
    """
    arr = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=np.float64)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise InvalidInputError(
            f"image must be (H, W), (H, W, 3) or (3, H, W), got shape {np.shape(image)}"
        )
    if not np.isfinite(arr).all():
        raise InvalidInputError("image contains NaN or Inf; expected finite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return arr


def as_heatmap(heatmap: object) -> np.ndarray:
    """An ``(H, W)`` float array from a ``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)`` map."""
    arr = np.asarray(
        heatmap.detach().cpu() if hasattr(heatmap, "detach") else heatmap, dtype=np.float64
    )
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise InvalidInputError(f"heatmap must be (H, W) or (1, 1, H, W), got {np.shape(heatmap)}")
    if not np.isfinite(arr).all():
        raise InvalidInputError("heatmap contains NaN or Inf; expected finite values")
    return arr


def _normalized(m: np.ndarray, policy: str) -> np.ndarray:
    from wslbench.attribution.normalize import normalize

    if policy == "none":
        return m
    return normalize(torch.from_numpy(m)[None], policy)[0].numpy()


def shared_scale(maps: Mapping[str, np.ndarray]) -> tuple[float, float]:
    """One ``(vmin, vmax)`` for every map: symmetric when any map is signed."""
    lo = min(float(m.min()) for m in maps.values())
    hi = max(float(m.max()) for m in maps.values())
    if lo < 0.0:
        bound = max(abs(lo), abs(hi)) or 1.0
        return -bound, bound
    return 0.0, hi if hi > 0.0 else 1.0


def overlay_cmap(name: str, *, signed: bool) -> Colormap:
    """``name`` (``"auto"``: :data:`SEQUENTIAL_CMAP`, or :data:`DIVERGING_CMAP` when
    ``signed``) with an opacity ramp: transparent at the map's zero (the bottom of a
    non-negative scale, the centre of a signed one), opaque from :data:`FULL_OPACITY_AT`
    of the scale on."""
    if name == "auto":
        name = DIVERGING_CMAP if signed else SEQUENTIAL_CMAP
    if name not in colormaps:
        raise InvalidInputError(f"unknown colour map {name!r}; expected 'auto' or a matplotlib name")
    t = np.linspace(0.0, 1.0, 256)
    colours = colormaps[name](t)
    distance = np.abs(2.0 * t - 1.0) if signed else t  # distance from the map's zero
    colours[:, 3] = np.clip(distance / FULL_OPACITY_AT, 0.0, 1.0)
    return ListedColormap(colours, name=f"{name}_fade")


def heatmap_comparison_figure(
    image: object,
    heatmaps: Mapping[str, object],
    *,
    opacity: float = 0.5,
    threshold: float = 0.0,
    cmap: str = "auto",
    scale: tuple[float, float] | None = None,
    policy: str = "none",
    panel_size: float = 3.0,
    outlines: object | None = None,
) -> Figure:
    """The image, then each heatmap overlaid on it, side by side on one colour scale.

    Args:
        image: the input image (see :func:`as_display_image`).
        heatmaps: title → raw map of the image's size (see :func:`as_heatmap`).
        opacity: overlay alpha in [0, 1] where the heat is full (it fades to 0 at the
            map's zero, :func:`overlay_cmap`).
        threshold: fraction in [0, 1) of the shared scale below which a map is transparent.
        cmap: ``"auto"`` (sequential for non-negative maps, diverging for signed ones) or
            a matplotlib colour map name; the opacity ramp is added to either.
        scale: ``(vmin, vmax)`` shared by the maps; default :func:`shared_scale`.
        policy: per-map display normalisation before the shared scale
            (:func:`wslbench.attribution.normalize`: ``"none"`` keeps raw values, which
            compares maps of one method; ``"abs-max"`` or ``"percentile"`` compares
            methods of different units).
        panel_size: inches per panel.
        outlines: optional ``(H, W)`` truth mask (lesions, glands) whose contours are
            drawn over every overlay.

    Returns:
        A matplotlib figure with ``1 + len(heatmaps)`` axes; the overlay of panel
        ``i`` is ``fig.axes[i].images[-1]``.
    """
    if not 0.0 <= opacity <= 1.0:
        raise InvalidInputError(f"opacity must be in [0, 1], got {opacity}")
    if not 0.0 <= threshold < 1.0:
        raise InvalidInputError(f"threshold must be in [0, 1), got {threshold}")
    if not heatmaps:
        raise InvalidInputError("heatmaps is empty; expected at least one title -> map")
    img = as_display_image(image)
    maps = {title: _normalized(as_heatmap(m), policy) for title, m in heatmaps.items()}
    for title, m in maps.items():
        if m.shape != img.shape[:2]:
            raise InvalidInputError(
                f"heatmap {title!r} has shape {m.shape}, expected the image size {img.shape[:2]}"
            )
    vmin, vmax = scale if scale is not None else shared_scale(maps)
    cut = vmin + threshold * (vmax - vmin)
    colour_map = overlay_cmap(cmap, signed=vmin < 0.0)
    outline = None
    if outlines is not None:
        outline = as_heatmap(outlines)
        if outline.shape != img.shape[:2]:
            raise InvalidInputError(f"outlines has shape {outline.shape}, expected the image size {img.shape[:2]}")
    fig, axes = plt.subplots(
        1, 1 + len(maps), figsize=(panel_size * (1 + len(maps)), panel_size), squeeze=False
    )
    axes = axes[0]
    gray = "gray" if img.ndim == 2 else None
    axes[0].imshow(img, cmap=gray)
    axes[0].set_title("image")
    for ax, (title, m) in zip(axes[1:], maps.items()):
        ax.imshow(img, cmap=gray)
        shown = np.ma.masked_where(m < cut, m) if threshold > 0 else m
        im = ax.imshow(shown, cmap=colour_map, vmin=vmin, vmax=vmax, alpha=opacity)
        if outline is not None and outline.max() > outline.min():
            ax.contour(outline > 0.5, levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(title)
    for ax in axes:
        ax.set_axis_off()
    fig.colorbar(im, ax=list(axes[1:]), fraction=0.046 / max(1, len(maps)) * 2, pad=0.02)
    return fig
