"""Losses of semi-supervised DR screening (Arora et al., 4.4 and 6, eq. 1–4).

Arora, Gaudio, Satpathy, "Semi-supervised learning for Diabetic Retinopathy".

- :func:`autoencoder_loss`: ``L_ae`` = mean squared error between images and
  reconstructions (eq. 1), averaged over every element (``n = B·C·H·W``).
- :func:`weighted_bce_loss`: ``L_cl`` = α-weighted binary cross-entropy (eq. 2),
  ``−(1/n) Σ_i [α y_i log σ(z_i) + (1 − y_i) log(1 − σ(z_i))]`` on logits ``z``.
  α multiplies the positive-class term only (Lin et al. 2017, cited in 4.4); eq. 2
  as printed lacks the leading minus sign, restored here so the loss is
  minimised. Computed from logits with softplus (stable for any logit).
- :class:`CombinedLoss`: ``L_combined = L_ae + λ·L_cl`` (eq. 3) for labelled
  minibatches and ``L_ae`` alone for unlabelled ones ("AE-CL combined", 4.3).
  λ is fixed (the paper: 400 for AECL1, 3 for AERes18, Table 2; see
  :data:`PAPER_LAMBDAS`) or adaptive (:func:`adaptive_lambda`, eq. 4).

Adaptive λ (eq. 4, a proposed extension in section 6). The stated aim (4.4, 6)
is to balance the two losses' pulls on the encoder, ``‖∂L_ae/∂E‖ = λ‖∂L_cl/∂E‖``.
Eq. 4 is read as the ratio of the L2 norms of the two gradients, each taken over
all encoder parameters at once (an element-wise ratio of gradient tensors is
undefined wherever a component of ``∂L_cl/∂E`` is 0), computed at the step where
λ is used: ``λ = ‖∂L_ae/∂E‖₂ / ‖∂L_cl/∂E‖₂``. The printed recursion also divides
by ``λ_t``; taken literally it gives ``λ_{t+1}·λ_t = ‖∂L_ae/∂E‖/‖∂L_cl/∂E‖``, which
for constant gradients oscillates between ``λ_0`` and ``ratio/λ_0`` instead of
settling at the balancing value, so that factor is not applied (a documented
choice). The encoder ``E`` is ``model.encoder`` of the SSL models
(:mod:`wslbench.models.ssl`): every convolution, batch-norm affine parameter of
AECL1's encoder, every ResNet-18 parameter of AERes18's; not the decoder, not the
classifier. With AECL1's tied weights, a shared weight belongs to ``E`` and its
gradient counts both its encoder and its decoder use.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.validation import check_number

__all__ = [
    "PAPER_LAMBDAS",
    "autoencoder_loss",
    "weighted_bce_loss",
    "adaptive_lambda",
    "CombinedLoss",
]

PAPER_LAMBDAS: dict[str, float] = {"aecl1": 400.0, "aeres18": 3.0}
"""Fixed λ of eq. 3 used in the paper's Table 2, by SSL model name."""


def autoencoder_loss(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """``L_ae``: mean squared reconstruction error (Arora et al., eq. 1).

    Args:
        reconstruction: ``(B, C, H, W)`` decoder output ``x̂``.
        images: ``(B, C, H, W)`` inputs ``x`` (same shape).

    Returns:
        Scalar mean of ``(x − x̂)²`` over all ``B·C·H·W`` elements.

    Raises:
        InvalidInputError: shapes differ or the loss is not finite.
    """
    if not isinstance(reconstruction, torch.Tensor) or not isinstance(images, torch.Tensor):
        raise InvalidInputError("reconstruction and images must be tensors")
    if reconstruction.shape != images.shape:
        raise InvalidInputError(
            f"reconstruction shape {tuple(reconstruction.shape)} must equal the image shape "
            f"{tuple(images.shape)}"
        )
    loss = F.mse_loss(reconstruction, images.to(reconstruction.dtype))
    if not torch.isfinite(loss):
        raise InvalidInputError(f"L_ae is not finite ({loss.item()}): check images/reconstructions")
    return loss


def weighted_bce_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 1.0
) -> torch.Tensor:
    """``L_cl``: α-weighted binary cross-entropy on logits (Arora et al., eq. 2).

    ``−(1/n) Σ_i [α·y_i·log σ(z_i) + (1 − y_i)·log(1 − σ(z_i))]``, with
    ``log σ(z) = −softplus(−z)`` and ``log(1 − σ(z)) = −softplus(z)`` (no overflow).

    Args:
        logits: ``(B,)`` classifier outputs ``z`` (before the sigmoid).
        targets: ``(B,)`` labels in ``[0, 1]`` (1 = DR grade > 0, 4.6).
        alpha: weight of the positive class (1 for the balanced Messidor task).

    Returns:
        Scalar loss.

    Raises:
        ConfigError: ``alpha`` not a finite number > 0.
        InvalidInputError: shapes differ, targets outside ``[0, 1]``, non-finite logits.
    """
    check_number("alpha", alpha)
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise InvalidInputError("logits and targets must be tensors")
    if logits.shape != targets.shape:
        raise InvalidInputError(
            f"targets must have the logits' shape {tuple(logits.shape)}, got {tuple(targets.shape)}"
        )
    if not torch.isfinite(logits).all():
        raise InvalidInputError("logits contain NaN or inf")
    y = targets.to(logits.dtype)
    if ((y < 0) | (y > 1)).any() or not torch.isfinite(y).all():
        raise InvalidInputError("targets must be in [0, 1] (binary labels)")
    return (alpha * y * F.softplus(-logits) + (1 - y) * F.softplus(logits)).mean()


def _encoder_parameters(encoder: nn.Module | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(encoder, nn.Module):
        module = getattr(encoder, "encoder", encoder)
        if not isinstance(module, nn.Module):
            raise InvalidInputError("model.encoder must be an nn.Module")
        params = list(module.parameters())
    else:
        params = list(encoder)
        if not all(isinstance(p, torch.Tensor) for p in params):
            raise InvalidInputError("encoder parameters must be tensors")
    params = [p for p in params if p.requires_grad]
    if not params:
        raise InvalidInputError("the encoder has no parameters that require a gradient")
    return params


def _grad_norm(loss: torch.Tensor, params: list[torch.Tensor], name: str) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        raise InvalidInputError(f"{name} must be a scalar tensor")
    if not loss.requires_grad:
        raise InvalidInputError(f"{name} does not require a gradient: compute it from the model")
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    squares = [g.detach().pow(2).sum() for g in grads if g is not None]
    norm = torch.stack(squares).sum().sqrt() if squares else loss.new_zeros(())
    if not torch.isfinite(norm):
        raise InvalidInputError(f"the encoder gradient of {name} is not finite")
    return norm


def adaptive_lambda(
    encoder: nn.Module | Iterable[torch.Tensor],
    loss_ae: torch.Tensor,
    loss_cl: torch.Tensor,
    *,
    fallback: float = 1.0,
) -> torch.Tensor:
    """Adaptive λ: ratio of the encoder-gradient norms (Arora et al., eq. 4; module docstring).

    ``λ = ‖∂L_ae/∂E‖₂ / ‖∂L_cl/∂E‖₂``, each gradient computed with
    ``torch.autograd.grad(..., retain_graph=True)`` over the encoder parameters
    only, so the graph stays usable for the following ``backward()`` and no
    ``.grad`` is written. Costs two extra backward passes through ``E``.

    Args:
        encoder: an SSL model (its ``encoder`` attribute is used), any other
            module (taken as the encoder itself), or an iterable of the encoder's
            parameter tensors. Parameters without ``requires_grad`` are skipped.
        loss_ae: scalar ``L_ae`` still attached to its graph.
        loss_cl: scalar ``L_cl`` still attached to its graph.
        fallback: value returned when either norm is 0 (e.g. the classifier loss
            does not reach the encoder): the ratio then carries no information.

    Returns:
        Detached 0-d tensor ``λ``.

    Raises:
        ConfigError: ``fallback`` not a finite number >= 0.
        InvalidInputError: no trainable encoder parameters, a loss that is not a
            scalar attached to a graph, or a non-finite gradient.
    """
    check_number("fallback", fallback, allow_zero=True)
    params = _encoder_parameters(encoder)
    norm_ae = _grad_norm(loss_ae, params, "loss_ae")
    norm_cl = _grad_norm(loss_cl, params, "loss_cl")
    if norm_ae == 0 or norm_cl == 0:
        return loss_ae.new_tensor(float(fallback)).detach()
    return (norm_ae / norm_cl).to(loss_ae.dtype)


class CombinedLoss(nn.Module):
    """``L_combined = L_ae + λ·L_cl`` of "AE-CL combined" training (Arora et al., eq. 3, 4.3).

    Args:
        lam: fixed λ (400 for AECL1, 3 for AERes18 in Table 2); with
            ``adaptive=True`` the value used when :func:`adaptive_lambda` has a
            zero gradient norm.
        adaptive: recompute λ at every labelled step by eq. 4 (:func:`adaptive_lambda`).
        alpha: positive-class weight α of ``L_cl`` (eq. 2).

    Call ``loss(reconstruction, images, logits, targets, encoder=model)`` on a
    labelled minibatch, ``loss(reconstruction, images)`` on an unlabelled one.
    Returns ``(total, parts)``: the differentiable total and detached scalars
    ``"L_ae"`` and, for labelled minibatches, ``"L_cl"`` and ``"lambda"`` (the λ used).

    Example:
        >>> loss_fn = CombinedLoss(lam=3.0)                         # doctest: +SKIP
        >>> x_hat, logits = model(x)                                    # doctest: +SKIP
        >>> total, parts = loss_fn(x_hat, x, logits, y, encoder=model)  # doctest: +SKIP
    """

    def __init__(self, lam: float = 1.0, adaptive: bool = False, alpha: float = 1.0) -> None:
        super().__init__()
        check_number("lam", lam, allow_zero=True)
        check_number("alpha", alpha)
        if not isinstance(adaptive, bool):
            raise ConfigError(f"adaptive must be True or False, got {adaptive!r}")
        self.lam = lam
        self.adaptive = adaptive
        self.alpha = alpha

    def forward(
        self,
        reconstruction: torch.Tensor,
        images: torch.Tensor,
        logits: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        *,
        encoder: nn.Module | Iterable[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss_ae = autoencoder_loss(reconstruction, images)
        if logits is None and targets is None:
            return loss_ae, {"L_ae": loss_ae.detach()}
        if logits is None or targets is None:
            raise InvalidInputError(
                "a labelled minibatch needs both logits and targets (an unlabelled one neither)"
            )
        loss_cl = weighted_bce_loss(logits, targets, self.alpha)
        if self.adaptive:
            if encoder is None:
                raise InvalidInputError(
                    "adaptive λ needs encoder=model (or its encoder parameters)"
                )
            lam = adaptive_lambda(encoder, loss_ae, loss_cl, fallback=self.lam)
        else:
            lam = loss_ae.new_tensor(float(self.lam))
        total = loss_ae + lam * loss_cl
        return total, {"L_ae": loss_ae.detach(), "L_cl": loss_cl.detach(), "lambda": lam}

    def extra_repr(self) -> str:
        return f"lam={self.lam}, adaptive={self.adaptive}, alpha={self.alpha}"
