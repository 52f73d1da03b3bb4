from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from wslbench.cli import main
from wslbench.errors import ConfigError
from wslbench.runner.golden import (
    CHANCE_LEVEL,
    FLOOR_ABS,
    MARGIN,
    compare_metrics,
    degenerate_metrics,
    diff_golden,
    flatten_metrics,
    kernel_selections,
    load_golden,
    make_golden,
    portable_selection,
)

TINY = Path(__file__).parent / "notebooks" / "tiny.ipynb"
GOLDEN = Path(__file__).parent / "golden"


def _golden(*runs, previous=None, **kwargs):
    return make_golden("nb", [flatten_metrics(r) for r in runs], previous, **kwargs)


def test_tolerance_is_margin_times_the_measured_spread():
    doc = _golden({"auc": 0.80, "n": 3}, {"auc": 0.81, "n": 3}, {"auc": 0.79, "n": 3})
    spec = doc["metrics"]["auc"]
    assert spec["value"] == 0.80 and spec["spread"] == pytest.approx(0.02)
    assert MARGIN * 0.02 + FLOOR_ABS <= spec["abs"] <= MARGIN * 0.02 + 2e-4  # rounded up, 3 digits
    assert doc["metrics"]["n"] == {"value": 3, "policy": "exact (count): identical in every kernel selection"}
    assert compare_metrics({"auc": 0.80 + 0.055, "n": 3}, doc) == []
    text = "\n".join(compare_metrics({"auc": 0.87, "n": 4}, doc))
    assert "auc: expected 0.8 ±" in text and "got 0.87" in text
    assert "n: expected 3 exactly, got 4" in text


def test_a_metric_identical_in_every_selection_gets_only_the_round_off_floor():
    doc = _golden({"auc": 0.8}, {"auc": 0.8})
    assert doc["metrics"]["auc"]["abs"] == FLOOR_ABS
    assert compare_metrics({"auc": 0.8 + 1e-6}, doc) == []
    assert compare_metrics({"auc": 0.8 + 1e-4}, doc) != []


def test_compare_reports_missing_extra_and_nan():
    doc = _golden({"auc": 0.8, "label": "pi"})
    problems = "\n".join(compare_metrics({"auc": math.nan, "extra": 1.0}, doc))
    assert "label: missing" in problems and "extra: unexpected metric" in problems
    assert "auc: got NaN" in problems


def test_nested_lists_are_flattened_and_compared_element_by_element():
    assert flatten_metrics({"froc": {"ma": 0.1}, "f1": [0.5, 0.6], "sim": [[1.0, 0.7], [0.7, 1.0]]}) == {
        "froc.ma": 0.1, "f1[0]": 0.5, "f1[1]": 0.6,
        "sim[0][0]": 1.0, "sim[0][1]": 0.7, "sim[1][0]": 0.7, "sim[1][1]": 1.0}
    doc = _golden({"sim": [[1.0, 0.7]]}, {"sim": [[1.0, 0.701]]})
    assert compare_metrics({"sim": [[1.0, 0.7025]]}, doc) == []
    assert compare_metrics({"sim": [[1.0, 0.75]]}, doc) == [
        "sim[0][1]: expected 0.7 ± 0.00302 (abs 0.00301, rel 1e-05), got 0.75"]


@pytest.mark.parametrize(
    "metrics, bad",
    [
        ({"heads": {"gap": {"accuracy": 0.45, "dice": 0.3}}}, ["heads.gap.accuracy"]),
        ({"balanced_accuracy": [0.5, 0.9]}, ["balanced_accuracy[0]"]),
        ({"image_auc": CHANCE_LEVEL, "ensemble_auc": 0.85}, ["image_auc"]),
        ({"detection": {"CNNCS": {"f1": 0.0, "precision": 0.0}}}, ["detection.CNNCS.f1"]),
        ({"froc": {"hemorrhage": 0.0, "mean": 0.2}}, ["froc.hemorrhage"]),
        ({"beta1_similarity": [[1.0, 0.995], [0.995, 1.0]]},
         ["beta1_similarity[0][0]", "beta1_similarity[0][1]", "beta1_similarity[1][0]",
          "beta1_similarity[1][1]"]),
        ({"intra_subject_similarity": 0.999, "inter_subject_similarity": 0.8},
         ["intra_subject_similarity"]),
        # not classifier scores: faithfulness areas and accuracy under attack
        ({"deletion_auc": 0.2, "robust_accuracy": {"clean": [1.0, 0.0]}}, []),
        ({"beta1_similarity": [[1.0, 0.6], [0.6, 1.0]], "dice": 0.0}, []),
    ],
)
def test_degenerate_metrics_are_found_by_name_and_value(metrics, bad):
    assert sorted(degenerate_metrics(flatten_metrics(metrics))) == sorted(bad)


def test_a_degenerate_golden_is_refused_unless_declared_a_sanity_range():
    run = {"accuracy": 0.5, "dice": 0.3}
    with pytest.raises(ConfigError, match=r"accuracy = 0.5: classifier score 0.5 is at or below chance"):
        _golden(run)
    doc = _golden(run, sanity={"acc*": "smoke model at chance (issue 20)"})
    spec = doc["metrics"]["accuracy"]
    assert spec["range"] == [0.0, 1.0] and spec["policy"] == "sanity range only: smoke model at chance (issue 20)"
    assert compare_metrics({"accuracy": 0.9, "dice": 0.3}, doc) == []
    assert "sanity range" in compare_metrics({"accuracy": 1.5, "dice": 0.3}, doc)[0]
    assert "got NaN" in compare_metrics({"accuracy": math.nan, "dice": 0.3}, doc)[0]
    # the declaration survives an update; --golden measures it again (and refuses it again)
    again = _golden({"accuracy": 0.55, "dice": 0.3}, previous=doc)
    assert again["metrics"]["accuracy"]["range"] == [0.0, 1.0]
    assert again["metrics"]["accuracy"]["policy"] == spec["policy"]
    with pytest.raises(ConfigError, match="at or below chance"):
        _golden(run, previous=doc, promote=["accuracy"])
    assert "abs" in _golden({"accuracy": 0.9, "dice": 0.3}, previous=doc, promote=["acc*"])["metrics"]["accuracy"]


def test_a_label_that_changes_with_the_kernel_selection_is_refused():
    with pytest.raises(ConfigError, match="best: changes with the kernel selection"):
        _golden({"best": "lse"}, {"best": "gap"})
    assert _golden({"best": "lse"}, {"best": "lse"})["metrics"]["best"]["policy"] == "exact (label or flag)"


def test_kernel_selections_cover_lower_capabilities_onednn_and_threads():
    names = [s.name for s in kernel_selections("avx512")]
    assert names == ["native, 1 thread", "ATEN_CPU_CAPABILITY=default", "ATEN_CPU_CAPABILITY=avx2",
                     "ONEDNN_MAX_CPU_ISA=AVX2", "native, 2 threads"]
    assert [s.env for s in kernel_selections("avx2")][1:3] == [
        {"ATEN_CPU_CAPABILITY": "default"}, {"ONEDNN_MAX_CPU_ISA": "SSE41"}]
    assert [s.threads for s in kernel_selections("default")] == [1, 2]


def test_the_regression_suite_runs_below_the_native_capability():
    assert portable_selection({}, native="avx512").env == {"ATEN_CPU_CAPABILITY": "avx2"}
    assert portable_selection({}, native="avx2").env == {"ATEN_CPU_CAPABILITY": "default"}
    assert portable_selection({}, native="default").env == {}
    kept = portable_selection({"ATEN_CPU_CAPABILITY": "default"}, native="avx512")
    assert kept.env == {"ATEN_CPU_CAPABILITY": "default"} and "set by the user" in kept.name


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_committed_goldens_are_measured_and_guard_no_noise(path):
    doc = load_golden(path)
    assert doc["measured"]["selections"] and len(doc["measured"]["selections"]) >= 2
    values = {name: spec["value"] for name, spec in doc["metrics"].items() if "range" not in spec}
    assert degenerate_metrics(values) == {}
    for name, spec in doc["metrics"].items():
        if "range" in spec:
            assert spec["policy"].startswith("sanity range only: "), name
        elif isinstance(spec["value"], float):
            assert "spread" in spec and spec["abs"] >= MARGIN * spec["spread"] * (1 - 1e-9), name


def test_diff_lists_changes_with_tolerances():
    old = _golden({"auc": 0.8})
    new = _golden({"auc": 0.9}, {"auc": 0.91})
    assert diff_golden(old, new) == ["* auc: 0.8 -> 0.9  [± 0.0301]"]


@pytest.mark.notebook
def test_golden_update_measures_every_selection_then_compares(tmp_path, capsys):
    assert main(["golden", "update", str(TINY), "--golden-dir", str(tmp_path), "--jobs", "2"]) == 0
    doc = json.loads((tmp_path / "tiny.json").read_text())
    assert doc["metrics"]["sum"]["value"] == 3.0 and doc["parameters"] == {"preset": "smoke", "seed": 0}
    assert doc["measured"]["selections"] == [s.name for s in kernel_selections()]
    out = capsys.readouterr().out
    assert "* sum: '(absent)' -> 3.0" in out and out.count("succeeded") == len(kernel_selections())
