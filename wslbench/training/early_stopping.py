"""Patience-based early stopping on a monitored value (Thibeau-Sutre 2020, 2.2.3 and 2.3.5).

Section 2.2.3: "the training procedure does not stop until the validation loss
is continuously higher than the lowest validation loss for N epochs (N=5);
otherwise, the training continues to the end of a pre-defined number of
epochs". Section 2.3.5 adds a tolerance on the *relative* difference to the
lowest loss (0.05, then 0.01) for the mask optimisation.

:class:`EarlyStopping` implements both readings, as the authors' ClinicaDL
tool does: a step *improves* when its value beats the best value so far by more
than ``min_delta`` (``mode="min"``: ``value < best − δ``; ``mode="max"``:
``value > best + δ``), with ``δ = min_delta`` or, with ``relative=True``,
``δ = min_delta · |best|``. Every other step is a *bad* step; :meth:`EarlyStopping.step`
returns True once ``patience`` bad steps have followed the last improvement. With
``min_delta=0`` (2.2.3) "continuously higher than the lowest" is exactly "not lower
than the lowest": a tie with the best counts as bad. The first value always
becomes the best. A NaN or infinite value stops at once (the training diverged;
ClinicaDL stops on NaN too) and never becomes the best.
"""

from __future__ import annotations

import math

from wslbench.errors import ConfigError

__all__ = ["EarlyStopping"]

_MODES = ("min", "max")


class EarlyStopping:
    """Stop after ``patience`` steps without an improvement of the monitored value.

    Args:
        patience: bad steps tolerated after the last improvement (5 in 2.2.3), >= 1.
        min_delta: how much a value must beat the best one to count as an
            improvement, >= 0 (0 in 2.2.3).
        mode: ``"min"`` (losses) or ``"max"`` (accuracies).
        relative: whether ``min_delta`` is a fraction of ``|best|`` (the relative
            tolerance of 2.3.5) rather than an absolute amount.

    Attributes:
        best: best value so far (None before the first step).
        best_step: 1-based index of the step that set ``best`` (0 before).
        steps: number of steps taken.
        bad_steps: bad steps since the last improvement.
        improved: whether the last step set a new best.
    """

    def __init__(
        self,
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "min",
        relative: bool = False,
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"patience must be an integer >= 1, got {patience!r}")
        if (
            isinstance(min_delta, bool)
            or not isinstance(min_delta, int | float)
            or not math.isfinite(min_delta)
            or min_delta < 0
        ):
            raise ConfigError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        if mode not in _MODES:
            raise ConfigError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = mode
        self.relative = bool(relative)
        self.reset()

    def reset(self) -> None:
        """Forget every step (as a freshly built object)."""
        self.best: float | None = None
        self.best_step = 0
        self.steps = 0
        self.bad_steps = 0
        self.improved = False

    def is_improvement(self, value: float) -> bool:
        """Whether ``value`` would beat the current best (True for the first finite value)."""
        value = float(value)
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        delta = self.min_delta * abs(self.best) if self.relative else self.min_delta
        if self.mode == "min":
            return value < self.best - delta
        return value > self.best + delta

    def step(self, value: float) -> bool:
        """Record one monitored value (one epoch); return True when training should stop."""
        value = float(value)
        self.steps += 1
        self.improved = self.is_improvement(value)
        if self.improved:
            self.best = value
            self.best_step = self.steps
            self.bad_steps = 0
            return False
        self.bad_steps += 1
        return not math.isfinite(value) or self.bad_steps >= self.patience
