from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from wslbench.cli import main
from wslbench.runner.golden import compare_metrics, diff_golden, flatten_metrics, make_golden

TINY = Path(__file__).parent / "notebooks" / "tiny.ipynb"


def _golden(**metrics):
    return make_golden("nb", metrics, None)


def test_compare_reports_missing_extra_nan_and_tolerance():
    golden = _golden(auc=0.8, count=3, label="pi")
    assert compare_metrics({"auc": 0.8 + 1e-9, "count": 3, "label": "pi"}, golden) == []
    problems = compare_metrics({"auc": 0.81, "count": 4, "extra": 1.0}, golden)
    text = "\n".join(problems)
    assert "auc: expected 0.8 ± 8.01e-07" in text and "got 0.81" in text
    assert "count: expected 3 exactly, got 4" in text
    assert "label: missing" in text and "extra: unexpected metric" in text
    assert "got NaN" in compare_metrics({"auc": math.nan, "count": 3, "label": "pi"}, golden)[0]


def test_custom_tolerance_is_kept_on_update_and_diff_lists_changes():
    golden = _golden(auc=0.8)
    golden["metrics"]["auc"].update(abs=0.05, policy="threads")
    assert compare_metrics({"auc": 0.84}, golden) == []
    updated = make_golden("nb", {"auc": 0.9}, golden)
    assert updated["metrics"]["auc"] == {"value": 0.9, "abs": 0.05, "rel": 1e-6, "policy": "threads"}
    assert diff_golden(golden, updated) == ["* auc: 0.8 -> 0.9"]


def test_flatten_nested_metrics():
    assert flatten_metrics({"froc": {"ma": 0.1}, "f1": [0.5, 0.6]}) == {"froc.ma": 0.1, "f1[0]": 0.5, "f1[1]": 0.6}


@pytest.mark.notebook
def test_golden_update_writes_then_compares(tmp_path, capsys):
    assert main(["golden", "update", str(TINY), "--golden-dir", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "tiny.json").read_text())
    assert doc["metrics"]["sum"]["value"] == 3.0 and doc["parameters"] == {"preset": "smoke", "seed": 0}
    assert "* sum: '(absent)' -> 3.0" in capsys.readouterr().out
