"""Heatmap comparison panel: an image and N heatmaps side by side, one colour scale.

The π₀-vs-sparsity-enhanced-π view of Quellec 2017 (Fig. 4) and the CAM views
of Rony 2020 use it in notebooks and dashboards. Opacity and threshold
sliders redraw the overlays; :meth:`HeatmapComparisonPanel.update` swaps in new
maps (after retraining with another ν, say) and keeps the slider positions.
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets
from matplotlib.figure import Figure

from wslbench.attribution.normalize import NORMALIZE_POLICIES
from wslbench.viz.heatmaps import heatmap_comparison_figure
from wslbench.widgets._render import show_figure

__all__ = ["HeatmapComparisonPanel"]


class HeatmapComparisonPanel:
    """An image with N heatmaps overlaid, sharing one colour scale.

    Args:
        image: ``(H, W)``, ``(H, W, 3)`` or ``(3, H, W)`` array or tensor.
        heatmaps: title → raw ``(H, W)`` map (tensors ``(1, 1, H, W)`` accepted).
        opacity: initial overlay opacity in [0, 1].
        threshold: initial fraction of the shared scale below which maps are hidden.
        cmap: colour map of the overlays (``"auto"``: sequential for non-negative maps,
            diverging for signed ones; :func:`wslbench.viz.heatmaps.overlay_cmap`).
        outlines: optional ``(H, W)`` truth mask outlined on every overlay.
        policy: initial display normalisation (``wslbench.attribution.NORMALIZE_POLICIES``).
        title: optional heading shown above the panel.

    Attributes:
        opacity, threshold: the two ``FloatSlider`` widgets.
        policy: the ``Dropdown`` of the display normalisation.
        image_widget: the ``Image`` widget holding the rendered PNG.
        figure: the last matplotlib figure drawn (closed, still inspectable).
        widget: the container to display (the panel also displays itself).
    """

    def __init__(
        self,
        image: object,
        heatmaps: Mapping[str, object],
        *,
        opacity: float = 0.5,
        threshold: float = 0.0,
        cmap: str = "auto",
        policy: str = "none",
        title: str = "",
        outlines: object | None = None,
    ) -> None:
        self._image = image
        self._outlines = outlines
        self._heatmaps = dict(heatmaps)
        self.cmap = cmap
        self.opacity = widgets.FloatSlider(
            value=opacity, min=0.0, max=1.0, step=0.05, description="opacity",
            continuous_update=False,
        )
        self.threshold = widgets.FloatSlider(
            value=threshold, min=0.0, max=0.95, step=0.05, description="threshold",
            continuous_update=False,
        )
        self.policy = widgets.Dropdown(options=list(NORMALIZE_POLICIES), value=policy,
                                       description="scale")
        self.image_widget = widgets.Image(format="png")
        self.figure: Figure | None = None
        header = [widgets.HTML(f"<b>{title}</b>")] if title else []
        self.widget = widgets.VBox(
            [*header, widgets.HBox([self.opacity, self.threshold, self.policy]), self.image_widget]
        )
        for control in (self.opacity, self.threshold, self.policy):
            control.observe(self._on_change, names="value")
        self.render()

    def _on_change(self, _change: object) -> None:
        self.render()

    def update(
        self, image: object | None = None, heatmaps: Mapping[str, object] | None = None
    ) -> None:
        """Replace the image and/or the heatmaps and redraw (slider positions kept)."""
        if image is not None:
            self._image = image
        if heatmaps is not None:
            self._heatmaps = dict(heatmaps)
        self.render()

    def render(self) -> Figure:
        """Draw the panel with the current slider values; returns the figure."""
        fig = heatmap_comparison_figure(
            self._image, self._heatmaps, opacity=self.opacity.value,
            threshold=self.threshold.value, cmap=self.cmap, policy=self.policy.value,
            outlines=self._outlines,
        )
        self.figure = fig
        show_figure(fig, self.image_widget)
        return fig

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
