"""The index page of the dashboards folder: one line and a link per dashboard notebook.

Each notebook of the folder (except ``index.ipynb``) is listed with the heading and
the first sentence of its first markdown cell, linked to Voila's
``/voila/render/<name>.ipynb`` route (relative, so it works behind any prefix). A new
dashboard notebook appears here without any change to this module.
"""

from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as widgets
import nbformat

__all__ = ["dashboard_entries", "index_page"]


def dashboard_entries(folder: str | Path) -> list[tuple[str, str, str]]:
    """``(notebook file name, title, description)`` of every dashboard in ``folder``, sorted."""
    entries = []
    for path in sorted(Path(folder).glob("*.ipynb")):
        if path.stem == "index" or path.name.startswith((".", "_")):
            continue
        try:
            nb = nbformat.read(path, as_version=4)
        except (OSError, ValueError):
            continue
        text = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        title = next((line.lstrip("# ") for line in lines if line.startswith("#")), path.stem)
        description = next((line for line in lines if not line.startswith("#")), "")
        entries.append((path.name, title, description))
    return entries


def index_page(folder: str | Path | None = None) -> widgets.HTML:
    """The list of dashboards in ``folder`` (default: the working directory, which is the
    notebook's folder under Voila) as an HTML widget."""
    rows = "".join(
        f"<li style='margin:0.6em 0'><a href='{html.escape(name)}' style='font-size:1.1em;"
        f"font-weight:600'>{html.escape(title)}</a><br>{html.escape(description)}</li>"
        for name, title, description in dashboard_entries(folder or Path.cwd())
    )
    return widgets.HTML(f"<ul style='list-style:none;padding:0'>{rows}</ul>")
