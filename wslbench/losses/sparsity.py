"""Sparsity-enhanced training loss by double backpropagation (Quellec et al. 2017, section 4).

Quellec 2017, eq. (6): ``L = L_L + L_0`` with ``L_0 = g(∂L_L/∂D⁽⁰⁾)`` and
``g = ν·‖·‖₁``. Two criteria:

- ``"pi"`` (hue-constrained sensitivity, eq. 3, the paper's retained variant):
  the role of the input is played by the multiplicative mask ``m`` of shape
  ``(B, 1, H, W)`` filled with ones, the model sees ``m ∘ x`` (= ``x``), and
  ``L_0 = ν·Σ_{n,x,y} |∂L_L/∂m_{n,x,y}|``. The mask scales the paper's
  zero-centred input ``I_n = 4 (I_r − I_b)`` (5.1.1): when the network is fed
  an offset copy ``x = I_n + reference`` (Graham's +128, ``reference = 0.5``
  for :func:`~wslbench.data.preprocess_fundus` output), the model sees
  ``reference + m ∘ (x − reference)``, so the mask changes contrast, not
  brightness, and dark and bright lesions are penalised alike (the same
  quantity as :class:`~wslbench.attribution.HueConstrainedSensitivity` with
  that ``reference``).
- ``"omega"`` (sensitivity, eq. 2): the gradient is taken w.r.t. the input
  ``x`` itself, reduced over channels with the q-norm,
  ``ω_{n,x,y} = ‖(∂L_L/∂x_{n,c,x,y})_c‖_q``, and ``L_0 = ν·Σ_{n,x,y} ω_{n,x,y}``.
  The default ``q = 1`` makes ``L_0`` the plain L1 norm of the whole gradient
  tensor, exactly the paper's footnote 4; ``q = 2`` and ``q = inf``
  (Simonyan et al.) are available.

Normalisation (the choice, and why). Footnote 4 of the paper gives the
implementation: ``tf.reduce_sum(tf.abs(tf.gradients(L_L, [D_1])[0]))`` — a
*sum* over batch, pixels (and channels), of the gradient of ``L_L``, where
``L_L`` is the mean squared error over the batch (5.1.3, o_O). We keep exactly
that. Consequences, useful when choosing ν:

- batch size: ``∂L_L/∂m_n = (1/N)·∂ℓ_n/∂m_n`` because ``L_L`` is a batch mean,
  so the batch sum of ``L_0`` is a batch *mean* of per-image terms: ν does not
  depend on the batch size;
- image size: the sum grows with the number of heatmap pixels. Measured on the
  DR nets (issue 19), ``Σ_{x,y} π`` over a 128² map is about 12× smaller than
  over a 448² one (448²/128² = 12.25): π behaves like a per-pixel quantity, not a
  density, so the paper's ν (10⁻³ for net B at 448 px, Table 2) applied to a
  128-px preset is 12× weaker, and its "collapsing" ν = 10⁻² does not collapse.
  ``nu_area`` (the heatmap area ``H·W`` at which ν is defined, 448² for the
  paper) keeps the summed L1 and scales it by the area ratio,
  ``L_0 = ν · (nu_area / (H·W)) · Σ|∂L_L/∂m|`` — the paper's term unchanged at
  448 px, and at any other size the same ν times the same *mean* sensitivity;
  ``None`` (the default) is the plain sum at every size;
- residual weighting: with the MSE, ``∂L_L/∂m_n = (2/N)(f_n − y_n)·∂f_n/∂m_n``,
  so ``L_0`` penalises the heatmap in proportion to each image's error — a
  property of eq. (6), kept as is.

Backward-forward propagation (4.3). ``∂L_L/∂m`` is computed with
``torch.autograd.grad(..., create_graph=True)``, so ``total.backward()``
propagates through the first-order derivative of the network and every
parameter ``ρ`` receives ``∂L_L/∂ρ + ∂L_0/∂ρ`` — the paper's step 4, with
PyTorch's double backward playing the role of the forward second-order
derivatives of Appendix B. The input ``x`` is treated as data: no gradient
flows to it. With ``ν = 0`` the double backward is skipped and the plain loss
(and gradient) is returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.validation import check_int, check_reference

__all__ = ["SparsityEnhancedLoss", "sparsity_enhanced_loss", "CRITERIA"]

CRITERIA = ("pi", "omega")

BaseLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_config(nu: float, criterion: str, q: float) -> None:
    if isinstance(nu, bool) or not isinstance(nu, (int, float)) or not math.isfinite(nu) or nu < 0:
        raise ConfigError(f"nu must be a finite number >= 0, got {nu!r}")
    if criterion not in CRITERIA:
        raise ConfigError(f"unknown sparsity criterion {criterion!r}; expected one of: pi, omega")
    if isinstance(q, bool) or not isinstance(q, (int, float)) or math.isnan(q) or q < 1:
        raise ConfigError(f"q must be >= 1 (or math.inf), got {q!r}")


def sparsity_enhanced_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    nu: float,
    *,
    criterion: str = "pi",
    q: float = 1.0,
    base_loss: BaseLoss = F.mse_loss,
    reference: float = 0.0,
    nu_area: int | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Sparsity-enhanced loss ``L_L + ν·‖∂L_L/∂m‖₁`` (Quellec 2017, eq. 6).

    Args:
        model: maps ``(B, C, H, W)`` images to predictions shaped like ``y``.
        x: ``(B, C, H, W)`` images (treated as data, never given a gradient).
        y: targets, same shape as ``model(x)`` (``(B,)`` for the DR nets).
        nu: factor ν of ``L_0`` (10⁻³ retained in the paper, Table 2); 0 = plain loss.
        criterion: ``"pi"`` (mask ``m`` of shape ``(B, 1, H, W)``, eq. 3) or
            ``"omega"`` (input ``x``, channels reduced with the q-norm, eq. 2).
        q: channel norm of the omega criterion (1 = footnote 4; 2; ``math.inf``).
            Ignored by ``"pi"``.
        base_loss: ``L_L(pred, target) -> scalar``; mean squared error by default (5.1.3).
        reference: input value encoding zero of the paper's ``I_n`` (``"pi"`` only):
            the mask multiplies ``x − reference``; 0 for zero-centred inputs, 0.5 for
            Graham-preprocessed images with the display offset.
        nu_area: heatmap area ``H·W`` at which ``nu`` is defined (``448 * 448`` for the
            paper's values); ``L_0`` is multiplied by ``nu_area / (H·W)`` (module
            docstring). ``None``: the paper's plain sum, whatever the size.

    Returns:
        ``(total, parts)``: ``total`` is the differentiable scalar ``L_L + L_0``;
        ``parts`` holds detached scalars ``"L_L"``, ``"L_0"`` (ν included) and
        ``"grad_l1"`` (the heatmap-of-the-loss L1 norm ``Σ|∂L_L/∂m|`` before ν and the
        area factor; 0 when ν = 0).

    Raises:
        ConfigError: bad ``nu``, ``criterion`` or ``q``.
        InvalidInputError: ``x`` not 4D, prediction and target shapes differ,
            non-finite loss.
    """
    _check_config(nu, criterion, q)
    reference = check_reference(reference)
    if nu_area is not None:
        nu_area = check_int("nu_area", nu_area)
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InvalidInputError(f"x must be a (B, C, H, W) tensor, got {got}")
    if not x.is_floating_point():
        raise InvalidInputError(f"x must be a float tensor, got {x.dtype}")
    x = x.detach()
    if nu == 0:
        pred = model(x)
        loss = _base(base_loss, pred, y)
        zero = loss.new_zeros(())
        return loss, {"L_L": loss.detach(), "L_0": zero, "grad_l1": zero}
    if criterion == "pi":
        wrt = torch.ones(x.shape[0], 1, *x.shape[2:], dtype=x.dtype, device=x.device)
        wrt.requires_grad_(True)
        pred = model(wrt * x if reference == 0.0 else reference + wrt * (x - reference))
    else:
        wrt = x.clone().requires_grad_(True)
        pred = model(wrt)
    loss = _base(base_loss, pred, y)
    (grad,) = torch.autograd.grad(loss, wrt, create_graph=True)
    if criterion == "pi" or q == 1:
        grad_l1 = grad.abs().sum()
    else:
        grad_l1 = torch.linalg.vector_norm(grad, ord=q, dim=1).sum()
    scale = 1.0 if nu_area is None else nu_area / float(x.shape[-2] * x.shape[-1])
    l0 = (nu * scale) * grad_l1
    total = loss + l0
    return total, {"L_L": loss.detach(), "L_0": l0.detach(), "grad_l1": grad_l1.detach()}


def _base(base_loss: BaseLoss, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or pred.shape != y.shape:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise InvalidInputError(
            f"targets must have the prediction's shape {tuple(pred.shape)}, got {got}"
        )
    loss = base_loss(pred, y.to(pred.dtype))
    if loss.ndim != 0:
        raise InvalidInputError(f"base_loss must return a scalar, got shape {tuple(loss.shape)}")
    if not torch.isfinite(loss):
        raise InvalidInputError(f"base loss is not finite ({loss.item()}): check inputs/targets")
    return loss


class SparsityEnhancedLoss(nn.Module):
    """Configured sparsity-enhanced loss (Quellec 2017, section 4.2, eq. 6).

    Stores its hyper-parameters under their own names so presets and grids can
    rebuild it; ``loss(model, x, y)`` calls :func:`sparsity_enhanced_loss`
    (see there and the module docstring for the normalisation).

    Args:
        nu: factor ν of ``L_0`` (``0``, ``1e-4``, ``1e-3``, ``1e-2`` in Table 2).
        criterion: ``"pi"`` or ``"omega"``.
        q: channel norm of the omega criterion.
        base_loss: ``L_L(pred, target) -> scalar`` (MSE by default).

    Example:
        >>> loss_fn = SparsityEnhancedLoss(nu=1e-3)          # doctest: +SKIP
        >>> total, parts = loss_fn(model, x, y); total.backward()  # doctest: +SKIP
    """

    def __init__(
        self,
        nu: float = 1e-3,
        criterion: str = "pi",
        q: float = 1.0,
        base_loss: BaseLoss = F.mse_loss,
        reference: float = 0.0,
        nu_area: int | None = None,
    ) -> None:
        super().__init__()
        _check_config(nu, criterion, q)
        self.reference = check_reference(reference)
        self.nu_area = None if nu_area is None else check_int("nu_area", nu_area)
        self.nu = nu
        self.criterion = criterion
        self.q = q
        self.base_loss = base_loss

    def forward(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return sparsity_enhanced_loss(
            model, x, y, self.nu, criterion=self.criterion, q=self.q, base_loss=self.base_loss,
            reference=self.reference, nu_area=self.nu_area,
        )

    def extra_repr(self) -> str:
        return (f"nu={self.nu}, criterion={self.criterion!r}, q={self.q}, "
                f"reference={self.reference}, nu_area={self.nu_area}")
