"""The trained network, calibrated, saved as the run model of the fundus dashboard."""

from __future__ import annotations

from pathlib import Path

from wslbench.experiments.dr.config import DRConfig
from wslbench.experiments.dr.data import DRData, DRSplit, fit_input_size
from wslbench.experiments.dr.evaluate import predict_scores
from wslbench.experiments.dr.train import DRTraining
from wslbench.models.dr import DRNet

__all__ = ["referable_calibration", "model_metrics", "save_model"]


def referable_calibration(model: DRNet, split: DRSplit, config: DRConfig) -> tuple[float, float]:
    """Platt scaling ``P(referable) = σ(a·s + b)`` of the grade regression ``s`` on ``split``.

    The network regresses the grade (5.1.3), not a probability; the fundus dashboard
    shows the referable-DR probability (grade ≥ 2) through this logistic fit on the
    validation split. With a single class in the split it falls back to
    ``σ(4 (s − 1.5))`` (centred on the referable threshold 1.5).
    """
    from sklearn.linear_model import LogisticRegression

    split = fit_input_size(split, config.input_size)
    labels = split.referable.numpy().astype(int)
    if labels.min() == labels.max():
        return 4.0, -6.0
    scores = predict_scores(model, split.images)
    fit = LogisticRegression(C=100.0).fit(scores[:, None], labels)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def model_metrics(training: DRTraining, data: DRData) -> dict[str, float]:
    """Validation metrics of the selected checkpoint plus the Platt coefficients
    (``platt_a``, ``platt_b``, see :func:`referable_calibration`)."""
    best = next(c for c in training.checkpoints if c.iteration == training.selected)
    a, b = referable_calibration(training.model, data.val, training.config)
    return {"val_image_auc": best.metrics["image_auc"], "val_froc_mean": best.metrics["froc_mean"],
            "iteration": float(training.selected), "platt_a": a, "platt_b": b}


def save_model(training: DRTraining, data: DRData) -> Path | None:
    """Save the trained network as the run's ``models/dr.pt`` for the fundus dashboard
    (:func:`wslbench.runner.model_store.save_run_model`; ``None`` outside a run)."""
    from wslbench.runner.model_store import save_run_model

    return save_run_model("dr", training.model, config=training.config,
                          metrics=model_metrics(training, data), notebook="01_dr_heatmaps")
