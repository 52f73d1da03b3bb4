"""No import runs from a lower layer of the package to a higher one (DESIGN §3, issue 18).

Layers, low to high: the core helpers every part may use; the building blocks
(``nn``, ``data``, ``cs``, ``losses``, ``pooling``); models, heatmaps and metrics;
attacks and training; figures and the runner; the paper experiments; the
widgets and explorers that drive them; the dashboards and the command line. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wslbench"
LAYERS = [
    {"__init__", "errors", "registry", "seeding", "presets", "devices", "progress", "model_state",
     "validation", "checkpoint", "provenance", "claims"},
    {"nn", "data", "cs", "losses", "pooling"},
    {"models", "attribution", "metrics"},
    {"attacks", "training"},
    {"viz", "runner"},
    {"experiments"},
    {"widgets"},
    {"dashboards", "cli"},
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wslbench"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from wslbench import checkpoint
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("wslbench.") and a.name.count(".") >= 1)
    return found


def test_every_package_part_has_a_layer():
    units = {_unit(p) for p in PACKAGE.rglob("*.py")} - {"py"}
    assert units <= set(LEVEL), f"add {sorted(units - set(LEVEL))} to a layer"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_up_a_layer(path):
    unit = _unit(path)
    upward = sorted(d for d in _imports(path) if d in LEVEL and LEVEL[d] > LEVEL[unit])
    assert not upward, f"{path.relative_to(PACKAGE)} (layer {LEVEL[unit]}) imports {upward} from a higher layer"
