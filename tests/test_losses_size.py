from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy import integrate

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.losses import (
    SizeSupervisedLoss,
    apply_size_noise,
    create_size_loss,
    draw_size_noise,
    entropy_loss,
    generalized_mean,
    jia_size_loss,
    kl_size_loss,
    l2_size_loss,
    list_size_losses,
    perturb_sizes,
    predicted_sizes,
)

D = torch.float64


def _constant_cams(values: list[float], size: int = 2) -> torch.Tensor:
    """(1, C, size, size) CAMs equal to ``values[c]`` everywhere."""
    return torch.tensor(values, dtype=D).view(1, -1, 1, 1).expand(1, -1, size, size).clone()


# ---------------------------------------------------------------- pooling and sizes


def test_generalized_mean_matches_formula_and_its_limits():
    gen = torch.Generator().manual_seed(0)
    cams = torch.randn(2, 3, 4, 5, generator=gen, dtype=D)
    sig = torch.sigmoid(cams)
    for r in (1.0, 2.5, 7.0):
        expected = sig.pow(r).mean(dim=(2, 3)).pow(1 / r)
        torch.testing.assert_close(generalized_mean(cams, r), expected)
    torch.testing.assert_close(generalized_mean(cams, 1.0), sig.mean(dim=(2, 3)))
    assert torch.allclose(generalized_mean(cams, 2000.0), sig.amax(dim=(2, 3)), atol=5e-3)


def test_predicted_sizes_hand_example_and_upsampling():
    # softmax of (0, log 3) is (1/4, 3/4) at every pixel.
    cams = _constant_cams([0.0, math.log(3)])
    torch.testing.assert_close(predicted_sizes(cams), torch.tensor([[0.25, 0.75]], dtype=D))
    torch.testing.assert_close(
        predicted_sizes(cams, multi_label=True), torch.tensor([[0.5, 0.75]], dtype=D)
    )
    gen = torch.Generator().manual_seed(1)
    cams = torch.randn(2, 3, 3, 4, generator=gen, dtype=D)
    up = F.interpolate(cams, size=(12, 16), mode="bilinear", align_corners=False)
    expected = torch.softmax(up, dim=1).mean(dim=(2, 3))
    got = predicted_sizes(cams, output_size=(12, 16))
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.sum(1), torch.ones(2, dtype=D))


# ---------------------------------------------------------------- size penalties


def test_kl_and_l2_are_zero_at_exact_sizes_and_positive_otherwise():
    a = torch.tensor([[0.7, 0.3, 0.0], [0.2, 0.5, 0.3]], dtype=D)
    torch.testing.assert_close(kl_size_loss(a, a), torch.zeros(2, dtype=D))
    torch.testing.assert_close(l2_size_loss(a, a), torch.zeros(2, dtype=D))
    nu = torch.tensor([[0.5, 0.4, 0.1], [0.2, 0.5, 0.3]], dtype=D)
    kl = kl_size_loss(nu, a)
    expected_kl = 0.7 * math.log(0.7 / 0.5) + 0.3 * math.log(0.3 / 0.4)
    assert kl[0].item() == pytest.approx(expected_kl)
    assert l2_size_loss(nu, a)[0].item() == pytest.approx(0.04 + 0.01 + 0.01)
    assert kl[1].item() == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("name", ["kl", "l2", "adaptive"])
def test_gradient_step_moves_predicted_size_towards_target(name):
    loss_fn = create_size_loss(name).double()
    gen = torch.Generator().manual_seed(2)
    shift = torch.tensor([0.0, 1.0], dtype=D).view(1, 2, 1, 1)
    cams = (torch.randn(1, 2, 4, 4, generator=gen, dtype=D) + shift).requires_grad_(True)
    target = torch.tensor([[0.8, 0.2]], dtype=D)  # foreground (class 1) is over-predicted
    before = predicted_sizes(cams)[0, 1].item()
    assert before > 0.5
    size_term = {"kl": kl_size_loss, "l2": l2_size_loss}.get(name)
    if size_term is None:
        residual = (predicted_sizes(cams) - target).unsqueeze(-1)
        value = loss_fn.robust(residual).sum()
    else:
        value = size_term(predicted_sizes(cams), target).sum()
        assert value.item() > 0
    (grad,) = torch.autograd.grad(value, cams)
    after = predicted_sizes(cams.detach() - 0.5 * grad)[0, 1].item()
    assert 0.2 < after < before


def test_jia_hinge_is_zero_inside_bounds_and_squared_outside():
    labels = torch.tensor([[1.0, 1.0, 0.0]], dtype=D)
    upper = torch.tensor([[0.3, 0.6, 0.1]], dtype=D)
    inside = torch.tensor([[0.3, 0.2, 0.9]], dtype=D)  # class 2 absent: not constrained
    assert jia_size_loss(inside, upper, labels).item() == 0.0
    outside = torch.tensor([[0.5, 0.7, 0.9]], dtype=D)
    assert jia_size_loss(outside, upper, labels).item() == pytest.approx(0.2**2 + 0.1**2)
    lower = torch.tensor([[0.1, 0.4, 0.0]], dtype=D)
    assert jia_size_loss(torch.tensor([[0.2, 0.5, 0.9]], dtype=D), upper, labels, lower) == 0.0
    below = torch.tensor([[0.0, 0.5, 0.9]], dtype=D)
    assert jia_size_loss(below, upper, labels, lower).item() == pytest.approx(0.1**2)
    with pytest.raises(InvalidInputError, match="lower"):
        jia_size_loss(below, upper, labels, upper + 0.05)


# ---------------------------------------------------------------- entropy


@pytest.mark.parametrize("multi_label", [False, True])
def test_entropy_of_uniform_half_map_is_maximal(multi_label):
    uniform = torch.zeros(1, 2, 3, 3, dtype=D)  # p = 1/2 everywhere (softmax or sigmoid)
    top = entropy_loss(uniform, multi_label=multi_label).item()
    assert top == pytest.approx((1 if not multi_label else 2) * math.log(2))
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        other = torch.randn(1, 2, 3, 3, generator=gen, dtype=D)
        assert entropy_loss(other, multi_label=multi_label).item() < top


def test_entropy_hand_example_and_confident_maps():
    cams = _constant_cams([0.0, math.log(3)])
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert entropy_loss(cams).item() == pytest.approx(expected)
    p = 0.75  # sigmoid(log 3); class 0 has p = 1/2
    binary = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert entropy_loss(cams, multi_label=True).item() == pytest.approx(math.log(2) + binary)
    confident = _constant_cams([-200.0, 200.0]).requires_grad_(True)
    value = entropy_loss(confident)
    assert value.item() == pytest.approx(0.0, abs=1e-12)
    (grad,) = torch.autograd.grad(value, confident)
    assert torch.isfinite(grad).all()


# ---------------------------------------------------------------- total loss (eq. 4.13)


def test_total_loss_hand_example_multiclass_kl_and_l2():
    cams = _constant_cams([0.0, math.log(3)])  # scores (0, log 3), maps (1/4, 3/4)
    labels, sizes = torch.tensor([1]), torch.tensor([[0.5, 0.5]], dtype=D)
    l_c = math.log(4 / 3)
    l_e = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    for name, l_s in (
        ("kl", 0.5 * math.log(2) + 0.5 * math.log(2 / 3)),
        ("l2", 2 * 0.25**2),
    ):
        total, parts = SizeSupervisedLoss(name, lambda_s=3.0, lambda_e=0.5)(cams, labels, sizes)
        assert parts["l_c"].item() == pytest.approx(l_c)
        assert parts["l_s"].item() == pytest.approx(l_s)
        assert parts["l_e"].item() == pytest.approx(l_e)
        assert total.item() == pytest.approx((l_c + 3 * l_s + 0.5 * l_e) / 4.5)


def test_total_loss_hand_example_adaptive_uses_charbonnier_at_init():
    cams = _constant_cams([0.0, math.log(3)])
    loss_fn = create_size_loss("adaptive", lambda_s=2.0, lambda_e=0.0)
    assert loss_fn.robust.alpha.item() == pytest.approx(1.0)  # midpoint of (0.001, 1.999)
    z1, _ = integrate.quad(lambda t: math.exp(-(math.sqrt(t * t + 1) - 1)), -math.inf, math.inf)
    residual = 0.25
    l_s = 2 * (math.sqrt(residual**2 + 1) - 1 + math.log(z1))  # γ = 1, two classes
    total, parts = loss_fn(cams, torch.tensor([1]), torch.tensor([[0.5, 0.5]], dtype=D))
    assert parts["l_s"].item() == pytest.approx(l_s, rel=1e-5)
    assert total.item() == pytest.approx((math.log(4 / 3) + 2 * l_s) / 3, rel=1e-5)
    total.backward()
    assert loss_fn.robust.latent_alpha.grad is not None
    assert loss_fn.robust.latent_scale.grad.abs().item() > 0


def test_total_loss_hand_example_jia_binary():
    cams = torch.zeros(1, 1, 4, 4, dtype=D)  # σ = 1/2 everywhere: p = 1/2 for any r
    labels, sizes = torch.tensor([[1.0]], dtype=D), torch.tensor([[0.2]], dtype=D)
    total, parts = create_size_loss("jia", lambda_s=10.0, lambda_e=0.1, multi_label=True)(
        cams, labels, sizes
    )
    assert parts["l_c"].item() == pytest.approx(math.log(2))
    assert parts["l_s"].item() == pytest.approx(0.3**2)
    assert parts["l_e"].item() == pytest.approx(math.log(2))
    # Jia et al.'s objective is not normalised by eq. 4.13 (that belongs to the proposed method)
    assert total.item() == pytest.approx(math.log(2) + 10 * 0.09 + 0.1 * math.log(2))
    negative = create_size_loss("jia", lambda_s=10.0, multi_label=True)
    _, parts = negative(cams, torch.tensor([[0.0]], dtype=D), torch.tensor([[0.0]], dtype=D))
    assert parts["l_s"].item() == 0.0  # y = 0: no size constraint (eq. 4.3)


def test_total_loss_multilabel_l2_hand_example():
    cams = _constant_cams([0.0, math.log(3)])
    labels = torch.tensor([[0.0, 1.0]], dtype=D)
    sizes = torch.tensor([[0.0, 0.6]], dtype=D)
    total, parts = create_size_loss("l2", lambda_s=1.0, lambda_e=0.0, multi_label=True)(
        cams, labels, sizes
    )
    l_c = math.log(2) + math.log(4 / 3)  # BCE(σ(0), 0) + BCE(σ(log 3), 1)
    l_s = 0.5**2 + 0.15**2
    assert parts["l_c"].item() == pytest.approx(l_c)
    assert parts["l_s"].item() == pytest.approx(l_s)
    assert total.item() == pytest.approx((l_c + l_s) / 2)


@pytest.mark.parametrize("name", ["kl", "l2", "adaptive", "jia"])
def test_every_variant_gradient_matches_finite_differences(name):
    multi_label = name == "jia"
    loss_fn = create_size_loss(name, lambda_s=2.0, lambda_e=0.3, multi_label=multi_label).double()
    gen = torch.Generator().manual_seed(4)
    cams = torch.randn(2, 2, 3, 3, generator=gen, dtype=D, requires_grad=True)
    if multi_label:
        labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=D)
        sizes = torch.tensor([[0.1, 0.0], [0.3, 0.2]], dtype=D)
    else:
        labels = torch.tensor([1, 0])
        sizes = torch.tensor([[0.3, 0.7], [0.9, 0.1]], dtype=D)

    def total(c: torch.Tensor) -> torch.Tensor:
        return loss_fn(c, labels, sizes, output_size=(5, 6))[0]

    assert torch.autograd.gradcheck(total, (cams,))


# ---------------------------------------------------------------- registry and errors


def test_registry_lists_and_builds_every_size_loss():
    assert list_size_losses() == ["adaptive", "jia", "kl", "l2"]
    for name in list_size_losses():
        loss_fn = create_size_loss(name, lambda_s=0.5, multi_label=name == "jia")
        assert isinstance(loss_fn, SizeSupervisedLoss)
        assert loss_fn.size_loss == name and loss_fn.lambda_s == 0.5
    assert create_size_loss("adaptive").robust is not None
    assert create_size_loss("kl").robust is None


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="adaptive, jia, kl, l2"):
        create_size_loss("huber")
    with pytest.raises(ConfigError, match="adaptive, jia, kl, l2"):
        SizeSupervisedLoss("huber")
    with pytest.raises(ConfigError, match="lamda_s"):
        create_size_loss("kl", lamda_s=1.0)
    with pytest.raises(ConfigError, match="multi_label=False"):
        SizeSupervisedLoss("kl", multi_label=True)
    with pytest.raises(ConfigError, match="multi_label=True"):
        SizeSupervisedLoss("jia")
    with pytest.raises(ConfigError, match="lambda_e"):
        SizeSupervisedLoss("l2", lambda_e=-1.0)


def test_input_errors_are_clear():
    loss_fn = SizeSupervisedLoss("l2")
    cams = torch.zeros(2, 3, 4, 4)
    sizes = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    with pytest.raises(InvalidInputError, match="sum to 1"):
        loss_fn(cams, torch.tensor([1, 0]), sizes * 0.5)
    with pytest.raises(InvalidInputError, match=r"\[0, 2\]"):
        loss_fn(cams, torch.tensor([3, 0]), sizes)
    with pytest.raises(InvalidInputError, match="integer"):
        loss_fn(cams, torch.tensor([1.0, 0.0]), sizes)
    with pytest.raises(InvalidInputError, match=r"\(2, 3\)"):
        loss_fn(cams, torch.tensor([1, 0]), sizes[:, :2])
    with pytest.raises(InvalidInputError, match="NaN"):
        loss_fn(cams * math.nan, torch.tensor([1, 0]), sizes)
    with pytest.raises(InvalidInputError, match="output_size"):
        loss_fn(cams, torch.tensor([1, 0]), sizes, output_size=(8,))


# ---------------------------------------------------------------- annotation noise (4.4.3)


def test_noise_is_reproducible_by_seed_and_has_the_requested_spread():
    first = draw_size_noise(20_000, 0.1, seed=7)
    torch.testing.assert_close(first, draw_size_noise(20_000, 0.1, seed=7))
    assert not torch.equal(first, draw_size_noise(20_000, 0.1, seed=8))
    assert first.std().item() == pytest.approx(0.1, rel=0.03)
    assert abs(first.mean().item()) < 0.005
    assert torch.equal(draw_size_noise(5, 0.0, seed=7), torch.zeros(5, dtype=D))


def test_noise_is_fixed_per_sample_across_epochs_but_redrawn_per_crop_from_a_stream():
    sizes = torch.tensor([[0.6, 0.4], [0.9, 0.1], [1.0, 0.0]], dtype=D)
    labels = torch.tensor([1, 1, 0])
    noisy, record = perturb_sizes(sizes, labels, 0.05, seed=3)
    for _epoch in range(3):  # the dataset re-applies its record, it never redraws
        assert torch.equal(apply_size_noise(sizes, labels, record), noisy)
    assert torch.equal(perturb_sizes(sizes, labels, 0.05, seed=3)[0], noisy)
    gen = torch.Generator().manual_seed(3)
    crop_a = draw_size_noise(3, 0.05, seed=gen)
    crop_b = draw_size_noise(3, 0.05, seed=gen)
    assert torch.equal(crop_a, record)  # same stream start as the integer seed
    assert not torch.equal(crop_a, crop_b)


def test_noise_application_hand_examples():
    sizes = torch.tensor([[0.7, 0.3, 0.0]] * 3 + [[1.0, 0.0, 0.0]], dtype=D)
    labels = torch.tensor([1, 1, 1, 0])
    noise = torch.tensor([0.1, 0.9, -0.5, 0.2], dtype=D)
    expected = torch.tensor(
        [[0.6, 0.4, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=D
    )
    torch.testing.assert_close(apply_size_noise(sizes, labels, noise), expected)
    # a third class keeps its area: noise only moves area between y and the background
    three = torch.tensor([[0.5, 0.2, 0.3]], dtype=D)
    moved = apply_size_noise(three, torch.tensor([2]), torch.tensor([0.9], dtype=D))
    torch.testing.assert_close(moved, torch.tensor([[0.0, 0.2, 0.8]], dtype=D))


def test_noise_keeps_sizes_valid_for_large_sigma():
    gen = torch.Generator().manual_seed(5)
    fg = torch.rand(500, generator=gen, dtype=D)
    sizes = torch.stack([1 - fg, fg], dim=1)
    noisy, _ = perturb_sizes(sizes, torch.ones(500, dtype=torch.long), 0.3, seed=gen)
    assert ((noisy >= 0) & (noisy <= 1)).all()
    torch.testing.assert_close(noisy.sum(1), torch.ones(500, dtype=D))
    assert (noisy[:, 1] == 0).any() and (noisy[:, 1] == 1).any()  # clipping happened


def test_noise_errors():
    with pytest.raises(ConfigError, match="sigma_s"):
        draw_size_noise(3, -0.1, seed=0)
    with pytest.raises(ConfigError, match="seed"):
        draw_size_noise(3, 0.1, seed=1.5)
    with pytest.raises(InvalidInputError, match="noise"):
        apply_size_noise(torch.tensor([[0.5, 0.5]]), torch.tensor([1]), torch.zeros(2))
    with pytest.raises(ConfigError, match="background"):
        apply_size_noise(torch.tensor([[0.5, 0.5]]), torch.tensor([1]), torch.zeros(1), 2)
