"""The shared shape of every attack: ``Attack(model, ...).run(x, y, targeted=False) -> AttackResult``.

Inputs live in a box ``[low, high]`` (``[0, 1]`` by default: put any
normalisation inside the model, DESIGN §8). Models return logits ``(B, K)``;
a model with a single regression score (the DR nets) is wrapped with
:class:`ThresholdClassifier` first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wslbench.errors import InvalidInputError
from wslbench.registry import Registry

__all__ = ["ATTACKS", "AttackResult", "ThresholdClassifier", "check_attack_input", "is_adversarial"]

ATTACKS: Registry[object] = Registry("attack")


@dataclass
class AttackResult:
    """Outcome of an attack on a batch.

    Attributes:
        adversarial: ``(B, *input)`` adversarial inputs (the original where the attack failed,
            unless the attack documents otherwise).
        success: ``(B,)`` bool, the returned input fools the model.
        norms: ``(B,)`` L2 norms of ``adversarial - x`` (``inf`` where the attack failed).
        n_grads: number of gradient computations (per batch, as in Rony 2020, Table A V-1).
        runtime_s: wall time of the attack in seconds.
    """

    adversarial: torch.Tensor
    success: torch.Tensor
    norms: torch.Tensor
    n_grads: int
    runtime_s: float


class ThresholdClassifier(nn.Module):
    """Turn a single score ``s`` (B,) or (B, 1) into 2-class logits ``[t - s, s - t]``.

    Lets the attacks run on regression models such as the o_O DR nets, whose
    decision is ``s ≥ t`` (referable DR at grade 1.5, Quellec 2017, 5.2).
    """

    def __init__(self, model: nn.Module, threshold: float) -> None:
        super().__init__()
        self.model = model
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.model(x).reshape(x.shape[0], -1)
        if s.shape[1] != 1:
            raise InvalidInputError(
                f"ThresholdClassifier expects one score per sample, got {s.shape[1]}"
            )
        d = s - self.threshold
        return torch.cat([-d, d], dim=1)


def check_attack_input(x: torch.Tensor, y: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Validate a batch and its labels; return labels as a ``(B,)`` long tensor."""
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        raise InvalidInputError(f"attack input must be a (B, ...) tensor, got {getattr(x, 'shape', x)!r}")
    if not torch.isfinite(x).all():
        raise InvalidInputError("attack input contains NaN or Inf; expected finite values")
    if x.min() < low - 1e-6 or x.max() > high + 1e-6:
        raise InvalidInputError(
            f"attack input must lie in [{low}, {high}] (put normalisation inside the model), "
            f"got [{x.min().item():.4g}, {x.max().item():.4g}]"
        )
    y = torch.as_tensor(y, device=x.device).long().reshape(-1)
    if y.shape[0] != x.shape[0]:
        raise InvalidInputError(f"got {y.shape[0]} labels for a batch of {x.shape[0]}")
    return y


def is_adversarial(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """``(B,)`` bool: untargeted → prediction ≠ y; targeted → prediction = y."""
    pred = logits.argmax(dim=1)
    return pred == y if targeted else pred != y
