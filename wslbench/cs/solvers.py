"""Batched sparse-recovery solvers for the CS reconstruction layer (Xue et al., §3.2).

Every solver answers one verb, ``solve(x, D, lam) -> a``, for a whole batch:
``x`` is ``(B, m)``, the dictionary / sensing matrix ``D`` is ``(m, n)`` and the
codes ``a`` are ``(B, n)``. ISTA, FISTA and LISTA target the lasso of Xue et al.
eq. 4 (appendix eq. 10), written here in row form per sample::

    min_a  ½‖D a − x‖² + λ‖a‖₁

OMP solves the ℓ0-constrained problem instead and uses ``lam`` as its stopping
rule (see :class:`OMP`). ISTA, FISTA and OMP return detached codes (they run
without autograd); gradients through any of them come from
:func:`wslbench.cs.recovery.sparse_recovery` (eq. 5–9). LISTA is an
``nn.Module`` whose unrolled iterations are differentiable by autograd
(Fig. 5, the paper's ECNNCS-1).

>>> solver = create_solver("fista", max_iter=500)
>>> a = solver.solve(x, D, lam=0.1)   # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from wslbench.errors import InvalidInputError
from wslbench.registry import Registry
from wslbench.validation import check_int, check_number

__all__ = [
    "SOLVERS",
    "Solver",
    "ISTA",
    "FISTA",
    "OMP",
    "LISTA",
    "create_solver",
    "list_solvers",
    "soft_threshold",
    "lipschitz_constant",
    "restricted_gram_solve",
    "padded_support",
    "check_dictionary",
    "check_lam",
    "check_problem",
]

SOLVERS: Registry[Any] = Registry("solver")


def create_solver(name: str, **kwargs: Any) -> Any:
    """Build the solver registered as ``name`` (``"ista"``, ``"fista"``, ``"omp"``, ``"lista"``).

    Raises:
        ConfigError: unknown name (the message lists the valid ones) or unknown keyword.
    """
    return SOLVERS.create(name, **kwargs)


def list_solvers() -> list[str]:
    """Sorted names of the registered solvers."""
    return SOLVERS.names()


def soft_threshold(z: Tensor, threshold: Tensor | float) -> Tensor:
    """Proximal operator of ``threshold·‖·‖₁``: ``sign(z)·max(|z| − threshold, 0)``."""
    return torch.sign(z) * torch.relu(z.abs() - threshold)


def lipschitz_constant(D: Tensor) -> Tensor:
    """``L = ‖D‖₂²``, the Lipschitz constant of ∇½‖D a − x‖² (largest singular value squared)."""
    return torch.linalg.matrix_norm(D, ord=2) ** 2


def check_dictionary(D: Tensor) -> None:
    """Validate a dictionary ``D (m, n)``: a finite float32/float64 matrix.

    Raises:
        InvalidInputError: not a tensor, wrong shape or dtype, non-finite values.
    """
    if not isinstance(D, Tensor):
        raise InvalidInputError(f"D must be a tensor, got {type(D).__name__}")
    if D.ndim != 2 or D.shape[0] == 0 or D.shape[1] == 0:
        raise InvalidInputError(
            f"D must be an (m, n) matrix with m, n >= 1, got shape {tuple(D.shape)}"
        )
    if D.dtype not in (torch.float32, torch.float64):
        raise InvalidInputError(f"D must be float32 or float64, got {D.dtype}")
    if not bool(torch.isfinite(D).all()):
        raise InvalidInputError("D must be finite (no NaN or inf)")


def check_lam(lam: float) -> None:
    """Validate the ℓ1 weight ``lam``: a finite real number ``>= 0``.

    Raises:
        InvalidInputError: not a real number, negative, NaN or inf.
    """
    if isinstance(lam, bool) or not isinstance(lam, (int, float)):
        raise InvalidInputError(f"lam must be a real number, got {type(lam).__name__}")
    if not math.isfinite(lam) or lam < 0:
        raise InvalidInputError(f"lam must be finite and >= 0, got {lam}")


def check_problem(x: Tensor, D: Tensor, lam: float) -> None:
    """Validate a batch ``x (B, m)``, a dictionary ``D (m, n)`` and ``lam >= 0``.

    Raises:
        InvalidInputError: wrong types, shapes, dtypes or devices, non-finite values,
            negative or non-finite ``lam``.
    """
    check_dictionary(D)
    if not isinstance(x, Tensor):
        raise InvalidInputError(f"x must be a tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] == 0:
        raise InvalidInputError(f"x must be a (B, m) batch with B >= 1, got shape {tuple(x.shape)}")
    if x.shape[1] != D.shape[0]:
        raise InvalidInputError(
            f"x has {x.shape[1]} measurements per sample but D has {D.shape[0]} rows; "
            "expected x (B, m) and D (m, n)"
        )
    if x.dtype != D.dtype:
        raise InvalidInputError(f"x and D must share a dtype, got {x.dtype} and {D.dtype}")
    if x.device != D.device:
        raise InvalidInputError(f"x and D must be on one device, got {x.device} and {D.device}")
    if not bool(torch.isfinite(x).all()):
        raise InvalidInputError("x must be finite (no NaN or inf)")
    check_lam(lam)


def restricted_gram_solve(D: Tensor, index: Tensor, valid: Tensor, rhs: Tensor) -> Tensor:
    """Solve ``[DᵀD(p, p)] v = rhs`` for every sample's own support ``p`` at once.

    Supports are padded to a common length ``k``: ``index (B, k)`` holds column
    indices of ``D`` and ``valid (B, k)`` marks the real ones. Padded slots get an
    identity row/column and a zero right-hand side, so their solution is 0 and the
    batched Cholesky solve of the ``(B, k, k)`` matrices equals the per-sample solves.
    Samples whose Gram matrix is singular (``|p| > m`` or collinear atoms) get the
    pseudo-inverse solution instead.

    Args:
        D: ``(m, n)`` dictionary.
        index: ``(B, k)`` long tensor of atom indices.
        valid: ``(B, k)`` boolean mask of the real slots.
        rhs: ``(B, k)`` right-hand sides (padded slots are ignored).

    Returns:
        ``(B, k)`` solutions, 0 on padded slots.
    """
    cols = D.t()[index]  # (B, k, m)
    mask = valid.to(D.dtype)
    gram = cols @ cols.transpose(1, 2) * (mask.unsqueeze(2) * mask.unsqueeze(1))
    gram = gram + torch.diag_embed(1.0 - mask)
    b = (rhs * mask).unsqueeze(2)
    chol, info = torch.linalg.cholesky_ex(gram)
    v = torch.cholesky_solve(b, chol)
    failed = info != 0
    if bool(failed.any()):
        v[failed] = torch.linalg.pinv(gram[failed], hermitian=True) @ b[failed]
    return v.squeeze(2) * mask


def padded_support(a: Tensor) -> tuple[Tensor, Tensor]:
    """Supports ``{i : a_i ≠ 0}`` of the rows of ``a (B, n)`` padded to the largest size ``k``.

    Returns:
        ``index (B, k)`` (each row's support first, in increasing order, then
        padding) and ``valid (B, k)`` marking the real slots.
    """
    support = a != 0
    k = int(support.sum(dim=1).max()) if a.shape[0] > 0 else 0
    valid, index = torch.sort(support.to(torch.int8), dim=1, descending=True, stable=True)
    return index[:, :k], valid[:, :k].bool()


class Solver:
    """Base of the iterative solvers: validation and the ``solve`` verb."""

    def solve(self, x: Tensor, D: Tensor, lam: float) -> Tensor:
        """Recover the codes ``a (B, n)`` of the batch ``x (B, m)`` under dictionary ``D (m, n)``."""
        check_problem(x, D, lam)
        with torch.no_grad():
            return self._solve(x.detach(), D.detach(), float(lam))

    def _solve(self, x: Tensor, D: Tensor, lam: float) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({args})"


def _proximal_gradient(
    x: Tensor, D: Tensor, lam: float, max_iter: int, tol: float, *, momentum: bool, restart: bool
) -> tuple[Tensor, int]:
    """Shared loop of ISTA and FISTA (step ``1/L``, soft threshold ``λ/L``); returns ``(a, n_iter)``.

    Each sample stops on its own (relative change below ``tol``) and leaves the
    working batch, so its result does not depend on the other samples; ``n_iter``
    is the count of the slowest one.
    """
    out = x.new_zeros(x.shape[0], D.shape[1])
    L = lipschitz_constant(D)
    if float(L) == 0.0:  # D = 0: every code fits equally badly, the ℓ1 term picks a = 0
        return out, 0
    m, n = D.shape
    step_D = D / L
    threshold = lam / float(L)
    if 2 * m < n:  # y − (y Dᵀ − x) D / L: two thin products beat one n × n product
        Dt = D.t()

        def forward_step(y: Tensor, bias: Tensor) -> Tensor:
            return torch.addmm(y + bias, y @ Dt, step_D, alpha=-1.0)
    else:  # (I − DᵀD / L) y + Dᵀx / L
        gram_step = torch.eye(n, dtype=D.dtype, device=D.device) - D.t() @ step_D

        def forward_step(y: Tensor, bias: Tensor) -> Tensor:
            return torch.addmm(bias, y, gram_step)

    rows = torch.arange(x.shape[0], device=x.device)
    bias = x @ step_D  # row form of Dᵀx / L
    a = y = out.clone()
    t = x.new_ones(x.shape[0], 1)
    eps = torch.finfo(x.dtype).tiny
    n_iter = 0
    while n_iter < max_iter and rows.numel() > 0:
        n_iter += 1
        a_next = torch.nn.functional.softshrink(forward_step(y, bias), threshold)
        diff = a_next - a
        change = diff.norm(dim=1) / a_next.norm(dim=1).clamp_min(eps)
        if momentum:
            if restart:  # O'Donoghue & Candès gradient scheme, per sample
                uphill = ((y - a_next) * diff).sum(dim=1, keepdim=True) > 0
                t = torch.where(uphill, torch.ones_like(t), t)
            t_next = (1.0 + torch.sqrt(1.0 + 4.0 * t * t)) / 2.0
            y = torch.addcmul(a_next, (t - 1.0) / t_next, diff)
            t = t_next
        else:
            y = a_next
        a = a_next
        done = change < tol
        if bool(done.any()):
            out[rows[done]] = a[done]
            keep = ~done
            rows, a, y, t, bias = rows[keep], a[keep], y[keep], t[keep], bias[keep]
    out[rows] = a
    return out, n_iter


@SOLVERS.register("ista")
class ISTA(Solver):
    """Iterative shrinkage-thresholding for the lasso (eq. 4; the paper's forward pass, §3.2).

    ``a ← soft(a − Dᵀ(D a − x)/L, λ/L)`` with ``L = ‖D‖₂²`` (computed once per call),
    starting from ``a = 0``. A sample stops when its relative change
    ``‖a_{t+1} − a_t‖/‖a_{t+1}‖`` is below ``tol`` and leaves the working batch, so
    the whole batch stops once the largest change is below ``tol`` (``tol=0`` runs
    exactly ``max_iter`` steps). ``n_iter_`` records the iterations of the slowest
    sample.

    Args:
        max_iter: maximum number of iterations.
        tol: relative-change stopping tolerance.
    """

    def __init__(self, max_iter: int = 1000, tol: float = 1e-6) -> None:
        check_int("max_iter", max_iter, error=InvalidInputError)
        check_number("tol", tol, allow_zero=True, error=InvalidInputError)
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_: int = 0

    def _solve(self, x: Tensor, D: Tensor, lam: float) -> Tensor:
        a, self.n_iter_ = _proximal_gradient(x, D, lam, self.max_iter, self.tol, momentum=False, restart=False)
        return a


@SOLVERS.register("fista")
class FISTA(Solver):
    """ISTA with Nesterov momentum (Beck & Teboulle 2009); same step, start and stopping rule.

    ``a_{t+1} = soft(y_t − Dᵀ(D y_t − x)/L, λ/L)``, ``t_{k+1} = (1 + √(1 + 4t_k²))/2``,
    ``y_{t+1} = a_{t+1} + (t_k − 1)/t_{k+1} · (a_{t+1} − a_t)``. With ``restart`` the
    momentum of a sample is reset (``t = 1``) whenever it points uphill,
    ``(y_t − a_{t+1})·(a_{t+1} − a_t) > 0`` (O'Donoghue & Candès 2015), which removes
    the oscillations that slow the relative-change stopping rule near the optimum;
    ``restart=False`` is plain Beck & Teboulle. ``n_iter_`` records the iterations
    of the slowest sample.

    Args:
        max_iter: maximum number of iterations.
        tol: relative-change stopping tolerance.
        restart: adaptive gradient restart.
    """

    def __init__(self, max_iter: int = 1000, tol: float = 1e-6, restart: bool = True) -> None:
        check_int("max_iter", max_iter, error=InvalidInputError)
        check_number("tol", tol, allow_zero=True, error=InvalidInputError)
        if not isinstance(restart, bool):
            raise InvalidInputError(f"restart must be a bool, got {restart!r}")
        self.max_iter = max_iter
        self.tol = tol
        self.restart = restart
        self.n_iter_: int = 0

    def _solve(self, x: Tensor, D: Tensor, lam: float) -> Tensor:
        a, self.n_iter_ = _proximal_gradient(
            x, D, lam, self.max_iter, self.tol, momentum=True, restart=self.restart
        )
        return a


@SOLVERS.register("omp")
class OMP(Solver):
    """Orthogonal matching pursuit, batched with padded supports (Pati et al. 1993).

    OMP solves the ℓ0-constrained problem ``min ‖D a − x‖²`` s.t. ``‖a‖₀ ≤ k``, not
    the lasso. Each step adds, per sample, the atom most correlated with the
    residual (correlations divided by the column norms) and refits all selected
    coefficients by least squares on the sample's own support (one batched
    Cholesky solve). ``lam`` is the stopping rule: a sample stops once
    ``‖Dᵀ r‖∞ ≤ lam``, the lasso's optimality condition for the atoms left out
    (so ``lam = 0`` runs to ``n_nonzero`` atoms or an exact fit). Finished
    samples are frozen while the others continue.

    Args:
        n_nonzero: maximum support size (``None``: ``min(m, n)``).
        tol: also stop a sample when ``‖r‖₂ ≤ tol·‖x‖₂`` (``None``: no residual rule).
    """

    def __init__(self, n_nonzero: int | None = None, tol: float | None = None) -> None:
        if n_nonzero is not None:
            check_int("n_nonzero", n_nonzero, error=InvalidInputError)
        if tol is not None:
            check_number("tol", tol, allow_zero=True, error=InvalidInputError)
        self.n_nonzero = n_nonzero
        self.tol = tol
        self.n_iter_: int = 0

    def _solve(self, x: Tensor, D: Tensor, lam: float) -> Tensor:
        batch, (m, n) = x.shape[0], D.shape
        k_max = min(m, n) if self.n_nonzero is None else min(self.n_nonzero, n)
        norms = D.norm(dim=0).clamp_min(torch.finfo(D.dtype).tiny)
        target = x @ D  # Dᵀx per sample, the right-hand side of the normal equations
        stop_norm = None if self.tol is None else self.tol * x.norm(dim=1)
        index = torch.zeros(batch, 0, dtype=torch.long, device=x.device)
        valid = torch.zeros(batch, 0, dtype=torch.bool, device=x.device)
        chosen = torch.zeros(batch, n, dtype=torch.bool, device=x.device)
        coef = x.new_zeros(batch, 0)
        residual = x
        self.n_iter_ = 0
        for _ in range(k_max):
            corr = residual @ D
            active = corr.abs().amax(dim=1) > lam
            if stop_norm is not None:
                active &= residual.norm(dim=1) > stop_norm
            if not bool(active.any()):
                break
            score = (corr.abs() / norms).masked_fill(chosen, -1.0)
            best = score.argmax(dim=1)
            chosen[active, best[active]] = True
            index = torch.cat([index, torch.where(active, best, 0).unsqueeze(1)], dim=1)
            valid = torch.cat([valid, active.unsqueeze(1)], dim=1)
            coef = restricted_gram_solve(D, index, valid, target.gather(1, index))
            residual = x - torch.einsum("bk,bkm->bm", coef, D.t()[index])
            self.n_iter_ += 1
        return x.new_zeros(batch, n).scatter_add(1, index, coef)


@SOLVERS.register("lista")
class LISTA(nn.Module):
    """Learned ISTA (Gregor & LeCun 2010), the reconstruction layer of Xue et al. Fig. 5.

    ``T = n_iter`` unrolled steps from ``a_0 = 0``: ``a_{t+1} = soft(W x + S a_t, θ)``
    with learnable ``W (n, m)``, ``S (n, n)`` and a learnable per-coordinate
    threshold ``θ (n,)`` (Gregor & LeCun's choice). :meth:`from_dictionary` sets
    ``W = Dᵀ/L``, ``S = I − DᵀD/L``, ``θ = λ/L`` (``L = ‖D‖₂²``), where LISTA equals
    ``T`` ISTA steps exactly; the plain constructor uses ``nn.Linear``'s default
    initialisation for ``W`` and ``S`` and ``θ = 0``. Differentiable by autograd
    (ECNNCS-1, §4.1).

    Args:
        n_measurements: ``m``, the length of ``x``.
        n_atoms: ``n``, the length of the code ``a``.
        n_iter: number of unrolled iterations ``T``.
    """

    def __init__(self, n_measurements: int, n_atoms: int, n_iter: int = 16) -> None:
        super().__init__()
        for name, value in (
            ("n_measurements", n_measurements),
            ("n_atoms", n_atoms),
            ("n_iter", n_iter),
        ):
            check_int(name, value, error=InvalidInputError)
        self.n_measurements = n_measurements
        self.n_atoms = n_atoms
        self.n_iter = n_iter
        self.W = nn.Parameter(
            nn.Linear(n_measurements, n_atoms, bias=False).weight.detach().clone()
        )
        self.S = nn.Parameter(nn.Linear(n_atoms, n_atoms, bias=False).weight.detach().clone())
        self.theta = nn.Parameter(torch.zeros(n_atoms))

    @classmethod
    def from_dictionary(cls, D: Tensor, lam: float, n_iter: int = 16) -> LISTA:
        """LISTA initialised to ``n_iter`` ISTA steps for dictionary ``D (m, n)`` and ``lam``."""
        check_dictionary(D)
        check_lam(lam)
        model = cls(D.shape[0], D.shape[1], n_iter).to(dtype=D.dtype, device=D.device)
        D = D.detach()
        L = lipschitz_constant(D)
        if float(L) == 0.0:
            raise InvalidInputError("D must not be all zeros (its spectral norm is 0)")
        with torch.no_grad():
            model.W.copy_(D.t() / L)
            model.S.copy_(torch.eye(D.shape[1], dtype=D.dtype, device=D.device) - D.t() @ D / L)
            model.theta.fill_(float(lam / L))
        return model

    def forward(self, x: Tensor) -> Tensor:
        """Codes ``(B, n)`` of the batch ``x (B, m)`` after ``n_iter`` unrolled steps."""
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.n_measurements:
            raise InvalidInputError(
                f"x must be a (B, {self.n_measurements}) batch, got "
                f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
            )
        if x.dtype != self.W.dtype:
            raise InvalidInputError(
                f"x has dtype {x.dtype} but LISTA's weights are {self.W.dtype}; expected x of "
                "the weights' dtype (or convert the LISTA with .to(dtype))"
            )
        if not bool(torch.isfinite(x).all()):
            raise InvalidInputError("x must be finite (no NaN or inf)")
        bias = x @ self.W.t()
        a = soft_threshold(bias, self.theta)
        for _ in range(self.n_iter - 1):
            a = soft_threshold(bias + a @ self.S.t(), self.theta)
        return a

    def solve(self, x: Tensor, D: Tensor, lam: float) -> Tensor:
        """Registry verb: check that ``x``, ``D`` and ``lam`` fit this LISTA, then run :meth:`forward`.

        The learned weights define the solver: the values of ``D`` and ``lam`` are
        not used (only ``D``'s shape is checked against ``(m, n)``).
        """
        check_problem(x, D, lam)
        if tuple(D.shape) != (self.n_measurements, self.n_atoms):
            raise InvalidInputError(
                f"D has shape {tuple(D.shape)} but this LISTA was built for "
                f"({self.n_measurements}, {self.n_atoms}); expected D of that shape"
            )
        return self(x)
