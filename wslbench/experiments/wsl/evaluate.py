"""Prediction, accuracy / mAP / Dice (eq. 4.14) of a WSL model (Rony 2020, 2.1.2.1)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wslbench.errors import InvalidInputError
from wslbench.experiments.wsl.config import WSLConfig, _device
from wslbench.experiments.wsl.data import WSLData
from wslbench.metrics.classification import compute_accuracy, compute_map
from wslbench.metrics.segmentation import compute_dice
from wslbench.nn.unet import UNet
from wslbench.pooling import WSLModel, localisation_masks, tta_predict
from wslbench.pooling.postprocess import binarize_maps, upsample_maps
from wslbench.progress import ProgressCallback
from wslbench.seeding import seed_everything
from wslbench.training.histology_augment import (
    RandomHistologyAugment,
    augment_images,
    augment_masks,
)
from wslbench.training.loop import fit
from wslbench.training.schedules import StepSchedule, lambda_lr, sgd_nesterov

__all__ = ["predict_wsl", "evaluate_wsl", "train_unet", "real_image_tensor", "TABLE_4_1"]


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


#: Table 4.1 rows: method name → configuration changes.
TABLE_4_1: dict[str, dict[str, object]] = {
    "CAM - Average": {"head": "gap", "size_loss": "none"},
    "Deep MIL (adapted)": {"head": "deepmil-multi", "size_loss": "none"},
    "Jia et al.": {"head": "gap", "size_loss": "jia"},
    "Ours - KL": {"head": "gap", "size_loss": "kl"},
    "Ours - L2": {"head": "gap", "size_loss": "l2"},
    "Ours - Adaptive": {"head": "gap", "size_loss": "adaptive"},
}


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
