"""Trained models kept in run folders, and finding the newest one for a dashboard.

A notebook run by ``wslbench run`` saves its main model with :func:`save_run_model`
into ``<run folder>/models/<name>.pt``; a dashboard then asks
:func:`find_latest_model` for the newest *completed* run of that notebook that holds
the model. Checkpoints hold only weights-only-loadable data (DESIGN §4.6):

``state_dict``, ``config`` (:func:`~wslbench.presets.config_to_dict`), ``preset``
(from the run's ``params.json``), ``metrics`` (name → float, validation scores),
``notebook``, ``name`` and ``created`` (UTC, ISO 8601).

The runs root is ``$WSLBENCH_RUNS_DIR`` when set, else the first ``runs/`` folder
found next to a ``notebooks/`` folder in the working directory or one of its
parents (Voila runs a dashboard's kernel in ``notebooks/dashboards``, two levels
below the ``runs/`` that ``wslbench run`` writes by default): :func:`runs_root`.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wslbench.checkpoint import load_checkpoint, save_checkpoint
from wslbench.errors import DataFormatError, InvalidInputError, WslbenchError
from wslbench.presets import config_to_dict
from wslbench.runner.record import run_dir

__all__ = [
    "RUNS_DIR_ENV",
    "MODELS_FOLDER",
    "StoredModel",
    "model_payload",
    "save_run_model",
    "load_stored_model",
    "find_latest_model",
    "find_latest_models",
    "runs_root",
]

RUNS_DIR_ENV = "WSLBENCH_RUNS_DIR"
MODELS_FOLDER = "models"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_name(name: str, what: str = "model name") -> str:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InvalidInputError(
            f"{what} {name!r} must be a plain file stem (letters, digits, '_', '-', '.')"
        )
    return name


@dataclass(frozen=True)
class StoredModel:
    """A saved model and where it came from.

    Attributes:
        path: the ``.pt`` file.
        name: model name (the file stem).
        notebook: notebook stem of the run (``None`` outside a run folder).
        run: run folder name (``<UTC time>-<hash>``), or ``None``.
        created: when the model was saved (UTC).
        preset: the run's preset (``None`` when unknown).
        metrics: validation metrics saved with it.
        config: the experiment configuration as a dict.
        state_dict: the weights.
    """

    path: Path
    name: str
    notebook: str | None
    run: str | None
    created: datetime
    preset: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


def _run_preset(folder: Path) -> str | None:
    try:
        params = json.loads((folder / "params.json").read_text())
    except (OSError, ValueError):
        return None
    preset = params.get("parameters", {}).get("preset") if isinstance(params, dict) else None
    return preset if isinstance(preset, str) else None


def model_payload(
    name: str,
    model: nn.Module,
    *,
    config: object,
    metrics: dict[str, float] | None = None,
    notebook: str | None = None,
    preset: str | None = None,
) -> dict[str, Any]:
    """The checkpoint dict :func:`save_run_model` writes (also used by the dashboard cache)."""
    clean: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        number = float(value)
        if not math.isfinite(number):
            raise InvalidInputError(f"metric {key!r} is {number}; expected a finite number")
        clean[str(key)] = number
    return {
        "name": _check_name(name),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "config": config_to_dict(config),
        "preset": preset,
        "metrics": clean,
        "notebook": notebook,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save_run_model(
    name: str,
    model: nn.Module,
    *,
    config: object,
    metrics: dict[str, float] | None = None,
    notebook: str | None = None,
) -> Path | None:
    """Save ``model`` as ``<run folder>/models/<name>.pt`` (atomic, never overwritten).

    Args:
        name: file stem, e.g. ``"dr"``.
        model: the trained network (its ``state_dict`` is saved, moved to CPU).
        config: the experiment's config dataclass (saved as a dict).
        metrics: validation metrics to show next to the model (finite floats).
        notebook: the notebook stem (default: the run folder's parent name).

    Returns:
        The written path, or ``None`` outside a run folder (interactive use).
    """
    folder = run_dir()
    if folder is None:
        return None
    if notebook is None:
        notebook = folder.parent.name
    payload = model_payload(name, model, config=config, metrics=metrics, notebook=notebook,
                            preset=_run_preset(folder))
    return save_checkpoint(payload, folder / MODELS_FOLDER / f"{name}.pt")


def load_stored_model(path: str | Path) -> StoredModel:
    """Read a model checkpoint written by :func:`save_run_model` (weights only).

    Raises:
        DataNotFoundError: the file does not exist.
        DataFormatError: not a model checkpoint (missing ``state_dict``/``config``).
        UnsafeFileError: the file needs pickle.
    """
    path = Path(path)
    obj = load_checkpoint(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict) or not isinstance(
            obj.get("config"), dict):
        raise DataFormatError(f"{path} is not a wslbench model checkpoint (state_dict + config)")
    try:
        created = datetime.fromisoformat(str(obj.get("created")))
    except ValueError:
        created = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    run_folder = path.parent.parent if path.parent.name == MODELS_FOLDER else None
    return StoredModel(
        path=path,
        name=str(obj.get("name") or path.stem),
        notebook=obj.get("notebook"),
        run=run_folder.name if run_folder is not None else None,
        created=created,
        preset=obj.get("preset"),
        metrics={str(k): float(v) for k, v in (obj.get("metrics") or {}).items()},
        config=dict(obj["config"]),
        state_dict=obj["state_dict"],
    )


def _completed_runs(root: Path, notebook_stem: str) -> list[Path]:
    """Succeeded run folders of ``notebook_stem``, newest first (partial/failed skipped)."""
    folder = root / _check_name(notebook_stem, "notebook stem")
    if not folder.is_dir():
        return []
    runs: list[tuple[float, str, Path]] = []
    for run in folder.iterdir():
        if run.name.startswith(".") or not run.is_dir():
            continue  # .<name>.partial: still running or killed
        try:
            status = json.loads((run / "status.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(status, dict) or status.get("status") != "succeeded":
            continue
        ended = status.get("ended", status.get("started", 0.0))
        runs.append((float(ended) if isinstance(ended, (int, float)) else 0.0, run.name, run))
    return [r for *_, r in sorted(runs, reverse=True)]


def _readable(paths: list[Path]) -> list[StoredModel]:
    models = []
    for path in paths:
        try:
            models.append(load_stored_model(path))
        except WslbenchError:  # unreadable or foreign file: skipped
            continue
    return models


def find_latest_models(root: str | Path, notebook_stem: str, prefix: str) -> list[StoredModel]:
    """Every readable model named ``<prefix>*`` of the newest completed run that has one.

    Runs are ordered by the end time in their ``status.json`` (then by name); unreadable
    checkpoints are skipped. Returns the models sorted by name (empty: none found).
    """
    _check_name(prefix, "model prefix")
    for run in _completed_runs(Path(root), notebook_stem):
        models = _readable(sorted((run / MODELS_FOLDER).glob(f"{prefix}*.pt")))
        if models:
            return models
    return []


def find_latest_model(root: str | Path, notebook_stem: str, name: str) -> StoredModel | None:
    """The model ``name`` of the newest completed run of ``notebook_stem`` that holds a
    readable one, or ``None``."""
    _check_name(name)
    for run in _completed_runs(Path(root), notebook_stem):
        models = _readable([run / MODELS_FOLDER / f"{name}.pt"])
        if models:
            return models[0]
    return None


def runs_root(start: str | Path | None = None) -> Path | None:
    """Where run folders are: ``$WSLBENCH_RUNS_DIR``, else a ``runs/`` beside ``notebooks/``.

    The search starts at ``start`` (default: the working directory) and goes up; a
    ``runs/`` in ``start`` itself is accepted even without ``notebooks/``. Returns
    ``None`` when nothing is found.
    """
    env = os.environ.get(RUNS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    here = Path(start if start is not None else Path.cwd()).resolve()
    if (here / "runs").is_dir():
        return here / "runs"
    for folder in here.parents:
        if (folder / "runs").is_dir() and (folder / "notebooks").is_dir():
            return folder / "runs"
    return None
