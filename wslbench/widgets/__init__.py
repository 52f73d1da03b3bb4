"""ipywidgets panels shared by notebooks and dashboards."""

from __future__ import annotations
