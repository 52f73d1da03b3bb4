"""π and L0 on the paper's zero-centred input, Grad-CAM on the last conv activation
(Quellec et al. 2017, eq. 3, eq. 6, 5.1.1; DESIGN §9 "the paper's quantity")."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wslbench.attribution import GradCAM, HueConstrainedSensitivity
from wslbench.data import GRAHAM_OFFSET
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments import dr
from wslbench.losses import sparsity_enhanced_loss
from wslbench.models import build_dr_net

SIZE = 24
CONTRAST = 0.3
DARK, BRIGHT = (7, 7), (16, 16)


class _SignSymmetricNet(nn.Module):
    """f(x) = Σ (w ⋆ (x − 0.5))²: a conv with replicate padding whose bias removes the
    display offset, then a square. It is even in the sign of ``I_n = x − 0.5``, so a
    dark and a bright lesion of equal contrast must be equally important to it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1, padding_mode="replicate").double()
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            self.conv.weight.copy_(torch.rand(2, 3, 3, 3, generator=g, dtype=torch.float64))
            self.conv.bias.copy_(-GRAHAM_OFFSET * self.conv.weight.sum((1, 2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).pow(2).sum((1, 2, 3))


def _lesion_image(dark: bool = True, bright: bool = True) -> torch.Tensor:
    """Mid-grey (the neutral 0.5 of Graham preprocessing) with a dark red and a bright
    yellow 3×3 lesion of the same contrast (± 0.3 on every channel)."""
    x = torch.full((1, 3, SIZE, SIZE), GRAHAM_OFFSET, dtype=torch.float64)
    if dark:
        x[:, :, DARK[0] - 1:DARK[0] + 2, DARK[1] - 1:DARK[1] + 2] -= CONTRAST
    if bright:
        x[:, :, BRIGHT[0] - 1:BRIGHT[0] + 2, BRIGHT[1] - 1:BRIGHT[1] + 2] += CONTRAST
    return x


def _around(pi: torch.Tensor, centre: tuple[int, int], r: int = 3) -> float:
    return float(pi[0, 0, centre[0] - r:centre[0] + r + 1, centre[1] - r:centre[1] + r + 1].sum())


def test_pi_on_the_zero_centred_input_weighs_dark_and_bright_lesions_alike() -> None:
    model, x = _SignSymmetricNet(), _lesion_image()
    pi = HueConstrainedSensitivity(model, reference=GRAHAM_OFFSET).attribute(x)
    dark, bright = _around(pi, DARK), _around(pi, BRIGHT)
    assert dark > 0 and dark == pytest.approx(bright, rel=1e-9)
    assert float(pi[0, 0, DARK[0], DARK[1]]) == pytest.approx(float(pi[0, 0, BRIGHT[0], BRIGHT[1]]),
                                                             rel=1e-9)
    # The experiment's heatmaps use that reference by default ...
    torch.testing.assert_close(dr.dr_heatmaps(model, x, "pi"), pi)
    # ... and the old quantity (the mask on the offset image) under-weights the dark lesion.
    brightness = HueConstrainedSensitivity(model).attribute(x)
    assert _around(brightness, DARK) < 0.6 * _around(brightness, BRIGHT)


def test_pi_with_a_reference_is_gradient_times_centred_input() -> None:
    model, x = _SignSymmetricNet(), _lesion_image()
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(leaf).sum(), leaf)
    expected = (grad * (x - GRAHAM_OFFSET)).sum(1, keepdim=True)
    signed = HueConstrainedSensitivity(model, signed=True, reference=GRAHAM_OFFSET).attribute(x)
    torch.testing.assert_close(signed, expected)


def test_sparsity_term_penalises_dark_and_bright_lesions_alike() -> None:
    """L0 of eq. 6 takes the same mask: one image with only the dark lesion and one with
    only the bright lesion give the same ‖∂L_L/∂m‖₁ (and differ without the reference)."""
    model = _SignSymmetricNet()
    dark, bright = _lesion_image(bright=False), _lesion_image(dark=False)
    y = torch.zeros(1, dtype=torch.float64)
    l1 = {name: sparsity_enhanced_loss(model, img, y, 1e-3, reference=GRAHAM_OFFSET)[1]["grad_l1"]
          for name, img in (("dark", dark), ("bright", bright))}
    assert float(l1["dark"]) > 0
    assert float(l1["dark"]) == pytest.approx(float(l1["bright"]), rel=1e-9)
    old = {name: sparsity_enhanced_loss(model, img, y, 1e-3)[1]["grad_l1"]
           for name, img in (("dark", dark), ("bright", bright))}
    assert float(old["dark"]) < 0.8 * float(old["bright"])
    # and it is the L1 norm of π of the loss (the same quantity as the heatmap)
    pi = HueConstrainedSensitivity(_LossOf(model, y), reference=GRAHAM_OFFSET).attribute(dark)
    assert float(l1["dark"]) == pytest.approx(float(pi.sum()), rel=1e-9)


class _LossOf(nn.Module):
    def __init__(self, model: nn.Module, y: torch.Tensor) -> None:
        super().__init__()
        self.model, self.y = model, y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.model(x), self.y).reshape(1)


def test_dr_config_reference_follows_preprocessing() -> None:
    assert dr.input_reference(dr.dr_config("smoke")) == GRAHAM_OFFSET
    assert dr.input_reference(dr.dr_config("smoke", preprocess=False)) == 0.0


@pytest.mark.parametrize("bad", [float("nan"), "0.5", True])
def test_bad_reference_raises(bad: object) -> None:
    with pytest.raises(ConfigError, match="reference"):
        HueConstrainedSensitivity(_SignSymmetricNet(), reference=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="reference"):
        sparsity_enhanced_loss(_SignSymmetricNet(), _lesion_image(), torch.zeros(1), 1e-3,
                               reference=bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ Grad-CAM


def _preset_nets() -> list[tuple[str, int, float]]:
    """(net, input size, width) of every preset; the paper preset at width 0.25 (the
    spatial sizes, which are what Grad-CAM's resolution depends on, are Table 1's)."""
    out = []
    for preset in ("smoke", "demo", "paper"):
        cfg = dr.dr_config(preset)
        out.append((cfg.net, cfg.input_size, min(cfg.width, 0.25)))
    return out


def _independent_grad_cam(model: dr.DRNet, x: torch.Tensor) -> torch.Tensor:
    """Grad-CAM from forward_features / forward_head, without hooks."""
    features = model.forward_features(x).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.forward_head(features).sum(), features)
    cam = torch.relu((grad.mean((2, 3), keepdim=True) * features).sum(1, keepdim=True))
    return F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)


@pytest.mark.parametrize("net, size, width", _preset_nets())
def test_dr_grad_cam_is_taken_on_the_last_conv_activation(net: str, size: int, width: float) -> None:
    torch.manual_seed(0)
    model = build_dr_net(net, input_size=size, width=width).eval()
    layer = dr.grad_cam_layer(model)
    assert layer is model.layers[model.feature_index - 1]
    assert isinstance(model.layers[model.feature_index - 2], nn.Module)  # the conv before it
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, size, size, generator=g)
    features = model.forward_features(x)
    assert features.shape[-1] > 1, "the last conv activation must keep a spatial extent"
    maps = dr.dr_heatmaps(model, x, "grad-cam")
    torch.testing.assert_close(maps, GradCAM(model, layer=layer).attribute(x))
    torch.testing.assert_close(maps, _independent_grad_cam(model, x), rtol=1e-4, atol=1e-7)
    spread = maps.flatten(1).amax(1) - maps.flatten(1).amin(1)
    assert (spread > 1e-3 * maps.flatten(1).amax(1).clamp(min=1e-12)).any()
    assert int((spread > 0).sum()) >= 2, "Grad-CAM maps must not be constant"


def test_grad_cam_layer_rejects_other_models() -> None:
    with pytest.raises(InvalidInputError, match="DR network"):
        dr.grad_cam_layer(nn.Linear(2, 1))  # type: ignore[arg-type]


# ------------------------------------------------------------------ ν at every size


class _UniformSensitivity(nn.Module):
    """f(x) = Σ_pixels mean_c x: every pixel matters alike, whatever the image size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(1).sum((1, 2)) * 1e-3


def test_nu_area_scales_the_summed_l1_by_the_map_area() -> None:
    g = torch.Generator().manual_seed(0)
    model = _SignSymmetricNet()
    x = 0.5 + 0.2 * torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64)
    y = torch.tensor([0.0, 1.0], dtype=torch.float64)
    _, plain = sparsity_enhanced_loss(model, x, y, 1e-3, reference=0.5)
    _, scaled = sparsity_enhanced_loss(model, x, y, 1e-3, reference=0.5, nu_area=448 * 448)
    assert float(scaled["grad_l1"]) == float(plain["grad_l1"])  # the paper's sum, kept
    assert float(scaled["L_0"]) == pytest.approx(float(plain["L_0"]) * 448 * 448 / 256, rel=1e-12)
    _, at_448 = sparsity_enhanced_loss(model, x, y, 1e-3, reference=0.5, nu_area=256)
    assert float(at_448["L_0"]) == pytest.approx(float(plain["L_0"]), rel=1e-12)  # factor 1


def test_normalised_nu_means_the_same_at_every_size() -> None:
    """With a per-pixel sensitivity that does not depend on the size, the plain sum grows
    with the map area (the 12× between 128² and 448² of issue 19) and the normalised
    term does not."""
    model = _UniformSensitivity()
    terms = {}
    for side in (32, 64):
        x = torch.full((1, 3, side, side), 0.9, dtype=torch.float64)
        y = model(x).detach() - 1.0  # the same residual (it weights L0) at both sizes
        plain = sparsity_enhanced_loss(model, x, y, 1e-3)[1]["L_0"]
        norm = sparsity_enhanced_loss(model, x, y, 1e-3, nu_area=448 * 448)[1]["L_0"]
        terms[side] = (float(plain), float(norm))
    assert terms[64][0] == pytest.approx(4 * terms[32][0], rel=1e-9)
    assert terms[64][1] == pytest.approx(terms[32][1], rel=1e-9)


def test_dr_nu_is_defined_at_448_px() -> None:
    assert dr.dr_config("demo").nu_size == 448
    assert dr.nu_area(dr.dr_config("smoke")) == 448 * 448
    assert dr.nu_area(replace(dr.dr_config("smoke"), nu_size=None)) is None
    with pytest.raises(ConfigError, match="nu_area"):
        sparsity_enhanced_loss(_SignSymmetricNet(), _lesion_image(), torch.zeros(1), 1e-3,
                               nu_area=0)


def test_train_dr_takes_l0_on_the_zero_centred_input_at_the_paper_nu(monkeypatch) -> None:
    import importlib

    train_module = importlib.import_module("wslbench.experiments.dr.train")
    real, seen = train_module.sparsity_enhanced_loss, {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "sparsity_enhanced_loss", spy)
    config = dr.dr_config("smoke", iterations=1, checkpoint_every=1, n_train=8, n_val=8,
                          n_test=4, batch_size=4)
    dr.train_dr(config, dr.make_dr_data(config))
    assert seen["reference"] == GRAHAM_OFFSET
    assert seen["nu_area"] == 448 * 448
