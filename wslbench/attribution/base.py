"""The one interface every attribution method follows.

``Method(model).attribute(x, target=None, *, create_graph=False) -> Tensor``
returns a *raw* map (never rescaled or flipped; see :func:`normalize` in
``wslbench.attribution.normalize`` for display) of shape ``(B, 1, H, W)`` for
2D inputs ``(B, C, H, W)`` or ``(B, 1, D, H, W)`` for 3D inputs
``(B, C, D, H, W)``, on the input's device.

``target`` selects the scalar explained per sample: ``None`` takes the model's
single output (regression models such as the DR nets, shape ``(B,)`` or
``(B, 1)``) or the arg-max class; an int or a ``(B,)`` tensor of class indices
picks a class. With ``create_graph=True`` the map stays differentiable with
respect to the model's parameters (sparsity-enhanced training, Quellec 2017,
eq. 6); otherwise it is detached.

Methods leave the model's train/eval mode, its ``requires_grad`` flags and the
input's ``.grad`` untouched (:func:`preserved_model_state`).
"""

from __future__ import annotations

import torch
from torch import nn

from wslbench.errors import InvalidInputError
from wslbench.model_state import preserved_model_state
from wslbench.registry import Registry

__all__ = [
    "ATTRIBUTION",
    "Attribution",
    "register_attribution",
    "create_attribution",
    "list_attribution",
    "select_target",
    "check_input",
    "preserved_model_state",
]

ATTRIBUTION: Registry[Attribution] = Registry("attribution method")
register_attribution = ATTRIBUTION.register


def create_attribution(name: str, model: nn.Module, **kwargs: object) -> Attribution:
    """Build the attribution method registered as ``name`` for ``model``."""
    return ATTRIBUTION.create(name, model, **kwargs)


def list_attribution() -> list[str]:
    """Names of the registered attribution methods."""
    return ATTRIBUTION.names()


def check_input(x: torch.Tensor) -> None:
    """Raise :class:`InvalidInputError` unless ``x`` is a finite (B, C, H, W) or (B, C, D, H, W) tensor."""
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"attribution input must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in (4, 5):
        raise InvalidInputError(
            f"attribution input must be (B, C, H, W) or (B, C, D, H, W), got shape {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise InvalidInputError("attribution input contains NaN or Inf; expected finite values")


def select_target(output: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    """The explained scalar per sample, shape ``(B,)``, from model ``output``.

    ``output`` is ``(B,)`` or ``(B, 1)`` (regression/binary score) or ``(B, K)``.
    """
    if output.ndim == 1:
        single = target is None or (
            bool((torch.as_tensor(target) == 0).all())
            if isinstance(target, torch.Tensor)
            else target == 0
        )
        if not single:
            raise InvalidInputError(f"model has a single output; target must be None, got {target!r}")
        return output
    if output.ndim != 2:
        raise InvalidInputError(
            f"model output must be (B,) or (B, K) to pick a target, got {tuple(output.shape)}"
        )
    b, k = output.shape
    if target is None:
        if k == 1:
            return output[:, 0]
        index = output.argmax(dim=1)
    elif isinstance(target, int):
        if not 0 <= target < k:
            raise InvalidInputError(f"target {target} out of range for {k} outputs")
        index = torch.full((b,), target, dtype=torch.long, device=output.device)
    else:
        index = torch.as_tensor(target, device=output.device).long().reshape(-1)
        if index.shape != (b,) or (index < 0).any() or (index >= k).any():
            raise InvalidInputError(
                f"target must be an int or {b} class indices in [0, {k}), got {target!r}"
            )
    return output.gather(1, index[:, None])[:, 0]


class Attribution:
    """Base class: subclasses implement :meth:`_attribute` and register a name.

    Args:
        model: a module mapping the input to ``(B,)``, ``(B, 1)`` or ``(B, K)`` outputs.
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise InvalidInputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model

    def attribute(
        self,
        x: torch.Tensor,
        target: int | torch.Tensor | None = None,
        *,
        create_graph: bool = False,
    ) -> torch.Tensor:
        """Raw attribution map ``(B, 1, *spatial)`` of ``x`` for ``target``."""
        check_input(x)
        with preserved_model_state(self.model):
            out = self._attribute(x, target, create_graph=create_graph)
        if self._keeps_input_size():
            expected = (x.shape[0], 1, *x.shape[2:])
            wrong = tuple(out.shape) != expected
        else:  # maps at a layer's resolution (Grad-CAM/CAM with upsample=False)
            expected = (x.shape[0], 1, *("*" for _ in x.shape[2:]))
            wrong = out.ndim != x.ndim or tuple(out.shape[:2]) != (x.shape[0], 1)
        if wrong:
            raise InvalidInputError(
                f"{type(self).__name__} produced shape {tuple(out.shape)}, expected {expected}"
            )
        return out if create_graph else out.detach()

    def _keeps_input_size(self) -> bool:
        """Whether maps have the input's spatial size (False only for layer-resolution maps)."""
        return True

    def _attribute(
        self, x: torch.Tensor, target: int | torch.Tensor | None, *, create_graph: bool
    ) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement _attribute")
