"""Training the 3D CNN per fold (2.2.3) through the shared loop."""

from __future__ import annotations

from dataclasses import dataclass, replace

from wslbench.devices import resolve_device
from wslbench.errors import ConfigError
from wslbench.experiments.cache import ExperimentCache
from wslbench.experiments.mri.config import MRIConfig
from wslbench.experiments.mri.data import MRIData
from wslbench.metrics.balanced_accuracy import compute_balanced_accuracy
from wslbench.models.mri import MRICNN, build_mri_cnn
from wslbench.progress import ProgressCallback
from wslbench.seeding import seed_everything
from wslbench.training.mri_training import predict_proba, train_mri_cnn

__all__ = ["MRIRun", "train_fold", "train_fold_cached"]


@dataclass
class MRIRun:
    """One trained fold: the model, its history and its test balanced accuracy.

    ``interrupted`` runs (cancelled through ``progress``) may be shown but are never cached.
    """

    model: MRICNN
    fold: int
    history: object
    best_epoch: int
    test_balanced_accuracy: float
    interrupted: bool = False

    @property
    def val_balanced_accuracy(self) -> float | None:
        """Validation balanced accuracy of the kept epoch (the selection criterion, 2.2.3)."""
        best = self.history.loc[self.history["epoch"] == self.best_epoch, "val_balanced_accuracy"]
        return float(best.iloc[0]) if len(best) else None


def train_fold(
    config: MRIConfig, data: MRIData, fold: int = 0, *, progress: ProgressCallback | None = None
) -> MRIRun:
    """Train the 3D CNN on one fold and score its test set (balanced accuracy, 2.2.3)."""
    if not 0 <= fold < len(data.folds):
        raise ConfigError(f"fold must be in [0, {len(data.folds)}), got {fold}")
    f = data.folds[fold]
    cohort = data.cohort
    seed_everything(config.train_seed + 1000 * config.seed + fold)
    model = build_mri_cnn(config.cnn, input_shape=tuple(cohort.volumes.shape[2:]))
    model = model.to(resolve_device(config.device))
    result = train_mri_cnn(model, cohort.volumes, cohort.labels, f.train, f.val,
                           epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                           weight_decay=config.weight_decay, patience=config.patience,
                           progress=progress, seed=config.train_seed + 1000 * config.seed + fold)
    probs = predict_proba(result.model, cohort.volumes, config.batch_size, indices=f.test)
    bacc = compute_balanced_accuracy(probs.argmax(1).numpy(), cohort.labels[f.test].numpy())
    return MRIRun(result.model, fold, result.history, result.best_epoch, bacc, result.interrupted)


_RUNS = ExperimentCache("mri trainings")


_MASKS = ExperimentCache("mri group masks", maxsize=64)


def train_fold_cached(
    config: MRIConfig, data: MRIData, fold: int = 0, *, progress: ProgressCallback | None = None
) -> MRIRun:
    """:func:`train_fold` memoised on the training fields of ``config``, ``fold`` and ``data``
    (an interrupted run is returned but not cached)."""
    return _RUNS.get_or_compute((_training_key(config), fold), data,
                                lambda: train_fold(config, data, fold, progress=progress))


def _training_key(config: MRIConfig) -> MRIConfig:
    """The config with the mask fields reset, so changing λ/β never retrains the CNN."""
    defaults = MRIConfig()
    mask_fields = ("lambda1", "lambda2", "beta1", "beta2", "mask_lr", "mask_epochs",
                   "mask_tolerance", "mask_patience", "session_iterations", "session_limit",
                   "min_val_balanced_accuracy", "refuse_at_chance", "beta1_values", "beta2_values", "lambda1_values",
                   "lambda2_values", "beta_lambda2", "mask_lr_cases")
    return replace(config, **{name: getattr(defaults, name) for name in mask_fields})
