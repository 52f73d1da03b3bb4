"""3D volume viewer: three orthogonal slices, a slice slider each, and an overlay.

Shows gray-matter maps with perturbation masks or atrophy maps on top
(Thibeau-Sutre et al. 2020, Fig. 3–4).
"""

from __future__ import annotations

import ipywidgets as widgets
from matplotlib.figure import Figure

from wslbench.viz.volume import AXIS_NAMES, as_volume, orthogonal_slices_figure
from wslbench.widgets._render import show_figure

__all__ = ["VolumeViewer"]


class VolumeViewer:
    """Orthogonal sagittal / coronal / axial slices of a ``(D, H, W)`` volume.

    Args:
        volume: background volume (array or tensor, leading axes of 1 dropped).
        overlay: optional map of the same shape (mask, relevance, atrophy).
        opacity: initial overlay opacity.
        threshold: initial overlay threshold (fraction of its range).
        cmap: overlay colour map.

    Attributes:
        sliders: one ``IntSlider`` per axis (sagittal, coronal, axial).
        opacity, threshold: overlay sliders.
        image_widget, figure, widget: as in :class:`HeatmapComparisonPanel`.
    """

    def __init__(
        self,
        volume: object,
        overlay: object | None = None,
        *,
        opacity: float = 0.5,
        threshold: float = 0.0,
        cmap: str = "hot",
    ) -> None:
        self.cmap = cmap
        self._volume = as_volume(volume)
        self._overlay = overlay
        self.sliders = [
            widgets.IntSlider(value=n // 2, min=0, max=n - 1, description=name,
                              continuous_update=False)
            for name, n in zip(AXIS_NAMES, self._volume.shape)
        ]
        self.opacity = widgets.FloatSlider(value=opacity, min=0.0, max=1.0, step=0.05,
                                           description="opacity", continuous_update=False)
        self.threshold = widgets.FloatSlider(value=threshold, min=0.0, max=0.95, step=0.05,
                                             description="threshold", continuous_update=False)
        self.image_widget = widgets.Image(format="png")
        self.figure: Figure | None = None
        self.widget = widgets.VBox([
            widgets.HBox(self.sliders),
            widgets.HBox([self.opacity, self.threshold]),
            self.image_widget,
        ])
        for control in [*self.sliders, self.opacity, self.threshold]:
            control.observe(self._on_change, names="value")
        self.render()

    def _on_change(self, _change: object) -> None:
        self.render()

    @property
    def index(self) -> tuple[int, int, int]:
        """The voxel the three slices pass through."""
        return tuple(s.value for s in self.sliders)  # type: ignore[return-value]

    def update(self, volume: object | None = None, overlay: object | None = None) -> None:
        """Replace the volume and/or overlay; slice sliders are re-ranged if the shape changed."""
        if volume is not None:
            new = as_volume(volume)
            if new.shape != self._volume.shape:
                for slider, n in zip(self.sliders, new.shape):
                    slider.unobserve(self._on_change, names="value")
                    slider.max = n - 1
                    slider.value = n // 2
                    slider.observe(self._on_change, names="value")
            self._volume = new
        if overlay is not None:
            self._overlay = overlay
        self.render()

    def render(self) -> Figure:
        """Draw the three slices at the current slider positions."""
        fig = orthogonal_slices_figure(
            self._volume, self.index, overlay=self._overlay, opacity=self.opacity.value,
            threshold=self.threshold.value, cmap=self.cmap,
        )
        self.figure = fig
        show_figure(fig, self.image_widget)
        return fig

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
