"""Training of the density-map baseline (Xie et al. 2016, FCRN; Xue et al. 4.2 compare with it)
through the shared loop :func:`wslbench.training.fit`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from wslbench.errors import InvalidInputError
from wslbench.models.density import density_target
from wslbench.progress import ProgressCallback
from wslbench.seeding import torch_generator
from wslbench.training.loop import StepOutput, fit, index_batches
from wslbench.validation import check_int, check_number

__all__ = ["DensityTrainingResult", "train_density_net"]


@dataclass(frozen=True)
class DensityTrainingResult:
    """Outcome of :func:`train_density_net`.

    Attributes:
        model: the trained model, in eval mode.
        losses: mean training MSE of each completed epoch.
        interrupted: whether a progress callback raised :class:`StopRequested`.
    """

    model: nn.Module
    losses: list[float]
    interrupted: bool


def train_density_net(
    model: nn.Module,
    images: torch.Tensor,
    centroids: Sequence[np.ndarray | torch.Tensor | Sequence[Sequence[float]]],
    *,
    epochs: int = 50,
    lr: float = 1e-3,
    batch_size: int = 8,
    sigma: float = 1.0,
    dot_value: float = 100.0,
    progress: ProgressCallback | None = None,
    seed: int = 0,
) -> DensityTrainingResult:
    """Train a density regressor with MSE against :func:`density_target` maps (Xie et al. 2016).

    Every epoch visits the images once in a seeded random order; the loss is the
    per-pixel mean squared error, optimised with Adam. The same seed gives the
    same model and losses (the global RNG is forked, not changed).

    Args:
        model: maps ``(B, C, H, W)`` to ``(B, 1, H, W)`` (e.g. :class:`DensityNet`);
            trained in place.
        images: ``(N, C, H, W)`` float images (a CPU tensor is fine; batches move to
            the model's device).
        centroids: one ``(n_i, 2)`` array of ``(row, col)`` per image.
        epochs: number of passes over the images.
        lr: Adam learning rate.
        batch_size: images per step (a trailing batch of one joins the previous).
        sigma: Gaussian σ of the targets (1 in FCRN).
        dot_value: mass of each cell in the targets (100 in FCRN).
        progress: called as ``progress(epoch, epochs, {"train_loss": ...})`` after each
            epoch; may raise :class:`StopRequested`, which ends training and returns
            the result with ``interrupted=True``.
        seed: seeds the data order and any other draw during training.

    Returns:
        :class:`DensityTrainingResult`.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InvalidInputError(f"images must be an (N, C, H, W) tensor, got {got}")
    n = images.shape[0]
    if n == 0 or len(centroids) != n:
        raise InvalidInputError(
            f"got {n} images and {len(centroids)} centroid arrays; expected one array per "
            "image and at least one image"
        )
    check_int("epochs", epochs, error=InvalidInputError)
    check_int("batch_size", batch_size, error=InvalidInputError)
    check_number("lr", lr, error=InvalidInputError)
    shape = (int(images.shape[2]), int(images.shape[3]))
    targets = torch.stack(
        [
            torch.as_tensor(density_target(c, shape, sigma=sigma, dot_value=dot_value))
            for c in centroids
        ]
    ).to(torch.float32)[:, None]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        order_gen = torch_generator(seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)

        def step(idx: torch.Tensor) -> StepOutput:
            x = images[idx].to(device=device, dtype=torch.float32)
            loss = nn.functional.mse_loss(model(x), targets[idx].to(device))
            return StepOutput(loss, weight=idx.numel())

        fitted = fit(model, step, lambda epoch: index_batches(torch.randperm(n, generator=order_gen), batch_size),
                     epochs=epochs, optimiser=optimiser, progress=progress, report_every="epoch")
    losses = [row["train_loss"] for row in fitted.history]
    interrupted = fitted.interrupted
    return DensityTrainingResult(model=model, losses=losses, interrupted=interrupted)
