"""Which model a dashboard uses: the newest run's checkpoint, else a cached demo model.

Order of resolution (:func:`resolve_models`):

1. the newest completed run of the dashboard's notebook holding the model
   (:func:`wslbench.runner.model_store.find_latest_model`, runs root from
   :func:`~wslbench.runner.model_store.runs_root`);
2. a model this dashboard trained before, cached in ``$WSLBENCH_CACHE_DIR``
   (default ``~/.cache/wslbench/dashboards``) under ``<key>-<preset>-<config hash>.pt``;
3. otherwise the preset is trained once, with a progress callback, after an
   announcement of how long it takes, and written to the cache (atomically).

The preset is ``$WSLBENCH_DASHBOARD_PRESET`` (``"demo"`` by default; ``"smoke"``
for tests and impatient users).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from wslbench.checkpoint import save_checkpoint
from wslbench.errors import ConfigError, RunError, WslbenchError
from wslbench.presets import config_to_dict
from wslbench.progress import ProgressCallback
from wslbench.runner.model_store import (
    StoredModel,
    find_latest_model,
    find_latest_models,
    load_stored_model,
    model_payload,
    runs_root,
)
from wslbench.runner.run_folder import params_hash

_log = logging.getLogger("wslbench")

__all__ = [
    "CACHE_DIR_ENV",
    "PRESET_ENV",
    "DASHBOARD_PRESETS",
    "ModelSpec",
    "LoadedModel",
    "cache_dir",
    "dashboard_preset",
    "describe_duration",
    "resolve_models",
]

CACHE_DIR_ENV = "WSLBENCH_CACHE_DIR"
PRESET_ENV = "WSLBENCH_DASHBOARD_PRESET"
DASHBOARD_PRESETS = ("smoke", "demo")

TrainFn = Callable[[Any, ProgressCallback | None], tuple[nn.Module, dict[str, float]]]


@dataclass(frozen=True)
class ModelSpec:
    """How a dashboard finds, rebuilds and (if needed) trains its model.

    Attributes:
        key: dashboard name, used in cache file names (``"fundus"``).
        notebook: stem of the notebook whose runs hold the model (``"01_dr_heatmaps"``).
        name: model name in the run's ``models/`` folder; with ``prefix`` every model
            whose name starts with it (one per pooling head, say).
        description: what the model is, for the "which model" line.
        metric, metric_label: the metrics key shown and its wording.
        make_config: preset name → config dataclass.
        config_from_dict: a stored config dict → config dataclass.
        build: config → untrained network of the right architecture.
        train: ``(config, progress) → (trained network, metrics)``.
        estimate_s: config → rough training time on 2 CPU cores, in seconds.
        prefix: see ``name``.
        fallback_name: name of the model trained when none is found (default ``name``).
    """

    key: str
    notebook: str
    name: str
    description: str
    metric: str
    metric_label: str
    make_config: Callable[[str], Any]
    config_from_dict: Callable[[dict[str, Any]], Any]
    build: Callable[[Any], nn.Module]
    train: TrainFn
    estimate_s: Callable[[Any], float]
    prefix: bool = False
    fallback_name: str = ""


@dataclass(frozen=True)
class LoadedModel:
    """A ready network (eval mode) with its config and provenance."""

    name: str
    model: nn.Module
    config: Any
    metrics: dict[str, float]
    source: str
    stored: StoredModel

    def describe(self, spec: ModelSpec) -> str:
        """One line: what, where from, when, preset and the validation metric."""
        when = self.stored.created.strftime("%Y-%m-%d %H:%M UTC")
        metric = self.metrics.get(spec.metric)
        shown = f", {spec.metric_label} {metric:.3f}" if metric is not None else ""
        where = {"run": f"run {self.stored.notebook}/{self.stored.run}",
                 "cache": "the dashboard cache (trained here earlier)",
                 "trained": "training just now (cached for next time)"}[self.source]
        return (f"{spec.description} <code>{self.name}</code> from {where} — {when}, "
                f"preset {self.stored.preset or 'unknown'}{shown}")


def cache_dir() -> Path:
    """``$WSLBENCH_CACHE_DIR`` or ``~/.cache/wslbench/dashboards``."""
    value = os.environ.get(CACHE_DIR_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "wslbench" / "dashboards"


def dashboard_preset() -> str:
    """``$WSLBENCH_DASHBOARD_PRESET`` (``"demo"`` when unset), checked."""
    preset = os.environ.get(PRESET_ENV) or "demo"
    if preset not in DASHBOARD_PRESETS:
        raise ConfigError(
            f"{PRESET_ENV}={preset!r} is not a dashboard preset; expected one of: "
            f"{', '.join(DASHBOARD_PRESETS)}"
        )
    return preset


def describe_duration(seconds: float) -> str:
    """``"about 40 seconds"`` / ``"about 6 minutes"``."""
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5):.0f} seconds"
    return f"about {round(seconds / 60):.0f} minutes"


def _loaded(spec: ModelSpec, stored: StoredModel, source: str) -> LoadedModel:
    config = spec.config_from_dict(stored.config)
    model = spec.build(config)
    try:
        model.load_state_dict(stored.state_dict)
    except (RuntimeError, KeyError) as exc:
        raise RunError(
            f"{stored.path} does not fit the {spec.description} of its config: {exc}"
        ) from exc
    return LoadedModel(stored.name, model.eval(), config, stored.metrics, source, stored)


def _from_runs(spec: ModelSpec, root: Path) -> list[LoadedModel]:
    if spec.prefix:
        stored = find_latest_models(root, spec.notebook, spec.name)
    else:
        one = find_latest_model(root, spec.notebook, spec.name)
        stored = [one] if one is not None else []
    loaded = []
    for item in stored:
        try:
            loaded.append(_loaded(spec, item, "run"))
        except WslbenchError as exc:  # an incompatible checkpoint: fall through to the cache
            _log.warning("skipping model %s: %s", item.path, exc)
            continue
    return loaded


def resolve_models(
    spec: ModelSpec,
    *,
    runs: Path | None = None,
    preset: str | None = None,
    announce: Callable[[str], None] | None = None,
    progress: ProgressCallback | None = None,
) -> list[LoadedModel]:
    """The models a dashboard uses (see the module docstring for the order).

    Args:
        spec: the dashboard's model spec.
        runs: runs root (default :func:`~wslbench.runner.model_store.runs_root`).
        preset: preset of the fallback (default :func:`dashboard_preset`).
        announce: receives one sentence before a fallback training starts.
        progress: training progress callback.
    """
    root = runs if runs is not None else runs_root()
    if root is not None:
        found = _from_runs(spec, root)
        if found:
            return found
    preset = preset or dashboard_preset()
    config = spec.make_config(preset)
    path = cache_dir() / f"{spec.key}-{preset}-{params_hash(config_to_dict(config))}.pt"
    if path.is_file():
        try:
            return [_loaded(spec, load_stored_model(path), "cache")]
        except WslbenchError:
            path.unlink(missing_ok=True)  # corrupt or stale cache entry: train again
    if announce is not None:
        announce(f"No trained {spec.description} was found in the runs folder, so the "
                 f"{preset} preset is trained once now; this takes "
                 f"{describe_duration(spec.estimate_s(config))} on 2 CPU cores, and the "
                 f"model is cached for next time.")
    model, metrics = spec.train(config, progress)
    payload = model_payload(spec.fallback_name or spec.name, model, config=config,
                            metrics=metrics, notebook=spec.notebook, preset=preset)
    try:
        save_checkpoint(payload, path)
    except RunError:  # another kernel cached the same model meanwhile: keep theirs
        pass
    return [_loaded(spec, load_stored_model(path), "trained")]
