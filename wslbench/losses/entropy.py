"""Entropy of normalised class maps (Rony 2020 thesis, section 4.3, eq. 4.12).

``l_e = −Σ_c (1/(H·W)) Σ_{h,w} M̂_{c,h,w} log M̂_{c,h,w}`` pushes the normalised
maps ``M̂`` towards 0 or 1, so the soft sizes of eq. 4.7 approach the arg-max
sizes of eq. 4.6.

Normalisation (the choice, and why). The maps are passed as raw CAMs (logits)
and normalised here with ``log_softmax`` / ``logsigmoid``, so ``M̂ log M̂`` is
exact and its gradient finite even where ``M̂`` underflows to 0.

- multi-class (softmax over ``C``): eq. 4.12 as written — the entropy of the
  class distribution at each pixel, averaged over pixels; maximal (``log C``)
  for uniform maps.
- multi-label (one sigmoid per class): eq. 4.12 literally (``−p log p`` only) is
  maximal at ``p = 1/e``, not at the undecided ``p = ½``, and so would not push
  towards 0 *or* 1. Each class map is read as the two-class distribution
  ``(p, 1 − p)`` and its binary entropy is used, maximal (``log 2``) at ``p = ½``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wslbench.errors import InvalidInputError

__all__ = ["entropy_loss"]


def entropy_loss(cams: torch.Tensor, *, multi_label: bool = False) -> torch.Tensor:
    """Per-sample entropy of the normalised maps (thesis eq. 4.12).

    Args:
        cams: raw class activation maps ``(B, C, H, W)`` (already upsampled to the
            resolution the entropy is measured at).
        multi_label: ``False``: softmax over classes; ``True``: a sigmoid per class
            and its binary entropy (see the module docstring).

    Returns:
        ``(B,)`` entropies, summed over classes and averaged over pixels.

    Raises:
        InvalidInputError: ``cams`` not a finite floating ``(B, C, H, W)`` tensor.
    """
    if not isinstance(cams, torch.Tensor) or cams.ndim != 4 or not cams.is_floating_point():
        got = tuple(cams.shape) if isinstance(cams, torch.Tensor) else type(cams).__name__
        raise InvalidInputError(f"cams must be a floating (B, C, H, W) tensor, got {got}")
    if not torch.isfinite(cams).all():
        raise InvalidInputError("cams contain NaN or Inf; expected finite activations")
    if multi_label:
        log_p, log_not_p = F.logsigmoid(cams), F.logsigmoid(-cams)
        pixel = -(log_p.exp() * log_p + log_not_p.exp() * log_not_p)
    else:
        log_p = F.log_softmax(cams, dim=1)
        pixel = -(log_p.exp() * log_p)
    return pixel.mean(dim=(2, 3)).sum(dim=1)
