"""environment.yml and pyproject.toml must list the same packages and pins; the test tools group."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda splits dask[distributed] into two packages; names otherwise match after normalising.
CONDA_ALIASES = {"dask[distributed]": {"dask", "distributed"}}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]
    out: dict[str, str] = {}
    for req in reqs:
        name, spec = _split(req)
        for alias in CONDA_ALIASES.get(name, {name}):
            out[alias] = spec
    return out


def _environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            name, spec = _split(item)
            if name in {"python", "pip"}:
                continue
            out[name] = spec
    return out


def test_environment_matches_pyproject():
    assert _environment() == _pyproject()


def test_torch_is_pinned_and_torchvision_absent():
    py = _pyproject()
    assert py["torch"] == "==2.13.0"
    assert "torchvision" not in py and "torchvision" not in _environment()


def test_xdist_groups_run_on_one_worker(tmp_path):
    """``make test`` relies on ``--dist loadgroup`` to run the kernel-heavy tests (notebooks,
    browser) one at a time; pytest 9.2 with pytest-xdist 3.8 silently dropped the groups."""
    (tmp_path / "test_grouped.py").write_text(
        "import os, pytest\n"
        "pytestmark = pytest.mark.xdist_group('kernels')\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_grouped(i):\n"
        "    with open(os.environ['WORKERS_LOG'], 'a') as log:\n"
        "        log.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n",
        encoding="utf-8",
    )
    log = tmp_path / "workers.txt"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider",
         "-c", "/dev/null", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "WORKERS_LOG": str(log)}, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    workers = log.read_text(encoding="utf-8").split()
    assert len(workers) == 6 and len(set(workers)) == 1, f"grouped tests ran on {sorted(set(workers))}"


def test_license_is_an_spdx_expression_not_the_deprecated_table():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"
