"""Private input conversion shared by the metric modules."""

from __future__ import annotations

import numpy as np
import torch

from wslbench.errors import InvalidInputError


def as_float_array(values: object, name: str) -> np.ndarray:
    """``values`` (array, tensor or sequence) as a non-empty, finite float64 NumPy array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be numeric, got {type(values).__name__}") from exc
    if arr.size == 0:
        raise InvalidInputError(f"{name} is empty; expected at least one sample")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{name} contains NaN or Inf; expected finite values")
    return arr
