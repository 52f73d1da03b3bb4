"""Every committed notebook follows the house rules (DESIGN §4.1 and §6)."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb")) + sorted((ROOT / "tests" / "notebooks").glob("*.ipynb"))
NOTEBOOKS = [p for p in NOTEBOOKS if ".ipynb_checkpoints" not in p.parts]


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_thin_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernelspec must be python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    params = ast.parse(tagged[0].source)
    for node in params.body:
        assert isinstance(node, ast.Assign), f"parameters cell holds only assignments, got {ast.dump(node)[:60]}"
        ast.literal_eval(node.value)  # literals only
    names = [t.id for node in params.body for t in node.targets]
    assert names[:2] == ["preset", "seed"] or path.parent.name == "dashboards", "first parameters: preset, seed"
    for cell in code:
        assert not cell.get("outputs"), "committed without outputs"
        assert cell.get("execution_count") is None, "committed without execution counts"
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)), (
                "no def or class in notebooks: put logic in the package"
            )


def test_the_rule_test_sees_notebooks():
    assert NOTEBOOKS, "no notebooks found"
