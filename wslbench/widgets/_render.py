"""Rendering a matplotlib figure into an ``ipywidgets.Image`` (thread-safe, no Output capture)."""

from __future__ import annotations

import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def show_figure(fig: Figure, target: widgets.Image, dpi: int = 90) -> bytes:
    """Draw ``fig`` as PNG into ``target.value`` and close it; returns the PNG bytes.

    Setting an Image widget's value is a plain trait update, so it works from the
    worker thread of a :class:`~wslbench.widgets.ParameterPanel` and in Voila,
    where ``plt.show()`` inside an ``Output`` shows nothing under Agg (DESIGN §7).
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    target.value = buffer.getvalue()
    return target.value
