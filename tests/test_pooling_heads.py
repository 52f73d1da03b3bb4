"""WSL pooling heads (Rony 2020, 1.3.2.1 and chapter 3): contract over every head, then each rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wslbench.attribution import CAM, GradCAM
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.nn import ResNet
from wslbench.pooling import (
    POOLING,
    DeepMIL,
    DeepMILMulti,
    GlobalAveragePooling,
    LSEPooling,
    MultiClassAttentionPooling,
    PoolingOutput,
    WildcatPooling,
    WSLModel,
    create_pooling,
    draw_score_dropout,
    list_pooling,
    lse_pool,
    mc_attention_pool,
    resolve_k,
    wildcat_pool,
)

K, C, H, W = 6, 3, 4, 5

# hyper-parameters that exercise the non-default branches of some heads
VARIANTS: list[tuple[str, dict[str, object]]] = [(name, {}) for name in list_pooling()] + [
    ("deepmil", {"gated": True}),
    ("deepmil-multi", {"gated": True}),
    ("wildcat", {"modalities": 1, "k_pos": 2, "k_neg": 3, "alpha": 0.0}),
]


def test_every_head_is_registered() -> None:
    assert list_pooling() == sorted(
        ["gap", "max", "lse", "wildcat", "deepmil", "deepmil-multi", "mcattention"]
    )


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=lambda v: str(v))
def test_contract(name: str, kwargs: dict[str, object]) -> None:
    head = create_pooling(name, in_channels=K, num_classes=C, **kwargs).train()
    features = torch.randn(2, K, H, W)
    out = head(features)
    assert isinstance(out, PoolingOutput)
    scores, maps = out
    assert scores.shape == (2, C) and maps.shape == (2, C, H, W)
    assert torch.isfinite(scores).all() and torch.isfinite(maps).all()
    # a random weighting so no parameter's gradient cancels by symmetry
    (scores * torch.randn_like(scores)).sum().backward()
    for pname, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: {pname} got no gradient"
    for scale in (1e4, 1e-6):
        s, m = head(features * scale)
        assert torch.isfinite(s).all() and torch.isfinite(m).all(), f"{name} at scale {scale}"
    # the threshold rule matches the kind of map
    expected = 1 / (H * W) if name.startswith("deepmil") else 0.0
    assert head.binarization_threshold(H, W) == pytest.approx(expected)


@pytest.mark.parametrize("name", list_pooling())
def test_contract_errors_and_stored_arguments(name: str) -> None:
    head = create_pooling(name, in_channels=K, num_classes=C)
    assert (head.in_channels, head.num_classes) == (K, C)
    with pytest.raises(InvalidInputError, match=rf"\(B, {K}, H, W\)"):
        head(torch.randn(2, K + 1, H, W))
    with pytest.raises(InvalidInputError, match="features"):
        head(torch.randn(2, K, H))
    with pytest.raises(ConfigError, match="num_classes"):
        create_pooling(name, in_channels=K, num_classes=0)
    with pytest.raises(ConfigError, match=name):
        create_pooling(name, in_channels=K, num_classes=C, not_a_parameter=1)


def test_registry_errors() -> None:
    with pytest.raises(ConfigError, match="unknown pooling head 'avg'; expected one of: deepmil"):
        create_pooling("avg", in_channels=K, num_classes=C)
    assert "LSE" in POOLING
    for bad in ({"q": 0}, {"q": float("inf")}, {"q": True}):
        with pytest.raises(ConfigError, match="LSE q"):
            LSEPooling(K, C, **bad)
    for bad in ({"k_pos": 0}, {"k_neg": 1.5}, {"k_pos": 0.0}, {"alpha": -1}, {"modalities": 0}):
        with pytest.raises(ConfigError):
            WildcatPooling(K, C, **bad)
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(ConfigError, match="dropout"):
            MultiClassAttentionPooling(K, C, dropout=bad)
    with pytest.raises(ConfigError, match="hidden_channels"):
        DeepMIL(K, C, hidden_channels=0)


def test_gap_maps_then_average_equals_average_then_linear() -> None:
    """Eq. 3.4: mean of M = W F + b over positions equals W (mean F) + b."""
    head = GlobalAveragePooling(K, C)
    features = torch.randn(3, K, H, W, dtype=torch.float64)
    head.double()
    scores, maps = head(features)
    torch.testing.assert_close(scores, head.classifier(features.mean(dim=(2, 3))))
    by_position = torch.einsum("bkhw,ck->bchw", features, head.classifier.weight)
    torch.testing.assert_close(maps, by_position + head.classifier.bias[:, None, None])


def test_max_head_takes_the_map_maximum() -> None:
    head = create_pooling("max", in_channels=K, num_classes=C)
    scores, maps = head(torch.randn(2, K, H, W))
    torch.testing.assert_close(scores, maps.flatten(2).max(dim=2).values)


def test_lse_stable_form_matches_naive_and_limits() -> None:
    maps = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    for q in (0.5, 1.0, 10.0):
        naive = torch.log(torch.exp(q * maps).flatten(2).mean(dim=2)) / q  # eq. 3.6
        torch.testing.assert_close(lse_pool(maps, q), naive)
    # where the naive form overflows the stable one stays finite, at most max
    big = maps * 1e3
    assert not torch.isfinite(torch.exp(10 * big)).all()
    s = lse_pool(big, 10.0)
    assert torch.isfinite(s).all() and (s <= big.flatten(2).amax(dim=2) + 1e-9).all()
    # q -> inf: the maximum (within log(HW)/q); q -> 0: the mean
    torch.testing.assert_close(
        lse_pool(maps, 1e5),
        maps.flatten(2).amax(dim=2),
        atol=3e-5,
        rtol=0,  # log(16)/q ≈ 2.8e-5
    )
    torch.testing.assert_close(lse_pool(maps, 1e-7), maps.mean(dim=(2, 3)), atol=1e-6, rtol=0)
    # in float32 too: expm1/log1p keep the mean where log(mean(exp(qM))) rounds to 0
    torch.testing.assert_close(
        lse_pool(maps.float(), 1e-6), maps.float().mean(dim=(2, 3)), atol=1e-5, rtol=0
    )


def test_lse_gradient_is_the_softmax() -> None:
    """d s_c / d M = softmax(q M_c) over positions (independent closed form)."""
    maps = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    lse_pool(maps, 3.0).sum().backward()
    expected = torch.softmax(3.0 * maps.detach().flatten(2), dim=2).view_as(maps)
    torch.testing.assert_close(maps.grad, expected)


HAND_MAP = torch.tensor([[[[3.0, -1.0, 2.0], [0.0, 5.0, -4.0]]]])  # 6 positions


@pytest.mark.parametrize(
    ("k_pos", "k_neg", "alpha", "expected"),
    [
        (2, 2, 0.5, 4.0 + 0.5 * -2.5),  # top {5, 3}, bottom {-4, -1}
        (1, 1, 1.0, 5.0 - 4.0),
        (0.5, 1 / 3, 1.0, 10 / 3 - 2.5),  # fractions: 3 and 2 positions
        (6, 6, 1.0, 2 * 5 / 6),  # all positions, α = 1: twice the mean
        (1.0, 1.0, 1.0, 2 * 5 / 6),  # the same with fractions
        (10, 4, 0.0, 5 / 6),  # a count above H·W takes all positions; α = 0 drops Z⁻
    ],
)
def test_wildcat_hand_examples(k_pos: float, k_neg: float, alpha: float, expected: float) -> None:
    got = wildcat_pool(HAND_MAP, k_pos, k_neg, alpha)
    torch.testing.assert_close(got, torch.tensor([[expected]]))


def test_wildcat_resolve_k() -> None:
    assert [resolve_k(k, 196) for k in (20, 0.1, 1.0, 500, 0.001)] == [20, 20, 196, 196, 1]
    with pytest.raises(ConfigError):
        resolve_k(0, 10)


def test_wildcat_head_averages_modalities() -> None:
    """2 modalities per class with weights (1, 3): M_c = 2 F, then eq. 3.8 by hand."""
    head = WildcatPooling(1, 1, modalities=2, k_pos=6, k_neg=6, alpha=1.0)
    with torch.no_grad():
        head.classifier.weight.copy_(torch.tensor([[1.0], [3.0]]))
        head.classifier.bias.zero_()
    scores, maps = head(HAND_MAP)
    torch.testing.assert_close(maps, 2 * HAND_MAP)
    torch.testing.assert_close(scores, torch.tensor([[2 * 2 * 5 / 6]]))


def _attention_reference(head: DeepMIL | DeepMILMulti, features: torch.Tensor) -> torch.Tensor:
    """ψ (eq. 1.5/1.6) position by position, then a softmax (eq. 1.4): ``(B, R, H, W)``."""
    att = head.attention
    b, _, h, w = features.shape
    vectors = features.permute(0, 2, 3, 1).reshape(b, h * w, -1)  # F_{i,j}
    hidden = torch.tanh(att.V(vectors))
    if att.U is not None:
        hidden = hidden * torch.sigmoid(att.U(vectors))
    hidden = hidden.view(b, h * w, att.branches, att.hidden_channels)
    psi = (hidden * att.w).sum(dim=3)  # (B, HW, R)
    return torch.softmax(psi, dim=1).permute(0, 2, 1).reshape(b, att.branches, h, w)


@pytest.mark.parametrize("gated", [False, True])
def test_deepmil_attention_sums_to_one_and_scores_the_bag(gated: bool) -> None:
    head = DeepMIL(K, 2, hidden_channels=7, gated=gated).double()
    features = torch.randn(3, K, H, W, dtype=torch.float64)
    scores, maps = head(features)
    reference = _attention_reference(head, features)
    torch.testing.assert_close(maps, reference.expand(-1, 2, -1, -1))
    torch.testing.assert_close(maps.sum(dim=(2, 3)), torch.ones(3, 2, dtype=torch.float64))
    bag = (reference[:, 0, None] * features).sum(dim=(2, 3))  # f = Σ A F, eq. 1.4
    torch.testing.assert_close(scores, head.classifier(bag))
    assert (head.attention.U is not None) == gated


@pytest.mark.parametrize("gated", [False, True])
def test_deepmil_multi_has_one_branch_per_class(gated: bool) -> None:
    head = DeepMILMulti(K, C, hidden_channels=5, gated=gated).double()
    features = torch.randn(2, K, H, W, dtype=torch.float64)
    scores, maps = head(features)
    reference = _attention_reference(head, features)
    torch.testing.assert_close(maps, reference)
    torch.testing.assert_close(maps.sum(dim=(2, 3)), torch.ones(2, C, dtype=torch.float64))
    assert not torch.allclose(maps[:, 0], maps[:, 1])  # independent branches
    for c in range(C):  # s_c = w_c · f_c + b_c with f_c = Σ A_c F
        bag = (maps[:, c, None] * features).sum(dim=(2, 3))
        expected = bag @ head.classifier.weight[c] + head.classifier.bias[c]
        torch.testing.assert_close(scores[:, c], expected)


def test_mcattention_equation_3_11() -> None:
    """s_c = φ(F'_c)_c with F'_c = Σ A_c F (eq. 3.10) equals Σ A_c M_c (eq. 3.11)."""
    head = MultiClassAttentionPooling(K, C, dropout=0.0).double()
    features = torch.randn(2, K, H, W, dtype=torch.float64)
    scores, maps = head(features)
    weights = torch.softmax(maps.flatten(2), dim=2)  # (B, C, HW)
    bags = torch.einsum("bcn,bkn->bck", weights, features.flatten(2))  # F'
    expected = torch.diagonal(head.classifier(bags), dim1=1, dim2=2)  # φ(F'_c)_c
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(
        maps, head.classifier(features.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    )


def test_mcattention_dropout_modes() -> None:
    features = torch.randn(2, K, H, W)
    plain = MultiClassAttentionPooling(K, C, dropout=0.0).train()
    torch.testing.assert_close(plain(features).scores, plain(features).scores, rtol=0, atol=0)
    head = MultiClassAttentionPooling(K, C, dropout=0.5)
    head.load_state_dict(plain.state_dict())
    head.train()
    first, second = head(features).scores, head(features).scores
    assert not torch.equal(first, second)
    head.eval()
    torch.testing.assert_close(head(features).scores, head(features).scores, rtol=0, atol=0)
    torch.testing.assert_close(head(features), plain(features))
    # d = 1 zeroes every score: uniform weights 1/(HW), i.e. average pooling (3.4.4)
    everything = MultiClassAttentionPooling(K, C, dropout=1.0).train()
    scores, maps = everything(features)
    torch.testing.assert_close(scores, maps.mean(dim=(2, 3)))


def test_score_dropout_draw_and_application() -> None:
    generator = torch.Generator().manual_seed(3)
    dropped = draw_score_dropout((4, 3, 20, 20), 0.3, generator=generator)
    assert dropped.dtype == torch.bool and abs(dropped.float().mean().item() - 0.3) < 0.03
    replay = draw_score_dropout((4, 3, 20, 20), 0.3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(dropped, replay)
    # hand example: scores [2, 0, -2, ln 2]; dropping the 2 gives logits [0, 0, -2, ln 2]
    maps = torch.tensor([[[[2.0, 0.0], [-2.0, 0.6931471805599453]]]], dtype=torch.float64)
    mask = torch.tensor([[[[True, False], [False, False]]]])
    e = torch.tensor([1.0, 1.0, torch.e**-2, 2.0], dtype=torch.float64)
    expected = (e / e.sum() * maps.flatten()).sum()
    torch.testing.assert_close(mc_attention_pool(maps, mask), expected.view(1, 1))
    with pytest.raises(InvalidInputError, match="bool"):
        mc_attention_pool(maps, mask.double())
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        draw_score_dropout((2,), 1.5)


class _Conv(nn.Module):
    """A plain backbone without ``forward_features``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, K, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


@pytest.mark.parametrize("name", list_pooling())
def test_wsl_model_any_head_on_any_backbone(name: str) -> None:
    plain = WSLModel(_Conv(), create_pooling(name, in_channels=K, num_classes=C)).eval()
    x = torch.randn(2, 2, 8, 10)
    assert plain(x).shape == (2, C) and plain.cams(x).shape == (2, C, 4, 5)
    torch.testing.assert_close(plain.predict(x), plain.head(plain.backbone(x)))
    resnet = ResNet(18, in_channels=2, base_width=2)  # 16 features at stride 32
    model = WSLModel(resnet, create_pooling(name, in_channels=16, num_classes=C)).eval()
    x = torch.randn(2, 2, 64, 96)
    assert model(x).shape == (2, C) and model.cams(x).shape == (2, C, 2, 3)
    torch.testing.assert_close(model.cams(x), model.head(resnet.forward_features(x)).maps)


def test_wsl_model_errors() -> None:
    head = create_pooling("gap", in_channels=K + 1, num_classes=C)
    with pytest.raises(InvalidInputError, match=rf"\(B, {K + 1}, H, W\)"):
        WSLModel(_Conv(), head)(torch.randn(1, 2, 8, 8))
    with pytest.raises(InvalidInputError, match="feature map"):
        WSLModel(nn.Flatten(), head)(torch.randn(1, 2, 8, 8))
    with pytest.raises(ConfigError, match="PoolingHead"):
        WSLModel(_Conv(), nn.Linear(2, 2))  # type: ignore[arg-type]


def test_grad_cam_equals_cam_for_the_gap_head() -> None:
    """1.3.4: with a linear last layer Grad-CAM and CAM coincide (eq. 1.15–1.16 vs 1.3)."""
    model = WSLModel(_Conv(), create_pooling("gap", in_channels=K, num_classes=C)).double()
    x = torch.randn(3, 2, 8, 10, dtype=torch.float64)
    maps = model.cams(x)
    bias = model.head.classifier.bias
    for target in range(C):
        grad_cam = GradCAM(model, layer="feature_tap", upsample=False).attribute(x, target)
        cam = CAM(model, "feature_tap", "head.classifier", relu=True, upsample=False)
        # α_{c,k} = W_{c,k} / (hw): Grad-CAM is ReLU(M_c − b_c) / (hw)
        expected = torch.relu(maps[:, target : target + 1] - bias[target]) / (4 * 5)
        torch.testing.assert_close(grad_cam, expected.detach())
        torch.testing.assert_close(cam.attribute(x, target) / (4 * 5), expected.detach())
    assert (grad_cam > 0).any() and (grad_cam == 0).any()  # the ReLU is exercised
