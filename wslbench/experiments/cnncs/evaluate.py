"""Decoding and scoring detections, solver comparison, whole-image decoding (Xue et al., 3.2, 4.2)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from wslbench.cs.codec import ProjectionCodec
from wslbench.cs.decode import Decoded, decode
from wslbench.cs.solvers import LISTA, create_solver
from wslbench.errors import InvalidInputError
from wslbench.experiments.cnncs.config import CNNCSConfig, _device
from wslbench.experiments.cnncs.data import CellData
from wslbench.metrics.detection import best_f1_threshold, compute_detection_scores
from wslbench.metrics.froc import extract_candidates_batch
from wslbench.models.cnncs import CNNCS
from wslbench.models.density import DensityNet, detect_peaks
from wslbench.models.local_maxima import LocalMaximaDetector
from wslbench.progress import ProgressCallback, stop_if_interrupted
from wslbench.seeding import seed_everything
from wslbench.training.density_training import train_density_net

__all__ = ["predict_codes", "detect_cells", "evaluate_detections", "train_density_baseline", "evaluate_density_baseline", "evaluate_local_maxima", "solver_comparison", "RealDetection", "ImageCodes", "ImageDetections"]


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
    threshold: float = 4.0,
    bandwidth: float = 10.0,
    solver: str | None = None,
    peak_radius: int = 2,
) -> Decoded:
    """Recover the sparse codes of predicted dense codes ``(N, L, m)`` and decode them
    (defaults: the demo preset's)."""
    device = model.dictionary.device
    with torch.no_grad():
        sparse = torch.cat([model.recover(dense[i:i + 256].to(device), lam=lam, solver=solver).cpu()
                            for i in range(0, len(dense), 256)])
    return decode(model.codec, sparse, threshold=threshold, bandwidth=bandwidth, peak_radius=peak_radius)


def evaluate_detections(
    predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray], rho: float
) -> dict[str, float]:
    """Pooled precision, recall and F1 at distance ρ (4.2, Hungarian matching)."""
    scores = compute_detection_scores(predicted, truth, rho)
    return {"precision": float(scores.precision), "recall": float(scores.recall),
            "f1": float(scores.f1)}


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
    """P/R/F1 of density peaks on the whole test images (4.2, as the detectors); peaks closer
    than ρ are merged and the peak threshold is the one of best F1 on (up to 200) training
    patches, for a fair floor."""
    min_distance = max(1, int(round(data.rho)))
    n_fit = min(len(data.train_patches), 200)
    train_maps = _density_maps(model, data.train_patches[:n_fit])
    candidates = extract_candidates_batch(train_maps, min_distance=min_distance)
    threshold, _ = best_f1_threshold(candidates, data.train_centroids[:n_fit], data.rho)
    peaks = detect_peaks(_density_maps(model, data.test_images), min_distance=min_distance,
                         threshold=threshold)
    return evaluate_detections(peaks, data.test_image_centroids, data.rho)


def evaluate_local_maxima(config: CNNCSConfig, data: CellData) -> dict[str, float]:
    """The classical floor: local maxima of a smoothed darkness map on the whole test images,
    threshold fitted on the training patches."""
    detector = LocalMaximaDetector(sigma=max(1.0, data.rho / 2), min_distance=max(1, int(round(data.rho))))
    n_fit = min(len(data.train_patches), 200)
    detector.fit_threshold(data.train_patches[:n_fit].numpy(), data.train_centroids[:n_fit], data.rho)
    predicted = [detector.detect(p.numpy()) for p in data.test_images]
    return evaluate_detections(predicted, data.test_image_centroids, data.rho)


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
