"""Interactive performance curves with plotly: ROC, FROC, precision–recall.

A curve is a :class:`Curve` (x, y, label); :func:`curves_figure` draws several of
one kind on shared axes with the axis titles of that kind (Quellec 2017,
Fig. 7–8 for ROC/FROC; Rony 2020, AP for PR).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from wslbench.errors import InvalidInputError

__all__ = ["Curve", "CURVE_AXES", "curves_figure"]

CURVE_AXES: dict[str, tuple[str, str]] = {
    "roc": ("false-positive rate (1 - specificity)", "true-positive rate (sensitivity)"),
    "froc": ("false positives per image", "lesion sensitivity"),
    "pr": ("recall", "precision"),
    "training": ("training iteration", "validation score"),
}


@dataclass(frozen=True)
class Curve:
    """One curve: abscissae, ordinates (same length) and a legend label."""

    x: Sequence[float]
    y: Sequence[float]
    label: str

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x, dtype=float), np.asarray(self.y, dtype=float)
        if x.ndim != 1 or x.shape != y.shape or x.size == 0:
            raise InvalidInputError(
                f"curve {self.label!r}: x and y must be non-empty 1-D of equal length, "
                f"got {x.shape} and {y.shape}"
            )
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise InvalidInputError(f"curve {self.label!r} has NaN or Inf values")


def curves_figure(curves: Sequence[Curve], kind: str, *, title: str = "") -> go.Figure:
    """A plotly figure with one line per curve, axes titled for ``kind`` (roc/froc/pr, or
    ``training``: validation scores along the iterations, Quellec 2017 Fig. 5)."""
    if kind not in CURVE_AXES:
        raise InvalidInputError(
            f"unknown curve kind {kind!r}; expected one of: {', '.join(CURVE_AXES)}"
        )
    xlabel, ylabel = CURVE_AXES[kind]
    fig = go.Figure()
    for c in curves:
        fig.add_trace(go.Scatter(x=list(c.x), y=list(c.y), mode="lines+markers" if kind == "training"
                                 else "lines", name=c.label))
    if kind == "roc":
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                 line={"dash": "dot", "color": "gray"}))
    fig.update_layout(title=title or kind.upper(), xaxis_title=xlabel, yaxis_title=ylabel,
                      width=520, height=420, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    if kind in ("roc", "pr"):
        fig.update_xaxes(range=[0, 1])
    if kind in ("roc", "pr", "training"):
        fig.update_yaxes(range=[0, 1.02])
    return fig
