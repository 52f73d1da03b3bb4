"""The models under attack and their held-out images (Rony 2020, Appendix V, 5 and 7).

Two targets, each trained with its notebook's preset (02: histology, 01: DR) at the
sizes of :class:`AdversarialConfig`: the histology WSL classifier, and the DR
regression net thresholded at referable DR. Each comes with images its training
never saw, split once into a grid-search batch for C&W (``tune``) and the
evaluation pool of the table and the curves (``pool``), plus its training batches
for adversarial training.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from wslbench.attacks import ThresholdClassifier
from wslbench.data.synthetic_histology import make_histology_dataset
from wslbench.devices import resolve_device
from wslbench.errors import InvalidInputError
from wslbench.experiments import dr, wsl
from wslbench.experiments.adversarial.config import REFERABLE_THRESHOLD, AdversarialConfig
from wslbench.progress import ProgressCallback

__all__ = ["AttackTarget", "attack_targets", "cap_attack_count", "correct_mask", "correctly_classified",
           "referable_classifier"]


def referable_classifier(model: nn.Module) -> nn.Module:
    """A DR regression net as a 2-class classifier (not referable / referable) for the attacks."""
    return ThresholdClassifier(model, REFERABLE_THRESHOLD)


@dataclass(frozen=True)
class AttackTarget:
    """One model under attack and its images (inputs in [0, 1]).

    Attributes:
        name: ``"histology"`` or ``"DR"``.
        model: maps images to class logits ``(B, K)``, in eval mode.
        train_batches: the ``(x, y)`` mini-batches the model was trained on (for eq. A V-9).
        tune: held-out ``(x, y)`` of the C&W grid search (correctly classified).
        pool: held-out ``(x, y)`` of the table and the curves (all of them, right or wrong).
        model_config: the ``WSLConfig`` / ``DRConfig`` the model was trained with (``None``
            for a model built elsewhere).
    """

    name: str
    model: nn.Module
    train_batches: list[tuple[torch.Tensor, torch.Tensor]]
    tune: tuple[torch.Tensor, torch.Tensor]
    pool: tuple[torch.Tensor, torch.Tensor]
    model_config: object = None


@torch.no_grad()
def correct_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: the model (in eval mode) classifies image ``i`` as ``y[i]``."""
    was_training = model.training
    model.eval()
    try:
        return model(x).argmax(1) == y
    finally:
        model.train(was_training)


def correctly_classified(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` (default: all) images the model classifies correctly (attacks start from them)."""
    keep = correct_mask(model, x, y)
    if not keep.any():
        raise InvalidInputError("the model classifies none of the images correctly; nothing to attack")
    idx = torch.nonzero(keep)[:n, 0]
    return x[idx], y[idx]


def cap_attack_count(wanted: int, available: int, what: str) -> int:
    """``wanted`` images, or every available one with a warning that says so (paper preset: 1,000)."""
    if available < 1:
        raise InvalidInputError(f"no {what} to attack")
    if wanted > available:
        warnings.warn(f"n_attack={wanted} but only {available} {what} exist; attacking {available}",
                      stacklevel=2)
        return available
    return wanted


def _batches(x: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def _split(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: AdversarialConfig,
           what: str) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """First ``n_tune`` correctly classified images for the grid search, the next ``n_attack`` for the pool."""
    ok = correct_mask(model, x, y)
    tune_idx = torch.nonzero(ok)[:config.n_tune, 0]
    if len(tune_idx) < config.n_tune:
        raise InvalidInputError(f"only {len(tune_idx)} {what} are classified correctly; the C&W grid "
                                f"search needs n_tune={config.n_tune}")
    rest = torch.arange(int(tune_idx[-1]) + 1, len(x))
    n = cap_attack_count(config.n_attack, len(rest), f"held-out {what}")
    pool_idx = rest[:n]
    return (x[tune_idx], y[tune_idx]), (x[pool_idx], y[pool_idx])


def _histology_target(config: AdversarialConfig, device: str | None,
                      progress: ProgressCallback | None) -> AttackTarget:
    hconfig = wsl.wsl_config(config.model_preset, seed=config.seed, image_size=config.histology_size,
                             base_width=config.histology_width,
                             output_stride=config.histology_stride, device=device)
    data = wsl.make_wsl_data(hconfig)
    model = wsl.train_wsl_cached(hconfig, data, progress=progress).model.eval()
    train = torch.as_tensor(data.folds[0].train)
    # Patch i of the generator depends only on (seed, i): patches past n_images are unseen.
    extra = config.n_tune + 2 * config.n_attack
    held = make_histology_dataset(hconfig.n_images + extra, size=hconfig.image_size,
                                  seed=hconfig.seed, task=hconfig.task)
    hx, hy = held.images[hconfig.n_images:], held.labels[hconfig.n_images:]
    dev = resolve_device(device)
    tune, pool = _split(model, hx.to(dev), hy.to(dev), config, "histology patches")
    batches = _batches(data.images[train].to(dev), data.labels[train].to(dev), hconfig.batch_size)
    return AttackTarget("histology", model, batches, tune, pool, hconfig)


def _dr_target(config: AdversarialConfig, device: str | None,
               progress: ProgressCallback | None) -> AttackTarget:
    n_test = 2 * ((config.n_tune + 2 * config.n_attack + 1) // 2)
    dconfig = dr.dr_config(config.model_preset, seed=config.seed, nu=0.0, image_size=config.dr_size,
                           input_size=config.dr_size, n_test=max(n_test, 4), device=device)
    data = dr.make_dr_data(dconfig)
    fundus = dr.train_dr_cached(dconfig, data, progress=progress).model
    model = referable_classifier(fundus).eval()
    train = dr.fit_input_size(data.train, dconfig.input_size)
    test = dr.fit_input_size(data.test, dconfig.input_size)
    dev = resolve_device(device)
    tune, pool = _split(model, test.images.to(dev), test.referable.long().to(dev), config,
                        "fundus images")
    batches = _batches(train.images.to(dev), train.referable.long().to(dev), dconfig.batch_size)
    return AttackTarget("DR", model, batches, tune, pool, dconfig)


def attack_targets(
    config: AdversarialConfig, *, device: str | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, AttackTarget]:
    """The histology and DR targets of ``config`` (trainings cached per process, as notebooks 01/02)."""
    return {"histology": _histology_target(config, device, progress),
            "DR": _dr_target(config, device, progress)}
