"""Private helpers shared by the attribution methods (not public API)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.attribution.base import select_target
from wslbench.errors import InvalidInputError

__all__: list[str] = []


def input_leaf(x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """A tensor equal to ``x`` to differentiate with respect to, never touching ``x.grad``.

    With ``create_graph`` and an ``x`` that already requires grad, ``x`` itself is
    used so the map stays connected to ``x``'s history; otherwise a detached leaf.
    """
    if create_graph and x.requires_grad:
        return x
    return x.detach().requires_grad_(True)


def target_score(output: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    """The explained scalar per sample ``(B,)`` (see :func:`select_target`)."""
    return select_target(output, target)


def target_weights(output: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    """A one-hot tensor shaped like ``output`` such that ``(output * w)`` summed per sample is the score.

    Resolves ``target=None`` to the arg-max class *of this output*, so later
    perturbed copies keep explaining the same class.
    """
    leaf = output.detach().requires_grad_(True)
    with torch.enable_grad():
        score = select_target(leaf, target)
        (weights,) = torch.autograd.grad(score.sum(), leaf)
    return weights


def weighted_score(output: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-sample score ``(B,)`` of ``output`` for one-hot ``weights`` (same shape)."""
    return (output * weights).reshape(output.shape[0], -1).sum(dim=1)


def resolve_module(model: nn.Module, layer: nn.Module | str, what: str = "layer") -> nn.Module:
    """``layer`` itself if it is a sub-module of ``model``, or the sub-module at dotted name ``layer``."""
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError as exc:
            names = [name for name, _ in model.named_modules() if name]
            raise InvalidInputError(
                f"{what} {layer!r} is not a sub-module of the model; expected one of: {', '.join(names)}"
            ) from exc
    if not isinstance(layer, nn.Module):
        raise InvalidInputError(
            f"{what} must be a torch.nn.Module or a dotted sub-module name, got {type(layer).__name__}"
        )
    if not any(m is layer for m in model.modules()):
        raise InvalidInputError(f"{what} {type(layer).__name__} is not a sub-module of the model")
    return layer


@contextlib.contextmanager
def capture_output(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record ``module``'s forward outputs in the yielded list; the hook is removed on exit, errors included."""
    store: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor):
            raise InvalidInputError(
                f"{type(_m).__name__} returns {type(output).__name__}; a single tensor is expected"
            )
        store.append(output)

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()
        store.clear()


def last_output(store: list[torch.Tensor], module: nn.Module) -> torch.Tensor:
    """The last tensor recorded by :func:`capture_output`, with a clear error if the layer never ran."""
    if not store:
        raise InvalidInputError(
            f"layer {type(module).__name__} was not called during the model's forward pass"
        )
    return store[-1]


def upsample_map(cam: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Bilinear (2D) or trilinear (3D) resize of a ``(B, 1, *spatial)`` map to ``size``."""
    if tuple(cam.shape[2:]) == tuple(size):
        return cam
    mode = "bilinear" if cam.ndim == 4 else "trilinear"
    return F.interpolate(cam, size=size, mode=mode, align_corners=False)


def feature_map(features: torch.Tensor, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """``features`` if it has as many spatial axes as ``x``, else a clear error."""
    if features.ndim != x.ndim:
        raise InvalidInputError(
            f"layer {type(layer).__name__} outputs shape {tuple(features.shape)}; a feature map "
            f"with {x.ndim - 2} spatial axes like the input {tuple(x.shape)} is expected"
        )
    return features
