"""DDN vs tuned C&W tables, "All" robustness curves and perturbation views (Rony 2020, Appendix V)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from wslbench.attacks import (
    DDN,
    AttackResult,
    CarliniWagnerL2,
    CWTuning,
    attack_report,
    minimum_over_attacks,
    robust_accuracy_curve,
    tune_carlini_wagner,
)
from wslbench.errors import InvalidInputError
from wslbench.experiments.adversarial.config import AdversarialConfig
from wslbench.experiments.adversarial.data import correct_mask
from wslbench.seeding import seed_everything

__all__ = ["attack_table", "cw_reference", "perturbation_views", "robustness_curves",
           "tune_cw_settings", "tuning_rows", "without_timing"]


def tune_cw_settings(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: AdversarialConfig
) -> dict[str, CWTuning]:
    """Learning rate and first C of every ``config.cw_settings`` budget, grid-searched on ``(x, y)``
    (the held-out tuning batch, Appendix V, 5 / Table A V-9)."""
    seed_everything(config.seed)
    tunings = {}
    for search, steps in config.cw_settings:
        tuning = tune_carlini_wagner(model, x, y, search_steps=search, steps=steps,
                                     learning_rates=config.cw_learning_rates,
                                     initial_consts=config.cw_initial_consts)
        tunings[f"C&W {tuning.budget}"] = tuning
    return tunings


def tuning_rows(tunings: Mapping[str, CWTuning]) -> list[dict[str, object]]:
    """The chosen settings, one row per budget (the run folder's record of Table A V-9)."""
    return [{"attack": name, "learning_rate": t.learning_rate, "initial_const": t.initial_const}
            for name, t in tunings.items()]


def _attacks(model: nn.Module, config: AdversarialConfig,
             tunings: Mapping[str, CWTuning]) -> dict[str, object]:
    out: dict[str, object] = {
        f"DDN {b}": DDN(model, steps=b, gamma=config.ddn_gamma) for b in config.ddn_budgets
    }
    out.update({name: tuning.attack(model) for name, tuning in tunings.items()})
    return out


def _row(name: str, result: AttackResult, x: torch.Tensor) -> dict[str, float | str | None]:
    report = {k: (v if np.isfinite(v) else None) for k, v in attack_report(result, x).items()}
    return {"attack": name, **report}


def attack_table(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: AdversarialConfig,
    tunings: Mapping[str, CWTuning], *, reference: bool = False,
) -> tuple[list[dict[str, float | str | None]], dict[str, AttackResult]]:
    """Table A V-1 on one model and batch: success %, mean and median L2, #grads, time.

    The C&W rows use the ``tunings`` of :func:`tune_cw_settings`; with ``reference``,
    a last row (result key ``"reference"``) runs :func:`cw_reference` on the first
    ``config.n_reference`` images. A mean L2 over no successful attack is reported
    as ``None`` (not NaN). Returns the rows and the attack results by name.
    """
    seed_everything(config.seed)
    rows, results = [], {}
    for name, attack in _attacks(model, config, tunings).items():
        results[name] = attack.run(x, y)  # type: ignore[attr-defined]
        rows.append(_row(name, results[name], x))
    if reference:
        n = min(config.n_reference, len(x))
        search, steps = config.cw_reference
        results["reference"] = cw_reference(model, x[:n], y[:n], config)
        rows.append(_row(f"C&W {search}x{steps} (authors' settings, first {n})",
                         results["reference"], x[:n]))
    return rows, results


def cw_reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 config: AdversarialConfig) -> AttackResult:
    """C&W with Carlini & Wagner's own settings (first C 0.01, Adam lr 0.01, early abort) at the
    ``config.cw_reference`` budget — the "9×10 000" row of Table A V-1."""
    search, steps = config.cw_reference
    seed_everything(config.seed)
    return CarliniWagnerL2(model, steps=steps, search_steps=search).run(x, y)


def without_timing(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """The rows without their wall-time column, for regression records (time is not seeded)."""
    return [{k: v for k, v in row.items() if k != "runtime_s"} for row in rows]


def robustness_curves(
    models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor, config: AdversarialConfig,
    tunings: Mapping[str, CWTuning], *,
    attacked: Mapping[str, Mapping[str, AttackResult]] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Accuracy under attacks of norm ≤ ε (Fig. A V-4), per model and per attack, on all of ``(x, y)``.

    The attacks are DDN at the largest budget and the tuned C&W settings; ``"All"``
    takes, per image, the smallest perturbation any of them found (Tables A V-5/6).
    A clean error is an error at every ε, so only the images a model classifies
    correctly are attacked; ``attacked`` hands in results already computed on exactly
    those images (Table A V-1's, by model name) instead of running them again.
    """
    budget = max(config.ddn_budgets)
    names = [f"DDN {budget}", *tunings]
    curves = {}
    for name, model in models.items():
        correct = correct_mask(model, x, y)
        if not correct.any():
            curves[name] = {k: np.zeros(len(config.epsilons)) for k in [*names, "All"]}
            continue
        xc, yc = x[correct], y[correct]
        known = (attacked or {}).get(name, {})
        seed_everything(config.seed)
        results = {}
        for key in names:
            if key in known:
                results[key] = known[key]
            elif key.startswith("DDN"):
                results[key] = DDN(model, steps=budget, gamma=config.ddn_gamma).run(xc, yc)
            else:
                results[key] = tunings[key].attack(model).run(xc, yc)
        results["All"] = minimum_over_attacks(list(results.values()))
        share = float(correct.float().mean())
        curves[name] = {k: share * robust_accuracy_curve(model, xc, yc, r, config.epsilons)
                        for k, r in results.items()}
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
