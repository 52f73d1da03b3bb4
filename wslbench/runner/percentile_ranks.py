"""Percentile ranks of hyper-parameter values over a grid search (Arora et al., 5.1, Table 1).

Arora, Gaudio & Satpathy validate Res18 by a grid search over learning rate, momentum,
Nesterov and weight decay, and report in Table 1 the "modal values of [each
hyper-parameter] ... for samples selected from different percentile ranks of accuracy
values" (0.75, 0.80, …, 0.95); "each row represents models for which accuracies are in
the percentiles given in first column", and ties are listed together ("0.0, 1.0").

Definitions used here (the paper gives none beyond the above):

* **Percentile rank** of run ``i`` among the ``N`` runs with a finite metric:
  ``PR_i = (#{j : m_j < m_i} + ½ #{j : m_j = m_i}) / N`` (the classical definition,
  ties share their mean rank), so the best run of 10 has 0.95. With
  ``higher_is_better=False`` (a loss), the order is reversed.
* **Rows of Table 1** (:func:`modal_values_by_percentile`): for a rank ``p`` the
  selected runs are those with ``PR ≥ p`` (read as "at or above the p-th percentile",
  i.e. the top ``1 − p`` share), and for each hyper-parameter the reported values are
  its most frequent values among them (all values tied at the highest count). A rank
  that selects no run gives no row. :func:`modal_values_table` lays this out as
  Table 1.
* **Per-value summary** (:func:`value_percentile_ranks`): for each hyper-parameter and
  value, the mean and median percentile rank of the runs having that value, and their
  number — how high that value tends to place its runs.

The input is a runs table as returned by :func:`wslbench.runner.summary.collect_runs`
(one row per run, ``param.<name>`` and ``metric.<name>`` columns); plain column names
work too. Runs without a finite metric (failed or still running) are left out, and a
run without a value for a parameter is left out of that parameter's rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from wslbench.errors import InvalidInputError

__all__ = [
    "TABLE1_PERCENTILE_RANKS",
    "percentile_ranks",
    "value_percentile_ranks",
    "modal_values_by_percentile",
    "modal_values_table",
]

#: The percentile ranks of the rows of Table 1.
TABLE1_PERCENTILE_RANKS: tuple[float, ...] = (0.75, 0.80, 0.85, 0.90, 0.95)

_TOL = 1e-9  # rank comparisons: (7 + 0.5) / 10 must count as 0.75


def percentile_ranks(
    values: Sequence[float] | np.ndarray | pd.Series, *, higher_is_better: bool = True
) -> np.ndarray:
    """Percentile rank of every value: ``(#below + ½ #equal) / N`` (module docstring).

    Args:
        values: ``(N,)`` finite metric values.
        higher_is_better: rank high values near 1 (accuracy); ``False`` for losses.

    Returns:
        ``(N,)`` float64 ranks in (0, 1).
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise InvalidInputError(
            f"values must be a non-empty 1-D sequence of finite numbers, got shape {v.shape}"
        )
    if not higher_is_better:
        v = -v
    s = np.sort(v)
    below = np.searchsorted(s, v, side="left")
    equal = np.searchsorted(s, v, side="right") - below
    return (below + 0.5 * equal) / v.size


def _column(runs: pd.DataFrame, name: str, prefix: str) -> str:
    for col in (f"{prefix}.{name}", name):
        if col in runs.columns:
            return col
    known = sorted(c.removeprefix(f"{prefix}.") for c in runs.columns if c.startswith(f"{prefix}."))
    raise InvalidInputError(
        f"the runs table has no {prefix} column {name!r} (nor {prefix}.{name}); expected one "
        f"of: {', '.join(known) or '(none)'}"
    )


def _ranked(
    runs: pd.DataFrame, metric: str, params: Sequence[str] | None, higher_is_better: bool
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Runs with a finite metric plus a ``_rank`` column, and parameter name → column."""
    if not isinstance(runs, pd.DataFrame):
        raise InvalidInputError(
            f"runs must be a pandas DataFrame (collect_runs output), got {type(runs).__name__}"
        )
    mcol = _column(runs, metric, "metric")
    if params is None:
        names = [c.removeprefix("param.") for c in runs.columns if c.startswith("param.")]
        if not names:
            raise InvalidInputError(
                "the runs table has no param.<name> column; pass params=[...] column names"
            )
    elif isinstance(params, str):
        raise InvalidInputError(f"params must be a list of names, got the string {params!r}")
    else:
        names = list(params)
    cols = {name.removeprefix("param."): _column(runs, name.removeprefix("param."), "param")
            for name in names}
    score = pd.to_numeric(runs[mcol], errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(score)
    if not finite.any():
        raise InvalidInputError(f"no run has a finite value of {mcol!r}; nothing to rank")
    keep = runs[finite].copy()
    keep["_rank"] = percentile_ranks(score[finite], higher_is_better=higher_is_better)
    return keep, cols


def value_percentile_ranks(
    runs: pd.DataFrame,
    metric: str,
    params: Sequence[str] | None = None,
    *,
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """Mean and median percentile rank of the runs having each hyper-parameter value.

    Args:
        runs: one row per run (:func:`~wslbench.runner.summary.collect_runs`).
        metric: metric name (``"accuracy"`` for ``metric.accuracy``) or column name.
        params: hyper-parameter names (or columns); default every ``param.*`` column.
        higher_is_better: see :func:`percentile_ranks`.

    Returns:
        Tidy DataFrame with columns ``parameter``, ``value``, ``n_runs``,
        ``mean_percentile_rank``, ``median_percentile_rank``; parameters in the order
        given, values sorted.
    """
    ranked, cols = _ranked(runs, metric, params, higher_is_better)
    rows = []
    for name, col in cols.items():
        stats = ranked.groupby(col)["_rank"].agg(["size", "mean", "median"])
        for value, row in stats.iterrows():
            rows.append({"parameter": name, "value": value, "n_runs": int(row["size"]),
                         "mean_percentile_rank": float(row["mean"]),
                         "median_percentile_rank": float(row["median"])})
    return pd.DataFrame(rows, columns=["parameter", "value", "n_runs", "mean_percentile_rank",
                                       "median_percentile_rank"])


def modal_values_by_percentile(
    runs: pd.DataFrame,
    metric: str,
    params: Sequence[str] | None = None,
    ranks: Sequence[float] = TABLE1_PERCENTILE_RANKS,
    *,
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """Modal hyper-parameter values of the runs at or above each percentile rank (Table 1).

    Args:
        runs: one row per run (:func:`~wslbench.runner.summary.collect_runs`).
        metric: metric name (``"accuracy"`` for ``metric.accuracy``) or column name.
        params: hyper-parameter names (or columns); default every ``param.*`` column.
        ranks: percentile ranks in [0, 1) (Table 1: 0.75 … 0.95).
        higher_is_better: see :func:`percentile_ranks`.

    Returns:
        Tidy DataFrame, one row per (rank, parameter, modal value) with columns
        ``percentile_rank``, ``parameter``, ``value``, ``count`` (selected runs having
        that value) and ``n_runs`` (selected runs with a value for that parameter);
        tied modes give several rows, values sorted.
    """
    r = np.asarray(ranks, dtype=float)
    if r.ndim != 1 or r.size == 0 or not np.all((r >= 0) & (r < 1)):
        raise InvalidInputError(f"ranks must be a non-empty list of values in [0, 1), got {ranks!r}")
    ranked, cols = _ranked(runs, metric, params, higher_is_better)
    rows = []
    for p in r:
        selected = ranked[ranked["_rank"] >= p - _TOL]
        for name, col in cols.items():
            counts = selected[col].value_counts()
            if counts.empty:
                continue
            top = counts[counts == counts.max()]
            for value in sorted(top.index):
                rows.append({"percentile_rank": float(p), "parameter": name, "value": value,
                             "count": int(top[value]), "n_runs": int(counts.sum())})
    return pd.DataFrame(rows, columns=["percentile_rank", "parameter", "value", "count",
                                       "n_runs"])


def _format(value: object) -> str:
    if isinstance(value, float | np.floating) and math.isfinite(value):
        return f"{float(value):g}"
    return str(value)


def modal_values_table(modal: pd.DataFrame) -> pd.DataFrame:
    """Table 1 layout of :func:`modal_values_by_percentile`'s output.

    Args:
        modal: the tidy table.

    Returns:
        One row per percentile rank (index), one column per parameter, each cell the
        modal values joined by ``", "`` (e.g. ``"0.004, 0.005"``).
    """
    need = {"percentile_rank", "parameter", "value"}
    if not isinstance(modal, pd.DataFrame) or not need <= set(modal.columns):
        raise InvalidInputError(
            f"modal must be the DataFrame of modal_values_by_percentile (columns {sorted(need)})"
        )
    cells = (modal.assign(value=modal["value"].map(_format))
             .groupby(["percentile_rank", "parameter"], sort=False)["value"]
             .agg(", ".join).unstack("parameter"))
    return cells.reindex(columns=list(dict.fromkeys(modal["parameter"]))).sort_index()
