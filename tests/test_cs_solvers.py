"""Batched sparse-recovery solvers (Xue et al. eq. 4): optimum vs scikit-learn, OMP, LISTA, contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso, OrthogonalMatchingPursuit

from wslbench.cs.solvers import (
    FISTA,
    ISTA,
    LISTA,
    OMP,
    create_solver,
    list_solvers,
    padded_support,
    restricted_gram_solve,
    soft_threshold,
)
from wslbench.errors import ConfigError, InvalidInputError

M, N = 20, 30
LAM = 0.05


def _problem(batch: int = 4, k: int = 3, noise: float = 0.01, seed: int = 0, m: int = M, n: int = N,
             dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian D with variance 1/m (§3.2), k-sparse codes with |a_i| in [1, 2], x = D a + noise."""
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(m, n, generator=g, dtype=dtype) / m**0.5
    a = torch.zeros(batch, n, dtype=dtype)
    for b in range(batch):
        a[b, torch.randperm(n, generator=g)[:k]] = torch.randn(k, generator=g, dtype=dtype).sign() * (
            1 + torch.rand(k, generator=g, dtype=dtype))
    x = a @ D.t() + noise * torch.randn(batch, m, generator=g, dtype=dtype)
    return x, D, a


def _objective(a: torch.Tensor, x: torch.Tensor, D: torch.Tensor, lam: float) -> torch.Tensor:
    return 0.5 * ((a @ D.t() - x) ** 2).sum(1) + lam * a.abs().sum(1)


def _sklearn_lasso(x: torch.Tensor, D: torch.Tensor, lam: float) -> torch.Tensor:
    # sklearn: 1/(2·n_samples)‖y − Xw‖² + α‖w‖₁ with n_samples = m, hence α = λ/m.
    coefs = [Lasso(alpha=lam / D.shape[0], fit_intercept=False, tol=1e-14, max_iter=200_000)
             .fit(D.numpy(), xb.numpy()).coef_ for xb in x]
    return torch.from_numpy(np.stack(coefs))


@pytest.mark.parametrize("solver", [ISTA(max_iter=20_000, tol=1e-12), FISTA(max_iter=20_000, tol=1e-12),
                                    FISTA(max_iter=20_000, tol=1e-12, restart=False)],
                         ids=["ista", "fista", "fista-norestart"])
def test_lasso_optimum_matches_sklearn(solver):
    x, D, _ = _problem()
    a = solver.solve(x, D, LAM)
    ref = _sklearn_lasso(x, D, LAM)
    ours, theirs = _objective(a, x, D, LAM), _objective(ref, x, D, LAM)
    assert torch.all((ours - theirs).abs() <= 1e-5 * theirs)
    assert torch.equal(a != 0, ref.abs() > 1e-10)
    assert torch.allclose(a, ref, atol=1e-6)
    assert 1 < solver.n_iter_ < solver.max_iter


def test_fista_restart_needs_fewer_iterations_and_tol_stops_early():
    x, D, _ = _problem()
    counts = {}
    for name, solver in (("ista", ISTA(max_iter=20_000, tol=1e-10)),
                         ("plain", FISTA(max_iter=20_000, tol=1e-10, restart=False)),
                         ("restart", FISTA(max_iter=20_000, tol=1e-10))):
        solver.solve(x, D, LAM)
        counts[name] = solver.n_iter_
    assert 2 * counts["restart"] < min(counts["plain"], counts["ista"])
    ista = ISTA(max_iter=20_000, tol=1e-10)
    ista.solve(x, D, LAM)
    loose = ISTA(max_iter=20_000, tol=1e-3)
    loose.solve(x, D, LAM)
    assert loose.n_iter_ < ista.n_iter_
    exact = ISTA(max_iter=7, tol=0.0)
    exact.solve(x, D, LAM)
    assert exact.n_iter_ == 7


def test_ista_step_is_one_over_spectral_norm_squared():
    x, D, _ = _problem(batch=2)
    L = torch.linalg.svdvals(D)[0] ** 2
    expected = soft_threshold(x @ D / L, LAM / L)  # one step from a = 0
    expected = soft_threshold(expected - (expected @ D.t() - x) @ D / L, LAM / L)
    assert torch.allclose(ISTA(max_iter=2, tol=0.0).solve(x, D, LAM), expected, atol=1e-12)


def test_batch_rows_stop_independently():
    x, D, _ = _problem(batch=5)
    solver = ISTA(max_iter=20_000, tol=1e-6)
    full = solver.solve(x, D, LAM)
    slowest = solver.n_iter_
    iters = []
    for b in range(5):
        assert torch.allclose(full[b:b + 1], solver.solve(x[b:b + 1], D, LAM), atol=1e-12)
        iters.append(solver.n_iter_)
    assert max(iters) == slowest and min(iters) < slowest


def test_omp_recovers_exact_k_sparse_signal():
    x, D, a = _problem(batch=6, k=4, noise=0.0, m=60, n=100)
    omp = OMP(n_nonzero=4)
    assert torch.allclose(omp.solve(x, D, 0.0), a, atol=1e-10)
    assert omp.n_iter_ == 4
    # lam as the stopping rule ‖Dᵀr‖∞ <= lam: stops at the exact fit without n_nonzero.
    by_lam = OMP()
    assert torch.allclose(by_lam.solve(x, D, 1e-8), a, atol=1e-10)
    assert by_lam.n_iter_ == 4
    # residual rule
    by_tol = OMP(tol=1e-8)
    assert torch.allclose(by_tol.solve(x, D, 0.0), a, atol=1e-10)


def test_omp_matches_sklearn_on_noisy_data_and_freezes_finished_samples():
    x, D, _ = _problem(batch=4, k=3, noise=0.05)
    D = D / D.norm(dim=0)  # sklearn's OMP selects by the raw correlations
    ours = OMP(n_nonzero=3).solve(x, D, 0.0)
    ref = OrthogonalMatchingPursuit(n_nonzero_coefs=3, fit_intercept=False).fit(D.numpy(), x.t().numpy())
    assert torch.allclose(ours, torch.from_numpy(ref.coef_), atol=1e-10)
    # A large lam stops every sample before its first atom.
    assert torch.count_nonzero(OMP().solve(x, D, 1e6)) == 0
    # Per-sample stopping: the sample with the smallest correlations stops first.
    corr = (x @ D).abs().amax(1)
    lam = float((corr.sort().values[0] + corr.sort().values[1]) / 2)
    counts = (OMP(n_nonzero=3).solve(x, D, lam) != 0).sum(1)
    assert counts[corr.argmin()] == 0 and (counts > 0).sum() == 3


def test_lista_initial_weights_equal_ista_steps_and_get_gradients():
    x, D, _ = _problem(batch=5, dtype=torch.float32)
    lista = LISTA.from_dictionary(D, LAM, n_iter=6)
    assert torch.allclose(lista(x), ISTA(max_iter=6, tol=0.0).solve(x, D, LAM), atol=1e-6)
    assert torch.allclose(lista.solve(x, D, LAM), lista(x))
    assert lista.theta.shape == (N,) and lista.W.shape == (N, M) and lista.S.shape == (N, N)
    (lista(x) - 1.0).pow(2).sum().backward()
    for name, p in lista.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    with pytest.raises(InvalidInputError, match="built for"):
        lista.solve(x[:, :10], D[:10], LAM)
    with pytest.raises(InvalidInputError, match="dtype"):
        lista(x.double())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list_solvers())
@pytest.mark.parametrize("batch", [1, 7])
def test_registry_contract(name, batch, dtype):
    x, D, _ = _problem(batch=batch, dtype=dtype)
    kwargs = {"n_measurements": M, "n_atoms": N} if name == "lista" else {}
    solver = create_solver(name, **kwargs)
    if isinstance(solver, torch.nn.Module):
        solver = solver.to(dtype)
    a = solver.solve(x, D, LAM)
    assert a.shape == (batch, N) and a.dtype == dtype and torch.isfinite(a).all()
    if name != "lista":  # the untrained LISTA is not a lasso solver yet
        assert torch.all(_objective(a, x, D, LAM) < _objective(torch.zeros_like(a), x, D, LAM))


def test_registry_names_and_errors():
    assert list_solvers() == ["fista", "ista", "lista", "omp"]
    with pytest.raises(ConfigError, match="unknown solver 'cosamp'; expected one of: fista, ista"):
        create_solver("cosamp")
    with pytest.raises(ConfigError, match="solver 'ista'"):
        create_solver("ista", maxiter=3)
    assert create_solver("FISTA", max_iter=3).max_iter == 3


@pytest.mark.parametrize("solver", [ISTA(), FISTA(), OMP(), LISTA(M, N).double()], ids=type)
def test_bad_inputs_raise(solver):
    x, D, _ = _problem(batch=2)
    bad_nan = x.clone()
    bad_nan[0, 0] = float("nan")
    bad_d = D.clone()
    bad_d[1, 1] = float("inf")
    cases = [
        ((x[0], D, LAM), "(B, m)"),
        ((x, D[:-1], LAM), "rows"),
        ((x, D[0], LAM), r"\(m, n\)"),
        ((bad_nan, D, LAM), "finite"),
        ((x, bad_d, LAM), "finite"),
        ((x, D, -0.1), ">= 0"),
        ((x, D, float("nan")), ">= 0"),
        ((x.float(), D, LAM), "dtype"),
        ((x.long(), D.long(), LAM), "float32 or float64"),
        ((x, D, "0.1"), "real number"),
        ((x.numpy(), D, LAM), "tensor"),
    ]
    for args, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            solver.solve(*args)


def test_bad_hyper_parameters_raise():
    for build in (lambda: ISTA(max_iter=0), lambda: FISTA(tol=-1.0), lambda: FISTA(restart=1),
                  lambda: OMP(n_nonzero=0), lambda: OMP(tol=-1e-3), lambda: LISTA(0, 3),
                  lambda: LISTA.from_dictionary(torch.zeros(3, 4), 0.1),
                  lambda: LISTA.from_dictionary(torch.ones(3, 4), -0.1)):
        with pytest.raises(InvalidInputError):
            build()


def test_padded_support_and_restricted_gram_solve_match_per_sample_solves():
    _, D, _ = _problem(batch=1)
    D = torch.cat([D, D[:, :1]], dim=1)  # column N duplicates column 0: a singular support
    a = torch.zeros(3, N + 1, dtype=D.dtype)
    a[0, [2, 5, 9]] = 1.0
    a[1, 7] = -2.0
    a[2, [0, N]] = 0.5
    index, valid = padded_support(a)
    assert index[:, :1].flatten().tolist() == [2, 7, 0] and valid.sum(1).tolist() == [3, 1, 2]
    rhs = torch.randn(3, index.shape[1], dtype=D.dtype)
    v = restricted_gram_solve(D, index, valid, rhs)
    for b in range(3):
        p, k = index[b, valid[b]], int(valid[b].sum())
        gram = D[:, p].t() @ D[:, p]
        expected = torch.linalg.pinv(gram, hermitian=True) @ rhs[b, :k]  # = inverse when regular
        assert torch.allclose(v[b, :k], expected, atol=1e-8) and torch.all(v[b, k:] == 0)
