"""Recovery layer backward rules (Xue et al. eq. 5–9) vs finite differences and closed forms."""

from __future__ import annotations

import pytest
import torch

from wslbench.cs.recovery import RecoveryLayer, sparse_recovery, support_vjp_weights
from wslbench.cs.solvers import FISTA, LISTA, OMP
from wslbench.errors import ConfigError, InvalidInputError

M, N, B = 12, 20, 3
LAM = 0.05
PRECISE = {"solver": "fista", "max_iter": 100_000, "tol": 1e-13}


def _problem(seed: int = 0, k: int = 3, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(M, N, generator=g, dtype=dtype) / M**0.5
    a = torch.zeros(B, N, dtype=dtype)
    for b in range(B):
        a[b, torch.randperm(N, generator=g)[:k]] = 1 + torch.rand(k, generator=g, dtype=dtype)
    x = a @ D.t() + 0.01 * torch.randn(B, M, generator=g, dtype=dtype)
    w = torch.randn(B, N, generator=g, dtype=dtype)  # loss = Σ w ⊙ a, so δâ = w
    return x, D, w


def _grads(x, D, w, lam=LAM, **kwargs):
    xr, Dr = x.clone().requires_grad_(), D.clone().requires_grad_()
    a = sparse_recovery(xr, Dr, lam, **kwargs)
    (a * w).sum().backward()
    return a.detach(), xr.grad, Dr.grad


def _per_sample_rule(x, D, a, w, exact: bool):
    """Eq. 5–6 (exact) or 8–9 (approx) written literally, one sample at a time."""
    gx, gD = torch.zeros_like(x), torch.zeros_like(D)
    for b in range(x.shape[0]):
        p = torch.nonzero(a[b]).flatten()
        Dp = D[:, p]
        inv = torch.linalg.inv(Dp.t() @ Dp) if exact else torch.eye(len(p), dtype=D.dtype)
        gx[b] = Dp @ inv @ w[b, p]
        r = x[b] - D @ a[b]
        gD[:, p] += torch.outer(r, w[b, p]) @ inv - torch.outer(Dp @ inv @ w[b, p], a[b, p])
    return gx, gD


def test_exact_rule_matches_finite_differences_for_x_and_D():
    x, D, w = _problem()
    a, gx, gD = _grads(x, D, w, **PRECISE)
    support = a != 0
    assert 2 <= int(support.sum(1).min()) and int(support.sum(1).max()) < M
    g = torch.Generator().manual_seed(1)
    eps = 1e-6
    for _ in range(3):
        u, U = torch.randn(x.shape, generator=g, dtype=x.dtype), torch.randn(D.shape, generator=g, dtype=D.dtype)
        for dx, dD, analytic in ((u, 0 * U, (gx * u).sum()), (0 * u, U, (gD * U).sum())):
            plus = sparse_recovery(x + eps * dx, D + eps * dD, LAM, **PRECISE)
            minus = sparse_recovery(x - eps * dx, D - eps * dD, LAM, **PRECISE)
            assert torch.equal(plus != 0, support) and torch.equal(minus != 0, support)
            numeric = ((plus - minus) * w).sum() / (2 * eps)
            assert torch.isclose(analytic, numeric, rtol=1e-5, atol=1e-7), (analytic, numeric)


def test_exact_rule_equals_autograd_of_the_kkt_solution_and_literal_eq_5_6():
    x, D, w = _problem(seed=2, k=4)
    a, gx, gD = _grads(x, D, w, **PRECISE)
    assert len(set((a != 0).sum(1).tolist())) > 1  # padded supports of different sizes
    # On a fixed support the lasso solution is â(p) = [DᵀD(p,p)]⁻¹(D(:,p)ᵀx − λ sign â(p)).
    xr, Dr = x.clone().requires_grad_(), D.clone().requires_grad_()
    total = 0.0
    for b in range(B):
        p = torch.nonzero(a[b]).flatten()
        Dp = Dr[:, p]
        ap = torch.linalg.solve(Dp.t() @ Dp, Dp.t() @ xr[b] - LAM * a[b, p].sign())
        assert torch.allclose(ap.detach(), a[b, p], atol=1e-9)
        total = total + (ap * w[b, p]).sum()
    total.backward()
    assert torch.allclose(gx, xr.grad, atol=1e-9) and torch.allclose(gD, Dr.grad, atol=1e-9)
    lx, lD = _per_sample_rule(x, D, a, w, exact=True)
    assert torch.allclose(gx, lx, atol=1e-10) and torch.allclose(gD, lD, atol=1e-10)
    # eq. 7: columns outside every support get no gradient
    off = ~(a != 0).any(0)
    assert off.any() and torch.all(gD[:, off] == 0)


def test_approx_rule_matches_eq_8_9_and_differs_from_exact():
    x, D, w = _problem(seed=3, k=4)
    a, gx, gD = _grads(x, D, w, rule="approx", **PRECISE)
    lx, lD = _per_sample_rule(x, D, a, w, exact=False)
    assert torch.allclose(gx, lx, atol=1e-12) and torch.allclose(gD, lD, atol=1e-12)
    _, ex, eD = _grads(x, D, w, rule="exact", **PRECISE)
    assert not torch.allclose(gx, ex, atol=1e-3) and not torch.allclose(gD, eD, atol=1e-3)


def test_omp_forward_with_exact_backward_is_the_least_squares_derivative():
    x, D, w = _problem(seed=4)
    a, gx, gD = _grads(x, D, w, lam=0.0, solver=OMP(n_nonzero=3))
    assert torch.isfinite(gx).all() and torch.isfinite(gD).all() and gx.abs().sum() > 0
    eps = 1e-6
    u, U = torch.randn_like(x), torch.randn_like(D)
    plus = sparse_recovery(x + eps * u, D + eps * U, 0.0, solver=OMP(n_nonzero=3))
    minus = sparse_recovery(x - eps * u, D - eps * U, 0.0, solver=OMP(n_nonzero=3))
    assert torch.equal(plus != 0, a != 0) and torch.equal(minus != 0, a != 0)
    numeric = ((plus - minus) * w).sum() / (2 * eps)
    assert torch.isclose((gx * u).sum() + (gD * U).sum(), numeric, rtol=1e-6)


def test_float32_lista_and_empty_supports():
    x, D, w = _problem(dtype=torch.float32)
    lista = LISTA.from_dictionary(D, LAM, n_iter=10)
    a, gx, gD = _grads(x, D, w, solver=lista)
    assert gx.dtype == torch.float32 and torch.isfinite(gx).all() and torch.isfinite(gD).all()
    assert all(p.grad is None for p in lista.parameters())  # the forward runs without autograd
    a, gx, gD = _grads(x, D, w, lam=1e6)
    assert torch.count_nonzero(a) == 0 and torch.count_nonzero(gx) == 0 and torch.count_nonzero(gD) == 0


def test_gradient_reaches_upstream_only_through_x():
    x, D, w = _problem()
    net = torch.nn.Linear(M, M, dtype=torch.float64)
    a = sparse_recovery(net(x), D, LAM)
    (a * w).sum().backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


def test_recovery_layer_and_support_weights():
    x, D, w = _problem()
    layer = RecoveryLayer(FISTA(max_iter=5000, tol=1e-10), lam=LAM, rule="approx")
    a = layer(x, D)
    assert torch.equal(a, sparse_recovery(x, D, LAM, solver=layer.solver))
    v = support_vjp_weights(a, w, D, "exact")
    assert torch.all(v[a == 0] == 0) and torch.all(v[a != 0] != 0)
    assert RecoveryLayer("omp", lam=0.0).solver.n_nonzero is None


def test_bad_arguments_raise():
    x, D, _ = _problem()
    with pytest.raises(ConfigError, match="unknown rule 'mean'"):
        sparse_recovery(x, D, LAM, rule="mean")
    with pytest.raises(ConfigError, match="unknown solver 'lars'"):
        sparse_recovery(x, D, LAM, solver="lars")
    with pytest.raises(ConfigError, match="need a solver name"):
        sparse_recovery(x, D, LAM, solver=FISTA(), tol=1e-3)
    with pytest.raises(ConfigError, match="solve"):
        sparse_recovery(x, D, LAM, solver=object())
    with pytest.raises(ConfigError, match="unknown rule"):
        RecoveryLayer(rule="inverse")
    with pytest.raises(InvalidInputError, match=">= 0"):
        RecoveryLayer(lam=-1.0)
    with pytest.raises(InvalidInputError, match="rows"):
        sparse_recovery(x, D[:-1], LAM)
    with pytest.raises(InvalidInputError, match=">= 0"):
        sparse_recovery(x, D, -1.0)
