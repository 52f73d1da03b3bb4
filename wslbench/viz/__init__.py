"""Figure builders: matplotlib for static panels, plotly for interactive curves."""

from __future__ import annotations

from wslbench.viz.curves import CURVE_AXES, Curve, curves_figure
from wslbench.viz.fundus import (
    LESION_COLOURS,
    before_after_figure,
    fundus_grid_figure,
    lesion_outline_image,
)
from wslbench.viz.heatmaps import (
    as_display_image,
    as_heatmap,
    heatmap_comparison_figure,
    shared_scale,
)
from wslbench.viz.volume import AXIS_NAMES, as_volume, orthogonal_slices, orthogonal_slices_figure

__all__ = [
    "LESION_COLOURS",
    "before_after_figure",
    "fundus_grid_figure",
    "lesion_outline_image",
    "Curve",
    "CURVE_AXES",
    "curves_figure",
    "as_display_image",
    "as_heatmap",
    "heatmap_comparison_figure",
    "shared_scale",
    "AXIS_NAMES",
    "as_volume",
    "orthogonal_slices",
    "orthogonal_slices_figure",
]

from wslbench.viz.cells import (  # noqa: E402
    detection_figure,
    detection_grid_figure,
    draw_detections,
    encoding_figure,
    solver_curves_figure,
)

__all__ += [
    "detection_figure",
    "detection_grid_figure",
    "draw_detections",
    "encoding_figure",
    "solver_curves_figure",
]
