"""The exported report: overlay PNG + findings CSV/JSON in one zip, as a download link.

Voila serves no file routes for a dashboard, so the zip travels inside the page:
:func:`download_link` is an ``<a download=... href="data:application/zip;base64,...">``
styled as a button, shown in an ``ipywidgets.HTML``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from wslbench.dashboards.findings import Finding, findings_csv, findings_records

__all__ = ["build_report", "download_link", "report_name"]

_BUTTON = ("display:inline-block;padding:6px 14px;border-radius:4px;background:#1976d2;"
           "color:#fff;text-decoration:none;font-weight:600")


def report_name(dashboard: str, source: str) -> str:
    """A safe zip file name: ``<dashboard>-<source>-<UTC time>.zip`` (source reduced to [a-z0-9-])."""
    slug = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")[:40] or "image"
    return f"{dashboard}-{slug}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.zip"


def build_report(
    overlay_png: bytes,
    findings: Sequence[Finding],
    summary: Mapping[str, object],
) -> bytes:
    """Zip bytes holding ``overlay.png``, ``findings.csv`` and ``findings.json``.

    ``findings.json`` is ``{"summary": summary, "findings": [...]}`` (the decision,
    scores, model line and image source go in ``summary``).
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("overlay.png", overlay_png)
        archive.writestr("findings.csv", findings_csv(findings))
        archive.writestr("findings.json", json.dumps(
            {"summary": dict(summary), "findings": findings_records(findings)}, indent=2,
            default=str))
    return buffer.getvalue()


def download_link(data: bytes, filename: str, label: str = "Download report (PNG + CSV/JSON)") -> str:
    """HTML of a download button carrying ``data`` as a base64 ``data:`` URL."""
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<a class="wslbench-download" download="{html.escape(filename)}" '
            f'href="data:application/zip;base64,{encoded}" style="{_BUTTON}">'
            f"{html.escape(label)}</a>")
