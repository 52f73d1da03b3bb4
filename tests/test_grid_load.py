"""Load (issue 10, item 5, grid part): more runs than workers, failures isolated;
and a parameter panel flooded with 50 rapid changes stays debounced (last value wins)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from wslbench.cli import main
from wslbench.runner import grid
from wslbench.runner.run_folder import RunResult
from wslbench.runner.summary import collect_runs
from wslbench.widgets import ParameterPanel

TINY = Path(__file__).parent / "notebooks" / "tiny.ipynb"


@pytest.mark.notebook
def test_five_runs_on_two_workers_one_failing_all_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "g.yaml"
    spec.write_text("preset: smoke\nruns:\n  - {a: 1}\n  - {a: 2, fail: true}\n  - {a: 3}\n"
                    "  - {a: 4}\n  - {a: 5}\n")
    code = main(["grid", str(TINY), str(spec), "--workers", "2", "--out", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == 1, "a failed run makes the grid exit 1"
    reported = [line.split()[0] for line in out.splitlines() if "runs/tiny/2" in line]
    assert sorted(reported) == ["failed"] + ["succeeded"] * 4, out
    table = collect_runs(tmp_path / "runs" / "tiny")
    assert len(table) == 5
    by_a = dict(zip(table["param.a"], table["status"]))
    assert by_a == {1: "succeeded", 2: "failed", 3: "succeeded", 4: "succeeded", 5: "succeeded"}
    sums = table.set_index("param.a")["metric.sum"]
    assert [sums[a] for a in (1, 3, 4, 5)] == [3.0, 5.0, 6.0, 7.0]
    assert (tmp_path / "runs" / "tiny" / "summary.csv").is_file()


def test_a_run_that_raises_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exception inside one run (not a failing notebook) is reported as that run's failure."""
    started: list[int] = []

    def fake_run(notebook: Path, params: dict[str, Any], out: Path, **kwargs: Any) -> RunResult:
        started.append(params["a"])
        if params["a"] == 3:
            raise OSError("disk full")
        time.sleep(0.05)
        return RunResult(out / f"run{params['a']}", "succeeded", 0.05, 0)

    monkeypatch.setattr(grid, "execute_run", fake_run)
    seen: list[RunResult] = []
    sets = [{"preset": "smoke", "a": a} for a in range(1, 8)]
    results = grid.run_grid(TINY, sets, tmp_path, workers=2, on_done=seen.append)
    assert sorted(started) == list(range(1, 8))
    assert [r.status for r in results] == ["succeeded"] * 2 + ["failed"] + ["succeeded"] * 4
    assert results[2].returncode == -1 and len(seen) == 7
    assert "disk full" in capsys.readouterr().err


@pytest.mark.parametrize("threaded", [True, False], ids=["thread", "synchronous"])
def test_fifty_rapid_slider_changes_debounce_to_the_last_value(threaded: bool) -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def work(params: dict[str, Any], progress: Any) -> int:
        with lock:
            calls.append(params["n"])
        for step in range(5):
            progress(step, 5, {})
            time.sleep(0.01)
        return params["n"]

    panel = ParameterPanel({"n": (0, 60, 1)}, work, debounce_s=0.2, threaded=threaded)
    start = time.perf_counter()
    for value in range(1, 51):
        panel.controls["n"].value = value
    changing_s = time.perf_counter() - start
    panel.wait(10.0)
    assert panel.result == 50 and calls[-1] == 50 and panel.error is None
    assert panel.status.value.startswith("done")
    if threaded:
        assert changing_s < 1.0, "the changes themselves never block on the work"
        assert len(calls) <= 3, f"debounced: {len(calls)} runs for 50 changes"
    else:
        assert calls == list(range(1, 51)), "synchronous mode runs each change in order"
    panel.controls["n"].value = 7  # still responsive after the flood
    panel.wait(10.0)
    assert panel.result == 7
