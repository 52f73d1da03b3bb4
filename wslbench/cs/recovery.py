"""Recovery (reconstruction) layer with the backpropagation rules of Xue et al. (§3.2, App. A).

The forward pass runs any solver of :mod:`wslbench.cs.solvers` without autograd
(even non-differentiable OMP); the backward pass does not differentiate through
the solver's iterations but applies the rules derived for the solution map of
the lasso (eq. 4), so its cost does not depend on the number of iterations.

Both rules are batched as one vector-Jacobian product. With ``δa`` the incoming
gradient ``(B, n)``, every sample gets a vector ``v (n,)`` that is 0 off its
support ``p = {i : â_i ≠ 0}`` and

* ``rule="exact"`` (eq. 5–7): ``v(p) = [DᵀD(p, p)]⁻¹ δâ(p)``;
* ``rule="approx"`` (eq. 8–9, batch approximation): ``v(p) = δâ(p)``.

Then ``δx̂ = D v`` (eq. 5 / 8) and, summed over the batch,
``δD = Σ_b (x̂ − D â) vᵀ − (D v) âᵀ`` (eq. 6 / 9), which is 0 on the columns
``q`` off every support (eq. 7).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from wslbench.cs.solvers import (
    check_lam,
    check_problem,
    create_solver,
    padded_support,
    restricted_gram_solve,
)
from wslbench.errors import ConfigError

__all__ = ["sparse_recovery", "RecoveryLayer", "support_vjp_weights"]

Rule = Literal["exact", "approx"]
_RULES = ("exact", "approx")


def support_vjp_weights(a: Tensor, grad_a: Tensor, D: Tensor, rule: Rule) -> Tensor:
    """The vectors ``v (B, n)`` of the backward rules, 0 off each sample's support.

    ``exact`` solves ``[DᵀD(p, p)] v(p) = δâ(p)`` for every sample at once: the
    supports are padded to the largest one, ``k = max_b |p_b|``, and solved by one
    batched Cholesky factorisation of ``(B, k, k)`` Gram matrices (identity on the
    padded slots), no loop over samples. ``approx`` replaces the inverse by the
    identity (eq. 8–9, the mean of the inverse Wishart matrix up to scale).

    Args:
        a: ``(B, n)`` codes returned by the forward pass.
        grad_a: ``(B, n)`` gradient of the loss w.r.t. ``a``.
        D: ``(m, n)`` dictionary.
        rule: ``"exact"`` or ``"approx"``.
    """
    if rule == "approx":
        return grad_a * (a != 0)
    index, valid = padded_support(a)
    v = restricted_gram_solve(D, index, valid, grad_a.gather(1, index))
    return torch.zeros_like(grad_a).scatter_add(1, index, v)


class _SparseRecovery(torch.autograd.Function):
    """Solver forward, eq. 5–9 backward; see :func:`sparse_recovery`."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, x: Tensor, D: Tensor, solver: Any, lam: float, rule: Rule
    ) -> Tensor:
        with torch.no_grad():
            a = solver.solve(x.detach(), D.detach(), lam).detach()
        ctx.save_for_backward(x, D, a)
        ctx.rule = rule
        return a

    @staticmethod
    def backward(ctx: Any, grad_a: Tensor) -> tuple[Tensor | None, ...]:
        x, D, a = ctx.saved_tensors
        v = support_vjp_weights(a, grad_a, D, ctx.rule)
        grad_x = v @ D.t()  # row form of D v, eq. 5 / 8
        grad_D = None
        if ctx.needs_input_grad[1]:
            residual = x - a @ D.t()  # x̂ − D â
            grad_D = residual.t() @ v - grad_x.t() @ a  # eq. 6 / 9 summed over the batch
        return (grad_x if ctx.needs_input_grad[0] else None), grad_D, None, None, None


def sparse_recovery(
    x: Tensor,
    D: Tensor,
    lam: float,
    *,
    solver: str | Any = "fista",
    rule: Rule = "exact",
    **solver_kwargs: Any,
) -> Tensor:
    """Sparse codes ``a (B, n)`` of ``x (B, m)`` with Xue et al.'s backpropagation (eq. 4–9).

    The forward pass runs ``solver`` (a registry name or any object with
    ``solve(x, D, lam)``) without autograd. The backward pass returns gradients
    w.r.t. ``x`` and ``D`` (none w.r.t. ``lam`` or a LISTA's own weights):

    * ``"exact"`` — eq. 5–7. On the support ``p`` of a lasso solution the KKT
      condition ``D(:, p)ᵀ(D(:, p) â(p) − x̂) + λ sign(â(p)) = 0`` gives
      ``∂â(p)/∂x̂ = [DᵀD(p, p)]⁻¹ D(:, p)ᵀ``, whose transpose applied to ``δâ`` is
      exactly eq. 5, ``δx̂ = D(:, p)[DᵀD(p, p)]⁻¹ δâ(p)``. Differentiating the same
      condition w.r.t. ``D(:, p)`` gives
      ``δD(:, p) = (x̂ − Dâ) δâ(p)ᵀ[DᵀD(p, p)]⁻¹ − D(:, p)[DᵀD(p, p)]⁻¹ δâ(p) â(p)ᵀ``,
      eq. 6 with the paper's sign convention (residual ``x̂ − Dâ`` in the first
      term, minus in the second; the appendix's eq. 25–29 carry the minus outside
      ``Dâ − x̂``, the same thing), and ``δD(:, q) = 0`` (eq. 7). These are the
      true vector-Jacobian products of the lasso solution map wherever the support
      and signs are locally stable, and of OMP's least-squares refit (``λ = 0``)
      on a fixed support.
    * ``"approx"`` — eq. 8–9: the same with ``[DᵀD(p, p)]⁻¹`` replaced by ``I``.

    Args:
        x: ``(B, m)`` dense codes (the CNN's output ``x̂``).
        D: ``(m, n)`` sensing matrix.
        lam: ℓ1 weight ``λ >= 0`` passed to the solver.
        solver: registry name (``list_solvers()``) or a solver instance.
        rule: ``"exact"`` (eq. 5–7) or ``"approx"`` (eq. 8–9).
        **solver_kwargs: keyword arguments of the solver when ``solver`` is a name.

    Raises:
        InvalidInputError: bad shapes, dtypes, non-finite values or negative ``lam``.
        ConfigError: unknown solver or rule, or ``solver_kwargs`` given with an instance.
    """
    if rule not in _RULES:
        raise ConfigError(f"unknown rule {rule!r}; expected one of: {', '.join(_RULES)}")
    if isinstance(solver, str):
        solver = create_solver(solver, **solver_kwargs)
    elif solver_kwargs:
        raise ConfigError(
            f"solver keyword arguments {sorted(solver_kwargs)} need a solver name, not an "
            "instance; expected solver=<name> with them, or an instance already configured"
        )
    if not callable(getattr(solver, "solve", None)):
        raise ConfigError(
            f"solver must be a registry name or have solve(x, D, lam), got {solver!r}"
        )
    check_problem(x, D, lam)
    return _SparseRecovery.apply(x, D, solver, float(lam), rule)


class RecoveryLayer(nn.Module):
    """The reconstruction layer of Xue et al. Fig. 4 as a module: ``forward(x, D) -> a``.

    Args:
        solver: registry name or solver instance used in the forward pass.
        lam: ℓ1 weight ``λ``.
        rule: backward rule, ``"exact"`` (eq. 5–7) or ``"approx"`` (eq. 8–9).
    """

    def __init__(self, solver: str | Any = "fista", lam: float = 0.1, rule: Rule = "exact") -> None:
        super().__init__()
        if rule not in _RULES:
            raise ConfigError(f"unknown rule {rule!r}; expected one of: {', '.join(_RULES)}")
        check_lam(lam)
        self.solver = create_solver(solver) if isinstance(solver, str) else solver
        self.lam = lam
        self.rule = rule

    def forward(self, x: Tensor, D: Tensor) -> Tensor:
        """Codes ``(B, n)`` of ``x (B, m)`` under ``D (m, n)``; differentiable in both."""
        return sparse_recovery(x, D, self.lam, solver=self.solver, rule=self.rule)
