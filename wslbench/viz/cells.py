"""Cell-detection figures (Xue et al.): the encoding (Fig. 3), detections (Fig. 6), solvers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from wslbench.cs.codec import ProjectionCodec
from wslbench.viz.heatmaps import as_display_image

__all__ = ["encoding_figure", "detection_figure", "detection_grid_figure", "solver_curves_figure",
           "draw_detections"]

TRUTH_STYLE = {"marker": "+", "color": "yellow", "s": 140, "linewidths": 2.0}
CANDIDATE_STYLE = {"marker": "x", "color": "lime", "s": 18, "linewidths": 0.8}
CENTRE_STYLE = {"marker": "x", "color": "red", "s": 90, "linewidths": 2.0}


def _points(points: object) -> np.ndarray:
    arr = np.asarray(points, dtype=float).reshape(-1, 2)
    return arr


def draw_detections(
    ax: plt.Axes,
    image: object,
    truth: object | None,
    centres: object | None,
    candidates: object | None = None,
    *,
    highlight: int | None = None,
) -> None:
    """Draw a patch with ground truth (yellow +), per-line candidates (green x) and final
    centres (red x), as in Fig. 6; ``highlight`` circles one centre."""
    ax.imshow(as_display_image(image))
    for pts, style in ((candidates, CANDIDATE_STYLE), (truth, TRUTH_STYLE), (centres, CENTRE_STYLE)):
        if pts is not None and len(_points(pts)):
            p = _points(pts)
            ax.scatter(p[:, 1], p[:, 0], **style)
    if highlight is not None and centres is not None and 0 <= highlight < len(_points(centres)):
        r, c = _points(centres)[highlight]
        ax.add_patch(plt.Circle((c, r), 8, fill=False, color="cyan", linewidth=2))
    ax.set_axis_off()


def detection_figure(
    image: object, truth: object | None, centres: object, candidates: object | None = None,
    *, title: str | None = None,
) -> Figure:
    """One patch like Fig. 6: ground truth, per-line predictions and final detections."""
    fig, ax = plt.subplots(figsize=(4, 4))
    draw_detections(ax, image, truth, centres, candidates)
    n_true = 0 if truth is None else len(_points(truth))
    ax.set_title(title or f"{len(_points(centres))} detected / {n_true} true", fontsize=9)
    return fig


def detection_grid_figure(
    images: Sequence[object],
    truths: Sequence[object],
    centres: Sequence[object],
    candidates: Sequence[object] | None = None,
    titles: Sequence[str] | None = None,
) -> Figure:
    """Several patches side by side (Fig. 6 style)."""
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(3 * n, 3.2), squeeze=False)
    for i, ax in enumerate(axes[0]):
        draw_detections(ax, images[i], truths[i], centres[i], None if candidates is None else candidates[i])
        ax.set_title(titles[i] if titles else f"{len(_points(centres[i]))} / {len(_points(truths[i]))}",
                     fontsize=9)
    return fig


def encoding_figure(codec: ProjectionCodec, image: object, centroids: object, *, lines: int = 3) -> Figure:
    """Fig. 3: the patch with its observation lines and the projections of the centroids
    (dotted: the perpendicular whose length is the signed distance stored in ``a_l``),
    the sparse codes a_l and the dense codes x_l = D a_l of ``lines`` of the lines."""
    pts = _points(centroids)
    geometry = codec.line_geometry()
    shown = np.linspace(0, codec.n_lines - 1, min(lines, codec.n_lines)).round().astype(int)
    sparse = codec.sparse([pts])[0].numpy()
    dense = codec.compress(codec.sparse([pts]))[0].numpy()
    fig = plt.figure(figsize=(11, 4))
    grid = fig.add_gridspec(len(shown), 3, width_ratios=[1.3, 1, 1])
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(as_display_image(image))
    colours = plt.cm.tab10(np.arange(len(shown)) % 10)
    positions = codec.positions(pts).numpy().reshape(-1, codec.n_lines) if len(pts) else np.zeros((0, codec.n_lines))
    for colour, line in zip(colours, shown):
        o, u = geometry.origins[line], geometry.directions[line]
        end = o + geometry.length * u
        ax.plot([o[1], end[1]], [o[0], end[0]], color=colour, linewidth=1.5)
        for p, t in zip(pts, positions[:, line]):
            foot = o + t * u
            ax.plot([p[1], foot[1]], [p[0], foot[0]], color=colour, linewidth=0.6, linestyle=":")
    if len(pts):
        ax.scatter(pts[:, 1], pts[:, 0], **TRUTH_STYLE)
    r = geometry.length / 2
    ax.set_xlim(codec.width / 2 - 1.1 * r, codec.width / 2 + 1.1 * r)
    ax.set_ylim(codec.height / 2 + 1.1 * r, codec.height / 2 - 1.1 * r)
    ax.set_title(f"{codec.n_lines} observation lines ({len(shown)} drawn)", fontsize=9)
    ax.set_axis_off()
    for k, (colour, line) in enumerate(zip(colours, shown)):
        a = fig.add_subplot(grid[k, 1])
        a.stem(sparse[line], linefmt="-", markerfmt=" ", basefmt=" ")
        a.set_ylabel(f"a_{line}", color=colour)
        b = fig.add_subplot(grid[k, 2])
        b.bar(np.arange(codec.code_length), dense[line], color=colour)
        b.set_ylabel(f"x_{line}", color=colour)
        if k == 0:
            what = "signed distances (px)" if codec.encoding == "signed" else "cell counts"
            a.set_title(f"sparse codes a_l: {what} at the projection bin (n = {codec.n})", fontsize=9)
            b.set_title(f"dense codes x = D a (m = {codec.code_length})", fontsize=9)
    fig.tight_layout()
    return fig


def solver_curves_figure(rows: Sequence[Mapping[str, object]]) -> Figure:
    """Recovery error against iterations and against time, one curve per solver."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    names = list(dict.fromkeys(str(r["solver"]) for r in rows))
    for name in names:
        mine = [r for r in rows if r["solver"] == name]
        it = [float(r["iterations"]) for r in mine]  # type: ignore[arg-type]
        err = [float(r["relative_error"]) for r in mine]  # type: ignore[arg-type]
        ms = [float(r["ms_per_patch"]) for r in mine]  # type: ignore[arg-type]
        style = "o" if len(mine) == 1 else "o-"
        ax1.plot(it, err, style, label=name)
        ax2.plot(ms, err, style, label=name)
    for ax, label in ((ax1, "iterations"), (ax2, "ms per patch")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("‖â − a‖ / ‖a‖")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    return fig
