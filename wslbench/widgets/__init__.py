"""ipywidgets panels shared by notebooks and dashboards, and the notebooks' lazy explorers."""

from __future__ import annotations

from wslbench.widgets.explorers import (
    Explorer,
    detection_explorer,
    lambda_explorer,
    nu_explorer,
    synthetic_case_viewer,
)
from wslbench.widgets.heatmap_panel import HeatmapComparisonPanel
from wslbench.widgets.metrics_panel import MetricsPanel
from wslbench.widgets.parameter_panel import ParameterPanel, make_control
from wslbench.widgets.volume_viewer import VolumeViewer

__all__ = ["HeatmapComparisonPanel", "MetricsPanel", "ParameterPanel", "VolumeViewer", "make_control",
           "Explorer", "nu_explorer", "lambda_explorer", "detection_explorer", "synthetic_case_viewer"]
