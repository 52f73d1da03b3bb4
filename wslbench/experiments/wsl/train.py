"""Training WSL heads and size-supervised models (eq. 4.13), the U-Net bound, and the comparisons that train them (Tables 2.5–4.1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wslbench.data.splits import format_mean_std, mean_std
from wslbench.data.synthetic_histology import HISTOLOGY_TASKS
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.cache import ExperimentCache
from wslbench.experiments.wsl.config import WSL_PRESETS, WSLConfig, _device
from wslbench.experiments.wsl.data import WSLData
from wslbench.experiments.wsl.evaluate import evaluate_wsl, image_scores, predict_wsl
from wslbench.losses.size import SizeSupervisedLoss, perturb_sizes
from wslbench.models.catalogue import wsl_model
from wslbench.pooling import WSLModel
from wslbench.pooling.postprocess import upsample_maps
from wslbench.progress import ProgressCallback, report, stop_if_interrupted
from wslbench.seeding import seed_everything
from wslbench.training.histology_augment import (
    RandomHistologyAugment,
    augment_images,
)
from wslbench.training.loop import fit
from wslbench.training.schedules import CosineSchedule, StepSchedule, lambda_lr, sgd_nesterov

__all__ = ["WSLTraining", "build_wsl_model", "train_wsl", "train_wsl_cached", "cross_validate", "compare_methods", "sweep_parameter", "real_image_cams", "cam_gallery"]


def _head_kwargs(config: WSLConfig) -> dict[str, object]:
    per_head: dict[str, dict[str, object]] = {
        "lse": {"q": config.q},
        "wildcat": {"k_pos": config.k_pos, "k_neg": config.k_neg, "alpha": config.wildcat_alpha,
                    "modalities": config.modalities},
        "deepmil": {"gated": config.gated},
        "deepmil-multi": {"gated": config.gated},
        "mcattention": {"dropout": config.score_dropout},
    }
    return per_head.get(config.head, {})


def _cam_classes(config: WSLConfig, num_classes: int) -> int:
    """CAM channels: the classes, plus the background for the proposed size losses (4.3)."""
    return num_classes + config.background_channel


def build_wsl_model(config: WSLConfig, num_classes: int) -> WSLModel:
    """ResNet backbone + the configured pooling head (``create_model("wsl", ...)``)."""
    return wsl_model(head=config.head, num_classes=_cam_classes(config, num_classes),
                     depth=config.depth, base_width=config.base_width,
                     output_stride=config.output_stride, head_kwargs=_head_kwargs(config))


@dataclass
class WSLTraining:
    """Result of :func:`train_wsl`: the model at the epoch ``config.select`` chose and the
    log (``interrupted``: cancelled through ``progress``; shown, never cached)."""

    model: WSLModel
    config: WSLConfig
    fold: int
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    size_loss: nn.Module | None = None
    interrupted: bool = False


def _schedule(config: WSLConfig, total_steps: int) -> StepSchedule | CosineSchedule:
    if config.schedule == "cosine":
        return CosineSchedule(config.lr, total_steps)
    return StepSchedule(config.lr, step_size=max(1, total_steps // 2), gamma=0.1)


def _optimiser(config: WSLConfig, model: nn.Module, size_loss: nn.Module | None) -> torch.optim.SGD:
    """SGD Nesterov over the network, and over the adaptive loss's α and γ (eq. 4.11) at
    ``size_lr_factor`` × the network's lr (a second group; the schedule keeps the ratio)."""
    groups: list[dict[str, object]] = [{"params": list(model.parameters())}]
    extra = list(size_loss.parameters()) if size_loss is not None else []
    if extra:
        groups.append({"params": extra, "lr": config.lr * config.size_lr_factor})
    return sgd_nesterov(groups, config.lr, momentum=config.momentum,
                        weight_decay=config.weight_decay)


def _size_targets(sizes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(N, C + 1)`` size vectors: background first, the label's region, zeros elsewhere (4.4.3)."""
    out = torch.zeros(sizes.shape[0], num_classes + 1, dtype=torch.float32)
    out[torch.arange(sizes.shape[0]), labels + 1] = sizes.float()
    out[:, 0] = 1.0 - sizes.float()
    return out


def train_wsl(
    config: WSLConfig,
    data: WSLData,
    *,
    fold: int = 0,
    progress: ProgressCallback | None = None,
) -> WSLTraining:
    """Train one fold (Rony 2020, 2.1.3.1 / 4.4.2); the epoch of ``config.select`` is kept.

    With ``size_loss != "none"`` the loss is eq. 4.13 on the upsampled CAMs with the size
    vectors of the (fixed, optionally noisy, 4.4.3) annotations (``"jia"``: eq. 4.1-4.3
    on sigmoid class maps with λ_e = 0, validation accuracy from the generalised means
    of eq. 4.1); otherwise the
    cross-entropy of the head's scores (:func:`wslbench.training.fit`). ``progress`` may
    raise :class:`~wslbench.progress.StopRequested`: the best epoch so far is kept and the
    result is marked ``interrupted``.
    """
    if not 0 <= fold < len(data.folds):
        raise ConfigError(f"fold must be in [0, {len(data.folds)}), got {fold}")
    seed_everything(config.seed + fold)
    device = _device(config)
    split = data.folds[fold]
    train_idx = torch.as_tensor(split.train)
    model = build_wsl_model(config, data.num_classes).to(device)
    size_loss = None
    if config.size_loss != "none":
        jia = not config.background_channel
        # Jia et al. as published (eq. 4.1-4.3): sigmoid class maps, no entropy term.
        size_loss = SizeSupervisedLoss(size_loss=config.size_loss, lambda_s=config.lambda_s,
                                       lambda_e=0.0 if jia else config.lambda_e,
                                       multi_label=jia, r=config.jia_r).to(device)
        targets = _size_targets(data.sizes[train_idx], data.labels[train_idx], data.num_classes)
        if config.sigma_s > 0:
            targets, _ = perturb_sizes(targets, data.labels[train_idx] + 1, config.sigma_s,
                                       seed=config.seed + fold)
        if jia:  # upper bounds of the classes only: no background map
            targets = targets[:, 1:]
    optimiser = _optimiser(config, model, size_loss)
    steps_per_epoch = max(1, len(train_idx) // config.batch_size)
    scheduler = lambda_lr(optimiser, _schedule(config, config.epochs * steps_per_epoch))
    augment = RandomHistologyAugment()
    rng = np.random.default_rng(config.seed + fold)
    gen = torch.Generator().manual_seed(config.seed + fold)

    def batches(epoch: int):
        order = torch.randperm(len(train_idx), generator=gen)
        for b in range(steps_per_epoch):
            yield order[b * config.batch_size:(b + 1) * config.batch_size]

    def step(local: torch.Tensor) -> torch.Tensor:
        idx = train_idx[local]
        x, y = data.images[idx], data.labels[idx]
        if config.augment:
            x = augment_images(x, augment.sample(len(idx), x.shape[2], x.shape[3], seed=rng))
        x, y = x.to(device), y.to(device)
        out = model.predict(x)
        if size_loss is None:
            return F.cross_entropy(out.scores, y)
        labels = y + 1 if config.background_channel else F.one_hot(y, data.num_classes).float()
        loss, _ = size_loss(out.maps, labels, targets[local].to(device), output_size=tuple(x.shape[2:]))
        return loss

    val = torch.as_tensor(split.val)

    def validate() -> dict[str, float]:
        metrics = evaluate_wsl(model, data, config, val, dice=False)
        return {"val_accuracy": metrics["accuracy"], "val_size_error": metrics["size_error"]}

    criterion = config.select
    if criterion == "size_error" and size_loss is None:
        criterion = "accuracy"  # image labels only: no size to select on
    select = {"accuracy": "val_accuracy", "size_error": "val_size_error", "last": None}
    fitted = fit(model, step, batches, epochs=config.epochs, optimiser=optimiser, schedule=scheduler,
                 validate=validate, select=select[criterion],
                 mode="min" if criterion == "size_error" else "max", ties="latest",
                 progress=progress, steps_per_epoch=steps_per_epoch)
    return WSLTraining(model=model, config=config, fold=fold, size_loss=size_loss,
                       history=[{"epoch": r["epoch"], "loss": r["train_loss"],
                                 "val_accuracy": r["val_accuracy"],
                                 "val_size_error": r["val_size_error"]} for r in fitted.history],
                       best_epoch=fitted.best.epoch if fitted.best else len(fitted.history),
                       seconds=fitted.seconds, interrupted=fitted.interrupted)


_TRAININGS = ExperimentCache("wsl trainings", maxsize=32)


def train_wsl_cached(
    config: WSLConfig, data: WSLData, *, fold: int = 0, progress: ProgressCallback | None = None
) -> WSLTraining:
    """:func:`train_wsl` memoised on (config, fold, data) for this process (the λ_s slider)."""
    return _TRAININGS.get_or_compute(
        (config, fold), data, lambda: train_wsl(config, data, fold=fold, progress=progress))


def cross_validate(
    config: WSLConfig, data: WSLData, *, progress: ProgressCallback | None = None
) -> dict[str, object]:
    """Train ``folds_to_run`` folds and report test metrics per fold and mean ± std."""
    per_fold = []
    for fold in range(config.folds_to_run):
        def step(i: int, n: int, logs: Mapping[str, float], fold: int = fold) -> None:
            report(progress, fold * n + i, config.folds_to_run * n, {"fold": fold, **logs})

        run = train_wsl_cached(config, data, fold=fold, progress=step)
        stop_if_interrupted(run, f"training fold {fold}")
        per_fold.append(evaluate_wsl(run.model, data, config))
    summary: dict[str, object] = {"folds": per_fold}
    for key in per_fold[0]:
        values = [f[key] for f in per_fold]
        summary[key] = mean_std(values)[0]
        summary[f"{key}_text"] = format_mean_std(values, scale=100.0)
    return summary


def compare_methods(
    config: WSLConfig,
    data: WSLData,
    methods: Mapping[str, Mapping[str, object]],
    *,
    progress: ProgressCallback | None = None,
) -> list[dict[str, object]]:
    """One row per method (Tables 2.5–2.9 and 4.1): accuracy and Dice, mean ± std over folds."""
    rows = []
    for k, (name, changes) in enumerate(methods.items()):
        def step(i: int, n: int, logs: Mapping[str, float], k: int = k) -> None:
            report(progress, k * n + i, len(methods) * n, {"method": k, **logs})

        summary = cross_validate(replace(config, **changes), data, progress=step)
        rows.append({"method": name, "accuracy": summary["accuracy"],
                     "dice": summary["dice"], "accuracy (%)": summary["accuracy_text"],
                     "dice (%)": summary["dice_text"]})
    return rows


def sweep_parameter(
    config: WSLConfig,
    data: WSLData,
    name: str,
    values: Sequence[float],
    *,
    progress: ProgressCallback | None = None,
) -> list[dict[str, float]]:
    """Test accuracy and Dice of fold 0 for each value of one config field.

    ``name="lambda_s"`` gives the accuracy–Dice trade-off of Fig. 4.2,
    ``name="sigma_s"`` the size-noise robustness of Fig. 4.3.
    """
    if name not in WSL_PRESETS.field_names():
        raise ConfigError(f"unknown parameter {name!r}; expected one of: "
                          f"{', '.join(WSL_PRESETS.field_names())}")
    rows = []
    for k, value in enumerate(values):
        def step(i: int, n: int, logs: Mapping[str, float], k: int = k) -> None:
            report(progress, k * n + i, len(values) * n, logs)

        changed = replace(config, **{name: value})
        run = train_wsl_cached(changed, data, progress=step)
        stop_if_interrupted(run, f"training {name} = {value}")
        metrics = evaluate_wsl(run.model, data, changed)
        rows.append({name: float(value), "accuracy": metrics["accuracy"], "dice": metrics["dice"]})
    return rows


@torch.no_grad()
def real_image_cams(run: WSLTraining, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Class name → CAM ``(S, S)`` (upsampled, raw) of a ``(1, 3, S, S)`` image, plus the
    predicted class in the title."""
    device = next(run.model.parameters()).device
    out = run.model.predict(x.to(device))
    maps = upsample_maps(out.maps, tuple(x.shape[2:]))[0].cpu()
    offset = int(run.config.background_channel)
    names = HISTOLOGY_TASKS[run.config.task]
    predicted = names[int(image_scores(out, run.config)[0].argmax())]
    return {f"{name}{' (predicted)' if name == predicted else ''}": maps[c + offset]
            for c, name in enumerate(names)}


def cam_gallery(
    runs: Mapping[str, WSLTraining], data: WSLData, index: int
) -> dict[str, torch.Tensor]:
    """Title → true-class CAM ``(S, S)`` of test image ``index`` for each run, plus the truth."""
    test = torch.as_tensor(data.folds[0].test)
    if not 0 <= index < len(test):
        raise InvalidInputError(f"index must be in [0, {len(test)}), got {index}")
    i = test[index:index + 1]
    maps = {name: predict_wsl(run.model, data.images[i], data.labels[i], run.config)[2][0]
            for name, run in runs.items()}
    maps["ground truth"] = data.masks[i][0].float()
    return maps
