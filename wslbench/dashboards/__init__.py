"""Voila dashboards for clinicians (``notebooks/dashboards``): pick or upload an image, get
the decision, the explanation overlaid and the findings, export a report.

Infrastructure, one concept per module:

- :mod:`~wslbench.dashboards.model_source`: which model (newest run, cache, or train once);
- :mod:`~wslbench.dashboards.uploads`: validating and decoding uploads in memory;
- :mod:`~wslbench.dashboards.findings`: the findings list (:class:`Finding`);
- :mod:`~wslbench.dashboards.overlay`: :class:`Analysis` and the debounced overlay view;
- :mod:`~wslbench.dashboards.report`: PNG + CSV/JSON zip behind a download button;
- :mod:`~wslbench.dashboards.app`: the shared frame (:class:`DashboardApp`);
- :mod:`~wslbench.dashboards.index`: the index page.

Dashboards: :mod:`~wslbench.dashboards.fundus`, :mod:`~wslbench.dashboards.histology`, :mod:`~wslbench.dashboards.cells`,
:mod:`~wslbench.dashboards.mri` (import the one you need; each pulls in its experiment).
"""

from __future__ import annotations

from wslbench.dashboards.app import DashboardApp, Modality
from wslbench.dashboards.findings import Finding
from wslbench.dashboards.overlay import Analysis, OverlayView

__all__ = ["Analysis", "DashboardApp", "Finding", "Modality", "OverlayView"]
