"""The trained detector saved as the run's model for the cell dashboard."""

from __future__ import annotations

from pathlib import Path

from wslbench.experiments.cnncs.data import CellData
from wslbench.experiments.cnncs.train import CNNCSTraining, evaluate_cnncs

__all__ = ["save_model"]


def save_model(run: CNNCSTraining, data: CellData) -> Path | None:
    """Save the trained detector as the run's ``models/cnncs.pt`` with its test P/R/F1, for
    the cell-counting dashboard (``None`` outside a run folder)."""
    from wslbench.runner.model_store import save_run_model

    return save_run_model("cnncs", run.model, config=run.config, metrics=evaluate_cnncs(run, data),
                          notebook="04_cnncs_cells")
