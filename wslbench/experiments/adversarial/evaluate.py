"""DDN vs C&W tables, robustness curves and perturbation views (Rony 2020, Table A V-1, Fig. A V)."""

from __future__ import annotations

from collections.abc import Sequence

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
)
from wslbench.errors import InvalidInputError
from wslbench.experiments.adversarial.config import REFERABLE_THRESHOLD, AdversarialConfig
from wslbench.seeding import seed_everything

__all__ = ["referable_classifier", "attack_table", "without_timing", "robustness_curves", "perturbation_views"]


def referable_classifier(model: nn.Module) -> nn.Module:
    """A DR regression net as a 2-class classifier (not referable / referable) for the attacks."""
    return ThresholdClassifier(model, REFERABLE_THRESHOLD)


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
