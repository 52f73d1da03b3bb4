"""Cell detection by CNN + compressed sensing, end to end (Xue et al.): what notebook 04 calls.

Pipeline (3.1–3.2, 4.1–4.3): synthetic microscopy images with mitosis-like
targets among look-alike nuclei → non-overlapping patches and their three 90°
rotations (4.3) → the label ``{x, β·c}`` of each patch by random projections →
a ResNet regressing it → sparse recovery (LISTA / any solver with the custom
backward) → per-line peaks, back-projection and mean-shift → cell centres →
precision, recall and F1 at distance ρ (4.2), pooled over the test patches.
Baselines: the FCRN-style density-map network (Gaussian dots of 100, σ = 1,
peaks as detections) and local maxima of a smoothed darkness map.

Hyper-parameters of 4.3 (ICPR 2012): m = 112, L = 27, β = 0.20, λ = 0.39,
α = 1.3, mean-shift bandwidth 40 on 260 px patches; they are the ``paper``
preset. The synthetic images are at most 512 px, so the ``paper`` preset cuts
256 px patches (4 per image) from 560 training images: 8,960 patches with the
rotations, as in 4.3. The ``smoke``/``demo`` presets shrink patches, codes and
the ResNet so that the three variants train in minutes on a CPU.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from wslbench.cs.codec import ProjectionCodec
from wslbench.cs.decode import Decoded, decode
from wslbench.cs.solvers import LISTA, create_solver, list_solvers
from wslbench.data.cell_loaders import load_cell_folder
from wslbench.data.cell_patches import extract_cell_patches, merge_tile_detections, tile_image
from wslbench.data.real_images import load_skimage_cell, load_skimage_ihc
from wslbench.data.synthetic_cells import CellImageConfig, make_cell_dataset
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.cache import ExperimentCache
from wslbench.losses.cs import cnncs_loss
from wslbench.metrics.detection import best_f1_threshold, compute_detection_scores
from wslbench.metrics.froc import extract_candidates_batch
from wslbench.models.catalogue import create_model
from wslbench.models.cnncs import CNNCS, CNNCS_VARIANTS
from wslbench.models.density import DensityNet, detect_peaks
from wslbench.models.local_maxima import LocalMaximaDetector
from wslbench.presets import PresetTable
from wslbench.progress import ProgressCallback, report, stop_if_interrupted
from wslbench.seeding import seed_everything
from wslbench.training.density_training import train_density_net
from wslbench.training.loop import StepOutput, fit

__all__ = [
    "CNNCSConfig",
    "CNNCS_PRESETS",
    "cnncs_config",
    "CellData",
    "make_cell_data",
    "build_codec",
    "build_cnncs",
    "CNNCSTraining",
    "train_cnncs",
    "train_cnncs_cached",
    "predict_codes",
    "detect_cells",
    "evaluate_detections",
    "evaluate_cnncs",
    "compare_variants",
    "train_density_baseline",
    "evaluate_density_baseline",
    "evaluate_local_maxima",
    "solver_comparison",
    "detect_in_image",
    "RealDetection",
    "real_image_detections",
    "save_model",
    "ImageCodes",
    "ImageDetections",
    "image_codes",
    "decode_image_codes",
]


@dataclass(frozen=True)
class CNNCSConfig:
    """Hyper-parameters of the CNNCS experiment (Xue et al., 3–4).

    Attributes:
        image_size, n_train_images, n_test_images: the synthetic microscopy images.
        target_mean, clutter_density: mean number of mitosis-like targets per image and
            density of the look-alike nuclei (:class:`~wslbench.data.synthetic_cells.CellImageConfig`).
        patch_size: side of the training patches (260 in 4.3).
        rotations: add the three 90° rotations of every training patch (4.3).
        m, n_lines, beta: code length m, observation lines L and count weight β (3.1, 4.1).
        bin_size: width of the position bins in pixels (1 in the paper; coarser bins give
            the small presets a code a small CNN learns in minutes).
        lam: λ of the recovery problem eq. 4.
        alpha: α of the L1 term of eq. 3 (end-to-end variants).
        threshold: peak threshold on the recovered â (per line).
        bandwidth: mean-shift bandwidth in pixels.
        rho: matching distance of 4.2; ``None`` takes the radius of the smallest target.
        variant: ``"cnncs"``, ``"ecnncs1"`` or ``"ecnncs2"`` (4.1).
        solver, solver_iterations: recovery of ``cnncs`` / ``ecnncs2`` (any registered solver).
        lista_iterations: T of the ECNNCS-1 LISTA.
        rule: backward of ECNNCS-2: ``"approx"`` (eq. 8–9) or ``"exact"`` (eq. 5–7).
        depth, base_width, output_stride, head_grid: the ResNet regressor (152/64 in 4.1).
        epochs, batch_size, lr, weight_decay: Adam training of the regressor.
        recovery_lr: Adam learning rate of the reconstruction layer's parameters (LISTA's W
            and S, ECNNCS-2's D). They get gradients from the L1 term only, which Adam
            normalises whatever α is: at the CNN's rate they reach "â = 0", the cheapest way
            to remove false positives, within an epoch.
        warmup_epochs: epochs of the end-to-end variants trained on the L2 term only before
            the L1 term of eq. 3 is switched on (the paper does not say how training starts;
            from a random CNN the recovered â has no true support yet, and the L1 term,
            whose gradient lives on the support of â (eq. 5–9), can only shrink false
            positives: alone it drives the codes to zero).
        density_epochs, density_width: the density-map baseline.
        seed: seed of the data, D and the training.
        device: ``None`` takes CUDA when available.
    """

    image_size: int = 192
    n_train_images: int = 32
    n_test_images: int = 16
    target_mean: float = 6.0
    clutter_density: float = 0.55
    patch_size: int = 64
    rotations: bool = True
    m: int = 20
    n_lines: int = 12
    bin_size: float = 3.0
    beta: float = 0.2
    lam: float = 0.05
    alpha: float = 0.02
    threshold: float = 0.1
    bandwidth: float = 6.0
    rho: float | None = None
    variant: Literal["cnncs", "ecnncs1", "ecnncs2"] = "ecnncs2"
    solver: str = "fista"
    solver_iterations: int = 200
    lista_iterations: int = 30
    rule: Literal["approx", "exact"] = "approx"
    depth: int = 18
    base_width: int = 16
    output_stride: int = 16
    head_grid: int = 4
    epochs: int = 20
    warmup_epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    recovery_lr: float = 1e-5
    weight_decay: float = 1e-4
    density_epochs: int = 15
    density_width: int = 8
    seed: int = 0
    device: str | None = None


CNNCS_PRESETS = PresetTable(
    CNNCSConfig,
    smoke=CNNCSConfig(image_size=96, n_train_images=4, n_test_images=6, target_mean=4.0,
                      patch_size=48, m=12, n_lines=6, base_width=8,
                      epochs=2, warmup_epochs=1, batch_size=16, density_epochs=2, density_width=8,
                      solver_iterations=50, lista_iterations=5),
    demo=CNNCSConfig(),
    paper=CNNCSConfig(image_size=512, n_train_images=560, n_test_images=240, target_mean=2.0,
                      patch_size=256, m=112, n_lines=27, beta=0.20,
                      bin_size=1.0, lam=0.39, alpha=1.3, bandwidth=40.0, depth=152, base_width=64,
                      output_stride=32, head_grid=1, epochs=50, warmup_epochs=0, batch_size=32,
                      density_epochs=50, density_width=32),
)


def cnncs_config(preset: str = "demo", /, **overrides: object) -> CNNCSConfig:
    """The ``preset`` configuration with ``overrides`` (``None`` keeps the preset's value)."""
    config = CNNCS_PRESETS.build(preset, **overrides)
    if config.variant not in CNNCS_VARIANTS:
        raise ConfigError(f"unknown variant {config.variant!r}; expected one of: {', '.join(CNNCS_VARIANTS)}")
    if config.solver not in list_solvers():
        raise ConfigError(f"unknown solver {config.solver!r}; expected one of: {', '.join(list_solvers())}")
    if config.patch_size > config.image_size:
        raise ConfigError(f"patch_size {config.patch_size} is larger than image_size "
                          f"{config.image_size}; expected patch_size <= image_size")
    _check_ranges(config)
    return config


#: (field, lowest allowed, whether the bound itself is allowed) of the numeric fields.
_RANGES: tuple[tuple[str, float, bool], ...] = (
    ("image_size", 1, False), ("n_train_images", 1, True), ("n_test_images", 1, True),
    ("target_mean", 0, True), ("clutter_density", 0, True), ("patch_size", 8, True),
    ("m", 1, True), ("n_lines", 2, True), ("bin_size", 0, False), ("beta", 0, False),
    ("lam", 0, True), ("alpha", 0, True), ("threshold", 0, False), ("bandwidth", 0, False),
    ("rho", 0, False), ("solver_iterations", 1, True), ("lista_iterations", 1, True),
    ("base_width", 1, True), ("head_grid", 1, True), ("epochs", 1, True), ("batch_size", 1, True),
    ("warmup_epochs", 0, True),
    ("lr", 0, False), ("recovery_lr", 0, True), ("weight_decay", 0, True), ("density_epochs", 1, True),
    ("density_width", 1, True),
)


def _check_ranges(config: CNNCSConfig) -> None:
    """Refuse out-of-range or non-finite values now rather than after training."""
    for name, low, inclusive in _RANGES:
        value = getattr(config, name)
        if value is None:  # only rho may be None (the smallest target radius)
            continue
        ok = np.isfinite(value) and (value >= low if inclusive else value > low)
        if not ok:
            bound = f">= {low}" if inclusive else f"> {low}"
            raise ConfigError(f"{name} = {value!r} is out of range; expected a finite number {bound}")


def _device(config: CNNCSConfig) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class CellData:
    """Training patches (with rotations), test patches and the whole test images.

    Attributes:
        train_patches, test_patches: ``(N, 3, s, s)`` float32 in [0, 1].
        train_centroids, test_centroids: per patch ``(k, 2)`` (row, col) in the patch frame.
        test_images, test_image_centroids: the whole test images and their centroids.
        rho: the matching distance (config's or the smallest target radius).
    """

    train_patches: torch.Tensor
    train_centroids: list[np.ndarray]
    test_patches: torch.Tensor
    test_centroids: list[np.ndarray]
    test_images: torch.Tensor
    test_image_centroids: list[np.ndarray]
    rho: float


def make_cell_data(config: CNNCSConfig) -> CellData:
    """Generate the images (seeded) and cut them into patches (4.3)."""
    image_config = CellImageConfig(size=config.image_size, target_mean=config.target_mean,
                                   max_targets=max(12, int(4 * config.target_mean)),
                                   clutter_density=config.clutter_density)
    train = make_cell_dataset(config.n_train_images, image_config, seed=config.seed)
    test = make_cell_dataset(config.n_test_images, image_config, seed=config.seed + 10_000)
    train_patches = extract_cell_patches(train.images, train.centroids, size=config.patch_size,
                                         rotations=config.rotations)
    test_patches = extract_cell_patches(test.images, test.centroids, size=config.patch_size,
                                        rotations=False)
    rho = float(config.rho) if config.rho is not None else float(min(train.min_radius, test.min_radius))
    return CellData(torch.as_tensor(train_patches.images), _in_box(train_patches.centroids, config),
                    torch.as_tensor(test_patches.images), _in_box(test_patches.centroids, config),
                    torch.as_tensor(test.images), list(test.centroids), rho)


def _in_box(centroids: Sequence[np.ndarray], config: CNNCSConfig) -> list[np.ndarray]:
    """Patch extraction keeps a cell whose centroid *pixel* is inside, i.e. coordinates in
    [−½, s − ½]; the codec's box is [0, s]: the half-pixel overhang is clamped."""
    return [np.clip(np.asarray(c, dtype=float).reshape(-1, 2), 0.0, float(config.patch_size))
            for c in centroids]


# --------------------------------------------------------------------------- models


def build_codec(config: CNNCSConfig) -> ProjectionCodec:
    """The random-projection codec of the config's patch size, L, m, β and seed (3.1)."""
    return ProjectionCodec(height=config.patch_size, width=config.patch_size,
                           n_lines=config.n_lines, code_length=config.m,
                           count_weight=config.beta, seed=config.seed, bin_size=config.bin_size)


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
    model = build_cnncs(config).to(device)
    recovery = [p for name, p in model.named_parameters() if not name.startswith("regressor.")]
    optimiser = torch.optim.Adam([
        {"params": model.regressor.parameters()},
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
_DETECTION_FIELDS = ("threshold", "bandwidth", "rho")


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


# --------------------------------------------------------------------------- detection and evaluation


@torch.no_grad()
def predict_codes(model: CNNCS, patches: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Predicted dense codes ``(N, L, m)`` of ``patches`` (kept so λ and bandwidth can change
    without running the CNN again)."""
    model.eval()
    device = model.dictionary.device
    return torch.cat([model(patches[i:i + batch_size].to(device), recover=False).dense.cpu()
                      for i in range(0, len(patches), batch_size)])


def detect_cells(
    model: CNNCS,
    dense: torch.Tensor,
    *,
    lam: float | None = None,
    threshold: float = 0.2,
    bandwidth: float = 6.0,
    solver: str | None = None,
) -> Decoded:
    """Recover the sparse codes of predicted dense codes ``(N, L, m)`` and decode them."""
    device = model.dictionary.device
    with torch.no_grad():
        sparse = torch.cat([model.recover(dense[i:i + 256].to(device), lam=lam, solver=solver).cpu()
                            for i in range(0, len(dense), 256)])
    return decode(model.codec, sparse, threshold=threshold, bandwidth=bandwidth)


def evaluate_detections(
    predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray], rho: float
) -> dict[str, float]:
    """Pooled precision, recall and F1 at distance ρ (4.2, Hungarian matching)."""
    scores = compute_detection_scores(predicted, truth, rho)
    return {"precision": float(scores.precision), "recall": float(scores.recall),
            "f1": float(scores.f1)}


def evaluate_cnncs(run: CNNCSTraining, data: CellData, **overrides: float) -> dict[str, float]:
    """P/R/F1 of a trained detector on the test patches (``threshold``, ``bandwidth``, ``lam``
    default to the run's config)."""
    c = run.config
    decoded = detect_cells(run.model, predict_codes(run.model, data.test_patches),
                           lam=overrides.get("lam", c.lam),
                           threshold=overrides.get("threshold", c.threshold),
                           bandwidth=overrides.get("bandwidth", c.bandwidth))
    return evaluate_detections(decoded.centres, data.test_centroids, data.rho)


def train_density_baseline(
    config: CNNCSConfig, data: CellData, *, progress: ProgressCallback | None = None
) -> DensityNet:
    """The FCRN-style density-map network trained on the same patches (DESIGN §8); a cancel
    through ``progress`` raises :class:`~wslbench.progress.StopRequested` (nothing is returned)."""
    seed_everything(config.seed)
    model = DensityNet(in_channels=3, base_width=config.density_width).to(_device(config))
    result = train_density_net(model, data.train_patches, data.train_centroids,
                               epochs=config.density_epochs, lr=config.lr,
                               batch_size=config.batch_size, progress=progress, seed=config.seed)
    stop_if_interrupted(result, "training the density-map baseline")
    return model


@torch.no_grad()
def _density_maps(model: DensityNet, patches: torch.Tensor) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(patches[i:i + 64].to(device)).cpu() for i in range(0, len(patches), 64)])


def evaluate_density_baseline(model: DensityNet, data: CellData) -> dict[str, float]:
    """P/R/F1 of density peaks on the test patches; peaks closer than ρ are merged and the
    peak threshold is the one of best F1 on (up to 200) training patches, for a fair floor."""
    min_distance = max(1, int(round(data.rho)))
    n_fit = min(len(data.train_patches), 200)
    train_maps = _density_maps(model, data.train_patches[:n_fit])
    candidates = extract_candidates_batch(train_maps, min_distance=min_distance)
    threshold, _ = best_f1_threshold(candidates, data.train_centroids[:n_fit], data.rho)
    peaks = detect_peaks(_density_maps(model, data.test_patches), min_distance=min_distance,
                         threshold=threshold)
    return evaluate_detections(peaks, data.test_centroids, data.rho)


def evaluate_local_maxima(config: CNNCSConfig, data: CellData) -> dict[str, float]:
    """The classical floor: local maxima of a smoothed darkness map, threshold fitted on the
    training patches."""
    detector = LocalMaximaDetector(sigma=max(1.0, data.rho / 2), min_distance=max(1, int(round(data.rho))))
    n_fit = min(len(data.train_patches), 200)
    detector.fit_threshold(data.train_patches[:n_fit].numpy(), data.train_centroids[:n_fit], data.rho)
    predicted = [detector.detect(p.numpy()) for p in data.test_patches]
    return evaluate_detections(predicted, data.test_centroids, data.rho)


def compare_variants(
    config: CNNCSConfig,
    data: CellData,
    *,
    variants: Sequence[str] = CNNCS_VARIANTS,
    progress: ProgressCallback | None = None,
) -> list[dict[str, object]]:
    """Table 2: P/R/F1 of each variant, the density-map baseline and the local-maximum floor."""
    steps = len(variants) + 1
    rows: list[dict[str, object]] = []
    for k, variant in enumerate(variants):
        def step(i: int, n: int, logs: Mapping[str, float], k: int = k) -> None:
            report(progress, k * n + i, steps * n, logs)

        run = train_cnncs_cached(replace(config, variant=variant), data, progress=step)
        stop_if_interrupted(run, f"training {variant}")
        rows.append({"method": variant.upper().replace("ECNNCS", "ECNNCS-"), **evaluate_cnncs(run, data),
                     "train_s": run.seconds})

    def density_step(i: int, n: int, logs: Mapping[str, float]) -> None:
        report(progress, (steps - 1) * n + i, steps * n, logs)

    started = time.perf_counter()
    density = train_density_baseline(config, data, progress=density_step)
    rows.append({"method": "density map", **evaluate_density_baseline(density, data),
                 "train_s": time.perf_counter() - started})
    rows.append({"method": "local maxima", **evaluate_local_maxima(config, data), "train_s": 0.0})
    return rows


# --------------------------------------------------------------------------- solvers


def solver_comparison(
    codec: ProjectionCodec,
    centroids: Sequence[np.ndarray],
    *,
    lam: float,
    iterations: Sequence[int] = (1, 2, 5, 10, 20, 50, 100, 200),
    noise: float = 0.0,
    seed: int = 0,
) -> list[dict[str, float | str]]:
    """Recovery error ‖â − a‖_F / ‖a‖_F (over all lines of all patches) and time against the
    number of iterations, for ISTA,
    FISTA, untrained LISTA and OMP on the true codes of ``centroids`` (plus Gaussian noise of
    std ``noise`` relative to the code's RMS)."""
    if not iterations or min(iterations) < 1:
        raise InvalidInputError(f"iterations must be positive integers, got {list(iterations)}")
    a = codec.sparse(list(centroids))
    lines = a.shape[1]
    flat_a = a.reshape(-1, a.shape[-1])
    x = codec.compress(a).reshape(-1, codec.code_length)
    if noise > 0:
        g = torch.Generator().manual_seed(seed)
        x = x + noise * x.pow(2).mean().sqrt() * torch.randn(x.shape, generator=g)
    d = codec.dictionary
    norm = flat_a.norm().clamp_min(1e-12)  # over the whole batch: empty patches have ‖a‖ = 0
    rows: list[dict[str, float | str]] = []

    def add(name: str, t: int, solve: object) -> None:
        started = time.perf_counter()
        with torch.no_grad():
            est = solve()  # type: ignore[operator]
        seconds = time.perf_counter() - started
        err = (est - flat_a).norm() / norm
        rows.append({"solver": name, "iterations": t, "relative_error": float(err),
                     "ms_per_patch": 1000 * seconds / max(1, len(flat_a) // lines)})

    for t in iterations:
        for name in ("ista", "fista"):
            solver = create_solver(name, max_iter=int(t), tol=0.0)
            add(name, int(t), lambda solver=solver: solver.solve(x, d, lam))
        lista = LISTA.from_dictionary(d, lam, int(t))
        add("lista (untrained)", int(t), lambda lista=lista: lista(x))
    k = max(1, max(len(c) for c in centroids))
    omp = create_solver("omp", n_nonzero=k)
    add("omp", k, lambda: omp.solve(x, d, lam))
    return rows


# --------------------------------------------------------------------------- whole images


def _as_chw(image: object) -> np.ndarray:
    arr = np.asarray(image.cpu() if isinstance(image, torch.Tensor) else image, dtype=np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[None], 3, axis=0)
    elif arr.ndim == 3 and arr.shape[-1] in (1, 3) and arr.shape[0] not in (1, 3):
        arr = np.moveaxis(arr, -1, 0)
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise InvalidInputError(f"image must be (H, W), (H, W, 3) or (3, H, W), got shape {arr.shape}")
    if arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    if not np.isfinite(arr).all():
        raise InvalidInputError("image contains NaN or Inf; expected finite values in [0, 1]")
    return arr


def detect_in_image(
    run: CNNCSTraining,
    image: object,
    *,
    lam: float | None = None,
    threshold: float | None = None,
    bandwidth: float | None = None,
) -> np.ndarray:
    """Cell centres ``(k, 2)`` (row, col) of a whole image of any size ≥ the patch size:
    tiles overlapping by the bandwidth, detections merged back (closer than ρ-like
    ``bandwidth`` apart: one cell)."""
    c = run.config
    arr = _as_chw(image)
    if min(arr.shape[1:]) < c.patch_size:
        raise InvalidInputError(
            f"image is {arr.shape[1]}×{arr.shape[2]} px; expected at least the model's patch size "
            f"{c.patch_size}×{c.patch_size}"
        )
    bw = c.bandwidth if bandwidth is None else float(bandwidth)
    tiles, origins = tile_image(arr, size=c.patch_size, overlap=min(c.patch_size // 2, int(round(2 * bw))))
    decoded = detect_cells(run.model, predict_codes(run.model, torch.as_tensor(tiles)),
                           lam=c.lam if lam is None else lam,
                           threshold=c.threshold if threshold is None else threshold, bandwidth=bw)
    points, _ = merge_tile_detections(decoded.centres, origins, min_distance=bw)
    return points


@dataclass(frozen=True)
class RealDetection:
    """Detections on one real image: ``image`` ``(H, W, 3)``, ``truth`` (``None`` without
    annotations), ``centres`` and a ``title``."""

    image: np.ndarray
    truth: np.ndarray | None
    centres: np.ndarray
    title: str


def _crop(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The centre ``size``×``size`` crop (or the whole image if smaller) of ``(H, W, 3)``."""
    h, w = image.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[top:top + size, left:left + size], (top, left)


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


# --------------------------------------------------------------------------- dashboard model


def save_model(run: CNNCSTraining, data: CellData) -> Path | None:
    """Save the trained detector as the run's ``models/cnncs.pt`` with its test P/R/F1, for
    the cell-counting dashboard (``None`` outside a run folder)."""
    from wslbench.runner.model_store import save_run_model

    return save_run_model("cnncs", run.model, config=run.config, metrics=evaluate_cnncs(run, data),
                          notebook="04_cnncs_cells")


# --------------------------------------------------------------------------- cached whole-image codes


@dataclass(frozen=True)
class ImageCodes:
    """The CNN's codes of one whole image, tile by tile (what :func:`detect_in_image` computes
    before decoding), so that the peak threshold can change without running the CNN again.

    Attributes:
        dense: ``(T, L, m)`` predicted dense codes of the tiles.
        sparse: ``(T, L, n)`` their recovered sparse codes â (at the run's λ or the given one).
        origins: ``(T, 2)`` tile corners ``(row, col)`` in the image.
        shape: ``(H, W)`` of the image.
        bandwidth: mean-shift bandwidth (px) the tiles' overlap was chosen for.
    """

    dense: torch.Tensor
    sparse: torch.Tensor
    origins: np.ndarray
    shape: tuple[int, int]
    bandwidth: float


@dataclass(frozen=True)
class ImageDetections:
    """Cells of one whole image decoded from :class:`ImageCodes` at one threshold.

    Attributes:
        centres: ``(k, 2)`` (row, col) centres, as :func:`detect_in_image` returns them.
        support: ``(k,)`` candidates supporting each centre (the decoder's score).
        candidates: ``(c, 2)`` voted back-projected points of all tiles (Fig. 6 green).
        threshold: the peak threshold used.
    """

    centres: np.ndarray
    support: np.ndarray
    candidates: np.ndarray
    threshold: float


def image_codes(
    run: CNNCSTraining, image: object, *, lam: float | None = None, bandwidth: float | None = None
) -> ImageCodes:
    """Tile a whole image as :func:`detect_in_image` does, run the CNN once and recover â."""
    c = run.config
    arr = _as_chw(image)
    if min(arr.shape[1:]) < c.patch_size:
        raise InvalidInputError(
            f"image is {arr.shape[1]}×{arr.shape[2]} px; expected at least the model's patch size "
            f"{c.patch_size}×{c.patch_size}"
        )
    bw = c.bandwidth if bandwidth is None else float(bandwidth)
    tiles, origins = tile_image(arr, size=c.patch_size, overlap=min(c.patch_size // 2, int(round(2 * bw))))
    dense = predict_codes(run.model, torch.as_tensor(tiles))
    device = run.model.dictionary.device
    with torch.no_grad():
        sparse = torch.cat([run.model.recover(dense[i:i + 256].to(device), lam=c.lam if lam is None else lam).cpu()
                            for i in range(0, len(dense), 256)])
    return ImageCodes(dense, sparse, origins, (int(arr.shape[1]), int(arr.shape[2])), bw)


def decode_image_codes(
    run: CNNCSTraining, codes: ImageCodes, *, threshold: float | None = None
) -> ImageDetections:
    """Decode cached :class:`ImageCodes` at ``threshold`` (default the run's): the same centres
    as :func:`detect_in_image` with the same settings, plus each centre's support."""
    t = run.config.threshold if threshold is None else float(threshold)
    decoded = decode(run.model.codec, codes.sparse, threshold=t, bandwidth=codes.bandwidth)
    points, _ = merge_tile_detections(decoded.centres, codes.origins, min_distance=codes.bandwidth)
    shifted = [np.asarray(p, float).reshape(-1, 2) + o for p, o in zip(decoded.centres, codes.origins)]
    every = np.concatenate(shifted) if shifted else np.zeros((0, 2))
    scores = np.concatenate([np.asarray(s, float).reshape(-1) for s in decoded.support]) if shifted else np.zeros(0)
    support = np.array([scores[np.argmin(np.abs(every - p).sum(1))] for p in points], float)
    candidates = [np.asarray(p, float).reshape(-1, 2) + o for p, o in zip(decoded.candidates, codes.origins)]
    return ImageDetections(points, support, np.concatenate(candidates) if candidates else np.zeros((0, 2)), t)
