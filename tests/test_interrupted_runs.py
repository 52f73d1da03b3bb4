"""Nothing lost (issue 10, item 2): killed runs, summaries after a kill, re-runs.

A real ``wslbench run`` is started in its own process group on ``slow.ipynb``
(which records ``started`` and then waits for a release file) and the whole group
gets SIGINT (what Ctrl-C sends) or SIGKILL once ``started`` is on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.subprocesses import default_sigint
from wslbench import cli
from wslbench.runner import run_folder
from wslbench.runner.run_folder import PARTIAL_SUFFIX, execute_run
from wslbench.runner.summary import collect_runs

ROOT = Path(__file__).resolve().parents[1]
SLOW = ROOT / "tests" / "notebooks" / "slow.ipynb"

pytestmark = pytest.mark.notebook


def _digest(folder: Path) -> dict[str, str]:
    """Content hash of every file of a run folder."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """A runs root holding one finished run; returns (root, its folder, its digest)."""
    root = tmp_path_factory.mktemp("runs")
    done = execute_run(SLOW, {"preset": "smoke"}, root, html=False)
    assert done.status == "succeeded"
    return root, done.folder, _digest(done.folder)


def _start_and_kill(root: Path, release: Path, sig: signal.Signals) -> tuple[int, Path]:
    """Start ``wslbench run`` on slow.ipynb, wait for its first record, signal its group."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before = set((root / "slow").glob(f".*{PARTIAL_SUFFIX}"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "wslbench.cli", "run", str(SLOW), "-p", "release_file",
         str(release), "--out", str(root)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=default_sigint,
    )
    try:
        deadline = time.monotonic() + 90
        partial: Path | None = None
        while time.monotonic() < deadline and partial is None:
            for folder in set((root / "slow").glob(f".*{PARTIAL_SUFFIX}")) - before:
                metrics = folder / "metrics.json"
                if metrics.is_file() and "started" in metrics.read_text():
                    partial = folder
            time.sleep(0.2)
        assert partial is not None, "the run never recorded 'started'"
        os.killpg(proc.pid, sig)
        return proc.wait(timeout=30), partial
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_killed_run_keeps_everything_and_summary_still_works(
    runs: tuple[Path, Path, dict[str, str]], tmp_path: Path, sig: signal.Signals,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, earlier, digest = runs
    release = tmp_path / "release"
    code, partial = _start_and_kill(root, release, sig)
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    # the earlier folder is byte-for-byte intact; the killed one is kept, still partial
    assert _digest(earlier) == digest
    assert partial.is_dir() and partial.name.endswith(PARTIAL_SUFFIX)
    assert json.loads((partial / "metrics.json").read_text()) == {"started": 1}
    status = json.loads((partial / "status.json").read_text())["status"]
    assert status == ("interrupted" if sig == signal.SIGINT else "running")
    assert not list(root.rglob("*.tmp-*")), "no temporary file is left behind"
    # the summary lists both and exits 0
    assert cli.main(["summary", str(root)]) == 0
    out = capsys.readouterr().out
    table = collect_runs(root).set_index("path")
    assert table.loc[str(earlier), "status"] == "succeeded"
    assert table.loc[str(partial), "status"] in ("interrupted", "incomplete")
    assert "interrupted" in out or "incomplete" in out
    # re-running with the same parameters makes a new folder and leaves the partial alone
    release.touch()
    again = execute_run(SLOW, {"preset": "smoke", "release_file": str(release)}, root, html=False)
    assert again.status == "succeeded" and again.folder.is_dir()
    assert again.folder not in (earlier, partial) and partial.is_dir()
    assert json.loads((again.folder / "metrics.json").read_text()) == {"started": 1, "finished": 1}


def test_same_parameters_twice_make_two_folders(runs: tuple[Path, Path, dict[str, str]]) -> None:
    root, earlier, digest = runs
    again = execute_run(SLOW, {"preset": "smoke"}, root, html=False)
    assert again.folder != earlier and again.folder.parent == earlier.parent
    assert _digest(earlier) == digest
    assert again.folder.name.split("-")[1] == earlier.name.split("-")[1], "same parameter hash"


def test_interrupt_in_process_leaves_a_partial_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KeyboardInterrupt during execution: status 'interrupted', folder kept as partial."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run_folder, "execute_notebook", interrupted)
    with pytest.raises(KeyboardInterrupt):
        execute_run(SLOW, {"preset": "smoke"}, tmp_path, html=False)
    (partial,) = (tmp_path / "slow").iterdir()
    assert partial.name.endswith(PARTIAL_SUFFIX)
    assert json.loads((partial / "status.json").read_text())["status"] == "interrupted"
    assert collect_runs(tmp_path)["status"].tolist() == ["interrupted"]
