"""The trained 3D CNN saved as the run model of the MRI dashboard."""

from __future__ import annotations

from pathlib import Path

from wslbench.experiments.mri.config import MRIConfig
from wslbench.experiments.mri.train import MRIRun

__all__ = ["run_metrics", "save_model"]


def run_metrics(run: MRIRun) -> dict[str, float]:
    """Validation balanced accuracy of the kept epoch and the test balanced accuracy."""
    out = {"test_balanced_accuracy": float(run.test_balanced_accuracy),
           "best_epoch": float(run.best_epoch)}
    if run.val_balanced_accuracy is not None:
        out["val_balanced_accuracy"] = run.val_balanced_accuracy
    return out


def save_model(run: MRIRun, config: MRIConfig) -> Path | None:
    """Save the fold's CNN as the run's ``models/mri.pt`` for the MRI dashboard
    (``None`` outside a run)."""
    from wslbench.runner.model_store import save_run_model

    return save_run_model("mri", run.model, config=config, metrics=run_metrics(run),
                          notebook="05_mri_masks")
