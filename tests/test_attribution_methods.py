"""Each attribution method against an independent computation (DESIGN §7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wslbench.attribution import (
    CAM,
    LRP,
    GradCAM,
    GradientXInput,
    HueConstrainedSensitivity,
    Occlusion,
    Sensitivity,
    normalize,
)
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.nn import Maxout, RMSPool2d, UntiedBiasConv2d

H = 1e-6  # central-difference step (float64)


def _smooth_net() -> nn.Module:
    """A tiny float64 classifier with smooth activations (exact finite differences)."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Softplus(),
        nn.Conv2d(4, 2, 3, stride=2),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(8, 3),
    ).double()


def _fd_input_gradient(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """∂f_target/∂x by central differences, every pixel and channel (all samples at once)."""
    grad = torch.zeros_like(x)
    with torch.no_grad():
        for index in np.ndindex(*x.shape[1:]):
            step = torch.zeros_like(x)
            step[(slice(None), *index)] = H
            diff = model(x + step)[:, target] - model(x - step)[:, target]
            grad[(slice(None), *index)] = diff / (2 * H)
    return grad


def _fd_mask_gradient(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """∂f_target(m ∘ x)/∂m at m = 1 by central differences on each mask value."""
    grad = torch.zeros((x.shape[0], 1, *x.shape[2:]), dtype=x.dtype)
    with torch.no_grad():
        for index in np.ndindex(*x.shape[2:]):
            mask = torch.ones_like(grad)
            mask[(slice(None), 0, *index)] += H
            up = model(mask * x)[:, target]
            mask[(slice(None), 0, *index)] -= 2 * H
            down = model(mask * x)[:, target]
            grad[(slice(None), 0, *index)] = (up - down) / (2 * H)
    return grad


# ------------------------------------------------------------------ ω and π


@pytest.mark.parametrize("q", [1, 2, math.inf])
def test_sensitivity_matches_finite_differences(q: float) -> None:
    model = _smooth_net()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    grad = _fd_input_gradient(model, x, target=1)
    expected = torch.linalg.vector_norm(grad, ord=q, dim=1, keepdim=True)
    omega = Sensitivity(model, q=q).attribute(x, target=1)
    torch.testing.assert_close(omega, expected, rtol=1e-6, atol=1e-8)


def test_sensitivity_single_channel_is_abs_gradient_for_every_q() -> None:
    model = nn.Sequential(
        nn.Conv3d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2, 1), nn.Flatten(0)
    )
    model = model.double()
    x = torch.randn(2, 1, 3, 3, 3, dtype=torch.float64)
    maps = [Sensitivity(model, q=q).attribute(x) for q in (1, 2, "inf")]
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(leaf).sum(), leaf)
    for m in maps:
        torch.testing.assert_close(m, grad.abs())


def test_sensitivity_rejects_bad_q() -> None:
    with pytest.raises(ConfigError):
        Sensitivity(_smooth_net(), q=3)


def test_hue_constrained_matches_finite_differences_on_the_mask() -> None:
    model = _smooth_net()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    expected = _fd_mask_gradient(model, x, target=2)
    pi = HueConstrainedSensitivity(model).attribute(x, target=2)
    torch.testing.assert_close(pi, expected.abs(), rtol=1e-6, atol=1e-8)
    signed = HueConstrainedSensitivity(model, signed=True).attribute(x, target=2)
    torch.testing.assert_close(signed, expected, rtol=1e-6, atol=1e-8)
    assert (signed < 0).any()  # the signed option really keeps the sign


def test_hue_constrained_is_abs_of_channel_summed_gradient_times_input() -> None:
    """Section 3.5: the mask scales all colour channels together, so π = |Σ_c x_c ∂f/∂x_c|."""
    model = _smooth_net()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    grad = _fd_input_gradient(model, x, target=0)  # independent of autograd
    expected = (grad * x).sum(dim=1, keepdim=True).abs()
    pi = HueConstrainedSensitivity(model).attribute(x, target=0)
    torch.testing.assert_close(pi, expected, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(
        GradientXInput(model).attribute(x, target=0),
        (grad * x).sum(dim=1, keepdim=True),
        rtol=1e-6,
        atol=1e-8,
    )
    omega = Sensitivity(model, q=2).attribute(x, target=0)
    assert not torch.allclose(pi, omega)  # π is not a rescaled ω


def test_hue_constrained_scales_with_brightness_on_a_homogeneous_net() -> None:
    """A bias-free ReLU net is 1-homogeneous: scaling every channel by c > 0 scales π by c."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(36, 1, bias=False),
        nn.Flatten(0),
    ).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    method = HueConstrainedSensitivity(model)
    for c in (0.5, 3.0):
        torch.testing.assert_close(method.attribute(c * x), c * method.attribute(x))


class _ExternalWeightNet(nn.Module):
    """conv(w) → softplus → linear; ``w`` is a plain tensor so gradcheck can drive it."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w
        self.head = nn.Linear(3 * 4 * 4, 1).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.softplus(F.conv2d(x, self.w, padding=1))
        return self.head(h.flatten(1))[:, 0]


def test_hue_constrained_create_graph_is_differentiable_in_the_weights() -> None:
    """Double backprop (Quellec 2017, eq. 6): gradcheck of Σπ w.r.t. a conv weight.

    Smooth activations are used on purpose: with (leaky) ReLU and max pooling
    the map is piecewise constant in its second-derivative sense (the Hessian
    terms vanish between kinks) and finite differences across kinks disagree.
    """
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    w0 = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    net = _ExternalWeightNet(w0)

    def loss(w: torch.Tensor) -> torch.Tensor:
        net.w = w
        return HueConstrainedSensitivity(net).attribute(x, create_graph=True).sum()

    assert torch.autograd.gradcheck(loss, (w0.clone().requires_grad_(True),))
    net.w = w0
    pi = HueConstrainedSensitivity(net).attribute(x)
    assert not pi.requires_grad  # detached without create_graph


def test_create_graph_gives_parameter_gradients_for_sparsity_loss() -> None:
    model = _smooth_net()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    pi = HueConstrainedSensitivity(model).attribute(x, target=0, create_graph=True)
    assert pi.requires_grad
    pi.sum().backward()
    for name, p in model.named_parameters():
        if name != "5.bias":  # the output bias cannot change a derivative of the output
            assert p.grad is not None and p.grad.abs().sum() > 0, name


# ------------------------------------------------------------------- LRP


def _bias_free_2d() -> nn.Module:
    return nn.Sequential(
        UntiedBiasConv2d(3, 6, 3, input_size=8, padding=1),  # untied bias starts at zero
        nn.LeakyReLU(0.33),
        RMSPool2d(2, 2),
        nn.Conv2d(6, 8, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(32, 16, bias=False),
        Maxout(2),
        nn.Linear(8, 3, bias=False),
    ).double()


def _bias_free_3d() -> nn.Module:
    return nn.Sequential(
        nn.Conv3d(1, 6, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool3d(2),
        nn.Conv3d(6, 8, 3, padding=1, bias=False),
        nn.LeakyReLU(0.1),
        nn.AvgPool3d(2),
        nn.Conv3d(8, 8, 1, bias=False),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(8, 2, bias=False),
    ).double()


# ε also stabilises the pooling layers (z-rule) whatever the rule: keep it tiny here
RULES = [
    {"rule": "epsilon", "epsilon": 1e-12},
    {"rule": "zplus", "epsilon": 1e-12},
    {"rule": "alphabeta", "alpha": 2.0, "beta": 1.0, "epsilon": 1e-12},
    {"rule": "alphabeta", "alpha": 1.5, "beta": 0.5, "epsilon": 1e-12},
]


@pytest.mark.parametrize("kwargs", RULES, ids=lambda k: "-".join(map(str, k.values())))
@pytest.mark.parametrize(
    "factory,shape",
    [(_bias_free_2d, (3, 3, 8, 8)), (_bias_free_3d, (2, 1, 4, 4, 4))],
    ids=["2d", "3d"],
)
def test_lrp_conserves_relevance_without_biases(factory, shape, kwargs) -> None:
    model = factory().train()  # LRP uses eval semantics (dropout off) whatever the mode
    x = torch.randn(shape, dtype=torch.float64)
    relevance = LRP(model, **kwargs).attribute(x, target=1)
    with torch.no_grad():
        model.eval()
        score = model(x)[:, 1]
    torch.testing.assert_close(
        relevance.sum(dim=tuple(range(1, x.ndim))), score, rtol=1e-6, atol=1e-9
    )
    assert (relevance != 0).float().mean() > 0.2  # not a degenerate all-zero map


def _matrix_lrp(
    z_ij: torch.Tensor, bias: torch.Tensor, r_out: torch.Tensor, kwargs
) -> torch.Tensor:
    """Textbook LRP for contributions ``z_ij`` (inputs i × outputs j) of one sample.

    0/0 is taken as 0: an output with no contribution of one sign passes none of
    that sign's share (the documented convention).
    """

    def share(part: torch.Tensor) -> torch.Tensor:
        total = part.sum(0)
        ratio = torch.where(total != 0, r_out / torch.where(total != 0, total, 1.0), 0.0)
        return (part * ratio).sum(1)

    rule = kwargs["rule"]
    if rule == "epsilon":
        z = z_ij.sum(0) + bias
        den = z + kwargs["epsilon"] * torch.where(z >= 0, 1.0, -1.0).double()
        return (z_ij / den * r_out).sum(1)
    alpha, beta = (1.0, 0.0) if rule == "zplus" else (kwargs["alpha"], kwargs["beta"])
    pos, neg = z_ij.clamp(min=0), z_ij.clamp(max=0)
    out = alpha * share(pos)
    if beta:
        out = out - beta * share(neg)
    return out


MATRIX_RULES = [
    {"rule": "epsilon", "epsilon": 0.1},
    {"rule": "zplus"},
    {"rule": "alphabeta", "alpha": 2.0, "beta": 1.0},
]


@pytest.mark.parametrize("kwargs", MATRIX_RULES, ids=lambda k: k["rule"])
def test_lrp_rules_match_matrix_form_on_a_linear_layer(kwargs) -> None:
    linear = nn.Linear(12, 5).double()
    model = nn.Sequential(nn.Flatten(), linear)
    x = torch.randn(1, 1, 3, 4, dtype=torch.float64)
    targets = torch.arange(5)
    maps = LRP(model, **kwargs).attribute(x.expand(5, -1, -1, -1), target=targets)
    a = x.reshape(12)
    z_ij = a[:, None] * linear.weight.detach().T  # (12, 5)
    z = z_ij.sum(0) + linear.bias.detach()
    for j in range(5):
        r_out = torch.zeros(5, dtype=torch.float64)
        r_out[j] = z[j]
        expected = _matrix_lrp(z_ij, linear.bias.detach(), r_out, kwargs)
        torch.testing.assert_close(maps[j].reshape(12), expected)


@pytest.mark.parametrize("kwargs", MATRIX_RULES, ids=lambda k: k["rule"])
def test_lrp_rules_match_matrix_form_on_a_conv_layer(kwargs) -> None:
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    model = nn.Sequential(conv, nn.Flatten())
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    outputs = 3 * 16
    maps = LRP(model, **kwargs).attribute(
        x.expand(outputs, -1, -1, -1), target=torch.arange(outputs)
    )
    patches = F.unfold(x, 3, padding=1)[0]  # (18, 16): input i of window l
    weight = conv.weight.detach().reshape(3, 18)
    bias = conv.bias.detach()
    for pos in range(16):
        z_ij = patches[:, pos, None] * weight.T  # (18 inputs, 3 channels) at position pos
        z = z_ij.sum(0) + bias
        for k in range(3):
            r_out = torch.zeros(3, dtype=torch.float64)
            r_out[k] = z[k]
            r_patch = torch.zeros(1, 18, 16, dtype=torch.float64)
            r_patch[0, :, pos] = _matrix_lrp(z_ij, bias, r_out, kwargs)
            expected = F.fold(r_patch, (4, 4), 3, padding=1).sum(dim=1, keepdim=True)
            torch.testing.assert_close(maps[k * 16 + pos], expected[0])


def test_lrp_batchnorm_is_the_folded_affine_layer() -> None:
    """ε-LRP through conv → BatchNorm equals ε-LRP through the conv with BN folded in."""
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    bn = nn.BatchNorm2d(3).double()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.3, -0.2, 0.1]))
        bn.running_var.copy_(torch.tensor([2.0, 0.5, 1.5]))
        bn.weight.copy_(torch.tensor([1.2, -0.7, 0.9]))
        bn.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    head = nn.Linear(48, 2).double()
    model = nn.Sequential(conv, bn, nn.ReLU(), nn.Flatten(), head).train()
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(2, 3, 3, padding=1).double()
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
    reference = nn.Sequential(fused, nn.ReLU(), nn.Flatten(), head)
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    lrp = LRP(model, rule="epsilon", epsilon=0.0).attribute(x, target=0)
    lrp_ref = LRP(reference, rule="epsilon", epsilon=0.0).attribute(x, target=0)
    torch.testing.assert_close(lrp, lrp_ref)
    assert model.training


def test_lrp_epsilon_on_bias_free_relu_net_is_gradient_times_input() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2, bias=False)
    ).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(
        LRP(model, rule="epsilon", epsilon=0.0).attribute(x, target=1),
        GradientXInput(model).attribute(x, target=1),
    )


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.fc = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((x + self.conv(x)).flatten(1))


def test_lrp_rejects_unsupported_layers_and_non_sequential_models() -> None:
    with pytest.raises(InvalidInputError, match="Softmax"):
        LRP(nn.Sequential(nn.Flatten(), nn.Linear(16, 2), nn.Softmax(dim=1)))
    residual = _Residual()
    with pytest.raises(InvalidInputError, match="sequential"):
        LRP(residual).attribute(torch.randn(1, 1, 4, 4))
    with pytest.raises(ConfigError):
        LRP(residual, rule="alphabeta", alpha=2.0, beta=0.5)
    with pytest.raises(ConfigError, match="epsilon"):
        LRP(residual, rule="gamma")


# ------------------------------------------------------------- CAM family


def _gap_net(dims: int) -> nn.Module:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    gap = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
    return nn.Sequential(
        conv(2, 4, 3, padding=1),
        nn.LeakyReLU(0.33),
        conv(4, 5, 3, padding=1),
        nn.ReLU(),
        gap,
        nn.Flatten(),
        nn.Linear(5, 3),
    ).double()


@pytest.mark.parametrize("dims,shape", [(2, (2, 2, 5, 6)), (3, (2, 2, 3, 4, 5))])
def test_grad_cam_equals_cam_for_a_gap_linear_head(dims: int, shape) -> None:
    model = _gap_net(dims)
    x = torch.randn(shape, dtype=torch.float64)
    positions = math.prod(shape[2:])
    for target in range(3):
        grad_cam = GradCAM(model, layer="3", upsample=False).attribute(x, target=target)
        cam = CAM(model, layer=model[3], linear="6", upsample=False).attribute(x, target=target)
        torch.testing.assert_close(grad_cam * positions, cam.clamp(min=0))
        assert (cam < 0).any() or (cam > 0).any()
    up = GradCAM(model, layer="3").attribute(x)
    assert up.shape == (shape[0], 1, *shape[2:])


class _DepthWeightedHead(nn.Module):
    """score = Σ_k Σ_d v[k, d] · mean_{h,w} A[k, d]: the gradient varies along depth only."""

    def __init__(self, v: torch.Tensor) -> None:
        super().__init__()
        self.v = nn.Parameter(v)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return (a.mean(dim=(3, 4)) * self.v).sum(dim=(1, 2))


def test_grad_cam_3d_averages_over_all_three_spatial_axes() -> None:
    depth, height, width = 4, 3, 5
    v = torch.tensor([[3.0, -2.0, 1.0, 0.5], [-1.0, 2.0, -3.0, 1.0]], dtype=torch.float64)
    model = nn.Sequential(
        nn.Conv3d(1, 2, 3, padding=1), nn.Softplus(), _DepthWeightedHead(v)
    ).double()
    x = torch.randn(2, 1, depth, height, width, dtype=torch.float64)
    cam = GradCAM(model, layer="1", upsample=False).attribute(x)
    with torch.no_grad():
        features = model[1](model[0](x))
    alpha = v.mean(dim=1) / (height * width)  # analytic ∂f/∂A averaged over D, H and W
    expected = torch.relu((alpha[None, :, None, None, None] * features).sum(dim=1, keepdim=True))
    torch.testing.assert_close(cam, expected)
    two_axes = torch.relu(
        ((v / (height * width))[None, :, :, None, None] * features).sum(dim=1, keepdim=True)
    )
    assert not torch.allclose(expected, two_axes)  # the buggy 2-axis average would differ


def test_cam_layers_by_name_and_errors() -> None:
    model = _gap_net(2)
    with pytest.raises(InvalidInputError, match="not a sub-module"):
        GradCAM(model, layer="nope")
    with pytest.raises(InvalidInputError, match="Linear"):
        CAM(model, layer="3", linear="3")
    with pytest.raises(InvalidInputError, match="spatial"):
        GradCAM(model, layer="5").attribute(torch.randn(1, 2, 4, 4, dtype=torch.float64))


# -------------------------------------------------------------- occlusion


def _linear_model(shape: tuple[int, ...]) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    numel = math.prod(shape)
    linear = nn.Linear(numel, 1).double()
    return (
        nn.Sequential(nn.Flatten(), linear, nn.Flatten(0)),
        linear.weight.detach().reshape(shape),
        linear.bias,
    )


@pytest.mark.parametrize(
    "shape,window,stride",
    [((2, 4, 4), 2, None), ((2, 5, 5), 2, 2), ((1, 4, 4), 2, 1), ((1, 3, 4, 4), (1, 2, 3), 1)],
)
def test_occlusion_of_a_linear_model_is_analytic(shape, window, stride) -> None:
    model, weight, _ = _linear_model(shape)
    x = torch.randn(2, *shape, dtype=torch.float64)
    baseline = 0.25
    spatial = shape[1:]
    n = len(spatial)
    win = (window,) * n if isinstance(window, int) else window
    st = win if stride is None else ((stride,) * n if isinstance(stride, int) else stride)
    per_axis = []
    for size, w, s in zip(spatial, win, st):
        starts = list(range(0, size - w + 1, s))
        if starts[-1] != size - w:
            starts.append(size - w)
        per_axis.append(starts)
    total = torch.zeros(2, 1, *spatial, dtype=torch.float64)
    count = torch.zeros(spatial, dtype=torch.float64)
    for start in np.ndindex(*[len(p) for p in per_axis]):
        region = tuple(slice(per_axis[a][i], per_axis[a][i] + win[a]) for a, i in enumerate(start))
        effect = weight[(slice(None), *region)] * (
            x[(slice(None), slice(None), *region)] - baseline
        )
        drop = effect.reshape(2, -1).sum(dim=1)  # f(x) - f(occluded), exactly
        total[(slice(None), 0, *region)] += drop.reshape(2, *([1] * n))
        count[region] += 1
    assert (count > 0).all()
    expected = total / count
    for batch_size in (1, 7, 1000):
        got = Occlusion(
            model, window=window, stride=stride, baseline=baseline, batch_size=batch_size
        )
        torch.testing.assert_close(got.attribute(x), expected)


def test_occlusion_rejects_bad_parameters() -> None:
    model, _, _ = _linear_model((1, 4, 4))
    with pytest.raises(ConfigError):
        Occlusion(model, batch_size=0)
    with pytest.raises(ConfigError):
        Occlusion(model, window=(2, 2, 2)).attribute(torch.randn(1, 1, 4, 4, dtype=torch.float64))


# -------------------------------------------------------------- normalize


def test_normalize_policies_on_hand_examples() -> None:
    maps = torch.tensor([[-2.0, 1.0, 0.0, 4.0], [1.0, 2.0, 3.0, 5.0], [3.0, 3.0, 3.0, 3.0]])
    maps = maps.reshape(3, 1, 2, 2)
    assert normalize(maps, "none") is maps
    abs_max = normalize(maps, "abs-max").reshape(3, 4)
    torch.testing.assert_close(abs_max[0], torch.tensor([-0.5, 0.25, 0.0, 1.0]))
    torch.testing.assert_close(abs_max[1], torch.tensor([0.2, 0.4, 0.6, 1.0]))
    torch.testing.assert_close(abs_max[2], torch.ones(4))
    torch.testing.assert_close(
        normalize(torch.zeros(1, 1, 2, 2), "abs-max"), torch.zeros(1, 1, 2, 2)
    )
    min_max = normalize(maps, "min-max").reshape(3, 4)
    torch.testing.assert_close(min_max[0], torch.tensor([0.0, 0.5, 1 / 3, 1.0]))
    torch.testing.assert_close(min_max[1], torch.tensor([0.0, 0.25, 0.5, 1.0]))
    torch.testing.assert_close(min_max[2], torch.zeros(4))


def test_normalize_percentile_clips_then_scales() -> None:
    ramp = torch.arange(101.0).reshape(1, 1, 1, 101)  # percentile p is the value p
    out = normalize(ramp, "percentile", p_low=10, p_high=90).reshape(101)
    torch.testing.assert_close(
        out[[0, 10, 30, 50, 90, 100]], torch.tensor([0.0, 0.0, 0.25, 0.5, 1.0, 1.0])
    )
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2, 1, 7, 9))
    got = normalize(torch.from_numpy(data), "percentile", p_low=5, p_high=95).numpy()
    for b in range(2):
        lo, hi = np.percentile(data[b], [5, 95])
        np.testing.assert_allclose(got[b], (np.clip(data[b], lo, hi) - lo) / (hi - lo))


def test_normalize_unknown_policy_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        normalize(torch.zeros(1, 1, 2, 2), "zscore")
    for policy in ("none", "abs-max", "min-max", "percentile"):
        assert policy in str(info.value)
    with pytest.raises(InvalidInputError):
        normalize(torch.zeros(1, 1, 2, 2), "percentile", p_low=50, p_high=10)


class _SqueezedHead(nn.Module):
    """Leaf layers in ``self.layers`` and a final ``squeeze`` in forward (as the DR nets do)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(16, 1, bias=False)
        ).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1)


def test_lrp_accepts_a_final_squeeze_and_conserves() -> None:
    model = _SqueezedHead()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    relevance = LRP(model, rule="zplus").attribute(x)
    torch.testing.assert_close(relevance.sum(dim=(1, 2, 3)), model(x).detach())
