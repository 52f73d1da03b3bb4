from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from wslbench.errors import InvalidInputError
from wslbench.runner import record, recorded, save_figure


def test_record_in_memory_without_run_dir(tmp_path):
    assert record("auc", np.float64(0.5)) == 0.5
    assert recorded()["auc"] == 0.5
    assert save_figure(plt.figure(), "fig") is None
    assert not any(tmp_path.iterdir())


def test_record_writes_metrics_json(tmp_path, monkeypatch):
    monkeypatch.setenv("WSLBENCH_RUN_DIR", str(tmp_path))
    record("auc", 0.75)
    record("froc", {"ma": 0.1, "he": 0.2})
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data == {"auc": 0.75, "froc": {"ma": 0.1, "he": 0.2}}
    fig = plt.figure()
    path = save_figure(fig, "roc")
    assert path == tmp_path / "figures" / "roc.png" and path.stat().st_size > 0
    plt.close(fig)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), object()])
def test_record_rejects_non_finite_or_unknown(bad):
    with pytest.raises(InvalidInputError):
        record("x", bad)


def test_save_figure_rejects_path_names(tmp_path, monkeypatch):
    monkeypatch.setenv("WSLBENCH_RUN_DIR", str(tmp_path))
    with pytest.raises(InvalidInputError):
        save_figure(plt.figure(), "../evil")
