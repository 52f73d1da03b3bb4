"""The overlay view: explanation over the image, opacity/threshold sliders, findings marked.

:class:`OverlayView` draws through the same figure builder as
:class:`~wslbench.widgets.HeatmapComparisonPanel` (image | image + map) and
:func:`~wslbench.widgets._render.show_figure`, and adds what a dashboard needs:
numbered markers for the findings, a highlight on the selected one, and
*debounced* redraws — slider changes arriving faster than ``debounce_s`` are
merged and the redraw uses the values current when it runs (last value wins),
so 50 quick key presses cost one or two redraws, not 50 queued ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from wslbench.dashboards.findings import Finding
from wslbench.viz.heatmaps import heatmap_comparison_figure
from wslbench.widgets._render import show_figure

__all__ = ["Analysis", "Debouncer", "OverlayView", "mark_findings"]


@dataclass
class Analysis:
    """What a dashboard's ``analyse_*`` returns.

    Attributes:
        decision: one line of HTML: the score and its meaning.
        scores: name → number (exported in the report).
        findings: the findings list, in display order.
        image: display image ``(H, W, 3)`` / ``(H, W)``, or volume ``(D, H, W)`` (MRI).
        overlay: explanation map on the same grid as ``image``.
        overlay_title: what the map is (``"π heatmap (hue-constrained, ν = 0.001)"``).
        notes: extra lines shown under the decision (e.g. how an upload was resampled).
        extra: modality-specific data (e.g. the ROI labels of the MRI dashboard).
    """

    decision: str
    scores: dict[str, float]
    findings: list[Finding]
    image: np.ndarray
    overlay: np.ndarray
    overlay_title: str
    notes: tuple[str, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)


class Debouncer:
    """Run ``fn`` once, ``delay_s`` after the last :meth:`schedule` (0: at once, in the caller).

    Runs never overlap (a lock), and each run reads the widgets' current values, so
    the last value wins.
    """

    def __init__(self, fn: Callable[[], object], delay_s: float) -> None:
        self.fn = fn
        self.delay_s = delay_s
        self.lock = threading.RLock()
        self._timer: threading.Timer | None = None

    def schedule(self) -> None:
        if self.delay_s <= 0:
            self.run()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self.delay_s, self.run)
        self._timer.daemon = True
        self._timer.start()

    def run(self) -> None:
        with self.lock:
            self.fn()


def mark_findings(ax: object, findings: list[Finding], selected: int | None) -> None:
    """Numbered markers (boxes for regions, circles for points) and a yellow highlight."""
    for i, f in enumerate(findings):
        row, col = f.position[:2]
        chosen = i == selected
        colour, width = ("yellow", 3.0) if chosen else ("white", 1.0)
        if f.box is not None:
            r0, c0, r1, c1 = f.box
            ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False,
                                   edgecolor=colour, linewidth=width))
        else:
            radius = max(2.0, float(np.sqrt((f.size or 12.0) / np.pi)) + 1.5)
            ax.add_patch(Circle((col, row), radius * (1.6 if chosen else 1.0), fill=False,
                                edgecolor=colour, linewidth=width))
        ax.text(col + 2, row - 2, str(i + 1), color=colour, fontsize=9 if chosen else 7,
                fontweight="bold" if chosen else "normal")


class OverlayView:
    """Opacity and threshold sliders over a rendered overlay of an :class:`Analysis`.

    Args:
        cmap: colour map of the explanation.
        opacity, threshold: initial slider values.
        debounce_s: slider redraw debounce (0: redraw synchronously, for tests).

    Attributes:
        opacity, threshold: the ``FloatSlider`` widgets.
        image_widget: the ``Image`` (CSS class ``wslbench-overlay``), hidden until the
            first analysis is shown.
        caption: the slider values the shown image was drawn with.
        png: the last PNG drawn; ``renders`` counts the redraws.
        on_render: callbacks run after every redraw (the report link).
        debouncer: the :class:`Debouncer` of the slider redraws (``delay_s`` adjustable).
    """

    def __init__(self, *, cmap: str = "auto", opacity: float = 0.5, threshold: float = 0.2,
                 debounce_s: float = 0.2) -> None:
        self.cmap = cmap
        self.opacity = widgets.FloatSlider(value=opacity, min=0.0, max=1.0, step=0.05,
                                           description="opacity", continuous_update=False)
        self.threshold = widgets.FloatSlider(value=threshold, min=0.0, max=0.95, step=0.05,
                                             description="threshold", continuous_update=False)
        self.image_widget = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.image_widget.add_class("wslbench-overlay")
        self.caption = widgets.HTML()
        self.caption.add_class("wslbench-caption")
        self.analysis: Analysis | None = None
        self.selected: int | None = None
        self.png = b""
        self.renders = 0
        self.on_render: list[Callable[[], None]] = []
        self.debouncer = Debouncer(self.render, debounce_s)
        self._quiet = False
        for slider in self.sliders():
            slider.observe(self._on_slider, names="value")
        self.widget = widgets.VBox([widgets.HBox(self.sliders()), self.image_widget, self.caption])

    def _on_slider(self, _change: object) -> None:
        if not self._quiet:
            self.debouncer.schedule()

    def sliders(self) -> list[widgets.ValueWidget]:
        """The controls whose changes redraw (debounced)."""
        return [self.opacity, self.threshold]

    def show(self, analysis: Analysis, selected: int | None = None) -> None:
        """Draw a new analysis now."""
        with self.debouncer.lock:
            self.analysis, self.selected = analysis, selected
            self.render()

    def select(self, index: int | None) -> None:
        """Highlight finding ``index`` (``None``: none) and redraw now."""
        with self.debouncer.lock:
            self.selected = index
            self.render()

    def figure(self, analysis: Analysis) -> Figure:
        """Image | image + map, findings marked on both panels."""
        fig = heatmap_comparison_figure(
            analysis.image, {analysis.overlay_title: analysis.overlay},
            opacity=self.opacity.value, threshold=self.threshold.value, cmap=self.cmap,
            panel_size=4.2,
        )
        for ax in fig.axes[:2]:
            mark_findings(ax, analysis.findings, self.selected)
        return fig

    def render(self) -> None:
        """Redraw with the current slider values (no-op before the first analysis)."""
        with self.debouncer.lock:
            if self.analysis is None:
                return
            opacity, threshold = self.opacity.value, self.threshold.value
            try:
                self.png = show_figure(self.figure(self.analysis), self.image_widget)
            except Exception as exc:  # a redraw runs in a timer thread: report in the page
                self.caption.value = f"could not draw the overlay ({type(exc).__name__}: {exc})"
                return
            self.image_widget.layout.display = None
            self.caption.value = f"drawn with opacity {opacity:.2f}, threshold {threshold:.2f}"
            self.renders += 1
            for callback in self.on_render:
                callback()
