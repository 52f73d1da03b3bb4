"""Contract tests run over every registered attribution method (DESIGN §6)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wslbench.attribution import create_attribution, list_attribution
from wslbench.errors import ConfigError

# Method-specific keyword arguments; layer names refer to the models below.
LAYER_KWARGS: dict[str, dict[str, object]] = {
    "grad-cam": {"layer": "act2"},
    "cam": {"layer": "act2", "linear": "fc"},
    "occlusion": {"window": 2, "batch_size": 5},
    "meaningful-perturbation": {"session_max_iter": 4, "batch_size": 2},
}


class Tiny(nn.Sequential):
    """conv → leaky relu → pool → conv → leaky relu → global average pool → linear."""

    def __init__(self, dims: int, in_ch: int, outputs: int, regression: bool) -> None:
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
        gap = nn.AdaptiveAvgPool2d if dims == 2 else nn.AdaptiveAvgPool3d
        layers: dict[str, nn.Module] = {
            "conv1": conv(in_ch, 4, 3, padding=1),
            "act1": nn.LeakyReLU(0.33),
            "pool": pool(2),
            "conv2": conv(4, 5, 3, padding=1),
            "act2": nn.LeakyReLU(0.33),
            "gap": gap(1),
            "flat": nn.Flatten(),
            "fc": nn.Linear(5, outputs),
        }
        if regression:
            layers["squeeze"] = nn.Flatten(0)  # (B, 1) -> (B,)
        super().__init__()
        for name, module in layers.items():
            self.add_module(name, module)


CASES = {
    "2d-regression": (lambda: Tiny(2, 3, 1, True), (3, 3, 8, 8)),
    "2d-classifier": (lambda: Tiny(2, 3, 4, False), (3, 3, 8, 8)),
    "3d-classifier": (lambda: Tiny(3, 1, 2, False), (2, 1, 4, 6, 6)),
}


def _build(method: str, model: nn.Module):
    return create_attribution(method, model, **LAYER_KWARGS.get(method, {}))


def test_every_method_is_covered() -> None:
    assert set(list_attribution()) >= {
        "sensitivity",
        "hue-constrained",
        "gradient-x-input",
        "lrp",
        "grad-cam",
        "cam",
        "occlusion",
    }


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("method", list_attribution())
@pytest.mark.parametrize("training", [False, True])
def test_contract(method: str, case: str, training: bool) -> None:
    factory, shape = CASES[case]
    model = factory()
    model.train(training)
    model.conv2.weight.requires_grad_(False)  # a frozen parameter must stay frozen
    flags = [p.requires_grad for p in model.parameters()]
    x = torch.randn(shape, requires_grad=True)
    sentinel = torch.full_like(x, 7.0)
    x.grad = sentinel.clone()

    attribution = _build(method, model).attribute(x)

    assert attribution.shape == (shape[0], 1, *shape[2:])
    assert torch.isfinite(attribution).all()
    assert attribution.device == x.device
    assert not attribution.requires_grad
    assert all(m.training == training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(x.grad, sentinel)
    assert x.requires_grad


@pytest.mark.parametrize("method", list_attribution())
def test_target_selects_class(method: str) -> None:
    model = Tiny(2, 3, 4, False).eval()
    x = torch.randn(2, 3, 8, 8)
    explainer = _build(method, model)
    by_int = explainer.attribute(x, target=1)
    by_tensor = explainer.attribute(x, target=torch.tensor([1, 1]))
    torch.testing.assert_close(by_int, by_tensor)
    default = explainer.attribute(x)
    argmax = explainer.attribute(x, target=model(x).argmax(dim=1))
    torch.testing.assert_close(default, argmax)


@pytest.mark.parametrize("method", list_attribution())
def test_batched_equals_per_sample(method: str) -> None:
    model = Tiny(2, 3, 4, False).eval()
    x = torch.randn(3, 3, 8, 8)
    explainer = _build(method, model)
    whole = explainer.attribute(x, target=2)
    parts = torch.cat([explainer.attribute(x[i : i + 1], target=2) for i in range(3)])
    torch.testing.assert_close(whole, parts, rtol=1e-4, atol=1e-6)


def test_unknown_method_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        create_attribution("saliencyy", Tiny(2, 3, 1, True))
    for name in list_attribution():
        assert name in str(info.value)


def test_misspelled_keyword_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        create_attribution("sensitivity", Tiny(2, 3, 1, True), qq=2)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("method", list_attribution())
def test_create_graph_keeps_the_map_differentiable(method: str, case: str) -> None:
    factory, shape = CASES[case]
    model = factory().eval()
    x = torch.randn(shape)
    attribution = _build(method, model).attribute(x, create_graph=True)
    assert attribution.shape == (shape[0], 1, *shape[2:])
    assert attribution.requires_grad
    attribution.square().sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("method", list_attribution())
def test_fully_frozen_model(method: str) -> None:
    model = Tiny(2, 3, 4, False).eval().requires_grad_(False)
    x = torch.randn(2, 3, 8, 8)
    attribution = _build(method, model).attribute(x)
    assert attribution.shape == (2, 1, 8, 8)
    assert torch.isfinite(attribution).all() and attribution.abs().sum() > 0
    assert not any(p.requires_grad for p in model.parameters())
