"""Atomic, safe checkpoints.

Writes go to a temporary name and are renamed into place; an existing file is
never overwritten unless asked. Reads use ``torch.load(weights_only=True)`` so
a pickle-bearing file is refused with :class:`~wslbench.errors.UnsafeFileError`.
"""

from __future__ import annotations

import os
import pickle
import uuid
from pathlib import Path
from typing import Any

import torch

from wslbench.errors import DataFormatError, DataNotFoundError, RunError, UnsafeFileError

__all__ = ["save_checkpoint", "load_checkpoint", "load_state_dict"]


def save_checkpoint(obj: dict[str, Any], path: str | Path, *, overwrite: bool = False) -> Path:
    """Save ``obj`` (tensors, numbers, strings, lists/dicts of them) atomically.

    A checkpoint dict (one with a ``state_dict`` entry) gets a ``provenance`` entry
    (:func:`wslbench.provenance.provenance`) unless it has one; a bare state dict is
    saved as it is.
    """
    path = Path(path)
    if isinstance(obj, dict) and "state_dict" in obj and "provenance" not in obj:
        from wslbench.provenance import provenance

        obj = {**obj, "provenance": provenance()}
    if path.exists() and not overwrite:
        raise RunError(f"checkpoint {path} already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:  # a failed write leaves the previous file as it was and no temporary file
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> Any:
    """Load a checkpoint written by :func:`save_checkpoint` (weights only, no pickle)."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"checkpoint {path} does not exist; expected a file saved by torch.save")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(
            f"checkpoint {path} contains pickled Python objects; only tensors, numbers, strings "
            "and lists/dicts of them are loaded (weights_only=True); expected a checkpoint saved "
            "from a state dict"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise DataFormatError(
            f"checkpoint {path} is not a readable torch file: {exc}; expected an uncorrupted "
            "file written by torch.save"
        ) from exc


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict, accepting a bare one or a checkpoint with a ``state_dict`` key."""
    obj = load_checkpoint(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataFormatError(
            f"{path} does not hold a state dict of tensors; expected name → tensor entries "
            "(bare or under a 'state_dict' key)"
        )
    return obj
