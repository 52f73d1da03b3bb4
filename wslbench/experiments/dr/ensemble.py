"""Checkpoint ensemble and blended heatmaps of Quellec et al. 2017, section 5.6.

All networks of the ensemble are checkpoints of one training run, exported when
each lesion type, the lesion average and referable DR were best detected on the
validation split (the paper's N_HE, N_SE, N_SRD, N_H, N_AVG and N_RDR). Each
eye is described by the predictions of every exported network on that eye and on
the contralateral eye (6 × 2 = 12 features in the paper); a random forest
(``n_trees``, ``max_depth``) is trained on those features for referable DR, and
the blended heatmap of an eye is the mean of the networks' π maps weighted by the
forest's importance of each network's features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier

from wslbench.data.synthetic_fundus import LESION_TYPES
from wslbench.errors import InvalidInputError
from wslbench.experiments.dr import (
    DRSplit,
    DRTraining,
    contralateral_index,
    dr_heatmaps,
    fit_input_size,
    predict_scores,
)
from wslbench.metrics import delong_ci
from wslbench.models.dr import DRNet

__all__ = ["ENSEMBLE_CRITERIA", "DREnsemble", "select_checkpoints", "fit_dr_ensemble"]

#: Network name → validation metric it is selected on (5.6, items 1–6).
ENSEMBLE_CRITERIA: dict[str, str] = {
    **{f"N_{kind}": f"froc_{kind}" for kind in LESION_TYPES},
    "N_AVG": "froc_mean",
    "N_RDR": "image_auc",
}


def select_checkpoints(training: DRTraining) -> dict[str, int]:
    """Iteration of the best validation checkpoint for each criterion of :data:`ENSEMBLE_CRITERIA`.

    A criterion missing from the checkpoints' metrics (a lesion type absent from the
    validation split) is skipped. Ties go to the earliest checkpoint.
    """
    if not training.checkpoints:
        raise InvalidInputError("the training run has no checkpoints to build an ensemble from")
    chosen = {}
    for name, metric in ENSEMBLE_CRITERIA.items():
        scored = [c for c in training.checkpoints if metric in c.metrics]
        if scored:
            best = max(scored, key=lambda c: (c.metrics[metric], -c.iteration))
            chosen[name] = best.iteration
    return chosen


@dataclass
class DREnsemble:
    """A fitted checkpoint ensemble.

    Attributes:
        members: network name → its checkpoint's model (eval mode).
        iterations: network name → checkpoint iteration.
        forest: the random forest on ``2 × len(members)`` features per eye.
        network_weights: network name → summed feature importance (sums to 1).
        input_size: network input side.
    """

    members: dict[str, DRNet]
    iterations: dict[str, int]
    forest: RandomForestClassifier
    network_weights: dict[str, float]
    input_size: int

    def features(self, split: DRSplit) -> np.ndarray:
        """``(N, 2M)`` features: each network's prediction on the eye, then on the other eye."""
        split = fit_input_size(split, self.input_size)
        preds = np.stack([predict_scores(m, split.images) for m in self.members.values()], axis=1)
        other = contralateral_index(len(split)).numpy()
        return np.concatenate([preds, preds[other]], axis=1)

    def predict_proba(self, split: DRSplit) -> np.ndarray:
        """Probability of referable DR per eye."""
        return self.forest.predict_proba(self.features(split))[:, 1]

    def evaluate(self, split: DRSplit) -> dict[str, float]:
        """Ensemble ROC area with its DeLong 95 % CI on ``split``."""
        labels = split.referable.numpy().astype(int)
        auc, low, high, _ = delong_ci(self.predict_proba(split), labels)
        return {"ensemble_auc": float(auc), "ensemble_auc_low": float(low),
                "ensemble_auc_high": float(high)}

    def blended_heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        """Importance-weighted mean of the members' π maps ``(N, 1, S, S)`` (5.6, last paragraph)."""
        blended = None
        for name, model in self.members.items():
            maps = self.network_weights[name] * dr_heatmaps(model, images, "pi")
            blended = maps if blended is None else blended + maps
        return blended


def fit_dr_ensemble(
    training: DRTraining,
    train: DRSplit,
    *,
    n_trees: int | None = None,
    max_depth: int | None = None,
) -> DREnsemble:
    """Export the 5.6 checkpoints of ``training`` and fit the random forest on ``train``.

    The paper fits the forest on Kaggle-train, the CNN's own training set; on a small
    data set the CNN's predictions there are overconfident, so notebook 01 passes the
    validation split (held out from the CNN, which only chose checkpoints on it).

    Args:
        training: a :func:`~wslbench.experiments.dr.train_dr` result.
        train: the split the forest is trained on (eye pairs): predictions the CNN did
            not train on.
        n_trees, max_depth: forest size; default the training config's ``rf_trees``/``rf_depth``.
    """
    config = training.config
    iterations = select_checkpoints(training)
    members = {name: training.model_at(it) for name, it in iterations.items()}
    forest = RandomForestClassifier(
        n_estimators=n_trees or config.rf_trees, max_depth=max_depth or config.rf_depth,
        random_state=config.seed, n_jobs=1,
    )
    ensemble = DREnsemble(members, iterations, forest, {}, config.input_size)
    labels = train.referable.numpy().astype(int)
    if labels.min() == labels.max():
        raise InvalidInputError("the ensemble's training split holds a single class")
    forest.fit(ensemble.features(train), labels)
    m = len(members)
    importance = forest.feature_importances_
    per_net = importance[:m] + importance[m:]
    per_net = per_net / per_net.sum() if per_net.sum() > 0 else np.full(m, 1.0 / m)
    ensemble.network_weights = {name: float(w) for name, w in zip(members, per_net)}
    return ensemble
