"""Percentile ranks of grid-search hyper-parameter values (Arora et al. 5.1, Table 1), by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wslbench.errors import InvalidInputError
from wslbench.runner import (
    modal_values_by_percentile,
    modal_values_table,
    percentile_ranks,
    value_percentile_ranks,
)
from wslbench.runner.summary import collect_runs

# run: (lr, momentum, nesterov, accuracy); r7 failed (no metric).
RUNS = {
    "r0": (0.004, 0.5, 0.0, 0.60),
    "r1": (0.004, 0.9, 1.0, 0.70),
    "r2": (0.005, 0.5, 0.0, 0.65),
    "r3": (0.005, 0.9, 1.0, 0.90),
    "r4": (0.004, 0.9, 0.0, 0.80),
    "r5": (0.005, 0.9, 0.0, 0.85),
    "r6": (0.004, 0.5, 1.0, 0.70),
    "r7": (0.005, 0.5, 0.0, None),
}
# Percentile ranks (#below + ½ #equal) / 7 over the 7 finite runs, worked by hand:
# 0.60 → 0.5/7, 0.65 → 1.5/7, 0.70 (twice) → 3/7, 0.80 → 4.5/7, 0.85 → 5.5/7, 0.90 → 6.5/7.
PR = {"r0": 0.5 / 7, "r1": 3 / 7, "r2": 1.5 / 7, "r3": 6.5 / 7, "r4": 4.5 / 7, "r5": 5.5 / 7,
      "r6": 3 / 7}


@pytest.fixture()
def runs(tmp_path: Path) -> pd.DataFrame:
    """The runs above as run folders, read back by collect_runs."""
    for name, (lr, momentum, nesterov, acc) in RUNS.items():
        folder = tmp_path / "grid" / name
        folder.mkdir(parents=True)
        params = {"notebook": "03_ssl.ipynb",
                  "parameters": {"lr": lr, "momentum": momentum, "nesterov": nesterov}}
        (folder / "params.json").write_text(json.dumps(params))
        (folder / "status.json").write_text(
            json.dumps({"status": "failed" if acc is None else "succeeded"}))
        (folder / "metrics.json").write_text(json.dumps({} if acc is None else {"accuracy": acc}))
    return collect_runs(tmp_path)


def test_percentile_rank_definition() -> None:
    assert np.allclose(percentile_ranks([3, 1, 2, 2]), [0.875, 0.125, 0.5, 0.5])
    assert np.allclose(percentile_ranks([3, 1, 2, 2], higher_is_better=False),
                       [0.125, 0.875, 0.5, 0.5])
    assert np.allclose(percentile_ranks(np.arange(10.0)), np.arange(10) / 10 + 0.05)
    with pytest.raises(InvalidInputError, match="finite"):
        percentile_ranks([1.0, float("nan")])


def test_value_percentile_ranks_by_hand(runs: pd.DataFrame) -> None:
    finite = runs.dropna(subset=["metric.accuracy"])
    ranks = dict(zip(finite["run"], percentile_ranks(finite["metric.accuracy"]), strict=True))
    assert ranks == pytest.approx(PR)
    table = value_percentile_ranks(runs, "accuracy", ["lr", "momentum"])
    assert list(table.columns) == ["parameter", "value", "n_runs", "mean_percentile_rank",
                                   "median_percentile_rank"]
    got = {(r.parameter, r.value): (r.n_runs, r.mean_percentile_rank, r.median_percentile_rank)
           for r in table.itertuples()}
    expected = {
        ("lr", 0.004): (4, 11 / 28, 3 / 7),           # r0 r1 r4 r6
        ("lr", 0.005): (3, 13.5 / 21, 5.5 / 7),        # r2 r3 r5 (r7 failed)
        ("momentum", 0.5): (3, 5 / 21, 1.5 / 7),       # r0 r2 r6
        ("momentum", 0.9): (4, 19.5 / 28, 5 / 7),      # r1 r3 r4 r5
    }
    assert got.keys() == expected.keys()
    for key, (n, mean, median) in expected.items():
        assert got[key][0] == n
        assert got[key][1] == pytest.approx(mean) and got[key][2] == pytest.approx(median)
    # Default parameters: every param.* column; a loss ranks the other way round.
    assert set(value_percentile_ranks(runs, "metric.accuracy")["parameter"]) == {
        "lr", "momentum", "nesterov"}
    loss = runs.assign(**{"metric.loss": -runs["metric.accuracy"]})
    flipped = value_percentile_ranks(loss, "loss", ["lr"], higher_is_better=False)
    assert np.allclose(flipped["mean_percentile_rank"], [11 / 28, 13.5 / 21])


def test_modal_values_by_percentile_by_hand(runs: pd.DataFrame) -> None:
    modal = modal_values_by_percentile(runs, "accuracy", ["lr", "momentum", "nesterov"],
                                       ranks=(0.4, 0.75, 0.9, 0.95))
    rows = {(r.percentile_rank, r.parameter, r.value): (r.count, r.n_runs)
            for r in modal.itertuples()}
    assert rows == {
        # PR ≥ 0.4: r1 r6 r4 r5 r3
        (0.4, "lr", 0.004): (3, 5),
        (0.4, "momentum", 0.9): (4, 5),
        (0.4, "nesterov", 1.0): (3, 5),
        # PR ≥ 0.75: r5 r3 — nesterov is tied and both values are listed
        (0.75, "lr", 0.005): (2, 2),
        (0.75, "momentum", 0.9): (2, 2),
        (0.75, "nesterov", 0.0): (1, 2),
        (0.75, "nesterov", 1.0): (1, 2),
        # PR ≥ 0.9: r3 only; PR ≥ 0.95 selects no run and gives no row
        (0.9, "lr", 0.005): (1, 1),
        (0.9, "momentum", 0.9): (1, 1),
        (0.9, "nesterov", 1.0): (1, 1),
    }
    table = modal_values_table(modal)
    assert list(table.index) == [0.4, 0.75, 0.9]
    assert list(table.columns) == ["lr", "momentum", "nesterov"]
    assert table.loc[0.75, "nesterov"] == "0, 1" and table.loc[0.4, "lr"] == "0.004"


def test_errors(runs: pd.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="accurcy"):
        value_percentile_ranks(runs, "accurcy")
    with pytest.raises(InvalidInputError, match="momentum"):
        value_percentile_ranks(runs, "accuracy", ["momentm"])
    with pytest.raises(InvalidInputError, match="list of names"):
        value_percentile_ranks(runs, "accuracy", "lr")
    with pytest.raises(InvalidInputError, match="ranks"):
        modal_values_by_percentile(runs, "accuracy", ranks=(1.0,))
    with pytest.raises(InvalidInputError, match="finite"):
        value_percentile_ranks(runs.assign(**{"metric.accuracy": None}), "accuracy")
    with pytest.raises(InvalidInputError, match="DataFrame"):
        value_percentile_ranks([1, 2], "accuracy")
