"""Papermill regression suite (issues 11, 17): every paper notebook, smoke preset, seed 0, one thread.

Each notebook's ``record()``ed metrics are compared with ``tests/golden/<stem>.json``
within the per-metric tolerances stored there (measured across kernel selections;
policy in wslbench.runner.golden). The notebooks run under a kernel selection
below this CPU's native one (``portable_selection``: ``ATEN_CPU_CAPABILITY=avx2``
on an AVX-512 machine, unless the user set one), so a green suite says another
CPU passes too.
The executed notebook and its HTML stay in ``test-artifacts/notebooks/`` so a
failure can be inspected. Golden files change only through
``wslbench golden update NOTEBOOK``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wslbench.runner.golden import (
    GOLDEN_PARAMETERS,
    compare_metrics,
    golden_path,
    load_golden,
    portable_selection,
)
from wslbench.runner.notebooks import list_notebooks
from wslbench.runner.run_folder import execute_run

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
ARTIFACTS = ROOT / "test-artifacts" / "notebooks"
NOTEBOOKS = list_notebooks(ROOT / "notebooks")


@pytest.mark.notebook
@pytest.mark.xdist_group("kernels")  # serial with the browser tests (see test_browser_foundation)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_matches_its_golden_metrics(notebook: Path) -> None:
    golden = load_golden(golden_path(GOLDEN, notebook.stem))
    assert golden["parameters"] == GOLDEN_PARAMETERS
    selection = portable_selection()
    result = execute_run(notebook, dict(GOLDEN_PARAMETERS), ARTIFACTS, threads=1, html=True,
                         env=selection.env)
    log = (result.folder / "log.txt").read_text()
    assert result.status == "succeeded", f"{notebook.stem} failed; see {result.folder}\n{log[-3000:]}"
    metrics = json.loads((result.folder / "metrics.json").read_text())
    problems = compare_metrics(metrics, golden)
    assert not problems, (
        f"{notebook.stem} drifted from {golden_path(GOLDEN, notebook.stem)} under {selection.name} "
        f"(executed notebook: {result.folder / 'executed.html'}):\n  " + "\n  ".join(problems)
    )


def test_every_notebook_has_a_golden_file() -> None:
    missing = [p.stem for p in NOTEBOOKS if not golden_path(GOLDEN, p.stem).is_file()]
    assert not missing, f"no golden file for {missing}: run `wslbench golden update NAME`"
