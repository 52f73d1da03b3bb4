"""Input checks shared by every layer: one wording for one kind of mistake.

Each check raises the ``error`` class its caller asks for (``ConfigError`` for
hyper-parameters, ``InvalidInputError`` for call arguments), names the argument,
the value got and what is expected, and returns the value in its checked type.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch

from wslbench.errors import ConfigError, InvalidInputError, WslbenchError

__all__ = ["check_int", "check_number", "check_reference", "as_1d"]


def check_int(name: str, value: object, *, minimum: int = 1,
              error: type[WslbenchError] = ConfigError) -> int:
    """``value`` as an ``int`` at least ``minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(name: str, value: object, *, allow_zero: bool = False,
                 error: type[WslbenchError] = ConfigError) -> float:
    """``value`` as a finite ``float`` > 0 (or >= 0 with ``allow_zero``); bools are refused."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not allow_zero):
        raise error(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def check_reference(reference: object) -> float:
    """The zero level of a multiplicative input mask (π, eq. 3 of Quellec 2017, and the
    sparsity term L0 of eq. 6): a finite number, returned as ``float``."""
    if isinstance(reference, bool) or not isinstance(reference, Real) or not math.isfinite(reference):
        raise ConfigError(
            f"reference (the input value that encodes zero, e.g. 0.5 for Graham-preprocessed "
            f"fundus images) must be a finite number, got {reference!r}"
        )
    return float(reference)


def as_1d(values: object, name: str) -> np.ndarray:
    """A non-empty 1-D array from a sequence, array or tensor."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInputError(f"{name} must be a non-empty 1-D sequence, got shape {arr.shape}")
    return arr
