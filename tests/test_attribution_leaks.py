"""Attribution methods leave no hooks behind and do not leak memory over repeated calls."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
import torch
from torch import nn

from wslbench.attribution import CAM, LRP, GradCAM, create_attribution, list_attribution
from wslbench.errors import InvalidInputError


def _hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


class _Exploding(nn.Module):
    """Raises inside the forward pass when ``armed``."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.armed:
            raise RuntimeError("boom inside forward")
        return x


def _net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.LeakyReLU(0.33),
        _Exploding(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 2),
    )


@pytest.mark.parametrize("method", ["grad-cam", "cam"])
def test_hooks_are_removed_when_the_forward_raises(method: str) -> None:
    model = _net()
    kwargs = {"layer": "1"} if method == "grad-cam" else {"layer": "1", "linear": "5"}
    explainer = create_attribution(method, model, **kwargs)
    model[2].armed = True
    with pytest.raises(RuntimeError, match="boom"):
        explainer.attribute(torch.randn(2, 1, 6, 6))
    assert _hook_count(model) == 0
    model[2].armed = False
    explainer.attribute(torch.randn(2, 1, 6, 6))  # still usable afterwards
    assert _hook_count(model) == 0


def test_hook_on_a_layer_that_never_runs_is_removed_with_a_clear_error() -> None:
    class WithSpare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _net()
            self.unused = nn.Conv2d(1, 1, 1)  # registered but not part of forward

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    model = WithSpare()
    with pytest.raises(InvalidInputError, match="not called"):
        GradCAM(model, layer="unused").attribute(torch.randn(1, 1, 4, 4))
    assert _hook_count(model) == 0


@pytest.mark.parametrize("method", list_attribution())
def test_no_method_leaves_hooks(method: str) -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 2),
    )
    kwargs = {"grad-cam": {"layer": "1"}, "cam": {"layer": "1", "linear": "4"}}.get(method, {})
    create_attribution(method, model, **kwargs).attribute(torch.randn(2, 1, 5, 5))
    assert _hook_count(model) == 0


def _python_growth(call, repeats: int) -> int:
    for _ in range(5):  # warm caches before measuring
        call()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(repeats):
            call()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


def test_repeated_grad_cam_and_lrp_do_not_grow_memory() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    x = torch.randn(2, 1, 8, 8)
    explainers = [GradCAM(model, layer="4"), CAM(model, layer="4", linear="7"), LRP(model)]
    kept = []
    for explainer in explainers:
        growth = _python_growth(lambda e=explainer: kept.append(e.attribute(x).sum().item()), 200)
        # 200 floats kept in ``kept`` cost a few kB; a leaked graph or hook list per call far more
        assert growth < 64 * 1024, (type(explainer).__name__, growth)
        assert _hook_count(model) == 0
    assert len(kept) == 3 * 205
