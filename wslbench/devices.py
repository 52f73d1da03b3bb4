"""Device resolution shared by every experiment (one rule: ``None`` means CUDA when available)."""

from __future__ import annotations

import torch

from wslbench.errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(device: str | None) -> torch.device:
    """``device`` as a torch device; ``None`` is CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {device!r}; expected e.g. 'cpu' or 'cuda'") from exc
