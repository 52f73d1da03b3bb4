"""Metrics panel: ROC / FROC / precision–recall curves with plotly, one kind at a time.

A dropdown picks the kind; :meth:`MetricsPanel.set_curves` replaces the curves
of a kind (e.g. after retraining). The plotly figure is displayed in an
``Output`` (rendered by the jupyterlab-plotly extension in Lab and Voila).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import plotly.graph_objects as go

from wslbench.errors import InvalidInputError
from wslbench.viz.curves import CURVE_AXES, Curve, curves_figure

__all__ = ["MetricsPanel"]


class MetricsPanel:
    """Curves by kind (``"roc"``, ``"froc"``, ``"pr"``), one kind shown at a time.

    Args:
        curves: kind → list of :class:`~wslbench.viz.Curve`.
        summary: optional kind → short text shown under the plot (e.g. "AUC 0.91 [0.87, 0.95]").

    Attributes:
        kind: the ``Dropdown`` choosing the kind.
        figure: the plotly figure currently shown.
        widget: the container to display.
    """

    def __init__(
        self,
        curves: Mapping[str, Sequence[Curve]],
        *,
        summary: Mapping[str, str] | None = None,
    ) -> None:
        if not curves:
            raise InvalidInputError("curves is empty; expected kind -> list of Curve")
        self._curves: dict[str, list[Curve]] = {}
        self._summary = dict(summary or {})
        for kind, items in curves.items():
            self._check_kind(kind)
            self._curves[kind] = list(items)
        self.kind = widgets.Dropdown(options=list(self._curves), description="curves")
        self.output = widgets.Output()
        self.note = widgets.HTML()
        self.figure: go.Figure | None = None
        self.widget = widgets.VBox([self.kind, self.output, self.note])
        self.kind.observe(lambda _change: self.render(), names="value")
        self.render()

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in CURVE_AXES:
            raise InvalidInputError(
                f"unknown curve kind {kind!r}; expected one of: {', '.join(CURVE_AXES)}"
            )

    def set_curves(self, kind: str, curves: Sequence[Curve], summary: str | None = None) -> None:
        """Replace (or add) the curves of ``kind`` and show them."""
        self._check_kind(kind)
        self._curves[kind] = list(curves)
        if summary is not None:
            self._summary[kind] = summary
        if kind not in self.kind.options:
            self.kind.options = [*self.kind.options, kind]
        if self.kind.value == kind:
            self.render()
        else:
            self.kind.value = kind

    def render(self) -> go.Figure:
        """Draw the curves of the selected kind."""
        from IPython.display import display

        kind = self.kind.value
        fig = curves_figure(self._curves[kind], kind)
        self.figure = fig
        self.note.value = self._summary.get(kind, "")
        self.output.clear_output(wait=True)
        with self.output:
            display(fig)
        return fig

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
