"""Training CNNCS / ECNNCS-1 / ECNNCS-2 (eq. 3, 5–9) and the density baseline, and the comparisons that train them (Table 2)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from wslbench.checkpoint import load_state_dict
from wslbench.cs.codec import ProjectionCodec
from wslbench.cs.decode import decode
from wslbench.data.cell_loaders import load_cell_folder
from wslbench.data.cell_patches import merge_tile_detections, tile_image
from wslbench.data.real_images import load_skimage_cell, load_skimage_ihc
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.cache import ExperimentCache
from wslbench.experiments.cnncs.config import CNNCSConfig, _device
from wslbench.experiments.cnncs.data import CellData
from wslbench.experiments.cnncs.evaluate import (
    ImageCodes,
    ImageDetections,
    RealDetection,
    _as_chw,
    _crop,
    detect_cells,
    evaluate_density_baseline,
    evaluate_detections,
    evaluate_local_maxima,
    predict_codes,
    train_density_baseline,
)
from wslbench.losses.cs import cnncs_loss
from wslbench.models.catalogue import create_model
from wslbench.models.cnncs import CNNCS, CNNCS_VARIANTS
from wslbench.progress import ProgressCallback, report, stop_if_interrupted
from wslbench.seeding import seed_everything
from wslbench.training.loop import StepOutput, fit

__all__ = ["build_codec", "build_cnncs", "load_backbone", "CNNCSTraining", "train_cnncs", "train_cnncs_cached", "evaluate_cnncs", "compare_variants", "detect_in_image", "evaluate_cnncs_images", "real_image_detections", "image_codes", "decode_image_codes"]


def build_codec(config: CNNCSConfig) -> ProjectionCodec:
    """The random-projection codec of the config's patch size, L, m, β and seed (3.1)."""
    return ProjectionCodec(height=config.patch_size, width=config.patch_size,
                           n_lines=config.n_lines, code_length=config.m,
                           count_weight=config.beta, seed=config.seed, bin_size=config.bin_size,
                           encoding=config.encoding)


def load_backbone(model: CNNCS, path: str) -> None:
    """Load a local state dict into the ResNet backbone of ``model`` (4.1's pretrained ResNet).

    Raises:
        DataNotFoundError, DataFormatError, UnsafeFileError: the file is missing, unreadable
            or not a state dict of tensors.
        ConfigError: its names or shapes do not match the config's backbone.
    """
    state = load_state_dict(path)
    state = {k.removeprefix("regressor.").removeprefix("backbone."): v for k, v in state.items()
             if not k.removeprefix("regressor.").startswith("fc.")}
    try:
        model.regressor.backbone.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"{path} does not match the backbone of this config (depth, base_width, "
                          f"output_stride): {exc}") from exc


def build_cnncs(config: CNNCSConfig) -> CNNCS:
    """An untrained detector of the config's variant."""
    return create_model(config.variant, codec=build_codec(config), lam=config.lam,
                        solver=config.solver, solver_iterations=config.solver_iterations,
                        lista_iterations=config.lista_iterations, rule=config.rule,
                        depth=config.depth, base_width=config.base_width,
                        output_stride=config.output_stride, head_grid=config.head_grid)


@dataclass
class CNNCSTraining:
    """A trained detector with its per-epoch history (loss terms) and training time
    (``interrupted``: cancelled through ``progress``; shown, never cached)."""

    model: CNNCS
    config: CNNCSConfig
    history: list[dict[str, float]]
    seconds: float
    interrupted: bool = False


def train_cnncs(
    config: CNNCSConfig, data: CellData, *, progress: ProgressCallback | None = None
) -> CNNCSTraining:
    """Train one variant with Adam on eq. 3 (α = 0 for CNNCS), minibatches of training patches,
    through :func:`wslbench.training.fit` (a cancel returns the model so far, ``interrupted``)."""
    seed_everything(config.seed)
    device = _device(config)
    model = build_cnncs(config)
    if config.pretrained_weights is not None:
        load_backbone(model, config.pretrained_weights)
    model = model.to(device)
    model.set_code_scale(data.train_centroids)
    recovery = [p for name, p in model.named_parameters() if not name.startswith("regressor.")]
    regressor = model.regressor.parameters()
    if config.train_last_layer_only:
        model.regressor.backbone.requires_grad_(False)
        regressor = model.regressor.fc.parameters()
    optimiser = torch.optim.Adam([
        {"params": regressor},
        {"params": recovery, "lr": config.recovery_lr, "weight_decay": 0.0},
    ], lr=config.lr, weight_decay=config.weight_decay)
    n = len(data.train_patches)
    batches_per_epoch = max(1, -(-n // config.batch_size))
    if config.warmup_epochs > config.epochs:
        raise ConfigError(f"warmup_epochs {config.warmup_epochs} exceeds epochs {config.epochs}; "
                          "expected warmup_epochs <= epochs")
    generator = torch.Generator().manual_seed(config.seed)

    def batches(epoch: int):
        # L2-only warm-up epochs before eq. 3's sparse term (end-to-end variants)
        alpha = config.alpha if model.end_to_end and epoch > config.warmup_epochs else 0.0
        order = torch.randperm(n, generator=generator)
        for b in range(batches_per_epoch):
            yield alpha, order[b * config.batch_size:(b + 1) * config.batch_size]

    def step(batch: tuple[float, torch.Tensor]) -> StepOutput:
        alpha, idx = batch
        x = data.train_patches[idx].to(device)
        code, sparse = model.targets([data.train_centroids[int(i)] for i in idx])
        out = model(x, recover=alpha > 0)
        l2 = cnncs_loss(out.code, code)
        loss = cnncs_loss(out.code, code, out.sparse, sparse, alpha=alpha)
        l1 = (float(loss.detach()) - float(l2.detach())) / alpha if alpha else 0.0
        return StepOutput(loss, {"l2": float(l2.detach()), "l1": l1})

    fitted = fit(model, step, batches, epochs=config.epochs, optimiser=optimiser, progress=progress,
                 steps_per_epoch=batches_per_epoch)
    history = [{"epoch": r["epoch"], "loss": r["train_loss"], "l2": r["l2"], "l1": r["l1"]}
               for r in fitted.history]
    return CNNCSTraining(model, config, history, fitted.seconds, fitted.interrupted)


_TRAININGS = ExperimentCache("cnncs trainings")


_DETECTION_FIELDS = ("threshold", "bandwidth", "rho", "peak_radius")


def _training_key(config: CNNCSConfig) -> CNNCSConfig:
    """The config with the decoding/evaluation fields reset: changing them never retrains."""
    defaults = CNNCSConfig()
    return replace(config, **{name: getattr(defaults, name) for name in _DETECTION_FIELDS})


def train_cnncs_cached(
    config: CNNCSConfig, data: CellData, *, progress: ProgressCallback | None = None
) -> CNNCSTraining:
    """:func:`train_cnncs` memoised on the training fields of ``config`` and on ``data``."""
    return _TRAININGS.get_or_compute(_training_key(config), data,
                                     lambda: train_cnncs(config, data, progress=progress))


def evaluate_cnncs(run: CNNCSTraining, data: CellData, **overrides: float) -> dict[str, float]:
    """P/R/F1 of a trained detector on the test patches, a diagnostic (the paper's numbers are
    on whole images: :func:`evaluate_cnncs_images`); ``threshold``, ``bandwidth``, ``lam``
    default to the run's config."""
    c = run.config
    decoded = detect_cells(run.model, predict_codes(run.model, data.test_patches),
                           lam=overrides.get("lam", c.lam),
                           threshold=overrides.get("threshold", c.threshold),
                           bandwidth=overrides.get("bandwidth", c.bandwidth), peak_radius=c.peak_radius)
    return evaluate_detections(decoded.centres, data.test_centroids, data.rho)


def compare_variants(
    config: CNNCSConfig,
    data: CellData,
    *,
    variants: Sequence[str] = CNNCS_VARIANTS,
    progress: ProgressCallback | None = None,
) -> list[dict[str, object]]:
    """Table 2: P/R/F1 on the whole test images (4.2) of each variant, the density-map baseline
    and the local-maximum floor; ``patch_f1`` is the variants' F1 on the test patches, a
    diagnostic only."""
    steps = len(variants) + 1
    rows: list[dict[str, object]] = []
    for k, variant in enumerate(variants):
        def step(i: int, n: int, logs: Mapping[str, float], k: int = k) -> None:
            report(progress, k * n + i, steps * n, logs)

        run = train_cnncs_cached(replace(config, variant=variant), data, progress=step)
        stop_if_interrupted(run, f"training {variant}")
        rows.append({"method": variant.upper().replace("ECNNCS", "ECNNCS-"),
                     **evaluate_cnncs_images(run, data),
                     "patch_f1": evaluate_cnncs(run, data)["f1"], "train_s": run.seconds})

    def density_step(i: int, n: int, logs: Mapping[str, float]) -> None:
        report(progress, (steps - 1) * n + i, steps * n, logs)

    started = time.perf_counter()
    density = train_density_baseline(config, data, progress=density_step)
    rows.append({"method": "density map", **evaluate_density_baseline(density, data),
                 "train_s": time.perf_counter() - started})
    rows.append({"method": "local maxima", **evaluate_local_maxima(config, data), "train_s": 0.0})
    return rows


def _image_tiles(run: CNNCSTraining, image: object,
                 bandwidth: float | None) -> tuple[np.ndarray, np.ndarray, float, tuple[int, int]]:
    """Patch-size tiles of a whole image overlapping by twice the bandwidth, their origins,
    the bandwidth used and the image's (height, width)."""
    c = run.config
    arr = _as_chw(image)
    if min(arr.shape[1:]) < c.patch_size:
        raise InvalidInputError(
            f"image is {arr.shape[1]}×{arr.shape[2]} px; expected at least the model's patch size "
            f"{c.patch_size}×{c.patch_size}"
        )
    bw = c.bandwidth if bandwidth is None else float(bandwidth)
    tiles, origins = tile_image(arr, size=c.patch_size, overlap=min(c.patch_size // 2, int(round(2 * bw))))
    return tiles, origins, bw, (int(arr.shape[1]), int(arr.shape[2]))


def detect_in_image(
    run: CNNCSTraining,
    image: object,
    *,
    lam: float | None = None,
    threshold: float | None = None,
    bandwidth: float | None = None,
) -> np.ndarray:
    """Cell centres ``(k, 2)`` (row, col) of a whole image of any size ≥ the patch size
    (4.2–4.3 on whole test images): tiles overlapping by twice the bandwidth, each decoded
    by mean-shift (Fig. 6), detections merged back best supported first (closer than
    ``bandwidth``: one cell)."""
    codes = image_codes(run, image, lam=lam, bandwidth=bandwidth)
    return decode_image_codes(run, codes, threshold=threshold).centres


def evaluate_cnncs_images(run: CNNCSTraining, data: CellData, **overrides: float) -> dict[str, float]:
    """P/R/F1 at ρ over the whole test images (4.2), through :func:`detect_in_image`
    (``threshold``, ``bandwidth``, ``lam`` default to the run's config)."""
    c = run.config
    found = [detect_in_image(run, image, lam=overrides.get("lam", c.lam),
                             threshold=overrides.get("threshold", c.threshold),
                             bandwidth=overrides.get("bandwidth", c.bandwidth))
             for image in data.test_images]
    return evaluate_detections(found, data.test_image_centroids, data.rho)


def real_image_detections(
    run: CNNCSTraining,
    config: CNNCSConfig,
    *,
    data_dir: str | None = None,
    style: str = "amida13",
    n_images: int = 2,
    crop: int = 256,
) -> list[RealDetection]:
    """Qualitative detections on real images: the first ``n_images`` of a user's ICPR 2012 /
    MITOS-ATYPIA-14 / AMIDA13 folder (centre crops, with their annotations), or, without
    ``data_dir``, scikit-image's immunohistochemistry and phase-contrast ``cell`` images
    (no annotations; the latter halved so its cells are nearer the training size)."""
    from skimage.transform import rescale

    crop = max(crop, config.patch_size)
    items: list[tuple[np.ndarray, np.ndarray | None, str]] = []
    if data_dir is not None:
        folder = load_cell_folder(data_dir, style=style)
        for i in range(min(n_images, len(folder))):
            image = np.moveaxis(folder.image(i), 0, -1)
            part, (top, left) = _crop(image, crop)
            truth = folder.centroids[i] - np.array([top, left], dtype=float)
            inside = ((truth >= 0) & (truth < np.array(part.shape[:2]))).all(1)
            items.append((part, truth[inside], folder.names[i]))
    else:
        items.append((_crop(load_skimage_ihc(), crop)[0], None, "skimage immunohistochemistry"))
        cell = rescale(load_skimage_cell(), 0.5, channel_axis=-1, anti_aliasing=True).astype(np.float32)
        items.append((_crop(cell, crop)[0], None, "skimage cell (×0.5)"))
    out = []
    for image, truth, name in items:
        centres = detect_in_image(run, image)
        out.append(RealDetection(image, truth, centres, f"{name}: {len(centres)} detected"
                                 + ("" if truth is None else f" / {len(truth)} annotated")))
    return out


def image_codes(
    run: CNNCSTraining, image: object, *, lam: float | None = None, bandwidth: float | None = None
) -> ImageCodes:
    """Tile a whole image as :func:`detect_in_image` does, run the CNN once and recover â."""
    c = run.config
    tiles, origins, bw, shape = _image_tiles(run, image, bandwidth)
    dense = predict_codes(run.model, torch.as_tensor(tiles))
    device = run.model.dictionary.device
    with torch.no_grad():
        sparse = torch.cat([run.model.recover(dense[i:i + 256].to(device), lam=c.lam if lam is None else lam).cpu()
                            for i in range(0, len(dense), 256)])
    return ImageCodes(dense, sparse, origins, shape, bw)


def decode_image_codes(
    run: CNNCSTraining, codes: ImageCodes, *, threshold: float | None = None
) -> ImageDetections:
    """Decode cached :class:`ImageCodes` at ``threshold`` (default the run's): the same centres
    as :func:`detect_in_image` with the same settings, plus each centre's support."""
    t = run.config.threshold if threshold is None else float(threshold)
    decoded = decode(run.model.codec, codes.sparse, threshold=t, bandwidth=codes.bandwidth,
                     peak_radius=run.config.peak_radius)
    points, support = merge_tile_detections(decoded.centres, codes.origins, min_distance=codes.bandwidth,
                                            scores=[np.asarray(s, float) for s in decoded.support])
    candidates = [np.asarray(p, float).reshape(-1, 2) + o for p, o in zip(decoded.candidates, codes.origins)]
    return ImageDetections(points, support, np.concatenate(candidates) if candidates else np.zeros((0, 2)), t)
