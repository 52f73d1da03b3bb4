"""Decoupled Direction and Norm (DDN) L2 attack (Rony 2020, Appendix V, Algorithm A V-1).

Each iteration takes a step of size α along the normalised gradient of the
cross-entropy (ascent when untargeted, descent when targeted), then projects
the accumulated perturbation onto the sphere of radius ε_k around x, where
ε_k shrinks by (1 − γ) when the previous iterate was adversarial and grows by
(1 + γ) otherwise. α follows a cosine annealing from 1 to 0.01 (section 5);
iterates are clipped to the input box and optionally quantised to 256 levels
(step 13 and section 5). The adversarial with the lowest norm is returned.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.attacks.base import ATTACKS, AttackResult, check_attack_input, is_adversarial
from wslbench.errors import ConfigError
from wslbench.model_state import preserved_model_state

__all__ = ["DDN", "cosine_step_size"]


def cosine_step_size(k: int, steps: int, alpha_max: float = 1.0, alpha_min: float = 0.01) -> float:
    """Cosine annealing of the step size: ``alpha_max`` at k = 0 to ``alpha_min`` at k = steps − 1."""
    if steps <= 1:
        return alpha_max
    return alpha_min + (alpha_max - alpha_min) * 0.5 * (1 + math.cos(math.pi * k / (steps - 1)))


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


@ATTACKS.register("ddn")
class DDN:
    """DDN attack.

    Args:
        model: maps inputs in ``[low, high]`` to logits ``(B, K)``.
        steps: number of iterations K (100, 300 or 1000 in Table A V-1).
        gamma: norm update factor γ (0.05; eq. A V-8).
        init_norm: ε₀ (1.0).
        alpha_max: initial step size α (1.0), annealed to ``alpha_min`` (0.01).
        alpha_min: final step size.
        quantize: round every iterate to ``levels`` levels (section 5).
        levels: number of quantisation levels (256 for 8-bit images).
        max_norm: if set, ε_k never exceeds it and samples without a successful adversarial
            return their last iterate (norm ≤ max_norm) — the setting of adversarial
            training (section 6), where a perturbation is wanted for every sample.
        low: lower bound of the input box.
        high: upper bound of the input box.
    """

    def __init__(
        self,
        model: nn.Module,
        steps: int = 100,
        gamma: float = 0.05,
        init_norm: float = 1.0,
        alpha_max: float = 1.0,
        alpha_min: float = 0.01,
        quantize: bool = True,
        levels: int = 256,
        max_norm: float | None = None,
        low: float = 0.0,
        high: float = 1.0,
    ) -> None:
        if steps < 1:
            raise ConfigError(f"DDN steps must be ≥ 1, got {steps}")
        if not 0 < gamma < 1:
            raise ConfigError(f"DDN gamma must be in (0, 1), got {gamma}")
        if init_norm <= 0 or (max_norm is not None and max_norm <= 0):
            raise ConfigError("DDN init_norm and max_norm must be positive")
        if levels < 2 or high <= low:
            raise ConfigError("DDN needs levels ≥ 2 and high > low")
        self.model = model
        self.steps = steps
        self.gamma = gamma
        self.init_norm = init_norm
        self.alpha_max = alpha_max
        self.alpha_min = alpha_min
        self.quantize = quantize
        self.levels = levels
        self.max_norm = max_norm
        self.low = low
        self.high = high

    def _project_box(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        adv = (x + delta).clamp(self.low, self.high)
        if self.quantize:
            scale = (self.levels - 1) / (self.high - self.low)
            adv = torch.round((adv - self.low) * scale) / scale + self.low
        return adv - x

    def run(self, x: torch.Tensor, y: torch.Tensor, targeted: bool = False) -> AttackResult:
        """Attack ``x`` with true labels ``y`` (or target labels when ``targeted``)."""
        y = check_attack_input(x, y, self.low, self.high)
        start = time.perf_counter()
        x = x.detach()
        b = x.shape[0]
        sign = -1.0 if targeted else 1.0
        delta = torch.zeros_like(x, requires_grad=True)
        eps = torch.full((b,), self.init_norm, device=x.device, dtype=x.dtype)
        best_norm = torch.full((b,), math.inf, device=x.device, dtype=x.dtype)
        best_delta = torch.zeros_like(x)
        with preserved_model_state(self.model):
            self.model.eval()
            for p in self.model.parameters():
                p.requires_grad_(False)
            for k in range(self.steps):
                logits = self.model(x + delta)
                adv = is_adversarial(logits, y, targeted)
                norm = _flat_norm(delta.detach())
                better = adv & (norm < best_norm)
                best_norm = torch.where(better, norm, best_norm)
                best_delta[better] = delta.detach()[better]

                loss = sign * F.cross_entropy(logits, y, reduction="sum")
                (grad,) = torch.autograd.grad(loss, delta)
                grad_norm = _flat_norm(grad)
                zero = grad_norm == 0
                if zero.any():  # flat loss: a random direction keeps the search moving
                    grad[zero] = torch.randn_like(grad[zero])
                    grad_norm = _flat_norm(grad)
                step = cosine_step_size(k, self.steps, self.alpha_max, self.alpha_min)
                with torch.no_grad():
                    delta_new = delta + step * grad / _per_sample(grad_norm, grad)
                    eps = torch.where(adv, eps * (1 - self.gamma), eps * (1 + self.gamma))
                    if self.max_norm is not None:
                        eps = eps.clamp(max=self.max_norm)
                    d_norm = _flat_norm(delta_new).clamp_min(1e-12)
                    delta_new = delta_new * _per_sample(eps / d_norm, delta_new)
                    delta_new = self._project_box(x, delta_new)
                delta = delta_new.requires_grad_(True)
            with torch.no_grad():  # the last iterate is a candidate too
                adv = is_adversarial(self.model(x + delta), y, targeted)
                norm = _flat_norm(delta)
                better = adv & (norm < best_norm)
                best_norm = torch.where(better, norm, best_norm)
                best_delta[better] = delta.detach()[better]
        success = torch.isfinite(best_norm)
        if self.max_norm is not None:
            best_delta[~success] = delta.detach()[~success]
        return AttackResult(
            adversarial=(x + best_delta).detach(),
            success=success,
            norms=best_norm,
            n_grads=self.steps,
            runtime_s=time.perf_counter() - start,
        )
