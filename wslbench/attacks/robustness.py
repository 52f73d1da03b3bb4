"""Robustness evaluation as reported in Rony 2020, Appendix V, section 5 and Table A V-1."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from wslbench.attacks.base import AttackResult
from wslbench.errors import InvalidInputError

__all__ = ["attack_report", "minimum_over_attacks", "robust_accuracy_curve", "worst_case_norms"]


def worst_case_norms(result: AttackResult, x: torch.Tensor, gray: float = 0.5) -> torch.Tensor:
    """Norms with failures replaced by the distance to a uniform gray image (Brendel et al. 2018)."""
    worst = (x - gray).flatten(1).norm(dim=1)
    return torch.where(result.success, result.norms, worst)


def attack_report(result: AttackResult, x: torch.Tensor, gray: float = 0.5) -> dict[str, float]:
    """Success rate (%), mean L2 over successes, median L2 with failures as worst case,
    number of gradient computations and run time — the columns of Table A V-1."""
    success = result.success
    norms = result.norms[success]
    return {
        "success_rate": 100.0 * success.float().mean().item(),
        "mean_l2": norms.mean().item() if norms.numel() else float("nan"),
        "median_l2": worst_case_norms(result, x, gray).median().item(),
        "n_grads": float(result.n_grads),
        "runtime_s": result.runtime_s,
    }


def minimum_over_attacks(results: Sequence[AttackResult]) -> AttackResult:
    """The "All" row of Tables A V-5 / A V-6: per image, the smallest successful perturbation.

    ``n_grads`` and ``runtime_s`` are the sums over the attacks. Images no attack
    fooled keep the first attack's output and count as failures.
    """
    if len(results) == 0:
        raise InvalidInputError("minimum_over_attacks needs at least one attack result")
    shapes = {tuple(r.adversarial.shape) for r in results}
    if len(shapes) != 1:
        raise InvalidInputError(f"attack results cover different batches: {sorted(shapes)}")
    norms = torch.stack([torch.where(r.success, r.norms, torch.full_like(r.norms, math.inf))
                         for r in results])
    best, which = norms.min(dim=0)
    stacked = torch.stack([r.adversarial for r in results])
    adversarial = stacked[which, torch.arange(stacked.shape[1])]
    return AttackResult(adversarial=adversarial, success=torch.isfinite(best), norms=best,
                        n_grads=sum(r.n_grads for r in results),
                        runtime_s=sum(r.runtime_s for r in results))


def robust_accuracy_curve(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    result: AttackResult,
    epsilons: Sequence[float],
) -> np.ndarray:
    """Accuracy under attacks of norm ≤ ε for each ε (the accuracy-vs-ε curves).

    A sample counts as correct at ε if the model classifies the clean input
    correctly and the attack found no adversarial of norm ≤ ε.
    """
    if len(epsilons) == 0:
        raise InvalidInputError("robust_accuracy_curve needs at least one epsilon")
    with torch.no_grad():
        was_training = model.training
        model.eval()
        clean_ok = model(x).argmax(1) == torch.as_tensor(y, device=x.device).reshape(-1)
        model.train(was_training)
    eps = torch.as_tensor(list(epsilons), dtype=result.norms.dtype, device=result.norms.device)
    broken = result.success[None, :] & (result.norms[None, :] <= eps[:, None])
    return (clean_ok[None, :] & ~broken).float().mean(dim=1).cpu().numpy()
