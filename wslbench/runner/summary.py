"""One row per run folder: parameters, metrics, status, duration (issue 2, item 4)."""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any

import pandas as pd

from wslbench.errors import DataNotFoundError, InvalidInputError
from wslbench.runner.record import atomic_write_text
from wslbench.runner.run_folder import PARTIAL_SUFFIX

__all__ = ["collect_runs", "write_summary", "plot_summary", "terminal_summary"]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value


def collect_runs(root: str | Path) -> pd.DataFrame:
    """Scan ``root`` for run folders (any depth) and return one row per run.

    Columns: ``notebook``, ``run``, ``status``, ``duration_s``, ``path``, then
    ``param.<name>`` and ``metric.<name>`` (nested metrics flattened with dots).
    Folders still named ``.<name>.partial`` (killed runs) have status ``incomplete``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"runs folder {root} does not exist; expected the --out folder of earlier runs")
    rows = []
    for params_file in sorted(root.rglob("params.json")):
        folder = params_file.parent
        params = _read_json(params_file)
        status = _read_json(folder / "status.json")
        partial = folder.name.endswith(PARTIAL_SUFFIX)
        state = status.get("status", "unknown")
        if partial and state != "interrupted":
            state = "incomplete"
        row: dict[str, Any] = {
            "notebook": Path(params.get("notebook", folder.parent.name)).stem,
            "run": folder.name.removeprefix(".").removesuffix(PARTIAL_SUFFIX),
            "status": state,
            "duration_s": status.get("duration_s"),
            "path": str(folder),
        }
        flat: dict[str, Any] = {}
        _flatten("", params.get("parameters", {}), flat)
        row.update({f"param.{k}": v for k, v in flat.items()})
        flat = {}
        _flatten("", _read_json(folder / "metrics.json"), flat)
        row.update({f"metric.{k}": v for k, v in flat.items()})
        rows.append(row)
    columns = ["notebook", "run", "status", "duration_s", "path"]
    return pd.DataFrame(rows, columns=None if rows else columns)


def _is_scalar(value: Any) -> bool:
    """A number or a short word: what fits on a terminal line (lists are JSON text here)."""
    if isinstance(value, numbers.Number):
        return True
    return isinstance(value, str) and len(value) <= 24 and not value.startswith(("[", "{"))


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def terminal_summary(table: pd.DataFrame, max_metrics: int = 6) -> str:
    """One line per run for the terminal: notebook, run, status, duration, parameters and the
    first ``max_metrics`` scalar metrics, with how many more the CSV holds.

    The CSV (:func:`write_summary`) keeps every column; a run's table across several
    notebooks is mostly empty cells and lists, which no terminal shows legibly.
    """
    if max_metrics < 0:
        raise InvalidInputError(f"max_metrics must be >= 0, got {max_metrics}")
    if not len(table):
        return "(no runs)"
    lines = []
    for _, row in table.iterrows():
        present = {k: v for k, v in row.items() if not (isinstance(v, float) and v != v) and v is not None}
        params = [f"{k.removeprefix('param.')}={_short(v)}" for k, v in present.items()
                  if k.startswith("param.") and _is_scalar(v)]
        metrics = [f"{k.removeprefix('metric.')}={_short(v)}" for k, v in present.items()
                   if k.startswith("metric.") and _is_scalar(v)]
        others = sum(1 for k in present if k.startswith("metric.")) - min(len(metrics), max_metrics)
        duration = present.get("duration_s")
        head = [str(row["notebook"]), str(row["run"]), str(row["status"]),
                "-" if duration is None else f"{float(duration):.0f} s"]
        line = "  ".join(head + params[:4] + metrics[:max_metrics])
        if others:
            line += f"  (+{others} more metrics in the CSV)"
        lines.append(line)
    return "\n".join(lines)


def write_summary(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the summary table as CSV (atomically)."""
    path = Path(path)
    atomic_write_text(path, table.to_csv(index=False))
    return path


def plot_summary(table: pd.DataFrame, metric: str, by: str, path: str | Path) -> Path:
    """Plot ``metric`` against parameter ``by`` (one line per notebook) into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mcol, pcol = f"metric.{metric}", f"param.{by}"
    for col, kind in ((mcol, "metric"), (pcol, "parameter")):
        if col not in table.columns:
            known = sorted(c.split(".", 1)[1] for c in table.columns if c.startswith(kind[:5] + "."))
            raise InvalidInputError(f"unknown {kind} {col.split('.', 1)[1]!r}; expected one of: {', '.join(known)}")
    data = table[table["status"] == "succeeded"].dropna(subset=[mcol, pcol])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, group in data.groupby("notebook"):
        means = group.groupby(pcol)[mcol].agg(["mean", "std"]).reset_index()
        ax.errorbar(means[pcol], means["mean"], yerr=means["std"].fillna(0), marker="o", capsize=3, label=name)
    ax.set_xlabel(by)
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
