from __future__ import annotations

import pytest
import torch

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.nn import Maxout, ResNet, RMSPool2d, UntiedBiasConv2d


def test_untied_bias_conv_has_one_bias_per_unit():
    conv = UntiedBiasConv2d(3, 4, 5, input_size=16, stride=2, padding=2)
    assert conv.bias.shape == (4, 8, 8)
    x = torch.zeros(2, 3, 16, 16)
    with torch.no_grad():
        conv.bias.copy_(torch.randn_like(conv.bias))
    assert torch.allclose(conv(x), conv.bias.expand(2, -1, -1, -1))
    with pytest.raises(InvalidInputError, match="built for 16x16"):
        conv(torch.zeros(1, 3, 15, 15))


def test_rms_pool_matches_definition_and_has_finite_grad_at_zero():
    x = torch.randn(1, 2, 6, 6)
    y = RMSPool2d(3, 3)(x)
    ref = x.unfold(2, 3, 3).unfold(3, 3, 3).pow(2).mean((-1, -2)).sqrt()
    assert torch.allclose(y, ref, atol=1e-5)
    z = torch.zeros(1, 1, 3, 3, requires_grad=True)
    (g,) = torch.autograd.grad(RMSPool2d(3, 3)(z).sum(), z, create_graph=True)
    assert torch.isfinite(g).all()


def test_maxout():
    x = torch.tensor([[1.0, 3.0, -2.0, -5.0]])
    assert Maxout(2)(x).tolist() == [[3.0, -2.0]]
    with pytest.raises(InvalidInputError):
        Maxout(3)(x)


@pytest.mark.parametrize("depth, stride, feats", [(18, 32, 64), (18, 16, 64), (50, 32, 256)])
def test_resnet_feature_shapes(depth, stride, feats):
    net = ResNet(depth, num_classes=2, output_stride=stride, base_width=8).eval()
    x = torch.randn(1, 3, 64, 64)
    f = net.forward_features(x)
    assert f.shape == (1, feats, 64 // stride, 64 // stride)
    assert net(x).shape == (1, 2)


def test_resnet18_paper_width_parameter_count():
    # torchvision's resnet18 with a 1000-way head has 11,689,512 parameters.
    net = ResNet(18, num_classes=1000)
    assert sum(p.numel() for p in net.parameters()) == 11_689_512


def test_resnet_rejects_bad_config():
    with pytest.raises(ConfigError, match="depth 19"):
        ResNet(19)
    with pytest.raises(ConfigError, match="output_stride"):
        ResNet(18, output_stride=4)
