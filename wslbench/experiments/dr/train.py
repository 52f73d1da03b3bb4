"""Training with the sparsity-enhanced loss (eq. 6, 4.3), checkpoint selection and the ν table (Table 2)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from wslbench.checkpoint import save_checkpoint
from wslbench.data.fundus_preprocess import augment_batch, sample_augmentation
from wslbench.devices import resolve_device
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.cache import ExperimentCache
from wslbench.experiments.dr.config import DRConfig, input_reference, nu_area
from wslbench.experiments.dr.data import DRData, fit_input_size
from wslbench.experiments.dr.evaluate import dr_heatmaps, evaluate_dr
from wslbench.losses.sparsity import sparsity_enhanced_loss
from wslbench.models.dr import DRNet, build_dr_net, dr_weight_decay_params
from wslbench.presets import config_to_dict
from wslbench.progress import ProgressCallback, report, stop_if_interrupted
from wslbench.seeding import seed_everything, torch_generator
from wslbench.training.loop import StepOutput, fit

__all__ = ["DRCheckpoint", "DRTraining", "train_dr", "train_dr_cached", "save_dr_checkpoints", "nu_table"]


@dataclass(frozen=True)
class DRCheckpoint:
    """Parameters at one iteration with their validation scores."""

    iteration: int
    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, float]


@dataclass
class DRTraining:
    """Result of :func:`train_dr`.

    Attributes:
        model: the network with the selected checkpoint loaded (eval mode).
        config: the configuration it was trained with.
        checkpoints: every validation checkpoint, in order.
        history: per-iteration ``{"iteration", "loss", "L_L", "L_0"}`` rows.
        selected: iteration of the checkpoint loaded in ``model``.
        seconds: training wall time.
        interrupted: cancelled through ``progress`` (shown, never cached).
    """

    model: DRNet
    config: DRConfig
    checkpoints: list[DRCheckpoint] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    selected: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    def validation_curves(self) -> dict[str, tuple[list[int], list[float]]]:
        """Validation metric → (iterations, values) along training: image AUC and the FROC
        area of every lesion type and their mean (Quellec 2017, Fig. 5)."""
        names = [k for k in (self.checkpoints[0].metrics if self.checkpoints else {})
                 if k == "image_auc" or k.startswith("froc_")]
        return {k: ([c.iteration for c in self.checkpoints], [c.metrics[k] for c in self.checkpoints])
                for k in names}

    def model_at(self, iteration: int) -> DRNet:
        """A copy of the network with the checkpoint of ``iteration`` loaded."""
        for ckpt in self.checkpoints:
            if ckpt.iteration == iteration:
                net = copy.deepcopy(self.model)
                net.load_state_dict(ckpt.state_dict)
                return net.eval()
        raise InvalidInputError(
            f"no checkpoint at iteration {iteration}; expected one of "
            f"{[c.iteration for c in self.checkpoints]}"
        )


def _augmented_batch(images: torch.Tensor, rng: np.random.Generator, input_size: int) -> torch.Tensor:
    """5.1.1 augmentation of each image (new parameters per image and per draw)."""
    return augment_batch(images, [sample_augmentation(rng) for _ in range(images.shape[0])],
                         output_size=input_size, neutral=0.5)


def train_dr(
    config: DRConfig,
    data: DRData,
    *,
    progress: ProgressCallback | None = None,
) -> DRTraining:
    """Train the DR network of ``config`` on ``data.train`` (Quellec 2017, 4.3 and 5.1.3).

    Each iteration draws a batch without replacement within an epoch, augments it
    (5.1.1), and minimises L = L_L + ν‖∂L_L/∂m‖₁ (eq. 6; plain MSE when ν = 0) with Adam;
    the mask ``m`` scales the zero-centred ``I_n`` (``x − 0.5`` for Graham-preprocessed
    images, :func:`~wslbench.experiments.dr.input_reference`), as π does, and ν is
    defined at ``config.nu_size``² pixels (scaled by the area ratio, so the paper's ν
    values carry over to the smaller presets).
    Every ``checkpoint_every`` iterations the parameters are stored with their
    validation image AUC and lesion FROC areas; the learning rate is divided by 10 after
    ``plateau_patience`` checkpoints without progress of ``config.select`` (5.1.3), and the
    best checkpoint by ``config.select`` (validation lesion FROC, the paper's criterion of
    5.3, or image AUC) is loaded at the end (:func:`wslbench.training.fit`). ``progress`` may raise
    :class:`~wslbench.progress.StopRequested` (the widgets' cancel button): the best
    checkpoint so far is loaded and the result is marked ``interrupted`` (never cached).
    """
    if config.iterations < 1 or config.checkpoint_every < 1 or config.batch_size < 1:
        raise ConfigError("iterations, checkpoint_every and batch_size must be >= 1")
    if config.nu < 0:
        raise ConfigError(f"nu must be >= 0, got {config.nu}")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    model = build_dr_net(config.net, input_size=config.input_size, width=config.width,
                         input_offset=input_reference(config)).to(device)
    optimiser = torch.optim.Adam(dr_weight_decay_params(model, config.weight_decay), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    order = torch_generator(config.seed)
    train, val = data.train, fit_input_size(data.val, config.input_size)
    targets = train.grades.float()

    def batches(epoch: int):  # batches without replacement within a pass, for every iteration
        perm, cursor = torch.randperm(len(train), generator=order), 0
        for _ in range(config.iterations):
            if cursor + config.batch_size > len(train):
                perm, cursor = torch.randperm(len(train), generator=order), 0
            yield perm[cursor:cursor + config.batch_size]
            cursor += config.batch_size

    def step(idx: torch.Tensor) -> StepOutput:
        x = train.images[idx]
        x = _augmented_batch(x, rng, config.input_size) if config.augment else x
        total, parts = sparsity_enhanced_loss(model, x.to(device), targets[idx].to(device), config.nu,
                                              criterion=config.criterion, q=config.q,
                                              reference=input_reference(config),
                                              nu_area=nu_area(config))
        return StepOutput(total, {"L_L": float(parts["L_L"]), "L_0": float(parts["L_0"])})

    fitted = fit(model, step, batches, epochs=1, optimiser=optimiser,
                 validate=lambda: evaluate_dr(model, val, config).summary(),
                 validate_every=config.checkpoint_every, select=config.select, ties="latest",
                 plateau_patience=config.plateau_patience,
                 keep_checkpoints=True, record_steps=True, progress=progress,
                 total_steps=config.iterations)
    result = DRTraining(model=model, config=config, interrupted=fitted.interrupted)
    result.history = [{"iteration": float(r["step"]), "loss": r["loss"], "L_L": r["L_L"],
                       "L_0": r["L_0"]} for r in fitted.steps]
    result.checkpoints = [DRCheckpoint(c.step, c.state, c.metrics) for c in fitted.checkpoints]
    result.selected = fitted.best.step if fitted.best is not None else 0
    result.seconds = fitted.seconds
    return result


def save_dr_checkpoints(training: DRTraining, folder: str | Path) -> list[Path]:
    """Write every checkpoint of ``training`` to ``folder`` (atomic, never overwritten).

    Files are ``nu<ν>-iter<iteration>.pt`` holding ``state_dict``, ``iteration``, the
    validation ``metrics``, the ``config`` (as a dict) and whether it is the ``selected``
    one; they load with :func:`wslbench.checkpoint.load_checkpoint` (``weights_only=True``).
    """
    folder = Path(folder)
    written = []
    for ckpt in training.checkpoints:
        path = folder / f"nu{training.config.nu:g}-iter{ckpt.iteration:07d}.pt"
        written.append(save_checkpoint({
            "state_dict": ckpt.state_dict, "iteration": ckpt.iteration, "metrics": ckpt.metrics,
            "config": config_to_dict(training.config),
            "selected": ckpt.iteration == training.selected,
        }, path))
    return written


_TRAININGS = ExperimentCache("dr trainings")


def train_dr_cached(
    config: DRConfig, data: DRData, *, progress: ProgressCallback | None = None
) -> DRTraining:
    """:func:`train_dr`, memoised on (config, data) for this process.

    The ν slider of notebook 01 moves back and forth between values: each ν trains
    once and is then loaded from memory.
    """
    return _TRAININGS.get_or_compute(config, data, lambda: train_dr(config, data, progress=progress))


def nu_table(
    config: DRConfig,
    data: DRData,
    nus: Sequence[float] = (0.0, 1e-4, 1e-3, 1e-2),
    *,
    progress: ProgressCallback | None = None,
) -> list[dict[str, float]]:
    """Table 2 of Quellec 2017: image AUC and mean lesion FROC area on the test split per ν.

    Returns one row per ν: ``{"nu", "image_auc", "froc_mean", "pi_l1", "val_<select>",
    "selected"}`` where ``pi_l1`` is the mean L1 norm of the test heatmaps (the quantity
    eq. 6 shrinks), ``val_<select>`` the validation score (``config.select``) of the ν's
    kept checkpoint, and ``selected`` marks the ν the paper would retain: the best on
    validation, never on the test split (Table 2, note 1).
    """
    rows = []
    total = len(nus) * config.iterations
    for k, nu in enumerate(nus):
        def step(i: int, _n: int, logs: Mapping[str, float], k: int = k, nu: float = nu) -> None:
            report(progress, k * config.iterations + i, total, {"nu": nu, **logs})

        run = train_dr_cached(replace(config, nu=float(nu)), data, progress=step)
        stop_if_interrupted(run, f"training nu = {nu:g}")
        test = fit_input_size(data.test, config.input_size)
        maps = dr_heatmaps(run.model, test.images, config.criterion, q=config.q,
                           reference=input_reference(config))
        ev = evaluate_dr(run.model, test, config, heatmaps=maps)
        kept = next(c for c in run.checkpoints if c.iteration == run.selected)
        rows.append({"nu": float(nu), "image_auc": ev.image_auc,
                     "froc_mean": ev.froc_areas["mean"],
                     "pi_l1": float(maps.flatten(1).sum(1).mean()),
                     f"val_{config.select}": float(kept.metrics[config.select])})
    best = max(range(len(rows)), key=lambda i: rows[i][f"val_{config.select}"]) if rows else None
    for i, row in enumerate(rows):
        row["selected"] = i == best
    return rows
