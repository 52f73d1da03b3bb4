"""Semi-supervised DR screening with an autoencoder + classifier (Arora, Gaudio, Satpathy).

What notebook ``03_ssl_dr`` calls. The encoder E is shared by a decoder D
(reconstruction, L_ae = MSE, eq. 1) and a small classifier C (α-weighted BCE,
eq. 2). Three regimes (4.3):

- ``"cl"``: the baseline, E + C trained on the labelled pool only (CL1 / Res18);
- ``"ae_then_cl"``: E + D pre-trained on the unlabelled pool, then E + C on the
  labelled pool ("AE then CL");
- ``"combined"``: whole labelled or whole unlabelled minibatches drawn at random in
  proportion to the two pools, without replacement within an epoch; labelled
  minibatches minimise L_ae + λ·L_cl (eq. 3, λ fixed or adaptive by eq. 4),
  unlabelled ones L_ae ("AE-CL combined"). The kind of every step is logged (Fig. 3).

Data (4.6): synthetic fundus cases with grades 0–3 (healthy = grade 0) from three
"hospitals" (acquisition styles), a 60/20/20 split stratified across hospitals with
a fixed test set, a labelled pool of ``label_fraction`` of the training part (the rest
joins the unlabelled pool) plus ``n_unlabelled`` extra unlabelled cases (the
Messidor-Extension stand-in); the 4.5 augmentation. Accuracy is measured on the test
set after every epoch and the maximum is reported, as in Table 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch

from wslbench.data.ssl_fundus import (
    augment_batch,
    labelled_pool,
    make_ssl_fundus_dataset,
    sample_ssl_augmentation,
    stratified_split,
)
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.cache import ExperimentCache
from wslbench.losses.ssl import CombinedLoss, autoencoder_loss, weighted_bce_loss
from wslbench.metrics.roc import compute_roc_auc
from wslbench.models.ssl import SSLAutoencoderClassifier, create_ssl_model
from wslbench.presets import PresetTable
from wslbench.progress import ProgressCallback, report, stop_if_interrupted
from wslbench.seeding import seed_everything
from wslbench.training.loop import StepOutput, fit
from wslbench.training.mixed_sampler import draw_mixed_plan

__all__ = [
    "SSLConfig",
    "SSL_PRESETS",
    "REGIMES",
    "SSLData",
    "SSLTraining",
    "ssl_config",
    "make_ssl_data",
    "build_ssl_model",
    "train_ssl",
    "train_ssl_cached",
    "evaluate_ssl",
    "compare_regimes",
    "label_fraction_sweep",
    "reconstructions",
]

REGIMES = ("cl", "ae_then_cl", "combined")


@dataclass(frozen=True)
class SSLConfig:
    """Hyper-parameters of the SSL DR experiment (Arora et al., 4.2–5.2).

    Attributes:
        architecture: ``"aecl1"`` or ``"aeres18"`` (4.2).
        regime: ``"cl"``, ``"ae_then_cl"`` or ``"combined"`` (4.3).
        image_size: side of the images (512 in 4.5).
        base_width: width multiplier of the encoder (64 = ResNet-18 for AERes18).
        num_pools: AECL1 pooling layers (8 in the paper; fewer for small inputs).
        n_images: labelled-data-set cases (Messidor: 1200), split 60/20/20.
        n_unlabelled: extra unlabelled cases (the Messidor Extension).
        label_fraction: share of the training part whose labels are kept; the rest
            joins the unlabelled pool.
        hospitals: acquisition styles the split is stratified across (3).
        epochs: epochs of classifier training (and of combined training).
        ae_epochs: autoencoder pre-training epochs of ``"ae_then_cl"``.
        batch_size: minibatch size (48 for Res18 in 5.2).
        optimizer: ``"sgd"`` (Res18, 5.2) or ``"adam"`` (CL1, 5.2).
        lr, momentum, nesterov, weight_decay: optimiser (Res18: 0.004, 0.9, False, 1e-5).
        lam: λ of eq. 3 (3 for AERes18, 400 for AECL1, Table 2).
        adaptive_lambda: recompute λ by eq. 4 at every labelled step.
        alpha: positive-class weight α of eq. 2 (1 on balanced data).
        augment: rotation ±15°, scale [0.9, 1], horizontal flip (4.5).
        fractions: label fractions of :func:`label_fraction_sweep` in the notebook.
        data_seed: seed of the synthetic data set and of its fixed test set (4.6: the test
            set is "always the same set", as the data set is).
        seed: seed of the train/val split and pools, initialisation, data order, augmentation.
        device: ``None`` takes CUDA when available.
    """

    architecture: Literal["aecl1", "aeres18"] = "aeres18"
    regime: Literal["cl", "ae_then_cl", "combined"] = "combined"
    image_size: int = 64
    base_width: int = 8
    num_pools: int = 4
    n_images: int = 240
    n_unlabelled: int = 240
    label_fraction: float = 0.25
    hospitals: int = 3
    epochs: int = 12
    ae_epochs: int = 6
    batch_size: int = 16
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.004
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-5
    lam: float = 3.0
    adaptive_lambda: bool = False
    alpha: float = 1.0
    augment: bool = True
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5)
    data_seed: int = 0
    seed: int = 0
    device: str | None = None


SSL_PRESETS = PresetTable(
    SSLConfig,
    smoke=SSLConfig(image_size=64, base_width=4, n_images=40, n_unlabelled=20, epochs=2,
                    ae_epochs=1, batch_size=8, fractions=(0.5,)),
    demo=SSLConfig(),
    paper=SSLConfig(image_size=512, base_width=64, num_pools=8, n_images=1200,
                    n_unlabelled=1748, label_fraction=1.0, epochs=100, ae_epochs=50,
                    batch_size=48, fractions=(0.1, 0.25, 0.5, 1.0)),
)


def ssl_config(preset: str = "demo", /, **overrides: object) -> SSLConfig:
    """The ``preset`` configuration with ``overrides`` (``None`` keeps the preset's value)."""
    config = SSL_PRESETS.build(preset, **overrides)
    if not 0.0 < config.label_fraction <= 1.0:
        raise ConfigError(f"label_fraction must be in (0, 1], got {config.label_fraction}")
    return config


def _device(config: SSLConfig) -> torch.device:
    from wslbench.devices import resolve_device

    return resolve_device(config.device)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class SSLData:
    """Images, labels (``-1`` for the extra unlabelled cases), hospitals and the pools.

    Attributes:
        images: ``(N, 3, S, S)``; labels: ``(N,)`` 0/1, ``-1`` where unknown.
        hospital: ``(N,)`` acquisition style of each case.
        labelled, unlabelled: training pools (indices into ``images``).
        val, test: validation and fixed test indices.
    """

    images: torch.Tensor
    labels: torch.Tensor
    hospital: torch.Tensor
    labelled: np.ndarray
    unlabelled: np.ndarray
    val: np.ndarray
    test: np.ndarray


def make_ssl_data(config: SSLConfig) -> SSLData:
    """The labelled data set split 60/20/20 across hospitals, its pools and the extra unlabelled set."""
    base = make_ssl_fundus_dataset(config.n_images, size=config.image_size,
                                   seed=config.data_seed, hospitals=config.hospitals)
    split = stratified_split(base.labels, base.hospital, seed=config.seed,
                             test_seed=config.data_seed)
    strata = base.hospital.numpy() * 2 + base.labels.numpy()
    keep, rest = labelled_pool(split.train, config.label_fraction, seed=config.seed,
                               stratify=strata)
    images, labels, hospital = base.images, base.labels.clone(), base.hospital
    extra = np.arange(0)
    if config.n_unlabelled > 0:
        more = make_ssl_fundus_dataset(config.n_unlabelled, size=config.image_size,
                                       seed=config.data_seed + 10_000,
                                       hospitals=config.hospitals)
        extra = np.arange(len(base), len(base) + len(more))
        images = torch.cat([images, more.images])
        labels = torch.cat([labels, torch.full((len(more),), -1)])
        hospital = torch.cat([hospital, more.hospital])
    return SSLData(images, labels, hospital, np.asarray(keep), np.concatenate([rest, extra]),
                   np.asarray(split.val), np.asarray(split.test))


# --------------------------------------------------------------------------- training


def build_ssl_model(config: SSLConfig) -> SSLAutoencoderClassifier:
    """AECL1 or AERes18 of ``config`` (4.2)."""
    kwargs: dict[str, object] = {"base_width": config.base_width}
    if config.architecture == "aecl1":
        kwargs["num_pools"] = config.num_pools
    return create_ssl_model(config.architecture, **kwargs)


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
        history: per epoch ``{"phase", "epoch", "loss", "val_accuracy", "test_accuracy"}``.
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
        values = [h["test_accuracy"] for h in self.history if h["phase"] != "ae"]
        return float(max(values)) if values else float("nan")


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

        def validate() -> dict[str, float]:
            return {"val_accuracy": evaluate_ssl(model, data, data.val)["accuracy"],
                    "test_accuracy": evaluate_ssl(model, data, data.test)["accuracy"]}

        # a fresh optimiser per phase ("then"); both phases report on one progress bar
        fitted = fit(model, step, batches, epochs=epochs, optimiser=_optimiser(config, model),
                     validate=None if phase == "ae" else validate, progress=progress,
                     step_offset=done, total_steps=total)
        done += fitted.n_steps
        result.history += [{"phase": phase, "epoch": r["epoch"], "loss": r["train_loss"],
                            **{k: r[k] for k in ("val_accuracy", "test_accuracy") if k in r}}
                           for r in fitted.history]
        result.seconds += fitted.seconds
        if fitted.interrupted:
            result.interrupted = True
            break
    model.eval()
    return result


_TRAININGS = ExperimentCache("ssl trainings")


def train_ssl_cached(
    config: SSLConfig, data: SSLData, *, progress: ProgressCallback | None = None
) -> SSLTraining:
    """:func:`train_ssl` memoised on (config, data) for this process (the λ slider)."""
    return _TRAININGS.get_or_compute(config, data, lambda: train_ssl(config, data, progress=progress))


@torch.no_grad()
def evaluate_ssl(
    model: SSLAutoencoderClassifier, data: SSLData, index: Sequence[int] | np.ndarray
) -> dict[str, float]:
    """Accuracy (logit > 0) and ROC area of the classifier on ``index`` (labelled cases).

    Non-finite logits (a diverged training, e.g. a too large λ) count as errors and the
    ROC area is then left out.
    """
    idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
    labels = data.labels[idx]
    if idx.numel() == 0 or (labels < 0).any():
        raise InvalidInputError("evaluation needs a non-empty set of labelled cases")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits = torch.cat([model.classify(data.images[idx[i:i + 64]].to(device)).cpu()
                            for i in range(0, len(idx), 64)])
    finally:
        model.train(was_training)
    finite = torch.isfinite(logits)
    correct = ((logits > 0).long() == labels) & finite  # a diverged output is an error
    out = {"accuracy": float(correct.float().mean())}
    if finite.all() and 0 < int(labels.sum()) < len(labels):
        out["auc"] = compute_roc_auc(logits.numpy(), labels.numpy())
    return out


def compare_regimes(
    config: SSLConfig,
    data: SSLData,
    regimes: Sequence[str] = REGIMES,
    *,
    progress: ProgressCallback | None = None,
) -> list[dict[str, float | str]]:
    """Table 2: maximum test accuracy of each regime for ``config.architecture``."""
    rows = []
    for k, regime in enumerate(regimes):
        def step(i: int, n: int, logs: Mapping[str, float], k: int = k) -> None:
            report(progress, k * n + i, len(regimes) * n, logs)

        run = train_ssl_cached(replace(config, regime=regime), data, progress=step)
        stop_if_interrupted(run, f"training regime {regime}")
        rows.append({"architecture": config.architecture, "regime": regime,
                     "max_test_accuracy": run.max_test_accuracy, "seconds": run.seconds})
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


@torch.no_grad()
def reconstructions(model: SSLAutoencoderClassifier, images: torch.Tensor) -> torch.Tensor:
    """``D(E(x))`` clamped to [0, 1], in eval mode (Fig. 4)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        return model.reconstruct(images.to(device)).cpu().clamp(0, 1)
    finally:
        model.train(was_training)
