"""Figure builders (matplotlib static, plotly interactive)."""

from __future__ import annotations
