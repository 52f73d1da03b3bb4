"""ipywidgets panels shared by notebooks and dashboards."""

from __future__ import annotations

from wslbench.widgets.heatmap_panel import HeatmapComparisonPanel
from wslbench.widgets.metrics_panel import MetricsPanel
from wslbench.widgets.parameter_panel import ParameterPanel, make_control
from wslbench.widgets.volume_viewer import VolumeViewer

__all__ = ["HeatmapComparisonPanel", "MetricsPanel", "ParameterPanel", "VolumeViewer", "make_control"]
