"""Trained WSL models saved as run models of the histology dashboard."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from wslbench.experiments.wsl.train import WSLTraining

__all__ = ["save_models"]


def save_models(runs: Mapping[str, WSLTraining]) -> list[Path]:
    """Save each trained head as the run's ``models/wsl-<name>.pt`` for the histology
    dashboard, with its best validation accuracy (nothing is written outside a run)."""
    from wslbench.runner.model_store import save_run_model

    written = []
    for name, run in runs.items():
        metrics = {"best_epoch": float(run.best_epoch)}
        if run.history:
            metrics["val_accuracy"] = max(row["val_accuracy"] for row in run.history)
        path = save_run_model(f"wsl-{name}", run.model, config=run.config, metrics=metrics,
                              notebook="02_wsl_histology")
        if path is not None:
            written.append(path)
    return written
