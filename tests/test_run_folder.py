from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.subprocesses import default_sigint
from wslbench.runner.run_folder import PARTIAL_SUFFIX, execute_run, params_hash
from wslbench.runner.summary import collect_runs

TINY = Path(__file__).parent / "notebooks" / "tiny.ipynb"
ROOT = Path(__file__).resolve().parents[1]


def test_params_hash_is_stable_and_order_free():
    assert params_hash({"a": 1, "b": 2}) == params_hash({"b": 2, "a": 1}) != params_hash({"a": 2, "b": 2})


@pytest.mark.notebook
def test_same_params_twice_never_overwrite_and_failure_is_kept(tmp_path):
    first = execute_run(TINY, {"preset": "smoke", "a": 1}, tmp_path, html=False)
    second = execute_run(TINY, {"preset": "smoke", "a": 1}, tmp_path, html=False)
    failed = execute_run(TINY, {"preset": "smoke", "fail": True}, tmp_path, html=False)
    assert first.folder != second.folder and first.folder.exists() and second.folder.exists()
    assert failed.status == "failed" and failed.returncode != 0
    assert (failed.folder / "executed.ipynb").exists(), "the partial notebook is kept"
    assert "failing on purpose" in (failed.folder / "log.txt").read_text()
    table = collect_runs(tmp_path).set_index("path")
    assert table.loc[str(failed.folder), "status"] == "failed"
    assert table.loc[str(first.folder), "metric.sum"] == 3.0


@pytest.mark.notebook
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killed_run_is_marked_incomplete_and_earlier_runs_survive(tmp_path, sig):
    earlier = execute_run(TINY, {"preset": "smoke"}, tmp_path, html=False)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "wslbench.cli", "run", str(TINY), "-p", "sleep_s", "60",
         "--out", str(tmp_path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=default_sigint,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list((tmp_path / "tiny").glob(f".*{PARTIAL_SUFFIX}/executed.ipynb")):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    table = collect_runs(tmp_path)
    states = dict(zip(table["path"], table["status"]))
    assert states[str(earlier.folder)] == "succeeded"
    assert json.loads((earlier.folder / "metrics.json").read_text())["sum"] == 3.0
    killed = [s for p, s in states.items() if p != str(earlier.folder)]
    assert killed in (["incomplete"], ["interrupted"])


@pytest.mark.notebook
def test_params_json_holds_seed_provenance_and_the_resolved_configuration(tmp_path):
    import torch

    from wslbench import __version__
    from wslbench.runner.notebooks import resolve_notebook

    result = execute_run(TINY, {"preset": "smoke", "seed": 3}, tmp_path, html=False)
    params = json.loads((result.folder / "params.json").read_text())
    assert params["seed"] == 3 and params["parameters"] == {"preset": "smoke", "seed": 3}
    assert params["provenance"]["wslbench"] == __version__
    assert params["provenance"]["torch"] == torch.__version__
    assert params["provenance"]["python"].count(".") == 2
    # a paper notebook writes its resolved preset (overrides applied) and device
    from wslbench.experiments import cnncs
    from wslbench.runner.record import RUN_DIR_ENV, record_config

    os.environ[RUN_DIR_ENV] = str(result.folder)
    try:
        record_config(cnncs.cnncs_config("smoke", lam=0.05))
    finally:
        del os.environ[RUN_DIR_ENV]
    params = json.loads((result.folder / "params.json").read_text())
    assert params["config"]["lam"] == 0.05 and params["config"]["m"] == cnncs.cnncs_config("smoke").m
    assert params["device"] in ("cpu", "cuda") and params["seed"] == 3
    assert resolve_notebook("04").is_file()
