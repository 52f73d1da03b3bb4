"""DR screening with hue-constrained, sparsity-enhanced heatmaps (Quellec et al. 2017).

What notebook ``01_dr_heatmaps`` calls. The pipeline:

1. data (:func:`make_dr_data`): synthetic fundus cases with lesion masks
   (:mod:`wslbench.data.synthetic_fundus`), Graham-preprocessed as in 5.1.1;
2. training (:func:`train_dr`): net A / net B / AlexNet (Table 1) regress the
   grade with MSE, L2 weight decay 5e-4 on conv/dense weights and Adam (5.1.3),
   with the sparsity term L0 = ν‖∂L_L/∂m‖₁ (eq. 6) trained by double
   backpropagation (4.3) when ν > 0; the 5.1.1 augmentation; a checkpoint every
   ``checkpoint_every`` iterations, scored on the validation split;
3. heatmaps (:func:`dr_heatmaps`): ω (eq. 2), π (eq. 3), LRP and Grad-CAM through
   :mod:`wslbench.attribution`;
4. evaluation (:func:`evaluate_dr`): image-level ROC area with a DeLong 95 % CI
   (referable = grade ≥ 2), lesion-level FROC per lesion type with the area for
   0 ≤ FP/image ≤ μ divided by μ (5.5) and its average Ā_z;
5. the ν table (:func:`nu_table`, Table 2) and the checkpoint ensemble
   (:mod:`wslbench.experiments.dr_ensemble`, 5.6).

Choices where the paper is silent (documented and tested): lesion candidates are
the local maxima of the heatmap inside the field of view, at least
``candidate_distance`` pixels apart, scored by the heatmap value; the model kept
after training is the checkpoint with the best validation image AUC (5.5 selects
checkpoints on validation data).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy import ndimage as ndi

from wslbench.attribution import create_attribution
from wslbench.checkpoint import save_checkpoint
from wslbench.data.fundus_preprocess import (
    AugmentationParams,
    augment_image,
    augment_mask,
    preprocess_fundus,
    preprocess_mask,
    resample_like,
    sample_augmentation,
)
from wslbench.data.synthetic_fundus import LESION_TYPES, make_fundus_case
from wslbench.devices import resolve_device
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.cache import ExperimentCache
from wslbench.losses.sparsity import sparsity_enhanced_loss
from wslbench.metrics import compute_froc, compute_froc_areas, compute_roc_curve, delong_ci
from wslbench.metrics.froc import extract_candidates
from wslbench.models.dr import DRNet, build_dr_net, dr_weight_decay_params
from wslbench.presets import PresetTable, config_to_dict
from wslbench.progress import ProgressCallback, report, stop_if_interrupted
from wslbench.seeding import seed_everything, torch_generator
from wslbench.training.loop import StepOutput, fit

__all__ = [
    "DRConfig",
    "DR_PRESETS",
    "HEATMAP_METHODS",
    "DRSplit",
    "DRData",
    "DRCheckpoint",
    "DRTraining",
    "DREvaluation",
    "dr_config",
    "make_dr_data",
    "contralateral_index",
    "preprocess_images",
    "preprocess_real_image",
    "fit_input_size",
    "predict_scores",
    "train_dr",
    "train_dr_cached",
    "save_dr_checkpoints",
    "dr_heatmaps",
    "lesion_candidates",
    "evaluate_dr",
    "nu_table",
    "compare_heatmaps",
]


@dataclass(frozen=True)
class DRConfig:
    """Hyper-parameters of the DR heatmap experiment (Quellec 2017, 5.1–5.5).

    Attributes:
        net: ``"net_a"``, ``"net_b"`` (Table 1) or ``"alexnet"``.
        image_size: side of the synthetic images and preprocessing target width (512 in 5.1.1).
        input_size: network input side after augmentation resize (448 in 5.1.1).
        width: channel multiplier of the network (1.0 = Table 1).
        n_train, n_val, n_test: split sizes (cases).
        batch_size: mini-batch size (36 in 5.2).
        iterations: training iterations (350,000 in 5.2).
        lr: Adam learning rate (1e-4 in 5.1.3).
        weight_decay: L2 factor on conv/dense weights (5e-4 in 5.1.3).
        nu: factor ν of the sparsity term L0 (eq. 6; 1e-3 retained in Table 2).
        criterion: ``"pi"`` (hue-constrained, eq. 3) or ``"omega"`` (sensitivity, eq. 2).
        q: colour-channel norm of ω (eq. 2).
        augment: random rotation/translation/scale/flip/contrast of 5.1.1.
        preprocess: Graham preprocessing of 5.1.1.
        checkpoint_every: iterations between validation checkpoints.
        candidate_distance: minimal distance (px) between lesion candidates.
        candidate_sigma: Gaussian smoothing (px) of a heatmap before its local maxima are taken.
        max_fp: μ of the limited FROC area (10 in 5.5).
        rf_trees, rf_depth: random forest of the ensemble (500 and 25 in 5.6).
        table_nus: the ν values of the Table 2 sweep (:func:`nu_table`).
        seed: seed of data, initialisation, data order, augmentation and dropout.
        device: ``"cpu"``, ``"cuda"``…; ``None`` takes CUDA when available.
    """

    net: Literal["net_a", "net_b", "alexnet"] = "net_b"
    image_size: int = 128
    input_size: int = 128
    width: float = 0.25
    n_train: int = 320
    n_val: int = 64
    n_test: int = 96
    batch_size: int = 16
    iterations: int = 600
    lr: float = 1e-3
    weight_decay: float = 5e-4
    nu: float = 0.0
    criterion: Literal["pi", "omega"] = "pi"
    q: float = 1.0
    augment: bool = True
    preprocess: bool = True
    checkpoint_every: int = 100
    candidate_distance: int = 3
    candidate_sigma: float = 1.0
    max_fp: float = 10.0
    rf_trees: int = 200
    rf_depth: int = 8
    table_nus: tuple[float, ...] = (0.0, 1e-3, 1e-2)
    seed: int = 0
    device: str | None = None


DR_PRESETS = PresetTable(
    DRConfig,
    smoke=DRConfig(image_size=64, input_size=64, width=0.125, n_train=48, n_val=24, n_test=24,
                   batch_size=8, iterations=30, checkpoint_every=10, candidate_distance=2,
                   rf_trees=20, rf_depth=4, nu=1e-3, table_nus=(0.0, 1e-3)),
    demo=DRConfig(nu=1e-3),
    paper=DRConfig(net="net_b", image_size=512, input_size=448, width=1.0, n_train=35126,
                   n_val=3000, n_test=3000, batch_size=36, iterations=350_000, lr=1e-4,
                   nu=1e-3, checkpoint_every=4000, candidate_distance=8, rf_trees=500,
                   rf_depth=25, table_nus=(0.0, 1e-4, 1e-3, 1e-2)),
)


def dr_config(preset: str = "demo", /, **overrides: object) -> DRConfig:
    """The ``preset`` configuration with ``overrides`` (``None`` keeps the preset's value)."""
    return DR_PRESETS.build(preset, **overrides)


# --------------------------------------------------------------------------- data

_IDENTITY = AugmentationParams(rotation_deg=0.0, translation=(0.0, 0.0), scale=1.0, flip=False,
                               contrast=1.0)


@dataclass(frozen=True)
class DRSplit:
    """One split: network-ready images and their ground truth.

    Attributes:
        images: ``(N, 3, S, S)`` float32 (preprocessed when the config says so).
        raw: ``(N, 3, S, S)`` float32 photographs on the same grid, before the background
            subtraction (for display).
        grades: ``(N,)`` int64 grades 0–4; ``referable`` is grade ≥ 2.
        masks: ``(N, 4, S, S)`` bool lesion masks in :data:`LESION_TYPES` order.
        fov: ``(N, S, S)`` bool field of view (eroded when preprocessed).
    """

    images: torch.Tensor
    raw: torch.Tensor
    grades: torch.Tensor
    masks: torch.Tensor
    fov: torch.Tensor

    @property
    def referable(self) -> torch.Tensor:
        return self.grades >= 2

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: Sequence[int] | torch.Tensor) -> DRSplit:
        """The cases at ``index``."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return DRSplit(self.images[idx], self.raw[idx], self.grades[idx], self.masks[idx],
                       self.fov[idx])


@dataclass(frozen=True)
class DRData:
    """Train, validation and test splits."""

    train: DRSplit
    val: DRSplit
    test: DRSplit


def preprocess_images(
    images: torch.Tensor, masks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Graham preprocessing (5.1.1) of ``(N, 3, S, S)`` images at their own width.

    The field of view is rescaled to the full width, so the photographs and the lesion
    masks ``(N, K, S, S)`` are resampled the same way and stay aligned. Returns the
    preprocessed images, the resampled photographs (for display), the resampled masks
    and the eroded field-of-view masks ``(N, S, S)``.
    """
    if images.ndim != 4 or images.shape[1] != 3 or masks.shape[0] != images.shape[0]:
        raise InvalidInputError(
            f"images must be (N, 3, S, S) with (N, K, S, S) masks, got {tuple(images.shape)} "
            f"and {tuple(masks.shape)}"
        )
    size = int(images.shape[-1])
    out, fovs = torch.empty_like(images), torch.empty(images.shape[0], size, size, dtype=torch.bool)
    new_masks = torch.empty(masks.shape[0], masks.shape[1], size, size, dtype=torch.bool)
    photos = torch.empty_like(images)
    for i, img in enumerate(images):
        pre = preprocess_fundus(img.permute(1, 2, 0).numpy(), target_width=size)
        out[i] = torch.from_numpy(pre.image).permute(2, 0, 1)
        fovs[i] = torch.from_numpy(pre.fov)
        new_masks[i] = torch.from_numpy(preprocess_mask(masks[i].numpy(), pre))
        photos[i] = torch.from_numpy(resample_like(img.numpy(), pre)).clamp(0, 1)
    return out, photos, new_masks, fovs


def preprocess_real_image(image: np.ndarray, config: DRConfig) -> torch.Tensor:
    """A real fundus photograph ``(H, W, 3)`` as a network-ready ``(1, 3, S, S)`` tensor.

    Graham preprocessing (5.1.1) at ``config.image_size``, then resized to the input size.
    """
    pre = preprocess_fundus(image, target_width=config.image_size).image
    x = torch.from_numpy(pre).permute(2, 0, 1)
    if config.input_size != config.image_size:
        x = augment_image(x, _IDENTITY, output_size=config.input_size, neutral=0.5)
    return x[None].float()


def _make_eye_pairs(n: int, size: int, seed: int) -> tuple[torch.Tensor, ...]:
    """``n`` cases as eye pairs: cases ``2k`` and ``2k + 1`` are the left and right eyes of
    patient ``k``; the right eye's grade is the left one's ± 1 at most (clipped to 0–4), as
    both eyes of a diabetic patient progress together (the contralateral-eye features of 5.6).
    """
    rng = np.random.default_rng(seed)
    seeds = np.random.SeedSequence(seed).spawn(n)
    grades: list[int] = []
    for k in range(n):
        if k % 2 == 0:
            grades.append(int(rng.integers(0, 5)))
        else:
            grades.append(int(np.clip(grades[-1] + rng.choice([-1, 0, 0, 1]), 0, 4)))
    cases = [make_fundus_case(np.random.default_rng(s), size, g) for s, g in zip(seeds, grades)]
    images = torch.from_numpy(np.stack([c.image.transpose(2, 0, 1) for c in cases]))
    masks = torch.from_numpy(np.stack([c.mask_stack() for c in cases]))
    fov = torch.from_numpy(np.stack([c.fov for c in cases]))
    return images, torch.tensor([c.grade for c in cases]), masks, fov


def make_dr_data(config: DRConfig) -> DRData:
    """Synthetic train/val/test splits of ``config`` (disjoint seeds, grades 0–4 uniform).

    Cases come in eye pairs (see :func:`contralateral_index`); the images are
    Graham-preprocessed (5.1.1) when ``config.preprocess``.
    """
    splits = []
    for offset, n in enumerate((config.n_train, config.n_val, config.n_test)):
        if n < 4 or n % 2:
            raise ConfigError(f"split sizes must be even and >= 4 (eye pairs), got {n}")
        raw, grades, masks, fov = _make_eye_pairs(n, config.image_size, config.seed * 1000 + offset)
        if config.preprocess:
            images, raw, masks, fov = preprocess_images(raw, masks)
        else:
            images = raw
        splits.append(DRSplit(images, raw, grades, masks, fov))
    return DRData(*splits)


def contralateral_index(n: int) -> torch.Tensor:
    """Index of the other eye of each case in a split of eye pairs (``2k`` ↔ ``2k + 1``)."""
    return torch.arange(n) ^ 1


def fit_input_size(split: DRSplit, input_size: int) -> DRSplit:
    """Resize a split to the network input size (identity when it already fits)."""
    if split.images.shape[-1] == input_size:
        return split

    def resize(x: torch.Tensor, neutral: float) -> torch.Tensor:
        return torch.stack([augment_image(im, _IDENTITY, output_size=input_size, neutral=neutral)
                            for im in x])

    masks = torch.stack([augment_mask(m, _IDENTITY, output_size=input_size) for m in split.masks])
    fov = augment_mask(split.fov, _IDENTITY, output_size=input_size)
    return DRSplit(resize(split.images, 0.5), resize(split.raw, 0.0), split.grades, masks.bool(),
                   fov.bool())


# --------------------------------------------------------------------------- training


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
    return torch.stack([
        augment_image(img, sample_augmentation(rng), output_size=input_size, neutral=0.5)
        for img in images
    ])


def train_dr(
    config: DRConfig,
    data: DRData,
    *,
    progress: ProgressCallback | None = None,
) -> DRTraining:
    """Train the DR network of ``config`` on ``data.train`` (Quellec 2017, 4.3 and 5.1.3).

    Each iteration draws a batch without replacement within an epoch, augments it
    (5.1.1), and minimises L = L_L + ν‖∂L_L/∂m‖₁ (eq. 6; plain MSE when ν = 0) with Adam.
    Every ``checkpoint_every`` iterations the parameters are stored with their
    validation image AUC and lesion FROC areas; the best-AUC checkpoint is loaded at
    the end (:func:`wslbench.training.fit`). ``progress`` may raise
    :class:`~wslbench.progress.StopRequested` (the widgets' cancel button): the best
    checkpoint so far is loaded and the result is marked ``interrupted`` (never cached).
    """
    if config.iterations < 1 or config.checkpoint_every < 1 or config.batch_size < 1:
        raise ConfigError("iterations, checkpoint_every and batch_size must be >= 1")
    if config.nu < 0:
        raise ConfigError(f"nu must be >= 0, got {config.nu}")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    model = build_dr_net(config.net, input_size=config.input_size, width=config.width).to(device)
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
                                              criterion=config.criterion, q=config.q)
        return StepOutput(total, {"L_L": float(parts["L_L"]), "L_0": float(parts["L_0"])})

    fitted = fit(model, step, batches, epochs=1, optimiser=optimiser,
                 validate=lambda: evaluate_dr(model, val, config).summary(),
                 validate_every=config.checkpoint_every, select="image_auc", ties="latest",
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
    one; they load with :func:`wslbench.training.load_checkpoint` (``weights_only=True``).
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


# --------------------------------------------------------------------------- heatmaps


#: Heatmap name → (attribution registry name, keyword arguments) for the DR nets.
HEATMAP_METHODS: dict[str, tuple[str, dict[str, object]]] = {
    "omega": ("sensitivity", {}),
    "pi": ("hue-constrained", {}),
    "lrp": ("lrp", {"rule": "epsilon", "epsilon": 1e-2}),
    "grad-cam": ("grad-cam", {}),
}


def dr_heatmaps(
    model: DRNet,
    images: torch.Tensor,
    method: str = "pi",
    *,
    q: float = 1.0,
    batch_size: int = 32,
) -> torch.Tensor:
    """Raw heatmaps ``(N, 1, S, S)`` of ``images`` (Quellec 2017, section 3 and Fig. 4).

    Args:
        model: a trained DR network.
        images: ``(N, 3, S, S)`` network-ready images.
        method: ``"omega"`` (eq. 2), ``"pi"`` (eq. 3), ``"lrp"`` (ε rule) or
            ``"grad-cam"`` (on the last convolutional feature map).
        q: colour-channel norm of ω.
        batch_size: images per backward pass.
    """
    if method not in HEATMAP_METHODS:
        raise ConfigError(
            f"unknown heatmap method {method!r}; expected one of: {', '.join(HEATMAP_METHODS)}"
        )
    name, kwargs = HEATMAP_METHODS[method]
    kwargs = dict(kwargs)
    if method == "omega":
        kwargs["q"] = q
    if method == "grad-cam":
        kwargs["layer"] = model.layers[model.feature_index]
    explainer = create_attribution(name, model, **kwargs)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        maps = [explainer.attribute(images[i:i + batch_size].to(device)).cpu()
                for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(maps)


def lesion_candidates(
    heatmaps: torch.Tensor, fov: torch.Tensor, *, min_distance: int, sigma: float = 0.0
) -> list[np.ndarray]:
    """Local maxima of each heatmap inside its field of view: ``(K, 3)`` rows (row, col, score).

    The map is first smoothed by a Gaussian of ``sigma`` px (0: none), so that one lesion
    gives one maximum rather than a cluster of pixel-level gradient peaks.
    """
    if heatmaps.ndim != 4 or heatmaps.shape[1] != 1 or fov.shape != heatmaps[:, 0].shape:
        raise InvalidInputError(
            f"heatmaps must be (N, 1, S, S) and fov (N, S, S), got {tuple(heatmaps.shape)} "
            f"and {tuple(fov.shape)}"
        )
    maps = heatmaps[:, 0].double().numpy()
    if sigma > 0:
        maps = ndi.gaussian_filter(maps, sigma=(0, sigma, sigma))
    maps = np.where(fov.numpy(), maps, 0.0)
    return [extract_candidates(m, min_distance=min_distance, threshold=0.0) for m in maps]


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class DREvaluation:
    """Image- and lesion-level performance (Quellec 2017, 5.5).

    Attributes:
        scores: ``(N,)`` regression outputs; ``labels``: referable (grade ≥ 2).
        image_auc, auc_ci: ROC area and its DeLong 95 % interval.
        froc_areas: lesion type → limited FROC area, plus ``"mean"`` (Ā_z).
        froc_curves: lesion type → (FP per image, sensitivity).
        roc_curve: (false-positive rate, true-positive rate).
    """

    scores: np.ndarray
    labels: np.ndarray
    image_auc: float
    auc_ci: tuple[float, float]
    froc_areas: dict[str, float]
    froc_curves: dict[str, tuple[np.ndarray, np.ndarray]]
    roc_curve: tuple[np.ndarray, np.ndarray]

    def summary(self) -> dict[str, float]:
        """Flat numbers: ``image_auc``, ``auc_low``, ``auc_high``, ``froc_<type>``, ``froc_mean``."""
        out = {"image_auc": self.image_auc, "auc_low": self.auc_ci[0], "auc_high": self.auc_ci[1]}
        out.update({f"froc_{k}": v for k, v in self.froc_areas.items()})
        return out


@torch.no_grad()
def predict_scores(model: DRNet, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Regression outputs ``(N,)`` of ``model`` on ``images`` (no gradients)."""
    device = next(model.parameters()).device
    return torch.cat([model(images[i:i + batch_size].to(device)).cpu()
                      for i in range(0, images.shape[0], batch_size)]).numpy()


def evaluate_dr(
    model: DRNet,
    split: DRSplit,
    config: DRConfig,
    *,
    method: str | None = None,
    heatmaps: torch.Tensor | None = None,
) -> DREvaluation:
    """Image-level ROC + DeLong CI and lesion-level FROC of ``model`` on ``split``.

    Args:
        model: the network (its train/eval mode is kept).
        split: cases with grades, lesion masks and fields of view.
        config: supplies ``candidate_distance``, ``max_fp``, ``criterion`` and ``q``.
        method: heatmap method for the lesion candidates (default: the training criterion).
        heatmaps: precomputed ``(N, 1, S, S)`` heatmaps (skips their computation).
    """
    split = fit_input_size(split, config.input_size)
    was_training = model.training
    model.eval()
    try:
        scores = predict_scores(model, split.images)
        if heatmaps is None:
            heatmaps = dr_heatmaps(model, split.images, method or config.criterion, q=config.q)
    finally:
        model.train(was_training)
    labels = split.referable.numpy().astype(int)
    if labels.min() == labels.max() or min(labels.sum(), (1 - labels).sum()) < 2:
        raise InvalidInputError("the split needs at least 2 referable and 2 non-referable cases")
    auc, low, high, _ = delong_ci(scores, labels)
    fpr, tpr, _ = compute_roc_curve(scores, labels)
    candidates = lesion_candidates(heatmaps, split.fov, min_distance=config.candidate_distance,
                                   sigma=config.candidate_sigma)
    masks = {kind: [m.numpy() for m in split.masks[:, t]] for t, kind in enumerate(LESION_TYPES)}
    present = {k: v for k, v in masks.items() if any(m.any() for m in v)}
    areas = compute_froc_areas(candidates, present, max_fp=config.max_fp)
    curves = {}
    for kind, kind_masks in present.items():
        fp, sens, _ = compute_froc(candidates, kind_masks)
        curves[kind] = (np.asarray(fp), np.asarray(sens))
    return DREvaluation(scores, labels, float(auc), (float(low), float(high)), areas, curves,
                        (np.asarray(fpr), np.asarray(tpr)))


def nu_table(
    config: DRConfig,
    data: DRData,
    nus: Sequence[float] = (0.0, 1e-4, 1e-3, 1e-2),
    *,
    progress: ProgressCallback | None = None,
) -> list[dict[str, float]]:
    """Table 2 of Quellec 2017: image AUC and mean lesion FROC area on the test split per ν.

    Returns one row per ν: ``{"nu", "image_auc", "froc_mean", "pi_l1"}``
    where ``pi_l1`` is the mean L1 norm of the test heatmaps (the quantity eq. 6 shrinks).
    """
    rows = []
    total = len(nus) * config.iterations
    for k, nu in enumerate(nus):
        def step(i: int, _n: int, logs: Mapping[str, float], k: int = k, nu: float = nu) -> None:
            report(progress, k * config.iterations + i, total, {"nu": nu, **logs})

        run = train_dr_cached(replace(config, nu=float(nu)), data, progress=step)
        stop_if_interrupted(run, f"training nu = {nu:g}")
        test = fit_input_size(data.test, config.input_size)
        maps = dr_heatmaps(run.model, test.images, config.criterion, q=config.q)
        ev = evaluate_dr(run.model, test, config, heatmaps=maps)
        rows.append({"nu": float(nu), "image_auc": ev.image_auc,
                     "froc_mean": ev.froc_areas["mean"],
                     "pi_l1": float(maps.flatten(1).sum(1).mean())})
    return rows



# --------------------------------------------------------------------------- comparison and widgets


def compare_heatmaps(
    entries: Mapping[str, tuple[DRNet, torch.Tensor]],
    split: DRSplit,
    config: DRConfig,
    *,
    steps: int = 10,
) -> list[dict[str, float | str]]:
    """One row per heatmap (Fig. 4 as numbers): localisation and faithfulness.

    Args:
        entries: name → (the model the map explains, its ``(N, 1, S, S)`` maps of ``split``).
        split: the cases the maps were computed on.
        config: supplies the candidate and FROC settings.
        steps: deletion/insertion steps.

    Columns: ``pointing_game`` (share of lesion-bearing cases whose heatmap maximum lies
    on a lesion), ``energy_in_mask`` (share of positive heatmap mass on lesions, mean over
    those cases), ``froc_mean`` (Ā_z of the candidates the map yields), and the areas
    under the deletion and insertion curves of the referable cases' scores (pixels
    replaced by / restored from their image's mean, most important first; lower deletion
    and higher insertion area mean a more faithful map).
    """
    from wslbench.metrics import deletion_curve, energy_in_mask, insertion_curve, pointing_game

    split = fit_input_size(split, config.input_size)
    truth = split.masks.any(dim=1)
    has = truth.flatten(1).any(1)
    if not has.any():
        raise InvalidInputError("no case of the split carries a lesion; nothing to localise")
    referable = split.referable
    rows: list[dict[str, float | str]] = []
    masks = {kind: [m.numpy() for m in split.masks[:, t]] for t, kind in enumerate(LESION_TYPES)}
    present = {k: v for k, v in masks.items() if any(m.any() for m in v)}
    for name, (model, m) in entries.items():
        if m.shape != (len(split), 1, *split.images.shape[2:]):
            raise InvalidInputError(
                f"maps of {name!r} have shape {tuple(m.shape)}, expected "
                f"{(len(split), 1, *split.images.shape[2:])}"
            )
        inside = torch.where(split.fov[:, None], m, torch.zeros(()))
        candidates = lesion_candidates(m, split.fov, min_distance=config.candidate_distance,
                                       sigma=config.candidate_sigma)
        was_training = model.training
        model.eval()
        try:
            x, maps = split.images[referable], inside[referable]
            deletion = deletion_curve(model, x, maps, steps=steps, baseline="mean")
            insertion = insertion_curve(model, x, maps, steps=steps, baseline="mean")
        finally:
            model.train(was_training)
        rows.append({
            "heatmap": name,
            "pointing_game": float(pointing_game(inside[has], truth[has]).float().mean()),
            "energy_in_mask": float(energy_in_mask(inside[has], truth[has]).mean()),
            "froc_mean": compute_froc_areas(candidates, present, max_fp=config.max_fp)["mean"],
            "deletion_auc": float(deletion.auc.mean()),
            "insertion_auc": float(insertion.auc.mean()),
        })
    return rows


# --------------------------------------------------------------------------- models for the dashboard


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


__all__ += ["referable_calibration", "model_metrics", "save_model"]
