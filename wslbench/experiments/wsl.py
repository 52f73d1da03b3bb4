"""Weakly supervised histology: pooling heads, CAMs and size supervision (Rony 2020, ch. 1–4).

What notebook ``02_wsl_histology`` calls. A ResNet backbone (4.4.2: total stride
32 or 16) feeds any pooling head of :mod:`wslbench.pooling`; the model is trained
from image labels only (chapters 2–3) or from image labels plus the size of the
positive region (chapter 4: KL, L2, adaptive robust loss, Jia et al.), with SGD
Nesterov 0.9, weight decay 1e-4, a step (2.1.3.1: lr ÷ 10 at half the epochs) or
cosine (4.4.2) schedule and the 2.1.3.1 augmentations, on k folds with a fixed
test set (mean ± std over folds).

Localisation (the Dice of 2.1.2.1 and 4.4.1):

- image-label models: the CAM of the true class, upsampled, binarised with the
  head's threshold (zero-score rule, 1/(HW) for Deep MIL attention);
- size-supervised models have one more CAM channel, the background (4.3): the
  segmentation is the arg max over the upsampled softmax CAMs and the predicted
  foreground is the true class's region.

Dice is computed over all pixels of the test set with the foreground classes
pooled (eq. 4.14); accuracy from the image-level scores (the background channel
excluded); AP is the mean over classes of the one-vs-rest average precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wslbench.data.splits import Fold, format_mean_std, kfold_splits, mean_std
from wslbench.data.synthetic_histology import HISTOLOGY_TASKS, make_histology_dataset
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.cache import ExperimentCache
from wslbench.losses.size import SizeSupervisedLoss, perturb_sizes
from wslbench.metrics.classification import compute_accuracy, compute_map
from wslbench.metrics.segmentation import compute_dice
from wslbench.models.catalogue import wsl_model
from wslbench.nn.unet import UNet
from wslbench.pooling import WSLModel, localisation_masks, tta_predict
from wslbench.pooling.postprocess import binarize_maps, upsample_maps
from wslbench.presets import PresetTable
from wslbench.progress import ProgressCallback, report, stop_if_interrupted
from wslbench.seeding import seed_everything
from wslbench.training.histology_augment import (
    RandomHistologyAugment,
    augment_images,
    augment_masks,
)
from wslbench.training.loop import fit
from wslbench.training.schedules import CosineSchedule, StepSchedule, lambda_lr, sgd_nesterov

__all__ = [
    "WSLConfig",
    "WSL_PRESETS",
    "SIZE_LOSSES",
    "WSLData",
    "WSLTraining",
    "wsl_config",
    "make_wsl_data",
    "build_wsl_model",
    "train_wsl",
    "train_wsl_cached",
    "predict_wsl",
    "evaluate_wsl",
    "cross_validate",
    "compare_methods",
    "train_unet",
    "sweep_parameter",
    "real_image_tensor",
    "real_image_cams",
    "TABLE_4_1",
    "cam_gallery",
]

SIZE_LOSSES = ("none", "jia", "kl", "l2", "adaptive")


@dataclass(frozen=True)
class WSLConfig:
    """Hyper-parameters of the histology WSL experiment (Rony 2020, 2.1.3 and 4.4).

    Attributes:
        task: synthetic data set: ``"glas"`` (benign / malignant glands), ``"bach"``
            (4 classes) or ``"camelyon"`` (normal / tumour patches).
        head: pooling head (:func:`wslbench.pooling.list_pooling`); size losses use ``"gap"`` (4.3).
        q: LSE sharpness (eq. 3.7; 10 in 2.1.3.1).
        k_pos, k_neg, wildcat_alpha, modalities: WILDCAT (eq. 3.8; 10 %, 10 %, 0.6, 4).
        gated: gated attention ψ₂ for the Deep MIL heads (eq. 1.6).
        score_dropout: d of the multi-class attention pooling (eq. 3.11).
        depth, base_width, output_stride: ResNet backbone (18, 64 and 32/16 in 4.4.2).
        image_size: patch side; n_images: synthetic patches in all.
        n_folds: validation folds (the test set is fixed); folds_to_run: how many to train.
        test_fraction: share of the images held out as the fixed test set.
        epochs, batch_size, lr, schedule: training (2.1.3.1: lr 0.01, step at half; 4.4.2: cosine).
        momentum, weight_decay: SGD Nesterov (0.9, 1e-4).
        size_loss: ``"none"`` (image labels only) or a chapter 4 size loss.
        lambda_s, lambda_e: weights of the size and entropy terms (eq. 4.13; 10 and 0.1 in 4.4.5).
        sigma_s: standard deviation of the size noise, drawn once per sample (4.4.3).
        augment: colour jitter 0.5/0.5/0.5/0.05, flips and 90° rotations (2.1.3.1).
        tta: test-time augmentation of the CAMs (flip × scales 0.5, 1, 1.5, 2).
        unet_depth, unet_width, unet_epochs, unet_lr: the fully supervised upper bound (2.1.3.2).
        data_dir: a GlaS folder (Warwick QU layout, :func:`wslbench.data.load_glas`) to
            train on the real data set instead of the synthetic patches (``task`` must be
            ``"glas"``); images are centre-cropped square and resized to ``image_size``,
            testA + testB form the fixed test set and the training images the folds.
        seed: seed of data, splits, initialisation, data order and augmentation.
        device: ``None`` takes CUDA when available.
    """

    task: Literal["glas", "bach", "camelyon"] = "glas"
    head: str = "gap"
    q: float = 10.0
    k_pos: float = 0.1
    k_neg: float = 0.1
    wildcat_alpha: float = 0.6
    modalities: int = 4
    gated: bool = False
    score_dropout: float = 0.3
    depth: int = 18
    base_width: int = 16
    output_stride: int = 16
    image_size: int = 96
    n_images: int = 160
    n_folds: int = 3
    folds_to_run: int = 2
    test_fraction: float = 0.25
    epochs: int = 30
    batch_size: int = 16
    lr: float = 0.01
    schedule: Literal["step", "cosine"] = "step"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    size_loss: Literal["none", "jia", "kl", "l2", "adaptive"] = "none"
    lambda_s: float = 10.0
    lambda_e: float = 0.1
    sigma_s: float = 0.0
    augment: bool = True
    tta: bool = False
    unet_depth: int = 3
    unet_width: int = 8
    unet_epochs: int = 20
    unet_lr: float = 0.1
    data_dir: str | None = None
    seed: int = 0
    device: str | None = None


WSL_PRESETS = PresetTable(
    WSLConfig,
    smoke=WSLConfig(base_width=8, image_size=64, n_images=80, n_folds=2, folds_to_run=1,
                    test_fraction=0.3, epochs=15, batch_size=8, unet_depth=2, unet_width=4,
                    unet_epochs=2),
    demo=WSLConfig(),
    paper=WSLConfig(base_width=64, output_stride=16, image_size=416, n_images=165, n_folds=5,
                    folds_to_run=5, test_fraction=0.48, epochs=160, batch_size=32,
                    schedule="cosine", unet_depth=4, unet_width=64, unet_epochs=960),
)


def wsl_config(preset: str = "demo", /, **overrides: object) -> WSLConfig:
    """The ``preset`` configuration with ``overrides`` (``None`` keeps the preset's value)."""
    config = WSL_PRESETS.build(preset, **overrides)
    if config.size_loss != "none" and config.head != "gap":
        raise ConfigError(
            f"size losses are defined on average-pooled CAMs (Rony 2020, 4.3); got head "
            f"{config.head!r} with size_loss {config.size_loss!r}: use head='gap'"
        )
    if config.folds_to_run > config.n_folds:
        raise ConfigError(f"folds_to_run ({config.folds_to_run}) > n_folds ({config.n_folds})")
    return config


def _device(config: WSLConfig) -> torch.device:
    from wslbench.devices import resolve_device

    return resolve_device(config.device)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class WSLData:
    """Synthetic patches and their folds.

    Attributes:
        images: ``(N, 3, S, S)``; labels: ``(N,)``; masks: ``(N, S, S)`` region of the label.
        sizes: ``(N,)`` size fraction of that region.
        class_names: names of the classes (label order).
        folds: k folds sharing one fixed test set.
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    sizes: torch.Tensor
    class_names: tuple[str, ...]
    folds: list[Fold]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _square(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Centre square crop of ``(C, H, W)`` resized to ``size`` (bilinear, or nearest for masks)."""
    side = min(x.shape[-2:])
    top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
    crop = x[None, :, top:top + side, left:left + side].float()
    kwargs = {"antialias": True, "align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(crop, size=(size, size), mode=mode, **kwargs)[0]


def _load_glas_data(config: WSLConfig) -> WSLData:
    from wslbench.data.histology_loaders import load_glas

    ds = load_glas(config.data_dir)
    images = torch.stack([_square(torch.from_numpy(ds.load_image(i)).permute(2, 0, 1),
                                  config.image_size, "bilinear").clamp(0, 1)
                          for i in range(len(ds))])
    masks = torch.stack([_square(torch.from_numpy(ds.load_mask(i))[None], config.image_size,
                                 "nearest")[0] > 0.5 for i in range(len(ds))])
    labels = torch.as_tensor(ds.labels(), dtype=torch.long)
    train = np.asarray(ds.select(split="train"))
    test = np.asarray(sorted(ds.select(split="testA") + ds.select(split="testB")))
    if len(train) == 0 or len(test) == 0:
        raise InvalidInputError(f"GlaS folder {config.data_dir} needs train and test images")
    inner = kfold_splits(labels[train], n_splits=config.n_folds, test_fraction=0.0,
                         random_state=config.seed)
    folds = [Fold(train[f.train], train[f.val], test) for f in inner]
    return WSLData(images, labels, masks, masks.float().mean((1, 2)), ds.class_names, folds)


def make_wsl_data(config: WSLConfig) -> WSLData:
    """Patches of ``config.task`` and their stratified folds (fixed test set).

    Synthetic by default; the real GlaS data set when ``config.data_dir`` is set.
    """
    if config.data_dir is not None:
        if config.task != "glas":
            raise ConfigError(f"data_dir is read as a GlaS folder; set task='glas', got {config.task!r}")
        return _load_glas_data(config)
    ds = make_histology_dataset(config.n_images, size=config.image_size, seed=config.seed,
                                task=config.task)
    folds = kfold_splits(ds.labels, n_splits=config.n_folds, test_fraction=config.test_fraction,
                         random_state=config.seed)
    return WSLData(ds.images, ds.labels, ds.masks, ds.size_fractions, ds.class_names, folds)


# --------------------------------------------------------------------------- model and training


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
    """CAM channels: the classes, plus the background for size supervision (4.3)."""
    return num_classes + (config.size_loss != "none")


def build_wsl_model(config: WSLConfig, num_classes: int) -> WSLModel:
    """ResNet backbone + the configured pooling head (``create_model("wsl", ...)``)."""
    return wsl_model(head=config.head, num_classes=_cam_classes(config, num_classes),
                     depth=config.depth, base_width=config.base_width,
                     output_stride=config.output_stride, head_kwargs=_head_kwargs(config))


@dataclass
class WSLTraining:
    """Result of :func:`train_wsl`: the model at its best validation accuracy and the log
    (``interrupted``: cancelled through ``progress``; shown, never cached)."""

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
    """Train one fold (Rony 2020, 2.1.3.1 / 4.4.2); the best validation-accuracy epoch is kept.

    With ``size_loss != "none"`` the loss is eq. 4.13 on the upsampled CAMs with the size
    vectors of the (fixed, optionally noisy, 4.4.3) annotations; otherwise the
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
        size_loss = SizeSupervisedLoss(size_loss=config.size_loss, lambda_s=config.lambda_s,
                                       lambda_e=config.lambda_e,
                                       multi_label=config.size_loss == "jia").to(device)
        targets = _size_targets(data.sizes[train_idx], data.labels[train_idx], data.num_classes)
        if config.sigma_s > 0:
            targets, _ = perturb_sizes(targets, data.labels[train_idx] + 1, config.sigma_s,
                                       seed=config.seed + fold)
    params = list(model.parameters()) + (list(size_loss.parameters()) if size_loss else [])
    optimiser = sgd_nesterov(params, config.lr, momentum=config.momentum,
                             weight_decay=config.weight_decay)
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
        labels = y + 1
        if config.size_loss == "jia":
            labels = F.one_hot(labels, data.num_classes + 1).float()
            labels[:, 0] = 1.0
        loss, _ = size_loss(out.maps, labels, targets[local].to(device), output_size=tuple(x.shape[2:]))
        return loss

    val = torch.as_tensor(split.val)
    fitted = fit(model, step, batches, epochs=config.epochs, optimiser=optimiser, schedule=scheduler,
                 validate=lambda: {"val_accuracy": evaluate_wsl(model, data, config, val,
                                                                dice=False)["accuracy"]},
                 select="val_accuracy", ties="latest", progress=progress,
                 steps_per_epoch=steps_per_epoch)
    return WSLTraining(model=model, config=config, fold=fold, size_loss=size_loss,
                       history=[{"epoch": r["epoch"], "loss": r["train_loss"],
                                "val_accuracy": r["val_accuracy"]} for r in fitted.history], best_epoch=fitted.best.epoch if fitted.best else 0,
                       seconds=fitted.seconds, interrupted=fitted.interrupted)


_TRAININGS = ExperimentCache("wsl trainings", maxsize=32)


def train_wsl_cached(
    config: WSLConfig, data: WSLData, *, fold: int = 0, progress: ProgressCallback | None = None
) -> WSLTraining:
    """:func:`train_wsl` memoised on (config, fold, data) for this process (the λ_s slider)."""
    return _TRAININGS.get_or_compute(
        (config, fold), data, lambda: train_wsl(config, data, fold=fold, progress=progress))


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict_wsl(
    model: WSLModel, images: torch.Tensor, labels: torch.Tensor, config: WSLConfig,
    *, batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class scores ``(N, C)`` (background excluded), foreground masks ``(N, S, S)`` of the
    given labels, and the true-class CAMs upsampled to the input ``(N, S, S)``.
    """
    device = next(model.parameters()).device
    sized = config.size_loss != "none"
    scores, masks, cams = [], [], []
    was_training = model.training
    model.eval()
    try:
        for i in range(0, images.shape[0], batch_size):
            x = images[i:i + batch_size].to(device)
            y = labels[i:i + batch_size].to(device)
            out = tta_predict(model, x) if config.tta else model.predict(x)
            maps = upsample_maps(out.maps, tuple(x.shape[2:]))
            rows = torch.arange(x.shape[0], device=device)
            if sized:
                probs = maps.softmax(dim=1)
                fg = probs.argmax(dim=1) == (y + 1)[:, None, None]
                cam = probs[rows, y + 1]
                s = out.scores[:, 1:]
            else:
                cam = maps[rows, y]
                if config.tta:
                    h, w = model.cams(x[:1]).shape[2:]
                    fg = binarize_maps(cam[:, None], model.head.binarization_threshold(h, w))[:, 0]
                else:
                    fg = localisation_masks(model, x, y)[:, 0]
                s = out.scores
            scores.append(s.cpu())
            masks.append(fg.cpu())
            cams.append(cam.cpu())
    finally:
        model.train(was_training)
    return torch.cat(scores), torch.cat(masks), torch.cat(cams)


def evaluate_wsl(
    model: WSLModel,
    data: WSLData,
    config: WSLConfig,
    index: torch.Tensor | Sequence[int] | None = None,
    *,
    dice: bool = True,
) -> dict[str, float]:
    """Accuracy, mAP and (with ``dice``) pixel Dice / mean positive-image Dice on ``index``.

    ``index`` defaults to the fixed test set. Dice pools every foreground class over all
    pixels of the set (eq. 4.14); ``dice_image`` is the mean Dice over images whose
    true region is not empty (2.1.2.1).
    """
    idx = torch.as_tensor(data.folds[0].test if index is None else index, dtype=torch.long)
    if idx.numel() == 0:
        raise InvalidInputError("cannot evaluate on an empty set of images")
    labels = data.labels[idx]
    scores, fg, _ = predict_wsl(model, data.images[idx], labels, config)
    out = {"accuracy": compute_accuracy(scores, labels)}
    present = torch.unique(labels)
    if present.numel() == data.num_classes and data.num_classes > 1:
        out["map"] = compute_map(scores.softmax(1).numpy(), labels.numpy())
    if dice:
        truth = data.masks[idx]
        out["dice"] = compute_dice(fg, truth, reduction="pixels")
        if truth.flatten(1).any(1).any():
            out["dice_image"] = compute_dice(fg, truth, reduction="positive_image_mean")
    return out


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


#: Table 4.1 rows: method name → configuration changes.
TABLE_4_1: dict[str, dict[str, object]] = {
    "CAM - Average": {"head": "gap", "size_loss": "none"},
    "Deep MIL (adapted)": {"head": "deepmil-multi", "size_loss": "none"},
    "Jia et al.": {"head": "gap", "size_loss": "jia"},
    "Ours - KL": {"head": "gap", "size_loss": "kl"},
    "Ours - L2": {"head": "gap", "size_loss": "l2"},
    "Ours - Adaptive": {"head": "gap", "size_loss": "adaptive"},
}


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


def train_unet(
    config: WSLConfig, data: WSLData, *, fold: int = 0, progress: ProgressCallback | None = None
) -> dict[str, float]:
    """The fully supervised U-Net upper bound (2.1.3.2) on pixel labels; test pixel Dice.

    SGD Nesterov from ``unet_lr`` divided by 10 at each third of the epochs (the
    GlaS schedule 0.1 → 0.001), the same augmentations as the WSL models. A cancel
    through ``progress`` returns the Dice of the model so far with ``interrupted`` 1.0.
    """
    seed_everything(config.seed + fold)
    device = _device(config)
    split = data.folds[fold]
    train_idx = torch.as_tensor(split.train)
    model = UNet(in_channels=3, num_classes=2, depth=config.unet_depth,
                 base_width=config.unet_width).to(device)
    optimiser = sgd_nesterov(model.parameters(), config.unet_lr, momentum=config.momentum,
                             weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(train_idx) // config.batch_size)
    total = config.unet_epochs * steps_per_epoch
    scheduler = lambda_lr(optimiser, StepSchedule(config.unet_lr, max(1, total // 3), 0.1))
    augment = RandomHistologyAugment()
    rng = np.random.default_rng(config.seed + fold)
    gen = torch.Generator().manual_seed(config.seed + fold)

    def batches(epoch: int):
        order = torch.randperm(len(train_idx), generator=gen)
        for b in range(steps_per_epoch):
            yield train_idx[order[b * config.batch_size:(b + 1) * config.batch_size]]

    def step(idx: torch.Tensor) -> torch.Tensor:
        x, m = data.images[idx], data.masks[idx]
        if config.augment:
            record = augment.sample(len(idx), x.shape[2], x.shape[3], seed=rng)
            x, m = augment_images(x, record), augment_masks(m, record)
        return F.cross_entropy(model(x.to(device)), m.long().to(device))

    fitted = fit(model, step, batches, epochs=config.unet_epochs, optimiser=optimiser,
                 schedule=scheduler, progress=progress, steps_per_epoch=steps_per_epoch)
    model.eval()
    test = torch.as_tensor(split.test)
    with torch.no_grad():
        pred = torch.cat([model(data.images[test[i:i + 32]].to(device)).argmax(1).cpu() == 1
                          for i in range(0, len(test), 32)])
    return {"dice": compute_dice(pred, data.masks[test], reduction="pixels"),
            "interrupted": float(fitted.interrupted)}


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


def real_image_tensor(image: np.ndarray, config: WSLConfig) -> torch.Tensor:
    """A real ``(H, W, 3)`` image in [0, 1] as a ``(1, 3, S, S)`` network input (centre square,
    resized to ``config.image_size``)."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidInputError(f"image must be (H, W, 3), got shape {arr.shape}")
    side = min(arr.shape[:2])
    top, left = (arr.shape[0] - side) // 2, (arr.shape[1] - side) // 2
    x = torch.from_numpy(arr[top:top + side, left:left + side]).permute(2, 0, 1)[None]
    return F.interpolate(x, size=(config.image_size,) * 2, mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)


@torch.no_grad()
def real_image_cams(run: WSLTraining, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Class name → CAM ``(S, S)`` (upsampled, raw) of a ``(1, 3, S, S)`` image, plus the
    predicted class in the title."""
    device = next(run.model.parameters()).device
    out = run.model.predict(x.to(device))
    maps = upsample_maps(out.maps, tuple(x.shape[2:]))[0].cpu()
    offset = int(run.config.size_loss != "none")
    names = HISTOLOGY_TASKS[run.config.task]
    predicted = names[int(out.scores[0, offset:].argmax())]
    return {f"{name}{' (predicted)' if name == predicted else ''}": maps[c + offset]
            for c, name in enumerate(names)}


# --------------------------------------------------------------------------- figures and widgets


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


# --------------------------------------------------------------------------- models for the dashboard


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


__all__ += ["save_models"]
