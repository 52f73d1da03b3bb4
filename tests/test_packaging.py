"""environment.yml and pyproject.toml must list the same packages and pins."""

from __future__ import annotations

import re
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
