"""Appendix V's headline findings as claims for ``wslbench reproduce 02b`` (Rony 2020; DESIGN §4.9).

Per seed, :func:`measure` trains both targets (histology, DR), grid-searches C&W
on each target's held-out tuning batch, attacks the correctly classified images
of its pool with DDN and the tuned C&W (Table A V-1), runs the long C&W reference
on the first ``n_reference`` of them, fine-tunes a copy with DDN adversarial
training (eq. A V-9) and measures both models' accuracy under the "All" attack
(Tables A V-5/6). Measurement keys are ``<target>.<quantity>``.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from wslbench.attacks import AttackResult, attack_report
from wslbench.claims import Claim, ClaimSet
from wslbench.experiments.adversarial.config import AdversarialConfig, adversarial_config
from wslbench.experiments.adversarial.data import AttackTarget, attack_targets, correctly_classified
from wslbench.experiments.adversarial.evaluate import (
    attack_table,
    robustness_curves,
    tune_cw_settings,
)
from wslbench.experiments.adversarial.train import adversarially_trained

__all__ = ["ADVERSARIAL_CLAIMS", "CLAIM_RADII", "measure", "measure_target"]

#: Where the claims read accuracy, as fractions of the training radius ε (Table A V-6 reads
#: the CIFAR-10 model trained at ε = 1 at 0.5; MNIST: 1.5 for ε = 2.4).
CLAIM_RADII = {"half_radius": 0.5, "radius": 1.0}
_TARGETS = ("histology", "DR")


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _head(result: AttackResult, n: int) -> AttackResult:
    """The first ``n`` images of an attack result (attacks treat images independently)."""
    return AttackResult(result.adversarial[:n], result.success[:n], result.norms[:n],
                        result.n_grads, result.runtime_s)


def measure_target(target: AttackTarget, config: AdversarialConfig) -> dict[str, float]:
    """Every measurement of one target (see the module doc)."""
    x, y = correctly_classified(target.model, *target.pool)
    tunings = tune_cw_settings(target.model, *target.tune, config)
    _, results = attack_table(target.model, x, y, config, tunings, reference=True)
    ddn = attack_report(results[f"DDN {min(config.ddn_budgets)}"], x)
    cw = attack_report(results[next(iter(tunings))], x)
    n = min(config.n_reference, len(x))
    ddn_head = attack_report(_head(results[f"DDN {min(config.ddn_budgets)}"], n), x[:n])
    ref = attack_report(results["reference"], x[:n])
    robust = adversarially_trained(target, config)
    radius = config.adv_radius(target.name)
    at = replace(config, epsilons=tuple(f * radius for f in CLAIM_RADII.values()))
    curves = robustness_curves({"undefended": target.model, "defended": robust}, *target.pool,
                               at, tunings, attacked={"undefended": results})
    out = {
        "ddn_mean_l2": ddn["mean_l2"], "ddn_success": ddn["success_rate"],
        "cw_mean_l2": cw["mean_l2"], "cw_success": cw["success_rate"],
        "reference_ddn_mean_l2": ddn_head["mean_l2"],
        "reference_cw_mean_l2": ref["mean_l2"],
        "reference_cw_mean_l2_plus_5pct": 1.05 * ref["mean_l2"],
        "reference_cw_success": ref["success_rate"],
        "reference_grad_ratio": ref["n_grads"] / ddn_head["n_grads"],
        "undefended_clean_accuracy": _accuracy(target.model, *target.pool),
        "defended_clean_accuracy": _accuracy(robust, *target.pool),
    }
    for model in ("undefended", "defended"):
        for i, where in enumerate(CLAIM_RADII):
            out[f"{model}_accuracy_{where}"] = float(curves[model]["All"][i])
    return {f"{target.name}.{k}": float(v) for k, v in out.items()}


def measure(preset: str, seed: int) -> dict[str, float]:
    """One seed of the claim experiment at ``preset`` (both targets)."""
    config = adversarial_config(preset, seed=seed)
    out: dict[str, float] = {}
    for target in attack_targets(config).values():
        out.update(measure_target(target, config))
    return out


def _claims(t: str) -> tuple[Claim, ...]:
    # Both models must have learned: a defended model that collapsed to one class is
    # "robust" at every ε and says nothing (the thesis reports 99.0 % clean accuracy).
    floor = {f"{t}.undefended_clean_accuracy": 0.7, f"{t}.defended_clean_accuracy": 0.7}
    robust = tuple(
        Claim(f"adv_training_robust.{t}.{where}",
              f"Tables A V-5/6: after DDN adversarial training (eq. A V-9) at radius ε the {t} model's "
              f"accuracy under the 'All' attack at {f:g}·ε exceeds the undefended model's",
              f"accuracy at norm ≤ {f:g}·ε", f"{t}.defended_accuracy_{where}",
              f"{t}.undefended_accuracy_{where}", floors=floor)
        for where, f in CLAIM_RADII.items())
    return (
        Claim(f"ddn_smaller_than_cw.{t}",
              "Table A V-1 / 5: with 100 gradients DDN finds smaller perturbations than C&W "
              f"restricted to 4×25 iterations (grid-searched), both fooling the {t} model on every image",
              "mean L2 (lower wins)", f"{t}.ddn_mean_l2", f"{t}.cw_mean_l2", direction="less",
              floors={f"{t}.ddn_success": 100.0, f"{t}.cw_success": 100.0}),
        Claim(f"ddn_fewer_gradients.{t}",
              "5: DDN 100 gets within 5 % of the mean L2 of C&W with Carlini & Wagner's 9-search-step "
              "setting, which spends at least 10× more gradient evaluations (MNIST: 100 vs 54,007 at "
              "9×10 000; the demo's 9×1000 reference can spend at most 9,000)",
              "DDN mean L2 vs 1.05 × C&W reference", f"{t}.reference_ddn_mean_l2",
              f"{t}.reference_cw_mean_l2_plus_5pct", direction="less",
              floors={f"{t}.reference_grad_ratio": 10.0, f"{t}.reference_cw_success": 100.0}),
        *robust,
    )


#: The claim set notebook ``02b_adversarial`` declares.
ADVERSARIAL_CLAIMS = ClaimSet(measure, tuple(c for t in _TARGETS for c in _claims(t)))
