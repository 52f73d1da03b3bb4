"""Prediction, accuracy / mAP / Dice (eq. 4.14) of a WSL model (Rony 2020, 2.1.2.1)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wslbench.errors import InvalidInputError
from wslbench.experiments.wsl.config import WSLConfig, _device
from wslbench.experiments.wsl.data import WSLData
from wslbench.losses.size import generalized_mean
from wslbench.metrics.classification import (
    compute_accuracy,
    compute_average_precision,
    compute_map,
)
from wslbench.metrics.segmentation import compute_dice
from wslbench.nn.unet import UNet
from wslbench.pooling import PoolingOutput, WSLModel, localisation_masks, tta_predict
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

__all__ = ["POSITIVE_MAP", "image_scores", "predict_wsl", "evaluate_wsl", "train_unet", "real_image_tensor", "TABLE_4_1"]


#: Tasks whose Dice is that of one positive map whatever the image's class (the
#: metastatic map of CAMELYON16, Table 2.8 and 4.4.1): task → that class.
POSITIVE_MAP: dict[str, int] = {"camelyon": 1}


def _image_label_segmentation(
    model: WSLModel, x: torch.Tensor, maps: torch.Tensor, chosen: torch.Tensor,
    config: WSLConfig,
) -> torch.Tensor:
    """Foreground of class ``chosen`` (``(B,)``) by the head's threshold (2.1.2.1), as
    pixel labels ``chosen + 1`` (0: background)."""
    rows = torch.arange(x.shape[0], device=x.device)
    if config.tta:
        h, w = model.cams(x[:1]).shape[2:]
        fg = binarize_maps(maps[rows, chosen][:, None], model.head.binarization_threshold(h, w))
    else:
        fg = localisation_masks(model, x, chosen)
    return fg[:, 0].long() * (chosen + 1)[:, None, None]


def _size_segmentation(maps: torch.Tensor, config: WSLConfig) -> torch.Tensor:
    """Pixel labels of a size-supervised model (0: background, ``c + 1``: class ``c``).

    With a background channel (4.3): the arg max over the softmax of the upsampled CAMs
    (eq. 4.6). Jia et al. (sigmoid maps, no background channel, eq. 4.1-4.3): the class
    of the largest ``σ(M_c)`` where it exceeds 0.5, background elsewhere.
    """
    if config.background_channel:
        return maps.argmax(dim=1)
    best, cls = torch.sigmoid(maps).max(dim=1)
    return torch.where(best > 0.5, cls + 1, torch.zeros_like(cls))


def image_scores(out: PoolingOutput, config: WSLConfig) -> torch.Tensor:
    """Image-level class scores ``(B, C)`` of a model output: the head's scores without the
    background channel (4.3); Jia et al.: the generalised means of eq. 4.1."""
    if config.size_loss == "jia":
        return generalized_mean(out.maps, config.jia_r)
    return out.scores[:, int(config.background_channel):]


@torch.no_grad()
def predict_wsl(
    model: WSLModel, images: torch.Tensor, labels: torch.Tensor, config: WSLConfig,
    *, batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class scores, predicted segmentation and the CAMs of ``labels``.

    Returns:
        ``scores`` ``(N, C)`` (background excluded; Jia et al.: the generalised means
        of eq. 4.1); ``segmentation`` ``(N, S, S)`` int64 pixel labels in ``[0, C]``
        (0 background, ``c + 1`` class ``c``): for image-label models the thresholded
        CAM of the *predicted* class (so a misclassified image puts its pixels in the
        other gland class, errors of eq. 4.14), for size-supervised models the
        arg max of 4.3 (or Jia's sigmoid rule); for CAMELYON the metastatic map only
        (:data:`POSITIVE_MAP`); ``cams`` ``(N, S, S)``: the upsampled map of each given
        label (softmax / sigmoid probabilities for size-supervised models), for display.
    """
    device = next(model.parameters()).device
    positive = POSITIVE_MAP.get(config.task)
    offset = int(config.background_channel)
    scores, segs, cams = [], [], []
    was_training = model.training
    model.eval()
    try:
        for i in range(0, images.shape[0], batch_size):
            x = images[i:i + batch_size].to(device)
            y = labels[i:i + batch_size].to(device)
            out = tta_predict(model, x) if config.tta else model.predict(x)
            maps = upsample_maps(out.maps, tuple(x.shape[2:]))
            rows = torch.arange(x.shape[0], device=device)
            s = image_scores(out, config)
            if config.size_loss == "none":
                chosen = s.argmax(1) if positive is None else torch.full_like(y, positive)
                seg = _image_label_segmentation(model, x, maps, chosen, config)
                cam = maps[rows, y]
            else:
                probs = maps.softmax(dim=1) if config.background_channel else torch.sigmoid(maps)
                seg = _size_segmentation(maps, config)
                if positive is not None:
                    seg = torch.where(seg == positive + 1, seg, torch.zeros_like(seg))
                cam = probs[rows, y + offset]
            scores.append(s.cpu())
            segs.append(seg.cpu())
            cams.append(cam.cpu())
    finally:
        model.train(was_training)
    return torch.cat(scores), torch.cat(segs), torch.cat(cams)


def _one_hot(segmentation: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(N, S, S)`` labels in ``[0, C]`` → ``(N, C + 1, S, S)`` bool one-hot."""
    return F.one_hot(segmentation, num_classes + 1).permute(0, 3, 1, 2).bool()


def _pixel_labels(data: WSLData, idx: torch.Tensor) -> torch.Tensor:
    """True pixel labels ``(N, S, S)``: 0 background, ``y + 1`` inside the region of label ``y``
    (4.4.1: background, benign gland, malignant gland)."""
    return data.masks[idx].long() * (data.labels[idx] + 1)[:, None, None]


def _dice_4_14(pred: torch.Tensor, truth: torch.Tensor, num_classes: int,
               reduction: str = "pixels") -> float:
    """Eq. 4.14: Dice of the foreground classes pooled, on one-hot ``(N, C + 1, S, S)`` masks
    of the pixel labels, so a pixel of the wrong foreground class is an error of both."""
    return compute_dice(_one_hot(pred, num_classes), _one_hot(truth, num_classes),
                        reduction=reduction, classes=tuple(range(1, num_classes + 1)))


def evaluate_wsl(
    model: WSLModel,
    data: WSLData,
    config: WSLConfig,
    index: torch.Tensor | Sequence[int] | None = None,
    *,
    dice: bool = True,
) -> dict[str, float]:
    """Accuracy, AP and (with ``dice``) the Dice of the thesis on ``index`` (default: the
    fixed test set).

    - ``accuracy``: arg max of the image scores (eq. 2.1);
    - ``size_error``: mean ``|ν_y − a_y|`` of the predicted region of the label (eq. 4.6)
      against the annotated size: a localisation measure that needs no pixel label;
    - ``ap``: binary tasks: the average precision of the positive class (class 1:
      malignant, tumour); more classes: the mean over classes (eq. 2.2);
    - ``dice``: eq. 4.14 over every pixel of the set, on one-hot masks of the
      background and every class with the foreground classes pooled: a gland predicted
      as the other gland class counts as a false positive of one and a false negative
      of the other; CAMELYON: the metastatic map against the metastatic mask;
    - ``dice_image``: the mean over images of the same Dice (2.1.2.2, Table 2.7);
      CAMELYON: over metastatic images only ("mDice metastatic", Table 2.9).
    """
    idx = torch.as_tensor(data.folds[0].test if index is None else index, dtype=torch.long)
    if idx.numel() == 0:
        raise InvalidInputError("cannot evaluate on an empty set of images")
    labels = data.labels[idx]
    scores, seg, _ = predict_wsl(model, data.images[idx], labels, config)
    out = {"accuracy": compute_accuracy(scores, labels),
           "size_error": float((seg == (labels + 1)[:, None, None]).float().mean((1, 2))
                               .sub(data.sizes[idx]).abs().mean())}
    present = torch.unique(labels)
    if present.numel() == data.num_classes and data.num_classes > 1:
        probs = scores.softmax(1).numpy()
        out["ap"] = (compute_average_precision(probs[:, 1], (labels == 1).numpy())
                     if data.num_classes == 2 else compute_map(probs, labels.numpy()))
    if dice:
        truth = _pixel_labels(data, idx)
        out["dice"] = _dice_4_14(seg, truth, data.num_classes)
        per_image = "positive_image_mean" if config.task in POSITIVE_MAP else "image_mean"
        if truth.flatten(1).any(1).any():
            out["dice_image"] = _dice_4_14(seg, truth, data.num_classes, per_image)
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
    """The fully supervised U-Net upper bound (2.1.3.2) on pixel labels (background and
    one channel per class, 4.4.1); test Dice of eq. 4.14.

    SGD Nesterov from ``unet_lr`` divided by 10 at each third of the epochs (the
    GlaS schedule 0.1 → 0.001), the same augmentations as the WSL models. A cancel
    through ``progress`` returns the Dice of the model so far with ``interrupted`` 1.0.
    """
    seed_everything(config.seed + fold)
    device = _device(config)
    split = data.folds[fold]
    train_idx = torch.as_tensor(split.train)
    model = UNet(in_channels=3, num_classes=data.num_classes + 1, depth=config.unet_depth,
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
        x, m = data.images[idx], _pixel_labels(data, idx)
        if config.augment:
            record = augment.sample(len(idx), x.shape[2], x.shape[3], seed=rng)
            x, m = augment_images(x, record), augment_masks(m, record)
        return F.cross_entropy(model(x.to(device)), m.to(device))

    fitted = fit(model, step, batches, epochs=config.unet_epochs, optimiser=optimiser,
                 schedule=scheduler, progress=progress, steps_per_epoch=steps_per_epoch)
    model.eval()
    test = torch.as_tensor(split.test)
    with torch.no_grad():
        pred = torch.cat([model(data.images[test[i:i + 32]].to(device)).argmax(1).cpu()
                          for i in range(0, len(test), 32)])
    return {"dice": _dice_4_14(pred, _pixel_labels(data, test), data.num_classes),
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
