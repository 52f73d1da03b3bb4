"""The CL, "AE then CL" and "AE-CL combined" regimes (eq. 3–4, 4.3) and the comparisons that train them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from wslbench.data.ssl_fundus import (
    augment_batch,
    sample_ssl_augmentation,
)
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.cache import ExperimentCache
from wslbench.experiments.ssl.config import REGIMES, SSLConfig, _device
from wslbench.experiments.ssl.data import SSLData, make_ssl_data
from wslbench.experiments.ssl.evaluate import evaluate_ssl
from wslbench.losses.ssl import CombinedLoss, autoencoder_loss, weighted_bce_loss
from wslbench.models.ssl import SSLAutoencoderClassifier, create_ssl_model
from wslbench.progress import ProgressCallback, report, stop_if_interrupted
from wslbench.seeding import seed_everything
from wslbench.training.loop import StepOutput, fit
from wslbench.training.mixed_sampler import draw_mixed_plan
from wslbench.training.schedules import CosineSchedule, lambda_lr

__all__ = ["SSLTraining", "build_ssl_model", "train_ssl", "train_ssl_cached", "compare_regimes", "label_fraction_sweep"]


def build_ssl_model(config: SSLConfig) -> SSLAutoencoderClassifier:
    """AECL1 or AERes18 of ``config`` (4.2); AERes18's encoder loads ``pretrained_weights``.

    Raises:
        DataFormatError: the weights file does not hold this encoder's state dict.
    """
    kwargs: dict[str, object] = {"base_width": config.base_width}
    if config.architecture == "aecl1":
        kwargs["num_pools"] = config.num_pools
    elif config.pretrained_weights is not None:
        kwargs["imagenet_normalize"] = True
    model = create_ssl_model(config.architecture, **kwargs)
    if config.pretrained_weights is not None:
        model.encoder.load_user_weights(config.pretrained_weights)
    return model


def _optimiser(config: SSLConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":  # CL1 in 5.2: betas (0.95, 0.999), eps 1e-6
        return torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.95, 0.999),
                                eps=1e-6, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                           nesterov=config.nesterov and config.momentum > 0,
                           weight_decay=config.weight_decay)


@dataclass
class SSLTraining:
    """Result of :func:`train_ssl`.

    Attributes:
        model: the trained model (eval mode).
        config: its configuration.
        history: per epoch ``{"phase", "epoch", "loss"}`` and, after classifier epochs,
            ``test_accuracy``, ``test_balanced_accuracy`` and (unless retraining on
            train + validation) ``val_accuracy``, ``val_balanced_accuracy``.
        steps: per step ``{"step", "phase", "kind", "L_ae", "L_cl", "lambda"}`` (Fig. 3).
        seconds: wall time.
        interrupted: cancelled through ``progress`` (shown, never cached).
    """

    model: SSLAutoencoderClassifier
    config: SSLConfig
    history: list[dict[str, float | str]] = field(default_factory=list)
    steps: list[dict[str, float | str]] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def max_test_accuracy(self) -> float:
        """Maximum test accuracy over the classifier epochs (Table 2)."""
        values = [h["test_accuracy"] for h in self.history if "test_accuracy" in h]
        return float(max(values)) if values else float("nan")

    @property
    def max_val_accuracy(self) -> float:
        """Maximum validation accuracy over the classifier epochs: the grid's criterion (5.1)."""
        values = [h["val_accuracy"] for h in self.history if "val_accuracy" in h]
        return float(max(values)) if values else float("nan")

    @property
    def final_test_balanced_accuracy(self) -> float:
        """Test balanced accuracy after the last classifier epoch (no selection on test)."""
        values = [h["test_balanced_accuracy"] for h in self.history
                  if h["phase"] != "ae" and "test_balanced_accuracy" in h]
        return float(values[-1]) if values else float("nan")


def _batch(data: SSLData, idx: Sequence[int], config: SSLConfig,
           rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.as_tensor(np.asarray(idx), dtype=torch.long)
    x = data.images[index]
    if config.augment:
        x = augment_batch(x, [sample_ssl_augmentation(rng) for _ in range(len(index))])
    return x, data.labels[index].float()


def _epoch_plan(n_labelled: int, n_unlabelled: int, kind: str, config: SSLConfig,
                rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Minibatches of one epoch of a single-kind phase (shuffled, without replacement)."""
    n = n_labelled if kind == "labelled" else n_unlabelled
    order = rng.permutation(n)
    return [(kind, order[i:i + config.batch_size]) for i in range(0, n, config.batch_size)]


def train_ssl(
    config: SSLConfig,
    data: SSLData,
    *,
    progress: ProgressCallback | None = None,
) -> SSLTraining:
    """Train ``config.regime`` (Arora et al., 4.3); test accuracy is logged every epoch.

    Each phase runs :func:`wslbench.training.fit`. ``progress`` may raise
    :class:`~wslbench.progress.StopRequested`: training stops and the result is marked
    ``interrupted`` (shown, never cached).
    """
    if config.regime not in REGIMES:
        raise ConfigError(f"unknown regime {config.regime!r}; expected one of: {', '.join(REGIMES)}")
    if len(data.labelled) == 0:
        raise InvalidInputError("the labelled pool is empty; raise label_fraction or n_images")
    if config.regime != "cl" and len(data.unlabelled) == 0:
        raise InvalidInputError(f"regime {config.regime!r} needs unlabelled images")
    seed_everything(config.seed)
    device = _device(config)
    model = build_ssl_model(config).to(device)
    loss_fn = CombinedLoss(lam=config.lam, adaptive=config.adaptive_lambda,
                           alpha=config.alpha)
    rng = np.random.default_rng(config.seed)
    pools = {"labelled": data.labelled, "unlabelled": data.unlabelled}
    phases: list[tuple[str, int]] = []
    if config.regime == "ae_then_cl":
        phases.append(("ae", config.ae_epochs))
    phases.append(("cl" if config.regime != "combined" else "combined", config.epochs))
    per_epoch = {
        "ae": -(-len(data.unlabelled) // config.batch_size),
        "cl": -(-len(data.labelled) // config.batch_size),
        "combined": -(-len(data.labelled) // config.batch_size)
        - (-len(data.unlabelled) // config.batch_size),
    }
    total = sum(per_epoch[p] * n for p, n in phases)
    result = SSLTraining(model=model, config=config)
    done = 0
    for phase, epochs in phases:
        def batches(epoch: int, phase: str = phase):
            if phase == "combined":
                plan = draw_mixed_plan(len(data.labelled), len(data.unlabelled),
                                       config.batch_size, seed=config.seed, epoch=epoch)
                yield from ((b.kind, np.asarray(b.indices)) for b in plan.batches())
            else:
                kind = "unlabelled" if phase == "ae" else "labelled"
                yield from _epoch_plan(len(data.labelled), len(data.unlabelled), kind, config, rng)

        def step(batch: tuple[str, np.ndarray], phase: str = phase) -> StepOutput:
            kind, local = batch
            x, y = _batch(data, pools[kind][local], config, rng)
            x, y = x.to(device), y.to(device)
            if phase == "cl":
                loss = weighted_bce_loss(model.classify(x), y, alpha=config.alpha)
                parts = {"L_cl": loss.detach()}
            elif kind == "unlabelled":
                loss = autoencoder_loss(model.reconstruct(x), x)
                parts = {"L_ae": loss.detach()}
            else:
                reconstruction, logits = model(x)
                loss, parts = loss_fn(reconstruction, x, logits, y, encoder=model)
            result.steps.append({"step": len(result.steps) + 1, "phase": phase, "kind": kind,
                                 **{k: float(v) for k, v in parts.items()}})
            return StepOutput(loss)

        def validate(epochs: int = epochs) -> dict[str, float]:
            nonlocal evaluated
            evaluated += 1
            if evaluated % config.eval_every and evaluated != epochs:
                return {}
            test = evaluate_ssl(model, data, data.test)
            out = {"test_accuracy": test["accuracy"],
                   "test_balanced_accuracy": test["balanced_accuracy"]}
            if len(data.val):  # empty when retraining on train + validation (4.6)
                val = evaluate_ssl(model, data, data.val)
                out |= {"val_accuracy": val["accuracy"],
                        "val_balanced_accuracy": val["balanced_accuracy"]}
            return out

        evaluated = 0
        # a fresh optimiser per phase ("then"); both phases report on one progress bar
        optimiser = _optimiser(config, model)
        schedule = (lambda_lr(optimiser, CosineSchedule(config.lr, per_epoch[phase] * epochs))
                    if config.schedule == "cosine" else None)
        fitted = fit(model, step, batches, epochs=epochs, optimiser=optimiser, schedule=schedule,
                     validate=None if phase == "ae" else validate, progress=progress,
                     step_offset=done, total_steps=total)
        done += fitted.n_steps
        result.history += [{"phase": phase, "epoch": r["epoch"], "loss": r["train_loss"],
                            **{k: r[k] for k in _EPOCH_METRICS if k in r}}
                           for r in fitted.history]
        result.seconds += fitted.seconds
        if fitted.interrupted:
            result.interrupted = True
            break
    model.eval()
    return result


_EPOCH_METRICS = ("val_accuracy", "val_balanced_accuracy", "test_accuracy",
                  "test_balanced_accuracy")

_TRAININGS = ExperimentCache("ssl trainings")


def train_ssl_cached(
    config: SSLConfig, data: SSLData, *, progress: ProgressCallback | None = None
) -> SSLTraining:
    """:func:`train_ssl` memoised on (config, data) for this process (the λ slider)."""
    return _TRAININGS.get_or_compute(config, data, lambda: train_ssl(config, data, progress=progress))


def compare_regimes(
    config: SSLConfig,
    data: SSLData,
    regimes: Sequence[str] = REGIMES,
    *,
    progress: ProgressCallback | None = None,
) -> list[dict[str, float | str]]:
    """Table 2 for ``config.architecture``: each regime's maximum test accuracy (the paper's
    number), final test balanced accuracy and maximum validation accuracy (5.1's criterion)."""
    rows = []
    for k, regime in enumerate(regimes):
        def step(i: int, n: int, logs: Mapping[str, float], k: int = k) -> None:
            report(progress, k * n + i, len(regimes) * n, logs)

        run = train_ssl_cached(replace(config, regime=regime), data, progress=step)
        stop_if_interrupted(run, f"training regime {regime}")
        rows.append({"architecture": config.architecture, "regime": regime,
                     "max_test_accuracy": run.max_test_accuracy,
                     "final_test_balanced_accuracy": run.final_test_balanced_accuracy,
                     "max_val_accuracy": run.max_val_accuracy, "seconds": run.seconds})
    return rows


def label_fraction_sweep(
    config: SSLConfig,
    fractions: Sequence[float],
    regimes: Sequence[str] = REGIMES,
    *,
    progress: ProgressCallback | None = None,
) -> list[dict[str, float | str]]:
    """How the gain of the SSL regimes over the baseline changes as labels get scarcer."""
    rows = []
    for fraction in fractions:
        changed = replace(config, label_fraction=float(fraction))
        data = make_ssl_data(changed)
        for row in compare_regimes(changed, data, regimes, progress=progress):
            rows.append({"label_fraction": float(fraction), **row})
    return rows
