"""CAM post-processing (Rony 2020, 1.3.4, 2.1.2.1, 3.4.2): upsampling, background, masks, TTA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wslbench.errors import InvalidInputError
from wslbench.pooling import (
    TTA_SCALES,
    WSLModel,
    binarize_maps,
    create_pooling,
    localisation_masks,
    tta_predict,
    upsample_maps,
    zero_score_labels,
)


def test_upsample_maps_size_and_values() -> None:
    maps = torch.randn(2, 3, 4, 5)
    up = upsample_maps(maps, (32, 40))
    assert up.shape == (2, 3, 32, 40)
    assert upsample_maps(maps, (4, 5)) is maps
    # bilinear, align_corners=False: a 1×2 map [0, 1] upsampled ×4 is the clamped ramp
    ramp = upsample_maps(torch.tensor([[[[0.0, 1.0]]]]), (1, 8))
    expected = torch.tensor([0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1]).view(1, 1, 1, 8)
    torch.testing.assert_close(ramp, expected)
    for bad in ((32,), (0, 4), (3.0, 4)):
        with pytest.raises(InvalidInputError, match="size"):
            upsample_maps(maps, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"\(B, C, H, W\)"):
        upsample_maps(maps[0], (8, 8))


def test_zero_score_background_rule_hand_example() -> None:
    # 2 classes on 2×3 pixels: background wherever no class scores above 0 (3.4.2)
    maps = torch.tensor(
        [
            [
                [[1.0, -1.0, 0.0], [2.0, -3.0, 0.5]],  # class 0
                [[0.5, -2.0, 0.0], [3.0, -1.0, -0.5]],  # class 1
            ]
        ]
    )
    expected = torch.tensor([[[1, 0, 0], [2, 0, 1]]])  # 0 background, c + 1 for class c
    labels = zero_score_labels(maps)
    assert labels.dtype == torch.int64
    assert torch.equal(labels, expected)
    # equivalent to a ReLU: background exactly where every ReLU'd score is 0
    assert torch.equal(labels == 0, (torch.relu(maps) == 0).all(dim=1))


def test_binarize_thresholds() -> None:
    maps = torch.tensor([[[[-0.1, 0.0, 0.1, 0.05]]]])
    assert binarize_maps(maps, 0.0).tolist() == [[[[False, False, True, True]]]]
    # strictly above 1/(HW) (1.3.4): with 4 positions, 0.25 itself is not foreground
    attention = torch.tensor([[[[0.1, 0.25, 0.3, 0.35]]]])
    assert binarize_maps(attention, 1 / 4).tolist() == [[[[False, False, True, True]]]]
    with pytest.raises(InvalidInputError, match="threshold"):
        binarize_maps(maps, float("nan"))


class _Pointwise(nn.Module):
    """A 1×1 convolution: commutes with flips and, on constant images, with resizing."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _model(name: str = "gap", channels: int = 4, classes: int = 3) -> WSLModel:
    head = create_pooling(name, in_channels=channels, num_classes=classes)
    return WSLModel(_Pointwise(channels), head).double().eval()


def test_localisation_masks_use_the_head_rule() -> None:
    x = torch.randn(2, 2, 6, 8, dtype=torch.float64)
    cam_model = _model("gap")
    masks = localisation_masks(cam_model, x, torch.tensor([0, 2]))
    maps = cam_model.cams(x)
    assert masks.shape == (2, 1, 6, 8) and masks.dtype == torch.bool
    assert torch.equal(masks[0, 0], maps[0, 0] > 0) and torch.equal(masks[1, 0], maps[1, 2] > 0)
    mil = _model("deepmil")
    attention = mil.cams(x)[:, 1:2]
    assert torch.equal(localisation_masks(mil, x, 1), attention > 1 / 48)
    for bad in (3, torch.tensor([0, 1, 2]), 0.5):
        with pytest.raises(InvalidInputError, match="target"):
            localisation_masks(cam_model, x, bad)  # type: ignore[arg-type]


def test_tta_flip_equivariant_model_equals_plain_map() -> None:
    model = _model()
    x = torch.randn(2, 2, 6, 8, dtype=torch.float64)
    plain = model.predict(x)
    flipped = tta_predict(model, x, scales=(1.0,), flip=True)
    torch.testing.assert_close(flipped.maps, plain.maps)
    torch.testing.assert_close(flipped.scores, plain.scores)
    # all 8 variants on images constant per channel: every resize is exact
    constant = torch.randn(2, 2, 1, 1, dtype=torch.float64).expand(-1, -1, 6, 8).contiguous()
    full = tta_predict(model, constant)
    torch.testing.assert_close(full.maps, model.cams(constant))
    torch.testing.assert_close(full.scores, model(constant))


def test_tta_is_the_average_of_the_eight_variants() -> None:
    model = _model("lse")
    x = torch.randn(3, 2, 6, 8, dtype=torch.float64)
    maps, scores = [], []
    for scale in TTA_SCALES:
        size = (round(6 * scale), round(8 * scale))
        for mirror in (False, True):
            image = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            image = image.flip(-1) if mirror else image
            s, m = model.predict(image)
            m = m.flip(-1) if mirror else m
            maps.append(F.interpolate(m, size=(6, 8), mode="bilinear", align_corners=False))
            scores.append(s)
    out = tta_predict(model, x)
    assert out.maps.shape == (3, 3, 6, 8) and out.scores.shape == (3, 3)
    torch.testing.assert_close(out.maps, torch.stack(maps).mean(dim=0))
    torch.testing.assert_close(out.scores, torch.stack(scores).mean(dim=0))
    # non-equivariant input: TTA genuinely differs from the plain map
    assert not torch.allclose(out.maps, model.cams(x))


def test_tta_errors() -> None:
    model = _model()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    for bad in ((), (0.0,), (1.0, -2.0), "1"):
        with pytest.raises(InvalidInputError, match="scales"):
            tta_predict(model, x, scales=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"\(B, D, H, W\)"):
        tta_predict(model, x[0])
