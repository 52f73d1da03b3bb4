from __future__ import annotations

import json
from pathlib import Path

import pytest

from wslbench.cli import main

TINY = Path(__file__).parent / "notebooks" / "tiny.ipynb"


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "no_such_notebook"], "unknown notebook"),
        (["run", str(TINY), "-p", "c", "1"], "unknown parameter(s) c"),
        (["run", str(TINY), "-p", "a", "[1, 2"], "cannot parse value"),
        (["run", str(TINY), "--preset", "huge"], "invalid choice"),
        (["grid", str(TINY), "missing.yaml"], "does not exist"),
        (["summary", "no_runs_here"], "does not exist"),
        (["frobnicate"], "invalid choice"),
        (["run", str(TINY), "-p", "a", "big"], "parameter 'a': got 'big', expected an integer"),
        (["run", str(TINY), "-p", "fail", "3"], "parameter 'fail': got 3, expected true or false"),
        (["run", str(TINY), "-p", "preset", "huge"], "parameter 'preset': got 'huge'"),
        # typed against the notebook's preset table (DRConfig.nu is a float), before any folder
        (["run", "01", "--preset", "smoke", "-p", "nu", "big"], "parameter 'nu': got 'big', expected a number"),
        (["run", "01", "-p", "net", "net_z"], "parameter 'net': got 'net_z', expected one of"),
        (["run", "02_wsl", "-p", "heads", "gap"], "parameter 'heads': got 'gap', expected a sequence"),
        (["run", "04", "-p", "data_dir", "3"], "parameter 'data_dir': got 3, expected a string or null"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, monkeypatch, capsys, argv, fragment):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and err[0].startswith("wslbench: error:")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("grid: {a: [1, 2]}\nbogus: 1\n", "unknown grid key(s) bogus"),
        ("grid: {a: 3}\n", "expected a non-empty list"),
        ("grid: {c: [1]}\n", "unknown parameter(s) c"),
        ("grid: {a: [1]}\npreset: huge\n", "unknown preset"),
        ("grid: {a: [1]}\nruns: [{a: 1}]\n", "exactly one of"),
        ("grid: {a: [{x: 1}]}\n", "expected a number"),
        ("grid: [a\n", "not valid YAML"),
        ("grid: {a: [1, x]}\n", "parameter 'a': got 'x', expected an integer"),
    ],
)
def test_invalid_grid_files(tmp_path, monkeypatch, capsys, text, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.yaml").write_text(text)
    assert main(["grid", str(TINY), "g.yaml"]) == 2
    assert fragment in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.yaml"]


@pytest.mark.notebook
def test_run_writes_a_complete_run_folder(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", str(TINY), "-p", "a", "5", "-p", "b", "0.5", "--preset", "smoke", "--out", str(out)]) == 0
    (folder,) = (out / "tiny").iterdir()
    names = {p.name for p in folder.iterdir()}
    assert {"params.json", "status.json", "metrics.json", "executed.ipynb", "executed.html",
            "figures", "log.txt"} <= names
    assert json.loads((folder / "metrics.json").read_text()) == {"sum": 5.5, "preset": "smoke", "seed": 0}
    assert json.loads((folder / "params.json").read_text())["parameters"] == {"a": 5, "b": 0.5, "preset": "smoke"}
    assert json.loads((folder / "status.json").read_text())["status"] == "succeeded"
    assert (folder / "figures" / "line.png").stat().st_size > 0
    assert main(["summary", str(out)]) == 0
    assert "succeeded" in capsys.readouterr().out and (out / "summary.csv").exists()


def test_version_prints_the_package_version(capsys):
    from wslbench import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wslbench {__version__}"


def test_every_paper_notebook_declares_its_preset_table():
    from wslbench.runner.notebooks import list_notebooks, notebook_config_table, notebook_parameters

    for notebook in list_notebooks():
        table = notebook_config_table(notebook)
        assert table is not None, f"{notebook.name} has no metadata.wslbench.config"
        # every parameter is typed: a field of the table, or a literal default
        for name, default in notebook_parameters(notebook).items():
            assert name in table.field_names() or name == "preset" or default is not None, name
