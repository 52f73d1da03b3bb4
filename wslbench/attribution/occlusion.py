"""Occlusion sensitivity (Zeiler & Fergus 2014) in N dimensions, batched."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from wslbench.attribution._utils import target_weights, weighted_score
from wslbench.attribution.base import Attribution, register_attribution
from wslbench.errors import ConfigError, InvalidInputError

__all__ = ["Occlusion"]


def _as_tuple(value: int | tuple[int, ...], n: int, name: str) -> tuple[int, ...]:
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) != n or any(
        not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values
    ):
        raise ConfigError(
            f"Occlusion {name} must be a positive int or {n} positive ints, got {value!r}"
        )
    return values


def _starts(size: int, window: int, stride: int) -> list[int]:
    """Window start positions along one axis; the last window is aligned with the end."""
    last = max(size - window, 0)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


@register_attribution("occlusion")
class Occlusion(Attribution):
    """Score drop when a window of the input is replaced by ``baseline``.

    Every window (all channels at once) is set to ``baseline`` and the map at
    each pixel is the mean, over the windows covering it, of
    ``f(x) - f(x with the window occluded)`` (positive where the region
    supports the explained score). Windows slide by ``stride`` and a last
    window is aligned with the far edge so that every pixel is covered. The
    occluded copies of all samples are evaluated ``batch_size`` at a time.
    ``target=None`` is resolved to the arg-max class of the *unoccluded*
    output, so every copy explains the same class.

    Args:
        model: maps ``(B, C, *spatial)`` to ``(B,)`` or ``(B, K)``.
        window: window size, an int or one int per spatial axis.
        stride: window step (defaults to ``window``: non-overlapping tiles).
        baseline: value written into the occluded window.
        batch_size: occluded copies per forward call.

    Shapes:
        ``attribute``: ``(B, C, *spatial) -> (B, 1, *spatial)``.
    """

    def __init__(
        self,
        model: nn.Module,
        window: int | tuple[int, ...] = 8,
        stride: int | tuple[int, ...] | None = None,
        baseline: float = 0.0,
        batch_size: int = 64,
    ) -> None:
        super().__init__(model)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"Occlusion batch_size must be a positive int, got {batch_size!r}")
        self.window = window
        self.stride = stride
        self.baseline = float(baseline)
        self.batch_size = batch_size

    def _attribute(
        self, x: torch.Tensor, target: int | torch.Tensor | None, *, create_graph: bool
    ) -> torch.Tensor:
        spatial = tuple(x.shape[2:])
        n = len(spatial)
        window = _as_tuple(self.window, n, "window")
        stride = _as_tuple(self.stride if self.stride is not None else window, n, "stride")
        window = tuple(min(w, s) for w, s in zip(window, spatial))
        starts = list(
            itertools.product(*(_starts(s, w, st) for s, w, st in zip(spatial, window, stride)))
        )
        data = x if create_graph else x.detach()
        batch = x.shape[0]
        with torch.set_grad_enabled(create_graph):
            reference = self.model(data)
            weights = target_weights(reference, target)
            if reference.shape[0] != batch:
                raise InvalidInputError(
                    f"model output {tuple(reference.shape)} does not have the batch size {batch}"
                )
            base_score = weighted_score(reference, weights)
            pairs = [(b, p) for b in range(batch) for p in range(len(starts))]
            drops = []
            for first in range(0, len(pairs), self.batch_size):
                chunk = pairs[first : first + self.batch_size]
                copies = []
                for b, p in chunk:
                    copy = data[b].clone()
                    region = (slice(None),) + tuple(
                        slice(s, s + w) for s, w in zip(starts[p], window)
                    )
                    copy[region] = self.baseline
                    copies.append(copy)
                index = torch.tensor([b for b, _ in chunk], device=x.device)
                out = self.model(torch.stack(copies))
                drops.append(base_score[index] - weighted_score(out, weights[index]))
            drop = torch.cat(drops).reshape(batch, len(starts))
        total = x.new_zeros((batch, 1, *spatial))
        count = x.new_zeros((1, 1, *spatial))
        for p, start in enumerate(starts):
            region = (slice(None), slice(None)) + tuple(
                slice(s, s + w) for s, w in zip(start, window)
            )
            total[region] = total[region] + drop[:, p].reshape(batch, *([1] * (n + 1)))
            count[region] += 1
        return total / count
