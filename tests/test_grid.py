from __future__ import annotations

from pathlib import Path

import pytest

from wslbench.cli import main
from wslbench.errors import ConfigError
from wslbench.runner.grid import expand_grid
from wslbench.runner.summary import collect_runs

TINY = Path(__file__).parent / "notebooks" / "tiny.ipynb"


def test_expand_cartesian_and_explicit():
    sets = expand_grid({"preset": "smoke", "fixed": {"seed": 3}, "grid": {"a": [1, 2], "b": [0.5, 1.5]}})
    assert len(sets) == 4 and {(s["a"], s["b"]) for s in sets} == {(1, 0.5), (1, 1.5), (2, 0.5), (2, 1.5)}
    assert all(s["preset"] == "smoke" and s["seed"] == 3 for s in sets)
    explicit = expand_grid({"runs": [{"a": 1}, {"a": 2, "b": 3.0}]})
    assert explicit == [{"preset": "demo", "a": 1}, {"preset": "demo", "a": 2, "b": 3.0}]
    with pytest.raises(ConfigError, match="unknown parameter"):
        expand_grid({"grid": {"z": [1]}}, allowed={"a"})


def _check_grid_output(out: Path, capsys) -> None:
    table = collect_runs(out / "tiny")
    assert len(table) == 4 and (table["status"] == "succeeded").all()
    assert sorted(table["metric.sum"]) == [1.5, 2.5, 2.5, 3.5]
    assert (out / "tiny" / "summary.csv").exists()
    assert "summary:" in capsys.readouterr().out


@pytest.mark.notebook
def test_grid_2x2_local_workers(tmp_path, capsys):
    (tmp_path / "g.yaml").write_text("preset: smoke\ngrid:\n  a: [1, 2]\n  b: [0.5, 1.5]\n")
    assert main(["grid", str(TINY), str(tmp_path / "g.yaml"), "--workers", "2", "--out", str(tmp_path / "runs")]) == 0
    _check_grid_output(tmp_path / "runs", capsys)
    assert main(["summary", str(tmp_path / "runs"), "--plot", "sum", "--by", "a"]) == 0
    assert (tmp_path / "runs" / "summary_sum_by_a.png").stat().st_size > 0


@pytest.mark.notebook
def test_grid_2x2_on_dask_local_cluster(tmp_path, capsys):
    from distributed import LocalCluster

    (tmp_path / "g.yaml").write_text("preset: smoke\ngrid:\n  a: [1, 2]\n  b: [0.5, 1.5]\n")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        code = main(["grid", str(TINY), str(tmp_path / "g.yaml"), "--dask", cluster.scheduler_address,
                     "--out", str(tmp_path / "runs")])
    assert code == 0
    _check_grid_output(tmp_path / "runs", capsys)


@pytest.mark.notebook
def test_failing_run_does_not_stop_the_others(tmp_path, capsys):
    (tmp_path / "g.yaml").write_text("preset: smoke\nruns:\n  - {fail: true}\n  - {a: 2}\n  - {a: 3}\n")
    assert main(["grid", str(TINY), str(tmp_path / "g.yaml"), "--workers", "2", "--out", str(tmp_path / "runs")]) == 1
    table = collect_runs(tmp_path / "runs")
    assert sorted(table["status"]) == ["failed", "succeeded", "succeeded"]
