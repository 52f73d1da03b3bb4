"""The 3D CNN of Thibeau-Sutre et al. 2020 (section 2.2.2)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wslbench.attribution import LRP, GradCAM
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.models import MRI_CNN_CONFIGS, MRI_GRID, MRICNN, build_mri_cnn, mri_block_shapes

# ceil(s / 2) seven times from 121×145×121, channels 8 … 512 (worked out by hand)
PAPER_BLOCK_SHAPES = [
    (8, 61, 73, 61),
    (16, 31, 37, 31),
    (32, 16, 19, 16),
    (64, 8, 10, 8),
    (128, 4, 5, 4),
    (256, 2, 3, 2),
    (512, 1, 2, 1),
]


def _block_outputs(model: MRICNN, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    handles = [
        block.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
        for block in model.features
    ]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    assert out.shape == (x.shape[0], model.num_classes)
    return shapes


def test_paper_grid_is_the_gm_map_grid() -> None:
    assert MRI_GRID == (121, 145, 121)
    assert mri_block_shapes(MRI_GRID, MRI_CNN_CONFIGS["paper"].channels) == PAPER_BLOCK_SHAPES


def test_paper_configuration_block_shapes_on_the_full_grid() -> None:
    torch.manual_seed(0)
    model = build_mri_cnn("paper").eval()
    assert len(model.features) == 7
    assert model.block_shapes() == PAPER_BLOCK_SHAPES
    assert _block_outputs(model, torch.rand(1, 1, *MRI_GRID)) == PAPER_BLOCK_SHAPES
    assert model.head[-1].in_features == 512 * 1 * 2 * 1
    assert model.head[-1].out_features == 2


@pytest.mark.parametrize("name", sorted(MRI_CNN_CONFIGS))
def test_block_layout_follows_the_paper(name: str) -> None:
    config = MRI_CNN_CONFIGS[name]
    model = build_mri_cnn(name)
    for block, width, convs in zip(model.features, config.channels, config.convs_per_block):
        layers = list(block)
        assert len(layers) == 3 * convs + 1
        for i in range(convs):
            conv, norm, act = layers[3 * i : 3 * i + 3]
            assert isinstance(conv, nn.Conv3d) and conv.kernel_size == (3, 3, 3)
            assert conv.out_channels == width and conv.padding == (1, 1, 1)
            assert isinstance(norm, nn.BatchNorm3d) and norm.num_features == width
            assert isinstance(act, nn.LeakyReLU)
        pool = layers[-1]
        assert isinstance(pool, nn.MaxPool3d) and pool.kernel_size == 2 and pool.stride == 2
    assert [type(m) for m in model.head] == [nn.Flatten, nn.Dropout, nn.Linear]


def test_smoke_configuration_forward_on_the_full_grid() -> None:
    torch.manual_seed(0)
    model = build_mri_cnn("smoke").eval()
    x = torch.rand(1, 1, *MRI_GRID)
    shapes = _block_outputs(model, x)
    assert shapes == mri_block_shapes(MRI_GRID, MRI_CNN_CONFIGS["smoke"].channels)
    assert shapes[-1][1:] == (1, 2, 1)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 2) and torch.isfinite(out).all()


def test_features_then_head_is_forward() -> None:
    torch.manual_seed(0)
    model = build_mri_cnn("smoke", input_shape=(20, 24, 20)).eval()
    x = torch.rand(3, 1, 20, 24, 20)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (3, 8, 1, 1, 1)
        torch.testing.assert_close(model.forward_head(features), model(x))


def test_lrp_and_grad_cam_run_on_it() -> None:
    torch.manual_seed(0)
    model = build_mri_cnn("smoke", input_shape=(20, 24, 20)).eval()
    x = torch.rand(2, 1, 20, 24, 20)
    relevance = LRP(model, check_sequential=True).attribute(x, target=1)
    assert relevance.shape == (2, 1, 20, 24, 20)
    assert torch.isfinite(relevance).all() and relevance.abs().sum() > 0
    cam = GradCAM(model, layer="features.5.2").attribute(x, target=1)
    assert cam.shape == (2, 1, 20, 24, 20) and torch.isfinite(cam).all()


def test_sequential_layout_reproduces_forward() -> None:
    torch.manual_seed(0)
    model = build_mri_cnn("smoke", input_shape=(12, 14, 12), dropout=0.0).eval()
    x = torch.rand(2, 1, 12, 14, 12)
    a = x
    with torch.no_grad():
        for leaf in (m for m in model.modules() if next(m.children(), None) is None):
            a = leaf(a)
        torch.testing.assert_close(a, model(x))


def test_wrong_input_shape_is_rejected() -> None:
    model = build_mri_cnn("smoke", input_shape=(12, 14, 12))
    with pytest.raises(InvalidInputError, match=r"\(B, 1, 12, 14, 12\)"):
        model(torch.rand(1, 1, 12, 14, 13))
    with pytest.raises(InvalidInputError):
        model(torch.rand(1, 12, 14, 12))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channels": (4, 8), "convs_per_block": (1,)},
        {"channels": (), "convs_per_block": ()},
        {"channels": (4, 0), "convs_per_block": (1, 1)},
        {"channels": (4,), "convs_per_block": (1,), "dropout": 1.0},
        {"channels": (4,), "convs_per_block": (1,), "input_shape": (12, 12)},
    ],
)
def test_bad_configuration_is_a_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        MRICNN(**kwargs)


def test_build_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError, match="paper"):
        build_mri_cnn("papr")
    with pytest.raises(ConfigError, match="chanels"):
        build_mri_cnn("smoke", chanels=(1,))
