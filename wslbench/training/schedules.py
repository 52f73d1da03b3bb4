"""Learning-rate schedules and the SGD-with-Nesterov optimiser of the histology experiments.

Rony 2020:

* 2.1.3.1 (weakly supervised training): SGD with Nesterov momentum 0.9, weight
  decay 1e-4, learning rate 0.01 for the first half of training and 0.001 for the
  second half: ``StepSchedule(base_lr=0.01, step_size=total // 2, gamma=0.1)``.
* 2.1.3.2 (fully supervised U-Net): lr 0.1 divided by 10 every 320 of 960 epochs
  (GlaS) or every 30 of 90 epochs (CAMELYON16): ``StepSchedule(0.1, 320)``.
* 3.4.2 and 4.4.2: "cosine annealing policy (see Figure-A II-1)" starting at
  ``eta_0 = 0.01``, after He et al. 2019 ("Bag of tricks", section 5.1):
  ``eta_t = 1/2 (1 + cos(pi t / T)) eta_0``. Appendix II gives only the figure (a
  single half-cosine from ``eta = 1`` down to 0): no warm restart, no warm-up and no
  floor are stated, so :class:`CosineSchedule` has no restart and ``min_lr``
  defaults to 0; a non-zero ``min_lr`` gives ``min_lr + (eta_0 - min_lr) ·
  1/2 (1 + cos(pi t / T))`` (Loshchilov & Hutter 2017, eq. 5, one cycle).

``step`` counts calls of ``scheduler.step()`` (epochs in the thesis, or
iterations if the caller steps every batch); steps past the end keep the last
value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LambdaLR

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.validation import check_int, check_number

__all__ = ["StepSchedule", "CosineSchedule", "lambda_lr", "sgd_nesterov"]


@dataclass(frozen=True)
class StepSchedule:
    """Step decay: ``lr(t) = base_lr · gamma ** (t // step_size)`` (Rony 2020, 2.1.3).

    Args:
        base_lr: learning rate at step 0 (0.01 weakly supervised, 0.1 U-Net).
        step_size: number of steps between two decays.
        gamma: multiplicative decay (0.1: "divided by 10").
    """

    base_lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_number("base_lr", self.base_lr)
        if isinstance(self.step_size, bool) or not isinstance(self.step_size, int):
            raise ConfigError(f"step_size must be a positive integer, got {self.step_size!r}")
        if self.step_size < 1:
            raise ConfigError(f"step_size must be a positive integer, got {self.step_size}")
        check_number("gamma", self.gamma)

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` (0-based)."""
        check_int("step", step, minimum=0, error=InvalidInputError)
        return self.base_lr * self.gamma ** (step // self.step_size)


@dataclass(frozen=True)
class CosineSchedule:
    """Cosine annealing of Rony 2020, Appendix II (Figure-A II-1), after He et al. 2019.

    ``lr(t) = min_lr + (base_lr - min_lr) · 1/2 · (1 + cos(pi · min(t, T) / T))``
    with ``T = total_steps``: ``base_lr`` at ``t = 0``, the mean of both at ``t = T/2``,
    ``min_lr`` at ``t >= T``. No warm restart (the thesis shows one half-cosine).

    Args:
        base_lr: starting learning rate ``eta_0`` (0.01 in 3.4.2 and 4.4.2).
        total_steps: ``T``, the number of steps of the whole training.
        min_lr: floor reached at ``T`` (0 in the thesis).
    """

    base_lr: float
    total_steps: int
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        check_number("base_lr", self.base_lr)
        if isinstance(self.total_steps, bool) or not isinstance(self.total_steps, int):
            raise ConfigError(f"total_steps must be a positive integer, got {self.total_steps!r}")
        if self.total_steps < 1:
            raise ConfigError(f"total_steps must be a positive integer, got {self.total_steps}")
        if not (math.isfinite(self.min_lr) and 0.0 <= self.min_lr <= self.base_lr):
            raise ConfigError(f"min_lr must be in [0, base_lr={self.base_lr}], got {self.min_lr!r}")

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` (0-based)."""
        check_int("step", step, minimum=0, error=InvalidInputError)
        t = min(step, self.total_steps) / self.total_steps
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def lambda_lr(
    optimizer: torch.optim.Optimizer, schedule: StepSchedule | CosineSchedule
) -> LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` that follows ``schedule``.

    The factor at step ``t`` is ``schedule.lr_at(t) / schedule.base_lr``, applied to
    each parameter group's initial lr, so a group created with ``lr=schedule.base_lr``
    gets exactly ``lr_at(t)`` and groups with other lrs keep their ratio to it.
    """
    if not isinstance(schedule, StepSchedule | CosineSchedule):
        raise ConfigError(
            f"schedule must be a StepSchedule or CosineSchedule, got {type(schedule).__name__}"
        )
    return LambdaLR(optimizer, lambda step: schedule.lr_at(step) / schedule.base_lr)


def sgd_nesterov(
    params: Iterable[torch.nn.Parameter] | Iterable[dict],
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
) -> torch.optim.SGD:
    """SGD with Nesterov momentum, the optimiser of every histology model (Rony 2020, 2.1.3).

    Args:
        params: model parameters or parameter groups.
        lr: learning rate (0.01 weakly supervised, 0.1 U-Net).
        momentum: Nesterov momentum (0.9 in the thesis); must be positive.
        weight_decay: L2 weight decay (1e-4 in the thesis).
    """
    check_number("lr", lr)
    check_number("momentum", momentum)
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ConfigError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True, dampening=0.0
    )
