from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.losses import AdaptiveRobustLoss, general_robust_loss, log_partition, robust_nll

X = torch.tensor([-7.0, -2.5, -0.3, 0.0, 0.1, 1.0, 4.0], dtype=torch.float64)
GAMMA = 1.7


def _barron_numpy(x: np.ndarray, alpha: float, scale: float) -> np.ndarray:
    """Barron 2019 eq. 1 written out directly (general case, α ∉ {0, 2})."""
    b = abs(alpha - 2)
    return b / alpha * (((x / scale) ** 2 / b + 1) ** (alpha / 2) - 1)


def _log_z_quad(alpha: float) -> float:
    """log ∫ exp(−ρ(x, α, 1)) dx by adaptive quadrature on the direct formula."""
    value, _ = integrate.quad(
        lambda t: math.exp(-_barron_numpy(np.float64(t), alpha, 1.0)),
        -np.inf,
        np.inf,
        epsabs=0,
        epsrel=1e-11,
        limit=400,
    )
    return math.log(value)


def test_limits_alpha_two_zero_one_match_closed_forms():
    z = (X / GAMMA) ** 2
    torch.testing.assert_close(general_robust_loss(X, 2.0, GAMMA), 0.5 * z)
    torch.testing.assert_close(general_robust_loss(X, 0.0, GAMMA), torch.log(0.5 * z + 1))
    torch.testing.assert_close(general_robust_loss(X, 1.0, GAMMA), torch.sqrt(z + 1) - 1)


@pytest.mark.parametrize("alpha", [0.3, 1.5, 2.5, 3.9, -1.0])
def test_general_case_matches_direct_formula(alpha):
    expected = torch.from_numpy(_barron_numpy(X.numpy(), alpha, GAMMA))
    torch.testing.assert_close(general_robust_loss(X, alpha, GAMMA), expected)


@pytest.mark.parametrize("alpha, limit", [(1e-9, 0.0), (2 - 1e-9, 2.0), (2 + 1e-9, 2.0)])
def test_loss_is_continuous_at_the_removable_singularities(alpha, limit):
    near = general_robust_loss(X, alpha, GAMMA)
    torch.testing.assert_close(near, general_robust_loss(X, limit, GAMMA), atol=1e-7, rtol=1e-7)


def test_loss_increases_with_alpha():
    alphas = torch.linspace(0, 4, 41, dtype=torch.float64)
    values = general_robust_loss(torch.tensor(2.0, dtype=torch.float64), alphas, 1.0)
    assert (values.diff() > 0).all()


@pytest.mark.parametrize(
    "alpha, expected",
    [
        (0.0, math.pi * math.sqrt(2)),  # Cauchy: ∫ 1 / (x²/2 + 1) dx
        (2.0, math.sqrt(2 * math.pi)),  # Gaussian
        (1.0, 2 * math.e * special.k1(1.0)),  # Charbonnier: e ∫ exp(−√(x²+1)) dx
    ],
)
def test_partition_function_known_values(alpha, expected):
    assert log_partition(torch.tensor(alpha, dtype=torch.float64)).exp().item() == pytest.approx(
        expected, rel=1e-9
    )


def test_partition_function_at_one_matches_independent_quadrature():
    value, _ = integrate.quad(lambda t: math.exp(-(math.sqrt(t * t + 1) - 1)), -np.inf, np.inf)
    assert math.exp(log_partition(1.0).double().item()) == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("alpha", [0.0137, 0.337, 1.2345, 1.9993, 2.0004, 2.06, 3.71])
def test_partition_spline_between_knots_matches_quadrature(alpha):
    got = log_partition(torch.tensor(alpha, dtype=torch.float64)).item()
    assert got == pytest.approx(_log_z_quad(alpha), abs=5e-6)


def test_partition_function_decreases_with_alpha():
    alphas = torch.linspace(0, 4, 801, dtype=torch.float64)
    assert (log_partition(alphas).diff() < 0).all()


@pytest.mark.parametrize("alpha", [0.4, 1.3, 3.2])
def test_partition_gradient_matches_finite_differences_of_quadrature(alpha):
    a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(log_partition(a), a)
    h = 1e-3
    expected = (_log_z_quad(alpha + h) - _log_z_quad(alpha - h)) / (2 * h)
    assert grad.item() == pytest.approx(expected, rel=1e-3)


def test_partition_rejects_alpha_outside_tabulated_range():
    with pytest.raises(InvalidInputError, match="alpha"):
        log_partition(torch.tensor([-0.1]))
    with pytest.raises(InvalidInputError, match="alpha"):
        log_partition(4.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("alpha", [0.0, 1e-6, 1.0, 2 - 1e-6, 2.0, 2 + 1e-6, 3.0])
def test_gradients_are_finite_including_x_zero_and_singular_alphas(dtype, alpha):
    x = torch.tensor([0.0, 1e-4, 0.5, -3.0, 40.0], dtype=dtype, requires_grad=True)
    a = torch.tensor(alpha, dtype=dtype, requires_grad=True)
    g = torch.tensor(0.8, dtype=dtype, requires_grad=True)
    gx, ga, gg = torch.autograd.grad(robust_nll(x, a, g).sum(), (x, a, g))
    for grad in (gx, ga, gg):
        assert torch.isfinite(grad).all()
    assert gx[0].item() == 0.0  # ρ is flat at x = 0


@pytest.mark.parametrize("alpha", [0.0, 1e-7, 0.7, 1.0, 2.9])
def test_loss_gradient_matches_finite_differences(alpha):
    x = torch.tensor([0.0, 0.3, -1.2, 5.0], dtype=torch.float64, requires_grad=True)
    a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    g = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(general_robust_loss, (x, a, g))


def test_alpha_gradient_at_zero_matches_high_precision_derivative_of_general_formula():
    # ∂ρ/∂α at α = 0 from the *general* formula (defined on both sides of 0) in 50 digits.
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    x = mpmath.mpf("1.3")

    def rho(alpha):
        b = abs(alpha - 2)
        return b / alpha * ((x**2 / b + 1) ** (alpha / 2) - 1)

    expected = float(mpmath.diff(rho, mpmath.mpf("1e-20")))
    a = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    value = general_robust_loss(torch.tensor(1.3, dtype=torch.float64), a, 1.0)
    (grad,) = torch.autograd.grad(value, a)
    assert grad.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("alpha, scale", [(0.5, 0.3), (1.5, 2.0), (2.0, 0.7), (3.5, 1.0)])
def test_likelihood_integrates_to_one(alpha, scale):
    x = torch.linspace(-4000, 4000, 800_001, dtype=torch.float64)
    density = torch.exp(-robust_nll(x, alpha, scale))
    mass = torch.trapezoid(density, x).item()
    tail = 0.02 if alpha == 0.5 else 1e-6  # α = 0.5 has polynomial-like tails beyond ±4000
    assert mass == pytest.approx(1.0, abs=tail)
    assert mass <= 1.0 + 1e-6


def _fit(loss: AdaptiveRobustLoss, samples: torch.Tensor, steps: int = 60) -> None:
    optimiser = torch.optim.LBFGS(loss.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        value = loss(samples).mean()
        value.backward()
        return value

    optimiser.step(closure)


def test_nll_over_scale_at_alpha_two_recovers_sample_std():
    gen = torch.Generator().manual_seed(0)
    samples = 0.37 * torch.randn(4000, 1, generator=gen, dtype=torch.float64)
    loss = AdaptiveRobustLoss(alpha_lo=2.0, alpha_hi=2.0).double()
    _fit(loss, samples)
    assert loss.alpha.item() == 2.0
    # Gaussian NLL with zero mean: γ* = sqrt(mean x²), the (uncentred) sample std.
    assert loss.scale.item() == pytest.approx(samples.square().mean().sqrt().item(), rel=1e-4)


def test_learned_shape_is_high_for_gaussian_and_low_for_cauchy_data():
    gen = torch.Generator().manual_seed(1)
    gaussian = torch.randn(3000, 1, generator=gen, dtype=torch.float64)
    cauchy = torch.tan(math.pi * (torch.rand(3000, 1, generator=gen, dtype=torch.float64) - 0.5))
    fitted = []
    for samples in (gaussian, cauchy):
        loss = AdaptiveRobustLoss().double()
        _fit(loss, samples, steps=100)
        fitted.append(loss.alpha.item())
    assert fitted[0] > 1.8
    assert fitted[1] < 0.3


def test_adaptive_parameterisation_stays_in_range_and_starts_at_init():
    loss = AdaptiveRobustLoss(num_dims=3, alpha_lo=0.5, alpha_hi=1.5, scale_lo=0.01, scale_init=0.2)
    torch.testing.assert_close(loss.alpha, torch.full((3,), 1.0))
    torch.testing.assert_close(loss.scale, torch.full((3,), 0.2))
    with torch.no_grad():
        loss.latent_alpha.copy_(torch.tensor([-80.0, 0.0, 80.0]))
        loss.latent_scale.copy_(torch.tensor([-80.0, 0.0, 80.0]))
    assert ((loss.alpha >= 0.5) & (loss.alpha <= 1.5)).all()
    assert (loss.scale >= 0.01).all()
    init = AdaptiveRobustLoss(alpha_init=0.25)
    assert init.alpha.item() == pytest.approx(0.25, rel=1e-6)


def test_adaptive_loss_per_dimension_shapes_and_gradients():
    loss = AdaptiveRobustLoss(num_dims=2)
    x = torch.tensor([[0.0, 1.0], [0.5, -2.0], [3.0, 0.1]])
    out = loss(x)
    assert out.shape == (3, 2)
    expected = robust_nll(x, torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert loss.latent_alpha.grad.abs().min() > 0
    assert loss.latent_scale.grad.abs().min() > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_dims": 0},
        {"alpha_lo": -0.1},
        {"alpha_lo": 1.0, "alpha_hi": 0.5},
        {"alpha_hi": 5.0},
        {"alpha_init": 1.999},
        {"scale_lo": 0.0},
        {"scale_lo": 1.0, "scale_init": 0.5},
    ],
)
def test_adaptive_loss_rejects_bad_config(kwargs):
    with pytest.raises(ConfigError):
        AdaptiveRobustLoss(**kwargs)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(InvalidInputError, match="scale"):
        general_robust_loss(X, 1.0, 0.0)
    with pytest.raises(InvalidInputError, match="alpha"):
        general_robust_loss(X, math.inf, 1.0)
    with pytest.raises(InvalidInputError, match="floating"):
        general_robust_loss(torch.tensor([1, 2]), 1.0, 1.0)
    with pytest.raises(InvalidInputError, match=r"\(\.\.\., 2\)"):
        AdaptiveRobustLoss(num_dims=2)(torch.zeros(4, 3))
