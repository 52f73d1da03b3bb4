"""U-Net (Ronneberger 2015) used as the fully supervised upper bound of Rony 2020, 2.1.3.2."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.nn import UNet


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
@pytest.mark.parametrize(
    ("depth", "size"),
    [(1, (6, 10)), (2, (16, 16)), (2, (8, 20)), (3, (16, 24)), (4, (32, 16))],
)
def test_output_has_input_size_and_class_channels(depth, size, upsampling):
    torch.manual_seed(0)
    model = UNet(in_channels=3, num_classes=3, depth=depth, base_width=4, upsampling=upsampling)
    out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size)
    assert torch.isfinite(out).all()


def test_no_batch_norm_and_one_input_channel():
    model = UNet(in_channels=1, num_classes=2, depth=2, base_width=2, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert model(torch.rand(1, 1, 8, 8)).shape == (1, 2, 8, 8)


def _conv_params(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def test_paper_widths_match_ronneberger_parameter_count():
    # Ronneberger 2015, Fig. 1: 1 input channel, 2 classes, widths 64..1024, no batch norm,
    # 2x2 up-convolutions. Count computed independently from the figure.
    w = [64, 128, 256, 512, 1024]
    expected = _conv_params(1, 64, 3) + _conv_params(64, 64, 3)
    for a, b in zip(w[:-1], w[1:]):
        expected += _conv_params(a, b, 3) + _conv_params(b, b, 3)  # contracting + bottleneck
    for a, b in zip(reversed(w[1:]), reversed(w[:-1])):
        expected += _conv_params(a, b, 2)  # up-convolution halves the channels
        expected += _conv_params(2 * b, b, 3) + _conv_params(b, b, 3)
    expected += _conv_params(64, 2, 1)
    model = UNet(in_channels=1, num_classes=2, depth=4, base_width=64, batch_norm=False)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.bottleneck[0].out_channels == 1024


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(1)
    model = UNet(in_channels=3, num_classes=2, depth=3, base_width=4, upsampling="bilinear")
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    model(x).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_eval_mode_images_are_independent_of_their_batch():
    torch.manual_seed(2)
    model = UNet(in_channels=3, num_classes=2, depth=2, base_width=4).eval()
    x = torch.rand(3, 3, 8, 8)
    with torch.no_grad():
        together = model(x)
        alone = model(x[1:2])
    torch.testing.assert_close(together[1:2], alone, rtol=1e-5, atol=1e-5)


def test_tiny_unet_fits_a_per_pixel_target():
    """Skip connections carry full-resolution detail: thresholding noise pixel by pixel
    is learnt in a few steps; with the skips zeroed this reaches only about 76 %."""
    torch.manual_seed(3)
    x = torch.rand(2, 1, 32, 32)
    target = (x[:, 0] > 0.5).long()
    model = UNet(in_channels=1, num_classes=2, depth=3, base_width=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), target).backward()
        opt.step()
    with torch.no_grad():
        pred = model(x).argmax(1)
    assert (pred == target).float().mean() > 0.9


@pytest.mark.parametrize(("depth", "size"), [(2, (10, 16)), (3, (16, 12)), (1, (7, 8))])
def test_size_not_divisible_is_a_clear_error(depth, size):
    model = UNet(in_channels=3, depth=depth, base_width=2)
    with pytest.raises(InvalidInputError, match=rf"divisible by 2\*\*{depth} = {2**depth}"):
        model(torch.rand(1, 3, *size))


def test_wrong_rank_or_channels_is_an_error():
    model = UNet(in_channels=3, depth=1, base_width=2)
    with pytest.raises(InvalidInputError, match=r"\(B, C, H, W\)"):
        model(torch.rand(3, 8, 8))
    with pytest.raises(InvalidInputError, match="3 input channels, got 1"):
        model(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize(
    "kwargs",
    [{"depth": 0}, {"base_width": 0}, {"num_classes": 0}, {"in_channels": 2.5}, {"depth": True}],
)
def test_bad_config_is_a_config_error(kwargs):
    with pytest.raises(ConfigError):
        UNet(**kwargs)


def test_unknown_upsampling_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="transpose"):
        UNet(upsampling="nearest")
