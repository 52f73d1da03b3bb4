"""Barron's general and adaptive robust loss (Rony 2020 thesis, section 4.3, eq. 4.10-4.11).

The loss (Barron 2019, eq. 1; thesis eq. 4.10), with shape ``α`` and scale ``γ > 0``:

    ρ(x, α, γ) = |α−2|/α · (((x/γ)²/|α−2| + 1)^{α/2} − 1)

with the limits ``½(x/γ)²`` at ``α = 2`` (L2), ``log(½(x/γ)² + 1)`` at ``α = 0``
(Cauchy) and ``√((x/γ)² + 1) − 1`` at ``α = 1`` (Charbonnier / pseudo-Huber).

Numerics (the choice, and why). With ``s = (x/γ)²``, ``b = |α−2|`` and
``u = log1p(s/b)`` the formula is rewritten exactly as

    ρ = ½·b·u·exprel(α·u/2),    exprel(t) = (eᵗ − 1)/t,

which removes the ``0/0`` at ``α = 0`` (``exprel`` is evaluated by its Taylor
series near 0, so value and gradient are exact there) and gives exactly
``s/2`` at ``α = 2`` once ``b`` is clamped to the dtype's machine epsilon (as
in Barron's reference code). The thesis calls ρ C^∞ in ``α``; it is not quite:
``∂ρ/∂α`` grows like ``(s/4)·log(1/|α−2|)`` near ``α = 2`` (ρ itself is
continuous). The clamp keeps that gradient finite; the default learnable
range ``α ∈ (0.001, 1.999)`` (Barron's defaults) stays away from it anyway.

Likelihood (eq. 4.11). ``p(x | α, γ) = exp(−ρ(x, α, γ)) / (γ·Z(α))`` with
``Z(α) = ∫ exp(−ρ(x, α, 1)) dx``, finite for ``α ≥ 0`` only. ``log Z`` is
integrated once with :func:`scipy.integrate.quad` (relative error ~1e-12) on
knots covering ``[0, 4]`` (step 0.01, plus geometrically refined knots around
``α = 2`` where ``log Z`` inherits the ``(α−2)·log|α−2|`` behaviour), fitted by
a cubic spline, and the spline is evaluated in torch so ``α`` gets a gradient
(interpolation error below 2e-6). Known values: ``Z(0) = π√2``,
``Z(1) = 2e·K₁(1)``, ``Z(2) = √(2π)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError

__all__ = [
    "ALPHA_MAX",
    "general_robust_loss",
    "log_partition",
    "robust_nll",
    "AdaptiveRobustLoss",
]

ALPHA_MAX = 4.0
"""Largest shape ``α`` for which :func:`log_partition` is tabulated."""

# Taylor coefficients of exprel(t) = Σ_k t^k / (k+1)!, enough for |t| < 0.1 in float64.
_EXPREL_TERMS = tuple(1.0 / math.factorial(k + 1) for k in range(9))
_EXPREL_SERIES_RADIUS = 0.1


def _exprel(t: torch.Tensor) -> torch.Tensor:
    """``(eᵗ − 1)/t`` with its removable singularity at 0 (value and gradient exact)."""
    small = t.abs() < _EXPREL_SERIES_RADIUS
    t_small = torch.where(small, t, torch.zeros_like(t))
    series = torch.full_like(t, _EXPREL_TERMS[-1])
    for coef in reversed(_EXPREL_TERMS[:-1]):
        series = series * t_small + coef
    t_big = torch.where(small, torch.ones_like(t), t)
    return torch.where(small, series, torch.expm1(t_big) / t_big)


def general_robust_loss(
    x: torch.Tensor, alpha: torch.Tensor | float, scale: torch.Tensor | float
) -> torch.Tensor:
    """Barron's general robust loss ``ρ(x, α, γ)`` (thesis eq. 4.10; Barron 2019, eq. 1).

    Args:
        x: residuals, any shape.
        alpha: shape ``α`` (any finite value; broadcast against ``x``). ``0`` is the
            Cauchy loss, ``1`` Charbonnier, ``2`` half the squared error.
        scale: scale ``γ > 0`` (broadcast against ``x``).

    Returns:
        ``ρ`` element-wise, broadcast shape of the three inputs, differentiable in
        all of them (finite gradients at ``x = 0``, ``α = 0`` and ``α = 2``).

    Raises:
        InvalidInputError: non-finite ``α`` or non-positive ``γ``.
    """
    x, alpha, scale = _as_tensors(x, alpha, scale)
    squared = (x / scale) ** 2
    eps = torch.finfo(squared.dtype).eps
    beta = (alpha - 2).abs().clamp_min(eps)
    log_term = torch.log1p(squared / beta)
    return 0.5 * beta * log_term * _exprel(0.5 * alpha * log_term)


def _as_tensors(
    x: torch.Tensor, alpha: torch.Tensor | float, scale: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise InvalidInputError(f"x must be a floating-point tensor, got {got}")
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
    if not torch.isfinite(alpha).all():
        raise InvalidInputError("alpha must be finite (the α = ±∞ limits are not supported)")
    if not (scale > 0).all() or not torch.isfinite(scale).all():
        raise InvalidInputError("scale must be finite and > 0 everywhere")
    return x, alpha, scale


def _rho_numpy(x: np.ndarray | float, alpha: float) -> np.ndarray | float:
    """Reference ρ(x, α, 1) in float64 used only to tabulate ``log Z``."""
    squared = np.square(x)
    if alpha == 0.0:
        return np.log1p(squared / 2)
    if alpha == 2.0:
        return squared / 2
    beta = abs(alpha - 2)
    return beta / alpha * np.expm1(alpha / 2 * np.log1p(squared / beta))


@functools.cache
def _log_partition_spline() -> tuple[torch.Tensor, torch.Tensor]:
    """Knots ``(n,)`` and cubic coefficients ``(4, n-1)`` of ``α ↦ log Z(α)`` on [0, 4]."""
    from scipy import integrate, interpolate

    refine = np.geomspace(1e-7, 0.05, 40)
    knots = np.unique(np.concatenate([np.linspace(0.0, ALPHA_MAX, 401), 2 - refine, 2 + refine]))
    values = []
    for alpha in knots:
        half, _ = integrate.quad(
            lambda t, a=float(alpha): np.exp(-_rho_numpy(t, a)),
            0.0,
            np.inf,
            epsabs=0.0,
            epsrel=1e-12,
            limit=500,
        )
        values.append(math.log(2 * half))
    spline = interpolate.CubicSpline(knots, np.asarray(values))
    return torch.from_numpy(knots), torch.from_numpy(np.ascontiguousarray(spline.c))


def log_partition(alpha: torch.Tensor | float) -> torch.Tensor:
    """``log Z(α)`` of eq. 4.11, differentiable in ``α`` (cubic spline of quadratures).

    Args:
        alpha: shape values in ``[0, ALPHA_MAX]`` (= [0, 4]), any shape.

    Returns:
        ``log Z(α)``, same shape and floating dtype as ``alpha`` (float32 for a
        Python number).

    Raises:
        InvalidInputError: ``α`` outside ``[0, 4]`` (``Z`` diverges for ``α < 0``).
    """
    alpha = torch.as_tensor(alpha)
    if not alpha.is_floating_point():
        alpha = alpha.to(torch.get_default_dtype())
    if not ((alpha >= 0) & (alpha <= ALPHA_MAX)).all():
        raise InvalidInputError(
            f"alpha must lie in [0, {ALPHA_MAX}] for the partition function "
            "(Z(α) diverges for α < 0); got values outside that range"
        )
    knots, coefs = _log_partition_spline()
    knots = knots.to(device=alpha.device)
    coefs = coefs.to(dtype=alpha.dtype, device=alpha.device)
    index = torch.searchsorted(knots, alpha.detach().to(knots.dtype), right=True) - 1
    index = index.clamp(0, knots.numel() - 2)
    offset = alpha - knots.to(alpha.dtype)[index]
    c3, c2, c1, c0 = coefs[:, index]
    return ((c3 * offset + c2) * offset + c1) * offset + c0


def robust_nll(
    x: torch.Tensor, alpha: torch.Tensor | float, scale: torch.Tensor | float
) -> torch.Tensor:
    """Negative log-likelihood ``ρ(x, α, γ) + log γ + log Z(α)`` (thesis eq. 4.11).

    Minimising it over ``α`` and ``γ`` is what makes them learnable (minimising ρ
    alone would drive ``α`` down, ρ being monotonic in ``α``). Not bounded below by 0.

    Args:
        x: residuals, any shape.
        alpha: shape in ``[0, 4]``, broadcast against ``x``.
        scale: scale ``γ > 0``, broadcast against ``x``.

    Returns:
        Element-wise NLL with the broadcast shape.

    Raises:
        InvalidInputError: ``α`` outside ``[0, 4]`` or non-positive ``γ``.
    """
    x, alpha, scale = _as_tensors(x, alpha, scale)
    return general_robust_loss(x, alpha, scale) + torch.log(scale) + log_partition(alpha)


class AdaptiveRobustLoss(nn.Module):
    """Adaptive robust loss with learnable ``α`` and ``γ`` (thesis eq. 4.10-4.11; Barron 2019).

    ``α = alpha_lo + (alpha_hi − alpha_lo)·sigmoid(latent_alpha)`` stays in the open
    interval ``(alpha_lo, alpha_hi)`` and ``γ = scale_lo + (scale_init −
    scale_lo)·softplus(latent_scale + log(e − 1))`` stays above ``scale_lo``; both
    latents start at the values giving ``alpha_init`` and ``scale_init`` (Barron's
    reference parameterisation and defaults). ``alpha_lo == alpha_hi`` fixes ``α``;
    ``scale_init == scale_lo`` fixes ``γ``. Add :meth:`parameters` to the optimiser.

    Args:
        num_dims: number of independent ``(α, γ)`` pairs, matched to the last axis of
            the residuals.
        alpha_lo: lowest shape, ``>= 0``.
        alpha_hi: highest shape, ``alpha_lo <= alpha_hi <= 4``.
        alpha_init: initial shape in ``(alpha_lo, alpha_hi)``; midpoint by default.
        scale_lo: lowest scale, ``> 0``.
        scale_init: initial scale, ``>= scale_lo``.
    """

    def __init__(
        self,
        num_dims: int = 1,
        alpha_lo: float = 0.001,
        alpha_hi: float = 1.999,
        alpha_init: float | None = None,
        scale_lo: float = 1e-5,
        scale_init: float = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(num_dims, bool) or not isinstance(num_dims, int) or num_dims < 1:
            raise ConfigError(f"num_dims must be a positive integer, got {num_dims!r}")
        if not 0 <= alpha_lo <= alpha_hi <= ALPHA_MAX:
            raise ConfigError(
                f"need 0 <= alpha_lo <= alpha_hi <= {ALPHA_MAX}, got {alpha_lo!r}, {alpha_hi!r}"
            )
        if alpha_init is not None and alpha_lo < alpha_hi and not alpha_lo < alpha_init < alpha_hi:
            raise ConfigError(
                f"alpha_init must lie in ({alpha_lo}, {alpha_hi}), got {alpha_init!r}"
            )
        if not 0 < scale_lo <= scale_init < math.inf:
            raise ConfigError(
                f"need 0 < scale_lo <= scale_init < inf, got {scale_lo!r}, {scale_init!r}"
            )
        self.num_dims = num_dims
        self.alpha_lo = alpha_lo
        self.alpha_hi = alpha_hi
        self.alpha_init = alpha_init
        self.scale_lo = scale_lo
        self.scale_init = scale_init
        latent = 0.0
        if alpha_lo < alpha_hi and alpha_init is not None:
            fraction = (alpha_init - alpha_lo) / (alpha_hi - alpha_lo)
            latent = math.log(fraction / (1 - fraction))
        self.latent_alpha = nn.Parameter(torch.full((num_dims,), latent))
        self.latent_scale = nn.Parameter(torch.zeros(num_dims))

    @property
    def alpha(self) -> torch.Tensor:
        """Current shapes ``α``, shape ``(num_dims,)``."""
        span = self.alpha_hi - self.alpha_lo
        return self.alpha_lo + span * torch.sigmoid(self.latent_alpha)

    @property
    def scale(self) -> torch.Tensor:
        """Current scales ``γ``, shape ``(num_dims,)``."""
        shift = math.log(math.e - 1)  # softplus(shift) = 1, so latent 0 gives scale_init
        span = self.scale_init - self.scale_lo
        return self.scale_lo + span * F.softplus(self.latent_scale + shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Element-wise NLL (eq. 4.11) of residuals ``x`` of shape ``(..., num_dims)``."""
        if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[-1] != self.num_dims:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidInputError(
                f"residuals must have shape (..., {self.num_dims}) (last axis = num_dims), "
                f"got {got}"
            )
        return robust_nll(x, self.alpha.to(x.dtype), self.scale.to(x.dtype))

    def extra_repr(self) -> str:
        return (
            f"num_dims={self.num_dims}, alpha_lo={self.alpha_lo}, alpha_hi={self.alpha_hi}, "
            f"alpha_init={self.alpha_init}, scale_lo={self.scale_lo}, "
            f"scale_init={self.scale_init}"
        )
