"""Adversarial robustness of the histology and DR models (Rony 2020, Appendix V).

What notebook ``02b_adversarial`` calls: the Table A V-1 comparison of DDN
budgets against C&W settings on one model and one batch, accuracy-vs-ε curves
for a clean and a DDN adversarially trained model (eq. A V-9), and the
original / amplified perturbation / adversarial images with their heatmaps
before and after the attack. Inputs are in [0, 1]; the DR nets (one regression
score) are attacked through :class:`~wslbench.attacks.ThresholdClassifier` at the
referable threshold 1.5 (grades ≥ 2, Quellec 2017, 5.3.1).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from wslbench.attacks import (
    DDN,
    AttackResult,
    CarliniWagnerL2,
    ThresholdClassifier,
    attack_report,
    robust_accuracy_curve,
    train_adversarial,
)
from wslbench.errors import InvalidInputError
from wslbench.presets import PresetTable
from wslbench.progress import ProgressCallback
from wslbench.seeding import seed_everything

__all__ = [
    "AdversarialConfig",
    "ADVERSARIAL_PRESETS",
    "REFERABLE_THRESHOLD",
    "adversarial_config",
    "referable_classifier",
    "correctly_classified",
    "attack_table",
    "without_timing",
    "robustness_curves",
    "adversarially_trained",
    "perturbation_views",
]

#: Score threshold between grade 1 and grade 2: referable DR (Quellec 2017, 5.3.1; DESIGN §8).
REFERABLE_THRESHOLD = 1.5


@dataclass(frozen=True)
class AdversarialConfig:
    """Attack budgets and adversarial training (Rony 2020, Appendix V, sections 5–7).

    Attributes:
        n_attack: correctly classified test images attacked per model.
        ddn_budgets: DDN iteration budgets (100, 300, 1000 in Table A V-1).
        cw_settings: C&W (search steps, iterations) pairs (4×25, 1×100, 9×10 000).
        ddn_gamma: DDN norm update factor γ (0.05).
        epsilons: L2 radii of the accuracy-vs-ε curves.
        adv_epochs, adv_max_norm, adv_attack_steps, adv_lr, clean_weight: DDN adversarial
            training (eq. A V-9: DDN 100 projected on the ε-ball; ε = 1 for CIFAR-10).
        amplify: factor of the displayed perturbation.
        seed: seed of the selection and the adversarial training.
    """

    n_attack: int = 24
    ddn_budgets: tuple[int, ...] = (100, 300, 1000)
    cw_settings: tuple[tuple[int, int], ...] = ((4, 25), (1, 100))
    ddn_gamma: float = 0.05
    epsilons: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
    adv_epochs: int = 3
    adv_max_norm: float = 0.5
    adv_attack_steps: int = 20
    adv_lr: float = 0.01
    clean_weight: float = 0.0
    amplify: float = 10.0
    seed: int = 0


ADVERSARIAL_PRESETS = PresetTable(
    AdversarialConfig,
    smoke=AdversarialConfig(n_attack=6, ddn_budgets=(10, 30), cw_settings=((2, 5), (1, 10)),
                            adv_epochs=1, adv_attack_steps=5),
    demo=AdversarialConfig(),
    paper=AdversarialConfig(n_attack=1000, cw_settings=((4, 25), (1, 100), (9, 10_000)),
                            adv_epochs=30, adv_max_norm=1.0, adv_attack_steps=100),
)


def adversarial_config(preset: str = "demo", /, **overrides: object) -> AdversarialConfig:
    """The ``preset`` configuration with ``overrides`` (``None`` keeps the preset's value)."""
    return ADVERSARIAL_PRESETS.build(preset, **overrides)


def referable_classifier(model: nn.Module) -> nn.Module:
    """A DR regression net as a 2-class classifier (not referable / referable) for the attacks."""
    return ThresholdClassifier(model, REFERABLE_THRESHOLD)


@torch.no_grad()
def correctly_classified(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images the model classifies correctly (attacks start from correct ones)."""
    was_training = model.training
    model.eval()
    try:
        keep = model(x).argmax(1) == y
    finally:
        model.train(was_training)
    if not keep.any():
        raise InvalidInputError("the model classifies none of the images correctly; nothing to attack")
    idx = torch.nonzero(keep)[:n, 0]
    return x[idx], y[idx]


def _attacks(model: nn.Module, config: AdversarialConfig) -> dict[str, object]:
    out: dict[str, object] = {
        f"DDN {b}": DDN(model, steps=b, gamma=config.ddn_gamma) for b in config.ddn_budgets
    }
    for search, steps in config.cw_settings:
        out[f"C&W {search}x{steps}"] = CarliniWagnerL2(model, steps=steps, search_steps=search)
    return out


def attack_table(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: AdversarialConfig
) -> tuple[list[dict[str, float | str | None]], dict[str, AttackResult]]:
    """Table A V-1 on one model and batch: success %, mean and median L2, #grads, time.

    A mean L2 over no successful attack is reported as ``None`` (not NaN).
    Returns the rows and the attack results by name (for curves and figures).
    """
    seed_everything(config.seed)
    rows, results = [], {}
    for name, attack in _attacks(model, config).items():
        result = attack.run(x, y)  # type: ignore[attr-defined]
        results[name] = result
        report = {k: (v if np.isfinite(v) else None) for k, v in attack_report(result, x).items()}
        rows.append({"attack": name, **report})
    return rows, results


def without_timing(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """The rows without their wall-time column, for regression records (time is not seeded)."""
    return [{k: v for k, v in row.items() if k != "runtime_s"} for row in rows]


def robustness_curves(
    models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, config: AdversarialConfig
) -> dict[str, np.ndarray]:
    """Accuracy under DDN (largest budget) attacks of norm ≤ ε, for each model."""
    budget = max(config.ddn_budgets)
    curves = {}
    for name, model in models.items():
        result = DDN(model, steps=budget, gamma=config.ddn_gamma).run(x, y)
        curves[name] = robust_accuracy_curve(model, x, y, result, config.epsilons)
    return curves


def adversarially_trained(
    model: nn.Module,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    config: AdversarialConfig,
    *,
    progress: ProgressCallback | None = None,
) -> nn.Module:
    """A copy of ``model`` fine-tuned with DDN adversarial examples (eq. A V-9)."""
    seed_everything(config.seed)
    robust = copy.deepcopy(model)
    train_adversarial(robust, list(batches), epochs=config.adv_epochs,
                      max_norm=config.adv_max_norm, attack_steps=config.adv_attack_steps,
                      lr=config.adv_lr, clean_weight=config.clean_weight, progress=progress)
    return robust.eval()


def perturbation_views(
    x: torch.Tensor, result: AttackResult, index: int, config: AdversarialConfig
) -> list[tuple[str, torch.Tensor]]:
    """Original, amplified perturbation (centred on grey) and adversarial image of one sample."""
    if not 0 <= index < x.shape[0]:
        raise InvalidInputError(f"index must be in [0, {x.shape[0]}), got {index}")
    delta = result.adversarial[index] - x[index]
    shown = (0.5 + config.amplify * delta).clamp(0, 1)
    norm = float(delta.flatten().norm())
    return [("original", x[index]), (f"perturbation ×{config.amplify:g} (L2 {norm:.3f})", shown),
            ("adversarial", result.adversarial[index])]
