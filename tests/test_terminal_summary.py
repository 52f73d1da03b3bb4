"""The terminal form of the run summary: one legible line per run, everything else in the CSV."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from wslbench.errors import InvalidInputError
from wslbench.runner.summary import terminal_summary


def _table() -> pd.DataFrame:
    return pd.DataFrame([
        {"notebook": "01_dr", "run": "r1", "status": "succeeded", "duration_s": 409.87, "path": "/x/r1",
         "param.preset": "demo", "metric.auc": 0.968939, "metric.table": '[{"nu": 0.0}]',
         "metric.cells.f1": math.nan},
        {"notebook": "04_cells", "run": "r2", "status": "failed", "duration_s": None, "path": "/x/r2",
         "param.preset": "demo", "metric.auc": math.nan, "metric.table": math.nan, "metric.cells.f1": 0.5},
    ])


def test_one_line_per_run_with_scalars_only_and_the_rest_counted() -> None:
    lines = terminal_summary(_table()).splitlines()
    assert lines == [
        "01_dr  r1  succeeded  410 s  preset=demo  auc=0.9689  (+1 more metrics in the CSV)",
        "04_cells  r2  failed  -  preset=demo  cells.f1=0.5",
    ]


def test_metric_limit_and_empty_table() -> None:
    assert terminal_summary(_table(), max_metrics=0).splitlines()[0].endswith("(+2 more metrics in the CSV)")
    assert terminal_summary(pd.DataFrame(columns=["notebook", "run", "status", "duration_s", "path"])) == "(no runs)"
    with pytest.raises(InvalidInputError, match="max_metrics must be >= 0"):
        terminal_summary(_table(), max_metrics=-1)
