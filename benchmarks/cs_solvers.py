"""Xue et al. §3.2: batched ISTA / FISTA (eq. 4) vs the CPU lasso solvers, per sample.

A batch of k-sparse codes ``a`` (n = 283, the diagonal of the 200-px patches) is
encoded by a Gaussian D (m = 112 as in §4.3, variance 1/m) with a little noise.
Every solver gets the same tolerance (ours: max relative change; scikit-learn,
celer and skglm: their duality-gap rules). The peers are scikit-learn's
``Lasso`` and, when installed (``pip install celer skglm``; they are not
wslbench dependencies), ``celer.Lasso`` and ``skglm.Lasso``, each fitted sample by
sample with ``alpha = λ/m`` (their objective is ours divided by m). Prints the
median wall time of each, the ratios peer_time / ours for every peer (measured
in the same process), the fraction of samples
(and of coefficients) whose support equals sklearn's, the max relative
objective gap to sklearn, and the fraction of true supports recovered; then the
cost of the recovery layer's exact (eq. 5–7) and approximate (eq. 8–9) backward.

    PYTHONPATH=. python benchmarks/cs_solvers.py [--batch 256 --m 112 --n 283 --k 5 --lam 0.05 --threads 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from sklearn.linear_model import Lasso
from threadpoolctl import threadpool_limits

from wslbench.cs.recovery import sparse_recovery
from wslbench.cs.solvers import FISTA, ISTA


def _problem(batch: int, m: int, n: int, k: int, noise: float, seed: int, dtype: torch.dtype):
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(m, n, generator=g, dtype=dtype) / m**0.5
    a = torch.zeros(batch, n, dtype=dtype)
    rows = torch.arange(batch).unsqueeze(1)
    a[rows, torch.rand(batch, n, generator=g).argsort(dim=1)[:, :k]] = 1 + torch.rand(batch, k, generator=g, dtype=dtype)
    return a @ D.t() + noise * torch.randn(batch, m, generator=g, dtype=dtype), D, a


def _objective(a: torch.Tensor, x: torch.Tensor, D: torch.Tensor, lam: float) -> torch.Tensor:
    return 0.5 * ((a @ D.t() - x) ** 2).sum(1) + lam * a.abs().sum(1)


def _timed(fn: Callable[[], torch.Tensor], reps: int) -> tuple[torch.Tensor, float]:
    out, times = fn(), []  # first call is a warm-up
    for _ in range(reps):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def _peers(lam: float, m: int, tol: float, max_iter: int) -> dict[str, Callable[[], object]]:
    """Per-sample lasso estimators of scikit-learn and, when installed, celer and skglm."""
    peers: dict[str, Callable[[], object]] = {
        "sklearn Lasso": lambda: Lasso(alpha=lam / m, fit_intercept=False, tol=tol, max_iter=max_iter)}
    if importlib.util.find_spec("celer") is not None:
        import celer

        peers["celer Lasso"] = lambda: celer.Lasso(alpha=lam / m, fit_intercept=False, tol=tol,
                                                   max_iter=max_iter)
    if importlib.util.find_spec("skglm") is not None:
        import skglm

        peers["skglm Lasso"] = lambda: skglm.Lasso(alpha=lam / m, fit_intercept=False, tol=tol,
                                                   max_iter=max_iter)
    return peers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--m", type=int, default=112)
    parser.add_argument("--n", type=int, default=283)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--lam", type=float, default=0.05)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--max-iter", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, D, truth = _problem(args.batch, args.m, args.n, args.k, args.noise, args.seed, torch.float64)
    Dn, xn = D.numpy(), x.numpy()

    peer_times: dict[str, float] = {}
    ref = ref_obj = ref_support = None
    print(f"== batched lasso (eq. 4): B={args.batch} m={args.m} n={args.n} k={args.k} "
          f"lam={args.lam} tol={args.tol} threads={args.threads} ==")
    print(f"{'solver':<16}{'dtype':>8}{'iters':>7}{'time s':>9}{'sklearn/ours':>14}"
          f"{'same support':>14}{'coef agree':>12}{'max obj gap':>13}{'true support':>14}")
    for name, make in _peers(args.lam, args.m, args.tol, args.max_iter).items():
        def per_sample(make: Callable[[], object] = make) -> torch.Tensor:
            model = make()
            return torch.from_numpy(np.stack([model.fit(Dn, xb).coef_.copy() for xb in xn]))

        with threadpool_limits(args.threads):
            coef, peer_times[name] = _timed(per_sample, args.reps)
        if ref is None:  # scikit-learn is the reference of supports and objectives
            ref, ref_obj, ref_support = coef, _objective(coef, x, D, args.lam), coef != 0
        support = coef != 0
        gap = ((_objective(coef, x, D, args.lam) - ref_obj) / ref_obj).max()
        print(f"{name:<16}{'float64':>8}{'-':>7}{peer_times[name]:>9.3f}"
              f"{peer_times['sklearn Lasso'] / peer_times[name]:>14.1f}"
              f"{(support == ref_support).all(1).double().mean():>14.3f}"
              f"{(support == ref_support).double().mean():>12.4f}{gap:>13.1e}"
              f"{(support == (truth != 0)).all(1).double().mean():>14.3f}")
    ref_time = peer_times["sklearn Lasso"]
    ours_times: dict[str, float] = {}
    solvers = (ISTA(max_iter=args.max_iter, tol=args.tol), FISTA(max_iter=args.max_iter, tol=args.tol))
    for solver in solvers:
        name = type(solver).__name__
        for dtype in (torch.float64, torch.float32):
            xd, Dd = x.to(dtype), D.to(dtype)
            a, ours = _timed(lambda s=solver, xd=xd, Dd=Dd: s.solve(xd, Dd, args.lam), args.reps)
            a = a.double()
            support = a != 0
            gap = ((_objective(a, x, D, args.lam) - ref_obj) / ref_obj).max()
            ours_times[f"{name} {str(dtype).split('.')[1]}"] = ours
            print(f"{name:<16}{str(dtype).split('.')[1]:>8}{solver.n_iter_:>7}{ours:>9.3f}"
                  f"{ref_time / ours:>14.1f}{(support == ref_support).all(1).double().mean():>14.3f}"
                  f"{(support == ref_support).double().mean():>12.4f}{gap:>13.1e}"
                  f"{(support == (truth != 0)).all(1).double().mean():>14.3f}")
    print("\n== peer time / ours (same process; > 1: ours is faster) ==")
    print(f"{'ours':<18}" + "".join(f"{name:>16}" for name in peer_times))
    for ours_name, ours in ours_times.items():
        print(f"{ours_name:<18}" + "".join(f"{peer / ours:>16.2f}" for peer in peer_times.values()))
    backward_cost(x, D, args.lam, args.reps)


def backward_cost(x: torch.Tensor, D: torch.Tensor, lam: float, reps: int) -> None:
    """Median time of the exact (eq. 5–7) and approximate (eq. 8–9) backward vs the forward."""
    print("\n== recovery layer backward (FISTA forward, float32) ==")
    print(f"{'rule':<8}{'max |p|':>8}{'forward s':>11}{'backward s':>12}{'backward / forward':>20}")
    x, D = x.float(), D.float()
    grad = torch.randn(x.shape[0], D.shape[1])
    for rule in ("exact", "approx"):
        xr, Dr = x.clone().requires_grad_(), D.clone().requires_grad_()
        a, forward = _timed(lambda r=rule, xr=xr, Dr=Dr: sparse_recovery(xr, Dr, lam, rule=r), reps)
        _, backward = _timed(lambda a=a, xr=xr, Dr=Dr: torch.autograd.grad(a, (xr, Dr), grad, retain_graph=True)[0],
                             reps)
        print(f"{rule:<8}{int((a != 0).sum(1).max()):>8}{forward:>11.4f}{backward:>12.4f}{backward / forward:>20.3f}")


if __name__ == "__main__":
    main()
