from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.losses import SparsityEnhancedLoss, sparsity_enhanced_loss
from wslbench.models import build_dr_net


class _Squeeze(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.squeeze(-1)


class _Linear(nn.Module):
    """f_n(x) = Σ W·x_n + b: the heatmap of the loss has a closed form."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(*shape, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(0.3, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.w * x).sum((1, 2, 3)) + self.b


def _smooth_net() -> nn.Module:
    # softplus: smooth, so the second derivatives double backprop relies on are not
    # piecewise constant (DESIGN §7) and finite differences are meaningful.
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.Softplus(),
        nn.AvgPool2d(2),
        nn.Conv2d(3, 2, 3, stride=1),
        nn.Softplus(),
        nn.Flatten(),
        nn.Linear(2, 1),
        _Squeeze(),
    ).double()


def _param_grads(model: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(model.parameters())))


@pytest.mark.parametrize("criterion, q", [("pi", 1.0), ("omega", 1.0), ("omega", 2.0)])
def test_double_backprop_gradient_of_l0_matches_finite_differences(criterion, q):
    model = _smooth_net()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 6, 6, generator=g, dtype=torch.float64)
    y = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    nu = 0.7
    total, parts = sparsity_enhanced_loss(model, x, y, nu, criterion=criterion, q=q)
    grad_total = _param_grads(model, total)
    grad_plain = _param_grads(model, F.mse_loss(model(x), y))
    # ∂L_0/∂ρ = ∂L/∂ρ − ∂L_L/∂ρ, compared with central differences of L_0 alone.
    eps = 1e-6
    for p, gt, gp in zip(model.parameters(), grad_total, grad_plain):
        flat = p.data.view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 5)):
            old = flat[i].item()
            flat[i] = old + eps
            plus = sparsity_enhanced_loss(model, x, y, nu, criterion=criterion, q=q)[1]["L_0"]
            flat[i] = old - eps
            minus = sparsity_enhanced_loss(model, x, y, nu, criterion=criterion, q=q)[1]["L_0"]
            flat[i] = old
            fd = (plus - minus).item() / (2 * eps)
            analytic = (gt.reshape(-1)[i] - gp.reshape(-1)[i]).item()
            assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-8)
    assert parts["L_0"] > 0.01 * parts["L_L"], "L_0 must matter in this test"


def test_l0_value_and_normalisation_closed_form():
    # Linear model: ∂L_L/∂x_{n,c,i,j} = (2/N) r_n W_{c,i,j}, ∂L_L/∂m_{n,i,j} = (2/N) r_n Σ_c W x.
    torch.manual_seed(0)
    model = _Linear((3, 5, 4))
    x = torch.randn(4, 3, 5, 4, dtype=torch.float64)
    y = torch.randn(4, dtype=torch.float64)
    nu = 0.1
    with torch.no_grad():
        r = model(x) - y
        n = x.shape[0]
        pi = (2 / n) * r.view(-1, 1, 1) * (model.w * x).sum(1)
        expected_pi = nu * pi.abs().sum()
        w_l2 = model.w.norm(dim=0)  # (5, 4)
        expected_omega_q2 = nu * ((2 / n) * r.abs().view(-1, 1, 1) * w_l2).sum()
        w_inf = model.w.abs().amax(0)
        expected_omega_inf = nu * ((2 / n) * r.abs().view(-1, 1, 1) * w_inf).sum()
        expected_omega_q1 = nu * (2 / n) * r.abs().sum() * model.w.abs().sum()
    _, parts = sparsity_enhanced_loss(model, x, y, nu)
    assert parts["L_0"].item() == pytest.approx(expected_pi.item(), rel=1e-12)
    assert parts["grad_l1"].item() == pytest.approx(expected_pi.item() / nu, rel=1e-12)
    assert parts["L_L"].item() == pytest.approx(F.mse_loss(model(x), y).item())
    cases = [(1.0, expected_omega_q1), (2.0, expected_omega_q2), (math.inf, expected_omega_inf)]
    for q, expected in cases:
        _, parts = sparsity_enhanced_loss(model, x, y, nu, criterion="omega", q=q)
        assert parts["L_0"].item() == pytest.approx(expected.item(), rel=1e-12), q
    # Batch mean: duplicating the batch leaves L_L and L_0 unchanged.
    _, doubled = sparsity_enhanced_loss(model, torch.cat([x, x]), torch.cat([y, y]), nu)
    assert doubled["L_0"].item() == pytest.approx(expected_pi.item(), rel=1e-12)


def test_nu_zero_gives_exactly_the_plain_mse_gradient():
    model = _smooth_net()
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    y = torch.randn(4, dtype=torch.float64)
    total, parts = sparsity_enhanced_loss(model, x, y, 0.0)
    ours = _param_grads(model, total)
    plain = _param_grads(model, F.mse_loss(model(x), y))
    assert all(torch.equal(a, b) for a, b in zip(ours, plain))
    assert parts["L_0"] == 0
    total, _ = sparsity_enhanced_loss(model, x, y, 1e-2)
    assert not all(torch.equal(a, b) for a, b in zip(_param_grads(model, total), plain))


def test_input_gets_no_gradient_and_class_matches_function():
    model = _smooth_net()
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(2, dtype=torch.float64)
    loss_fn = SparsityEnhancedLoss(nu=0.5, criterion="omega", q=2.0)
    total, parts = loss_fn(model, x, y)
    total.backward()
    assert x.grad is None
    _, ref = sparsity_enhanced_loss(model, x, y, 0.5, criterion="omega", q=2.0)
    assert parts["L_0"] == ref["L_0"]
    assert "nu=0.5" in repr(loss_fn)


def test_bad_arguments_raise():
    model = _smooth_net()
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    y = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ConfigError, match="pi, omega"):
        sparsity_enhanced_loss(model, x, y, 1e-3, criterion="sigma")
    with pytest.raises(ConfigError, match="nu"):
        sparsity_enhanced_loss(model, x, y, -1.0)
    with pytest.raises(ConfigError, match="q"):
        SparsityEnhancedLoss(q=0.5)
    with pytest.raises(InvalidInputError, match="prediction's shape"):
        sparsity_enhanced_loss(model, x, torch.zeros(2, 1, dtype=torch.float64), 1e-3)
    with pytest.raises(InvalidInputError, match=r"\(B, C, H, W\)"):
        sparsity_enhanced_loss(model, x[0], y, 1e-3)
    with pytest.raises(InvalidInputError, match="not finite"):
        sparsity_enhanced_loss(model, x, torch.full((2,), float("nan"), dtype=torch.float64), 1)


@pytest.mark.parametrize("name", ["net_b", "alexnet"])
def test_sparsity_step_on_dr_nets_reaches_every_parameter(name):
    model = build_dr_net(name, input_size=128, width=0.125)
    x = torch.randn(2, 3, 128, 128)
    y = torch.tensor([0.0, 3.0])
    total, parts = sparsity_enhanced_loss(model, x, y, 1e-3)
    total.backward()
    assert parts["L_0"] > 0
    for p in model.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()


# --- seeded trend: sparsity lowers the π heatmap L1 at comparable loss (section 4.2) -------


def _blob_task(n: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Target = amplitude of one small bright blob; three random bars distract."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    images = np.zeros((n, 1, size, size))
    targets = np.zeros(n)
    for i in range(n):
        img = 0.05 * rng.standard_normal((size, size))
        for _ in range(3):
            start = rng.integers(2, size - 2)
            value = rng.uniform(0.3, 0.8)
            if rng.random() < 0.5:
                img[start : start + 2, :] += value
            else:
                img[:, start : start + 2] += value
        amplitude = rng.uniform(0, 1)
        cy, cx = rng.uniform(6, size - 6, 2)
        img += 1.5 * amplitude * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 1.2**2))
        images[i, 0] = img
        targets[i] = amplitude
    return torch.tensor(images, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32)


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    channels = 1
    for _ in range(3):
        layers += [nn.Conv2d(channels, 8, 3, padding=1), nn.LeakyReLU(0.33), nn.MaxPool2d(2)]
        channels = 8
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(8 * 4 * 4, 1), _Squeeze())


def _pi_l1(model: nn.Module, x: torch.Tensor) -> float:
    """Mean over images of ‖π‖₁, π = |∂f(m∘x)/∂m| at m = 1 (eq. 3)."""
    m = torch.ones(x.shape[0], 1, *x.shape[2:], requires_grad=True)
    (g,) = torch.autograd.grad(model(m * x).sum(), m)
    return g.abs().sum((1, 2, 3)).mean().item()


def _train(nu: float, x: torch.Tensor, y: torch.Tensor, steps: int = 400) -> nn.Module:
    model = _tiny_net()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (16,), generator=gen)
        opt.zero_grad()
        total, _ = sparsity_enhanced_loss(model, x[idx], y[idx], nu)
        total.backward()
        opt.step()
    return model


def test_sparsity_lowers_pi_heatmap_l1_at_comparable_loss():
    x, y = _blob_task(512, seed=1)
    x_test, y_test = _blob_task(128, seed=2)
    results = {}
    for nu in (0.0, 0.03):
        model = _train(nu, x, y)
        with torch.no_grad():
            mse = F.mse_loss(model(x_test), y_test).item()
        results[nu] = (mse, _pi_l1(model, x_test))
    (mse_plain, l1_plain), (mse_sparse, l1_sparse) = results[0.0], results[0.03]
    variance = y_test.var().item()
    assert mse_plain < 0.5 * variance and mse_sparse < 0.5 * variance, results  # both learned
    assert mse_sparse < 1.5 * mse_plain + 0.005, results  # comparable loss
    assert l1_sparse < 0.85 * l1_plain, results  # sparser heatmaps
