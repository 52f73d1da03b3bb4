"""``wslbench reproduce`` on a toy claim: the verdict is recomputed from the arms."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import nbformat
import pytest
from scipy import stats

from wslbench.claims import Claim, judge, paired_interval
from wslbench.cli import main
from wslbench.errors import ConfigError, DataFormatError
from wslbench.runner.reproduce import claims_table, recorded_reproduction

TINY = Path(__file__).parent / "notebooks" / "tiny.ipynb"


def _toy_notebook(folder: Path) -> Path:
    nb = nbformat.read(str(TINY), as_version=4)
    nb.metadata["wslbench"] = {"claims": "tests.toy_claims:CLAIMS"}
    path = folder / "toy.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_paired_interval_equals_scipy_t_interval():
    diffs = [0.3, -0.2, 0.1, 0.45]
    mean, low, high = paired_interval(diffs)
    ref = stats.t.interval(0.95, len(diffs) - 1, loc=sum(diffs) / 4, scale=stats.sem(diffs))
    assert mean == pytest.approx(0.1625) and (low, high) == pytest.approx(ref)
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        paired_interval([1.0])


def test_direction_less_and_missing_measurements():
    claim = Claim("lower", "s", "L1", "a", "b", direction="less", threshold=0.1)
    entry = judge(claim, [{"a": 1.0, "b": 2.0}, {"a": 1.5, "b": 2.0}])
    assert entry["effect"] == pytest.approx(0.75) and entry["arms"] == {"a": [1.0, 1.5], "b": [2.0, 2.0]}
    with pytest.raises(ConfigError, match=r"seed #1 measured no \['b'\]"):
        judge(claim, [{"a": 1.0, "b": 2.0}, {"a": 1.0}])


def test_reproduce_writes_verdicts_recomputed_from_the_arms(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    notebook = _toy_notebook(tmp_path)
    assert main(["reproduce", str(notebook), "--seeds", "4", "--out", "out"]) == 0
    doc = json.loads((tmp_path / "out" / "reproduce.json").read_text())
    assert doc["seeds"] == [0, 1, 2, 3] and doc["preset"] == "demo" and doc["notebook"] == "toy"
    assert doc["provenance"]["wslbench"] and doc["seconds"] >= 0
    verdicts = {}
    for entry in doc["claims"]:
        arms = entry["arms"]
        assert set(entry) >= {"id", "statement", "metric", "arms", "effect", "ci95", "threshold",
                              "reproduced"}
        diffs = [t - b for t, b in zip(arms[entry["treatment"]], arms[entry["baseline"]])]
        mean = sum(diffs) / len(diffs)
        half = stats.t.ppf(0.975, len(diffs) - 1) * stats.tstd(diffs) / math.sqrt(len(diffs))
        assert entry["effect"] == pytest.approx(mean)
        assert entry["ci95"] == pytest.approx([mean - half, mean + half])
        recomputed = mean - half > entry["threshold"] and not entry["below_floor"]
        assert entry["reproduced"] == recomputed
        verdicts[entry["id"]] = entry["reproduced"]
    assert verdicts == {"better": True, "noise": False, "void": False}
    assert len(doc["measurements"]) == 4 and all("at_chance" in m for m in doc["measurements"])
    rows = {r["claim"]: r for r in claims_table(doc)}
    for entry in doc["claims"]:
        row = rows[entry["id"]]
        assert row["reproduced"] == entry["reproduced"] and row["effect"] == entry["effect"]
        t, b = entry["arms"][entry["treatment"]], entry["arms"][entry["baseline"]]
        assert row["treatment"] == pytest.approx(sum(t) / 4) and row["baseline"] == pytest.approx(sum(b) / 4)
    assert "at_chance 0.5 < 0.6" in rows["void"]["below floor"]
    out = capsys.readouterr().out
    assert "reproduced      better: score effect +0.9875" in out
    assert "NOT reproduced  void" in out and "below floor: at_chance 0.5 < 0.6" in out


def test_reproduce_refuses_bad_input_and_never_overwrites(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    notebook = _toy_notebook(tmp_path)
    assert main(["reproduce", str(notebook), "--seeds", "1", "--out", "a"]) == 2
    assert "--seeds must be an integer >= 2" in capsys.readouterr().err
    assert main(["reproduce", str(notebook), "--seeds", "2", "--out", "a"]) == 0
    before = (tmp_path / "a" / "reproduce.json").read_text()
    assert main(["reproduce", str(notebook), "--seeds", "3", "--out", "a"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "a" / "reproduce.json").read_text() == before
    plain = tmp_path / "plain.ipynb"
    shutil.copy(TINY, plain)
    assert main(["reproduce", str(plain)]) == 2
    assert "declares no claims yet" in capsys.readouterr().err


def test_recorded_reproduction_reads_the_checkout_record(tmp_path, monkeypatch):
    monkeypatch.setattr("wslbench.runner.reproduce.RECORD_DIR", tmp_path)
    assert recorded_reproduction("toy") is None
    (tmp_path / "toy.json").write_text('{"claims": []}')
    assert recorded_reproduction("toy") == {"claims": []}
    (tmp_path / "toy.json").write_text("{")
    with pytest.raises(DataFormatError, match="toy.json"):
        recorded_reproduction("toy")
