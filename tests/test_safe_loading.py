"""Safe loading (issue 10, item 3): no pickle, safe YAML, no eval/exec, atomic checkpoints."""

from __future__ import annotations

import ast
import pickle
import sys
from pathlib import Path

import pytest
import torch

from wslbench import checkpoint, cli
from wslbench.checkpoint import load_checkpoint, load_state_dict, save_checkpoint
from wslbench.errors import DataFormatError, RunError, UnsafeFileError
from wslbench.runner.grid import load_grid

PACKAGE = Path(__file__).resolve().parents[1] / "wslbench"
SOURCES = sorted(PACKAGE.rglob("*.py"))
MARKER = Path("/nonexistent-wslbench-pwned")


class Exploit:
    """Unpickling this would call ``Path.touch`` (a stand-in for any code execution)."""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (MARKER,))


def test_pickle_bearing_checkpoint_is_refused_without_running_it(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "payload": Exploit()}, path)
    with pytest.raises(UnsafeFileError, match="pickled Python objects"):
        load_checkpoint(path)
    with pytest.raises(UnsafeFileError):
        load_state_dict(path)
    assert not MARKER.exists()


def test_raw_pickle_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "raw.pkl"
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises((UnsafeFileError, DataFormatError)):
        load_checkpoint(path)
    assert not MARKER.exists()


def test_weights_round_trip(tmp_path: Path) -> None:
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3)}
    path = save_checkpoint({"state_dict": state, "step": 7}, tmp_path / "ok.pt")
    loaded = load_state_dict(path)
    assert loaded.keys() == state.keys() and torch.equal(loaded["w"], state["w"])


def test_python_tag_in_grid_file_is_refused_not_executed(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"grid: {{nu: [!!python/object/apply:pathlib.Path.touch ['{MARKER}']]}}\n")
    with pytest.raises(DataFormatError, match="not valid YAML"):
        load_grid(grid)
    assert not MARKER.exists()


def test_python_tag_in_cli_parameter_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", str(PACKAGE.parent / "tests" / "notebooks" / "tiny.ipynb"), "-p", "x",
                     f"!!python/object/apply:pathlib.Path.touch ['{MARKER}']"])
    assert code == 2 and "cannot parse value" in capsys.readouterr().err
    assert not MARKER.exists()


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def _name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


@pytest.mark.parametrize("source", SOURCES, ids=[str(p.relative_to(PACKAGE)) for p in SOURCES])
def test_source_has_no_unsafe_deserialisation_or_eval(source: Path) -> None:
    """No builtin eval/exec, no unsafe YAML/pickle, every torch.load weights-only."""
    problems = []
    for call in _calls(ast.parse(source.read_text(), str(source))):
        name = _name(call)
        if name in ("eval", "exec", "compile", "__import__"):
            problems.append(f"line {call.lineno}: {name}()")
        elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "pickle.load",
                      "pickle.loads", "marshal.loads", "dill.load"):
            problems.append(f"line {call.lineno}: {name}()")
        elif name == "torch.load" and _keyword(call, "weights_only") is not True:
            problems.append(f"line {call.lineno}: torch.load without weights_only=True")
        elif name == "np.load" and _keyword(call, "allow_pickle") is True:
            problems.append(f"line {call.lineno}: np.load(allow_pickle=True)")
        elif name.startswith("subprocess.") and _keyword(call, "shell") is True:
            problems.append(f"line {call.lineno}: {name}(shell=True)")
    assert not problems, f"{source}: {problems}"


def _failing_save(obj: object, target: object) -> None:
    Path(str(target)).write_bytes(b"half a checkpoint")
    raise OSError("disk full")


def test_failed_checkpoint_write_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint({"w": torch.ones(3)}, tmp_path / "model.pt")
    before = path.read_bytes()
    monkeypatch.setattr(checkpoint.torch, "save", _failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"w": torch.zeros(3)}, path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))


def test_failed_first_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint.torch, "save", _failing_save)
    with pytest.raises(OSError):
        save_checkpoint({"w": torch.ones(3)}, tmp_path / "new.pt")
    assert list(tmp_path.iterdir()) == []


def test_existing_checkpoint_is_never_silently_overwritten(tmp_path: Path) -> None:
    path = save_checkpoint({"w": torch.ones(1)}, tmp_path / "m.pt")
    with pytest.raises(RunError, match="already exists"):
        save_checkpoint({"w": torch.zeros(1)}, path)
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(1))


def test_failed_record_write_keeps_the_old_file_and_no_temp(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from wslbench.runner.record import atomic_write_text

    target = tmp_path / "metrics.json"
    atomic_write_text(target, "old")

    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(sys.modules["wslbench.runner.record"].os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_resnet_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    import torch

    from wslbench.errors import DataFormatError
    from wslbench.nn.resnet import resnet

    path = tmp_path / "w.pt"
    torch.save(resnet(18, base_width=4).state_dict(), path)
    with pytest.raises(DataFormatError, match="ResNet-18.*expected a state dict"):
        resnet(18, base_width=8).load_user_weights(path)
