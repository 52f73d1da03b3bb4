"""Meaningful-perturbation masks (Thibeau-Sutre et al. 2020, section 2.3, eq. 1–2)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wslbench.attribution import (
    MeaningfulPerturbation,
    apply_threshold,
    create_attribution,
    mask_sparsity_term,
    mask_tv_term,
    perturb,
)
from wslbench.attribution.meaningful_perturbation import _Adam
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.progress import StopRequested

REGION_2D = (slice(4, 8), slice(8, 12))
REGION_3D = (slice(2, 5), slice(3, 6), slice(1, 4))


class RegionModel(nn.Module):
    """Logits (0, −k·(mean of a known region − 0.5)): class 1 ("AD") where the region is dark."""

    def __init__(self, region: tuple[slice, ...], k: float = 10.0) -> None:
        super().__init__()
        self.region = region
        self.k = k
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        mean = x[(slice(None), slice(None), *self.region)].mean(dim=tuple(range(1, x.ndim)))
        return torch.stack([torch.zeros_like(mean), -self.k * (mean - 0.5)], dim=1)


class ConstantModel(nn.Module):
    """Ignores its input: a loss plateau."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([0.0, 1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], 2) + 0.0 * x.flatten(1).sum(dim=1, keepdim=True)


def _atrophied(
    batch: int, spatial: tuple[int, ...], region: tuple[slice, ...], seed: int
) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((batch, 1, *spatial), generator=generator) * 0.6 + 0.4
    x[(slice(None), slice(None), *region)] = 0.2
    return x


def _inside(spatial: tuple[int, ...], region: tuple[slice, ...]) -> torch.Tensor:
    inside = torch.zeros(spatial, dtype=torch.bool)
    inside[region] = True
    return inside


def _explainer(model: nn.Module, **kwargs: object) -> MeaningfulPerturbation:
    settings: dict[str, object] = {
        "lambda1": 1e-3,
        "lambda2": 1e-3,
        "session_factor": 1.0,
        "session_max_iter": 100,
        "session_patience": 20,
    }
    settings.update(kwargs)
    return MeaningfulPerturbation(model, **settings)


# ---------------------------------------------------------------- loss terms
def test_sparsity_term_by_hand() -> None:
    m = torch.tensor([[[[0.5, 1.0], [0.0, 0.75]]]])
    torch.testing.assert_close(mask_sparsity_term(m, 1.0), torch.tensor([1.75]))
    torch.testing.assert_close(mask_sparsity_term(m, 2.0), torch.tensor([0.25 + 1.0 + 0.0625]))
    expected = 0.5**0.5 + 1.0 + 0.25**0.5
    torch.testing.assert_close(mask_sparsity_term(m, 0.5), torch.tensor([expected]))
    expected = 0.5**0.1 + 1.0 + 0.25**0.1  # the 1 − m = 0 voxel adds nothing
    torch.testing.assert_close(mask_sparsity_term(m, 0.1), torch.tensor([expected]))


def test_sparsity_term_3d_per_sample() -> None:
    m = torch.ones(2, 1, 2, 2, 2)
    m[0, 0, 0, 0, 0] = 0.0
    m[1, 0, 1, 1, 1] = 0.9
    m[1, 0, 0, 1, 0] = 0.6
    torch.testing.assert_close(mask_sparsity_term(m, 0.1), torch.tensor([1.0, 0.1**0.1 + 0.4**0.1]))


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_gradient_is_finite_at_m_equal_one(beta: float) -> None:
    m = torch.ones(1, 1, 3, 3, 3, requires_grad=True)
    (grad,) = torch.autograd.grad(mask_sparsity_term(m, beta).sum(), m)
    assert torch.isfinite(grad).all() and torch.equal(grad, torch.zeros_like(grad))
    (grad,) = torch.autograd.grad(mask_tv_term(m, beta).sum(), m)
    assert torch.isfinite(grad).all() and torch.equal(grad, torch.zeros_like(grad))


def test_near_zero_rule_is_the_chord() -> None:
    t = torch.tensor([0.0, 1e-8, 5e-7, 1e-6, 1e-3])
    m = (1.0 - t.double()).reshape(1, 1, 5)
    values = [float(mask_sparsity_term(m[..., i : i + 1], 0.1, eps=1e-6)) for i in range(5)]
    slope = 1e-6 ** (0.1 - 1.0)
    expected = [0.0, 1e-8 * slope, 5e-7 * slope, 1e-6**0.1, 1e-3**0.1]
    for value, want in zip(values, expected):
        assert value == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("beta", [0.5, 1.5, 2.0])
def test_loss_terms_match_finite_differences(beta: float) -> None:
    generator = torch.Generator().manual_seed(0)
    m = (0.1 + 0.7 * torch.rand(2, 1, 3, 4, generator=generator)).double().requires_grad_(True)
    # values well apart so every |difference| exceeds eps
    m.data += torch.arange(24, dtype=torch.float64).reshape(2, 1, 3, 4) * 1e-2
    assert torch.autograd.gradcheck(lambda t: mask_sparsity_term(t, beta), (m,))
    assert torch.autograd.gradcheck(lambda t: mask_tv_term(t, beta), (m,))


def test_tv_term_2d_by_hand() -> None:
    m = torch.tensor([[[[1.0, 0.5], [0.25, 1.0]]]])
    # along W: |0.5 − 1| + |1 − 0.25|; along H: |0.25 − 1| + |1 − 0.5|
    torch.testing.assert_close(mask_tv_term(m, 1.0), torch.tensor([2.5]))
    torch.testing.assert_close(mask_tv_term(m, 2.0), torch.tensor([0.25 + 0.5625 + 0.5625 + 0.25]))


def test_tv_term_3d_by_hand() -> None:
    d, h, w = torch.meshgrid(torch.arange(2.0), torch.arange(2.0), torch.arange(2.0), indexing="ij")
    m = ((4 * d + 2 * h + w) / 8).reshape(1, 1, 2, 2, 2)
    # 4 pairs per axis with differences 1/8 (W), 2/8 (H), 4/8 (D)
    torch.testing.assert_close(mask_tv_term(m, 1.0), torch.tensor([4 * 7 / 8]))
    torch.testing.assert_close(mask_tv_term(m, 2.0), torch.tensor([4 * 21 / 64]))
    both = torch.cat([m, torch.ones_like(m)])
    torch.testing.assert_close(mask_tv_term(both, 1.0), torch.tensor([3.5, 0.0]))


def test_perturbation_and_threshold_rules() -> None:
    x = torch.tensor([[[[0.2, 0.4], [0.6, 0.8]], [[1.0, 2.0], [3.0, 4.0]]]])  # (1, 2, 2, 2)
    m = torch.tensor([[[[1.0, 0.0], [0.5, 0.25]]]])
    expected = torch.tensor([[[[0.2, 1.0], [0.8, 0.95]], [[1.0, 1.0], [2.0, 1.75]]]])
    torch.testing.assert_close(perturb(x, m, 1.0), expected)
    values = torch.tensor([0.0, 0.5, 0.95, 0.950001, 0.99, 1.0])
    torch.testing.assert_close(
        apply_threshold(values, 0.95), torch.tensor([0.0, 0.5, 0.95, 1.0, 1.0, 1.0])
    )


def test_adam_step_matches_torch_adam_with_clamp() -> None:
    generator = torch.Generator().manual_seed(0)
    start = torch.rand(2, 1, 4, 4, generator=generator)
    grads = [torch.randn(2, 1, 4, 4, generator=generator) for _ in range(5)]
    param = start.clone().requires_grad_(True)
    reference = torch.optim.Adam([param], lr=0.1)
    adam, m = _Adam(start, 0.1), start.clone()
    for grad in grads:
        param.grad = grad.clone()
        reference.step()
        with torch.no_grad():
            param.clamp_(0.0, 1.0)
        m = adam.step(m, grad)
    torch.testing.assert_close(m, param.detach())


# ------------------------------------------------------------ session level
@pytest.mark.parametrize(
    ("spatial", "region"), [((16, 16), REGION_2D), ((8, 8, 8), REGION_3D)], ids=["2d", "3d"]
)
def test_session_mask_finds_the_region_the_model_uses(
    spatial: tuple[int, ...], region: tuple[slice, ...]
) -> None:
    model = RegionModel(region)
    x = _atrophied(2, spatial, region, seed=1)
    result = _explainer(model).optimise_session(x, target=1)
    assert result.mask.shape == (2, 1, *spatial)
    assert (result.mask >= 0).all() and (result.mask <= 1).all()
    before = torch.softmax(model(x), dim=1)[:, 1]
    after = torch.softmax(model(perturb(x, result.mask, 1.0)), dim=1)[:, 1]
    assert (before > 0.9).all() and (after < 0.1).all()
    inside = _inside(spatial, region)
    importance = (1 - result.mask)[:, 0]
    assert (importance[:, inside].mean(dim=1) > 0.5).all()
    assert (importance[:, ~inside].mean(dim=1) < 0.02).all()


def test_attribute_is_one_minus_the_session_mask() -> None:
    model = RegionModel(REGION_2D)
    x = _atrophied(2, (16, 16), REGION_2D, seed=2)
    explainer = _explainer(model, session_max_iter=30)
    torch.testing.assert_close(
        explainer.attribute(x, target=1), 1 - explainer.optimise_session(x, target=1).mask
    )
    registered = create_attribution("meaningful-perturbation", model, session_max_iter=30)
    assert isinstance(registered, MeaningfulPerturbation)


def test_masks_of_a_batch_are_independent() -> None:
    model = RegionModel(REGION_2D)
    x = _atrophied(3, (16, 16), REGION_2D, seed=3)
    x[1] = 0.9  # nothing to find: the model already says class 0
    joint = _explainer(model, batch_size=3).optimise_session(x, target=1)
    alone = _explainer(model, batch_size=1).optimise_session(x, target=1)
    torch.testing.assert_close(joint.mask, alone.mask)
    torch.testing.assert_close(joint.epochs, alone.epochs)
    assert not torch.equal(joint.mask[0], joint.mask[1])


def test_session_level_multiplies_the_lambdas_and_monitors_after_each_step() -> None:
    model = RegionModel(REGION_2D)
    x = _atrophied(1, (16, 16), REGION_2D, seed=4)
    lambda1, lambda2, lr = 1e-4, 1e-3, 0.1
    explainer = MeaningfulPerturbation(
        model, lambda1=lambda1, lambda2=lambda2, lr=lr, session_max_iter=1
    )
    result = explainer.optimise_session(x, target=1)
    # after one Adam step the region's 16 voxels moved to 1 − lr, the rest had zero gradient
    m = torch.ones(1, 1, 16, 16)
    m[(slice(None), slice(None), *REGION_2D)] = 1 - lr
    probability = float(torch.softmax(model(perturb(x, m, 1.0)), dim=1)[0, 1])
    sparsity = 16 * lr**0.1
    tv = 16 * lr  # 4 sides of 4 boundary pairs, |difference| = lr, β₂ = 1
    expected = 100 * lambda1 * sparsity + 100 * lambda2 * tv + probability
    assert float(result.history[0, 0]) == pytest.approx(expected, rel=1e-5)
    assert result.epochs.tolist() == [1] and result.best_epoch.tolist() == [1]


def test_session_early_stopping_on_a_plateau() -> None:
    explainer = MeaningfulPerturbation(ConstantModel(), session_patience=3, session_max_iter=50)
    result = explainer.optimise_session(torch.rand(2, 1, 6, 6), target=1)
    # epoch 1 sets the reference, then 3 epochs without improvement
    assert result.epochs.tolist() == [4, 4]
    assert result.history.shape == (4, 2)
    assert torch.equal(result.mask, torch.ones(2, 1, 6, 6))


def test_progress_and_stop_requested() -> None:
    calls: list[tuple[int, int]] = []

    def progress(step: int, total: int, logs: dict[str, float]) -> None:
        calls.append((step, total))
        assert math.isfinite(logs["loss"])
        if step == 3:
            raise StopRequested

    model = RegionModel(REGION_2D)
    x = _atrophied(1, (16, 16), REGION_2D, seed=5)
    result = _explainer(model).optimise_session(x, target=1, progress=progress)
    assert calls == [(1, 100), (2, 100), (3, 100)]
    assert result.interrupted and result.epochs.tolist() == [3]
    assert 1 <= int(result.best_epoch[0]) <= 3


# -------------------------------------------------------------- group level
@pytest.mark.parametrize(
    ("spatial", "region"), [((16, 16), REGION_2D), ((8, 8, 8), REGION_3D)], ids=["2d", "3d"]
)
def test_group_mask_is_one_mask_over_the_images(
    spatial: tuple[int, ...], region: tuple[slice, ...]
) -> None:
    model = RegionModel(region)
    images = _atrophied(5, spatial, region, seed=6)
    val = _atrophied(3, spatial, region, seed=7)
    explainer = MeaningfulPerturbation(
        model, lambda1=1e-3, lambda2=1e-3, max_iter=20, patience=20, batch_size=2
    )
    model.calls = 0
    result = explainer.optimise_group(images, 1, val, torch.ones(3, dtype=torch.long))
    assert result.mask.shape == (1, 1, *spatial)
    assert result.history.shape == (20, 1) and result.epochs.tolist() == [20]
    # class weights once (3 + 2 chunks), then per epoch 3 training and 2 validation chunks
    assert model.calls == 5 + 20 * 5
    inside = _inside(spatial, region)
    importance = (1 - result.mask)[0, 0]
    assert importance[inside].mean() > 0.5 and importance[~inside].mean() < 0.02
    after = torch.softmax(model(perturb(val, result.mask, 1.0)), dim=1)[:, 1]
    assert (after < 0.1).all()
    best = int(result.best_epoch[0])
    assert float(result.history[best - 1, 0]) == float(result.history[:, 0].min())


def test_group_early_stopping_on_a_plateau() -> None:
    explainer = MeaningfulPerturbation(ConstantModel(), max_iter=50, patience=5)
    images = torch.rand(4, 1, 6, 6)
    result = explainer.optimise_group(images, 1, images[:2], 1)
    assert result.epochs.tolist() == [6] and result.history.shape == (6, 1)
    assert not result.interrupted


def test_group_progress_reports_val_loss() -> None:
    logs_seen: list[dict[str, float]] = []
    model = RegionModel(REGION_2D)
    images = _atrophied(2, (16, 16), REGION_2D, seed=8)
    explainer = MeaningfulPerturbation(model, max_iter=3)
    result = explainer.optimise_group(
        images, 1, images, 1, progress=lambda s, t, logs: logs_seen.append(dict(logs))
    )
    assert [set(logs) for logs in logs_seen] == [{"loss", "val_loss"}] * 3
    assert [logs["val_loss"] for logs in logs_seen] == pytest.approx(result.history[:, 0].tolist())


def test_model_state_is_restored_and_not_updated() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(72, 2)
    )
    model.train()
    stats = model[1].running_mean.clone()
    explainer = MeaningfulPerturbation(model, max_iter=2, session_max_iter=2)
    explainer.optimise_group(torch.rand(3, 1, 6, 6), 1, torch.rand(2, 1, 6, 6), 1)
    explainer.attribute(torch.rand(2, 1, 6, 6), target=0)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert torch.equal(model[1].running_mean, stats)


# -------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs",
    [
        {"lambda1": -1.0},
        {"beta1": 0.0},
        {"lr": 0.0},
        {"max_iter": 0},
        {"threshold": 1.5},
        {"patience": 2.5},
        {"mu": math.nan},
        {"session_factor": 0.0},
    ],
)
def test_bad_hyper_parameters_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        MeaningfulPerturbation(ConstantModel(), **kwargs)


def test_bad_inputs_are_invalid_input_errors() -> None:
    explainer = MeaningfulPerturbation(ConstantModel(), max_iter=1)
    images = torch.rand(3, 1, 6, 6)
    with pytest.raises(InvalidInputError, match="grid"):
        explainer.optimise_group(images, 1, torch.rand(2, 1, 6, 7), 1)
    with pytest.raises(InvalidInputError, match="3 class indices"):
        explainer.optimise_group(images, torch.ones(2, dtype=torch.long), images, 1)
    with pytest.raises(InvalidInputError, match="mask"):
        mask_tv_term(torch.ones(6, 6), 1.0)
