"""Models saved in run folders and the newest-run lookup of the dashboards."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from wslbench.checkpoint import save_checkpoint
from wslbench.errors import InvalidInputError, RunError
from wslbench.runner.model_store import (
    find_latest_model,
    find_latest_models,
    load_stored_model,
    model_payload,
    runs_root,
    save_run_model,
)


@dataclass(frozen=True)
class Toy:
    width: int = 3
    sizes: tuple[int, ...] = (1, 2)


def _run(root: Path, notebook: str, name: str, *, status: str = "succeeded", ended: float = 0.0,
         models: dict[str, nn.Module] | None = None, preset: str = "demo") -> Path:
    folder = root / notebook / name
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps({"parameters": {"preset": preset}}))
    (folder / "status.json").write_text(json.dumps({"status": status, "ended": ended}))
    for model_name, model in (models or {}).items():
        save_checkpoint(model_payload(model_name, model, config=Toy(), metrics={"auc": ended},
                                      notebook=notebook, preset=preset),
                        folder / "models" / f"{model_name}.pt")
    return folder


def test_save_run_model_outside_a_run_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert save_run_model("dr", nn.Linear(2, 1), config=Toy()) is None
    assert not any(tmp_path.iterdir())


def test_save_run_model_writes_a_weights_only_checkpoint_once(tmp_path, monkeypatch):
    run = tmp_path / "01_dr_heatmaps" / "20260101T000000Z-abc"
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"parameters": {"preset": "smoke"}}))
    monkeypatch.setenv("WSLBENCH_RUN_DIR", str(run))
    model = nn.Linear(2, 1)
    path = save_run_model("dr", model, config=Toy(), metrics={"val_auc": torch.tensor(0.75)})
    assert path == run / "models" / "dr.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["config"] == {"width": 3, "sizes": (1, 2)} and raw["preset"] == "smoke"
    stored = load_stored_model(path)
    assert stored.notebook == "01_dr_heatmaps" and stored.run == run.name
    assert stored.metrics == {"val_auc": 0.75} and stored.created.tzinfo is not None
    assert torch.equal(stored.state_dict["weight"], model.weight.detach())
    with pytest.raises(RunError, match="already exists"):
        save_run_model("dr", model, config=Toy())


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 80])
def test_model_names_must_be_plain_stems(tmp_path, monkeypatch, name):
    monkeypatch.setenv("WSLBENCH_RUN_DIR", str(tmp_path))
    with pytest.raises(InvalidInputError, match="plain file stem"):
        save_run_model(name, nn.Linear(1, 1), config=Toy())


def test_non_finite_metrics_are_refused():
    with pytest.raises(InvalidInputError, match="finite"):
        model_payload("m", nn.Linear(1, 1), config=Toy(), metrics={"auc": float("nan")})


def test_newest_completed_run_wins_and_partial_failed_broken_runs_are_skipped(tmp_path):
    nb = "01_dr_heatmaps"
    _run(tmp_path, nb, "20260101T000000Z-old", ended=100.0, models={"dr": nn.Linear(2, 1)})
    _run(tmp_path, nb, "20260102T000000Z-new", ended=200.0, models={"dr": nn.Linear(2, 1)})
    _run(tmp_path, nb, "20260103T000000Z-failed", status="failed", ended=300.0,
         models={"dr": nn.Linear(2, 1)})
    _run(tmp_path, nb, ".20260104T000000Z-x.partial", status="running", ended=400.0,
         models={"dr": nn.Linear(2, 1)})
    _run(tmp_path, nb, "20260105T000000Z-nomodel", ended=500.0)
    broken = _run(tmp_path, nb, "20260106T000000Z-broken", ended=600.0)
    (broken / "models").mkdir()
    (broken / "models" / "dr.pt").write_bytes(b"not a torch file")
    (tmp_path / nb / "20260107T000000Z-nostatus").mkdir()
    found = find_latest_model(tmp_path, nb, "dr")
    assert found is not None and found.run == "20260102T000000Z-new"
    assert found.metrics == {"auc": 200.0} and found.preset == "demo"
    assert find_latest_model(tmp_path, nb, "other") is None
    assert find_latest_model(tmp_path, "05_mri_masks", "dr") is None


def test_find_latest_models_returns_every_head_of_one_run(tmp_path):
    nb = "02_wsl_histology"
    _run(tmp_path, nb, "a", ended=1.0, models={"wsl-gap": nn.Linear(1, 1)})
    _run(tmp_path, nb, "b", ended=2.0, models={"wsl-gap": nn.Linear(1, 1), "wsl-lse": nn.Linear(1, 1)})
    models = find_latest_models(tmp_path, nb, "wsl-")
    assert [m.name for m in models] == ["wsl-gap", "wsl-lse"] and {m.run for m in models} == {"b"}


def test_runs_root_from_env_or_next_to_notebooks(tmp_path, monkeypatch):
    monkeypatch.delenv("WSLBENCH_RUNS_DIR", raising=False)
    (tmp_path / "notebooks" / "dashboards").mkdir(parents=True)
    assert runs_root(tmp_path / "notebooks" / "dashboards") is None
    (tmp_path / "runs").mkdir()
    assert runs_root(tmp_path / "notebooks" / "dashboards") == (tmp_path / "runs").resolve()
    assert runs_root(tmp_path) == (tmp_path / "runs").resolve()
    monkeypatch.setenv("WSLBENCH_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert runs_root(tmp_path) == tmp_path / "elsewhere"
