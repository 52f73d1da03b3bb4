"""Weak supervision with region sizes (Rony 2020 thesis, chapter 4).

Shapes: CAMs ``M`` are ``(B, C, H, W)`` raw class activation maps; sizes are
``(B, C)`` fractions of the image.

- Proposed method (section 4.3). Image scores are the average of the CAMs,
  ``s_c = mean_{h,w} M_{c,h,w}``, turned into probabilities by a softmax
  (multi-class, cross-entropy eq. 4.4) or a sigmoid (multi-label, binary
  cross-entropy eq. 4.5, summed over classes). The CAMs are upsampled to the
  input size and normalised (softmax over classes or a sigmoid per class) into
  ``M̂``; the predicted sizes are ``ν̂_c = mean_{h,w} M̂_{c,h,w}`` (eq. 4.7) and are
  compared to the annotated sizes ``a`` by a size loss ``l_s``: KL (eq. 4.8), L2
  (eq. 4.9) or the adaptive robust NLL (eq. 4.10-4.11). An entropy term ``l_e``
  (eq. 4.12) sharpens ``M̂`` and the total is normalised (eq. 4.13):
  ``l_t = (l_c + λ_s·l_s + λ_e·l_e) / (1 + λ_s + λ_e)``.
- Jia et al. 2017 baseline (section 4.2). Each class map goes through a
  sigmoid, the image probability is their generalized mean (eq. 4.1), the
  classification loss is the binary cross-entropy (eq. 4.2, summed over
  classes) and the size loss is the hinge ``y·max(0, ν̂ − a)²`` (eq. 4.3),
  active only for classes present in the image.

Choices where the thesis is silent (documented and tested):

- the CAMs (logits) are upsampled bilinearly (``align_corners=False``) *before*
  the normalisation, so ``M̂`` is a proper softmax/sigmoid at input resolution;
  image scores (and Jia's generalized mean) are computed at CAM resolution;
- the ``"jia"`` variant measures ``ν̂`` on the same upsampled maps, so every
  variant compares sizes at the resolution they were annotated at; its total is
  Jia's own objective ``l_c + λ_s·l_s (+ λ_e·l_e)``, not normalised by 4.13 (the
  normalisation belongs to the proposed method; Jia et al. as published use
  ``λ_e = 0``, which the histology experiment sets);
- multi-class ``"adaptive"``: the residuals ``ν̂_c − a_c`` of every class share one
  learnable ``(α, γ)``; ``l_s`` is their NLL summed over classes (it can be
  negative, as any NLL of a density);
- every per-sample term is summed over classes and averaged over the batch.

Annotation noise (section 4.4.3): :func:`draw_size_noise` records one
``z ~ N(0, σ_s²)`` per sample and :func:`apply_size_noise` applies it
deterministically, so the noise stays fixed for the whole training
(CAMELYON16 protocol); drawing again per random crop gives the GlaS protocol.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.losses.entropy import entropy_loss
from wslbench.losses.robust import AdaptiveRobustLoss
from wslbench.registry import Registry
from wslbench.seeding import torch_generator

__all__ = [
    "SIZE_LOSSES",
    "SizeSupervisedLoss",
    "create_size_loss",
    "list_size_losses",
    "generalized_mean",
    "predicted_sizes",
    "kl_size_loss",
    "l2_size_loss",
    "jia_size_loss",
    "draw_size_noise",
    "apply_size_noise",
    "perturb_sizes",
]

SIZE_LOSSES: Registry[SizeSupervisedLoss] = Registry("size loss")


def create_size_loss(name: str, **kwargs: object) -> SizeSupervisedLoss:
    """Build the :class:`SizeSupervisedLoss` whose size term is ``name``."""
    return SIZE_LOSSES.create(name, **kwargs)


def list_size_losses() -> list[str]:
    """Names of the size terms: ``adaptive``, ``jia``, ``kl``, ``l2``."""
    return SIZE_LOSSES.names()


def _check_cams(cams: torch.Tensor) -> None:
    if not isinstance(cams, torch.Tensor) or cams.ndim != 4 or not cams.is_floating_point():
        got = tuple(cams.shape) if isinstance(cams, torch.Tensor) else type(cams).__name__
        raise InvalidInputError(f"cams must be a floating (B, C, H, W) tensor, got {got}")
    if not torch.isfinite(cams).all():
        raise InvalidInputError("cams contain NaN or Inf; expected finite activations")


def _check_sizes(name: str, sizes: torch.Tensor, shape: tuple[int, ...]) -> None:
    if not isinstance(sizes, torch.Tensor) or tuple(sizes.shape) != shape:
        got = tuple(sizes.shape) if isinstance(sizes, torch.Tensor) else type(sizes).__name__
        raise InvalidInputError(f"{name} must have shape {shape} (B, C), got {got}")
    if not sizes.is_floating_point() or not ((sizes >= 0) & (sizes <= 1)).all():
        raise InvalidInputError(f"{name} must be floating fractions in [0, 1]")


def generalized_mean(cams: torch.Tensor, r: float) -> torch.Tensor:
    """Image probabilities ``p_c = (mean_{h,w} σ(M_{c,h,w})^r)^{1/r}`` (thesis eq. 4.1).

    Computed in log space (``logsumexp`` of ``r·logsigmoid``), so it is stable for
    large ``r`` (→ max) and never takes the root of 0.

    Args:
        cams: raw maps ``(B, C, H, W)``.
        r: sharpness ``r > 0`` (1 = mean of the sigmoids, ∞ = max).

    Returns:
        ``(B, C)`` probabilities in ``(0, 1)``.
    """
    _check_cams(cams)
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < math.inf:
        raise ConfigError(f"r must be a finite number > 0, got {r!r}")
    log_sig = F.logsigmoid(cams).flatten(2)
    log_mean = torch.logsumexp(r * log_sig, dim=2) - math.log(log_sig.shape[2])
    return torch.exp(log_mean / r)


def _upsample(cams: torch.Tensor, output_size: tuple[int, int] | None) -> torch.Tensor:
    if output_size is None:
        return cams
    if (
        not isinstance(output_size, (tuple, list))
        or len(output_size) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in output_size)
    ):
        raise InvalidInputError(
            f"output_size must be (H_in, W_in) positive ints, got {output_size!r}"
        )
    if tuple(output_size) == tuple(cams.shape[2:]):
        return cams
    return F.interpolate(cams, size=tuple(output_size), mode="bilinear", align_corners=False)


def _normalise(cams: torch.Tensor, multi_label: bool) -> torch.Tensor:
    return torch.sigmoid(cams) if multi_label else torch.softmax(cams, dim=1)


def predicted_sizes(
    cams: torch.Tensor, *, multi_label: bool = False, output_size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Soft region sizes ``ν̂_c = mean_{h,w} M̂_{c,h,w}`` (thesis eq. 4.7; ``v̂`` of eq. 4.3).

    Args:
        cams: raw maps ``(B, C, H, W)``.
        multi_label: ``False``: ``M̂`` = softmax over classes (sizes sum to 1);
            ``True``: a sigmoid per class.
        output_size: ``(H_in, W_in)`` to upsample the CAMs to (bilinear, before the
            normalisation); ``None`` keeps the CAM resolution.

    Returns:
        ``(B, C)`` sizes in ``[0, 1]``.
    """
    _check_cams(cams)
    return _normalise(_upsample(cams, output_size), multi_label).mean(dim=(2, 3))


def kl_size_loss(pred_sizes: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """``Σ_c a_c log(a_c / ν̂_c)`` per sample (thesis eq. 4.8), with ``0·log 0 = 0``.

    Args:
        pred_sizes: ``(B, C)`` predicted sizes ``ν̂`` (softmax maps: rows sum to 1).
        sizes: ``(B, C)`` annotated sizes ``a`` (rows sum to 1).

    Returns:
        ``(B,)`` divergences, 0 where ``ν̂ = a``.
    """
    _check_pair(pred_sizes, sizes)
    tiny = torch.finfo(pred_sizes.dtype).tiny
    return (torch.xlogy(sizes, sizes) - torch.xlogy(sizes, pred_sizes.clamp_min(tiny))).sum(1)


def l2_size_loss(pred_sizes: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """``Σ_c (ν̂_c − a_c)²`` per sample (thesis eq. 4.9).

    Args:
        pred_sizes: ``(B, C)`` predicted sizes ``ν̂``.
        sizes: ``(B, C)`` annotated sizes ``a``.

    Returns:
        ``(B,)`` squared distances.
    """
    _check_pair(pred_sizes, sizes)
    return (pred_sizes - sizes).square().sum(1)


def jia_size_loss(
    pred_sizes: torch.Tensor,
    upper: torch.Tensor,
    labels: torch.Tensor,
    lower: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hinge size loss ``Σ_c y_c·max(0, ν̂_c − a_c)²`` per sample (thesis eq. 4.3, Jia 2017).

    The annotated size ``a`` is an upper bound: predicting less costs nothing.
    An optional lower bound adds ``y_c·max(0, lo_c − ν̂_c)²`` (two-sided size
    bounds in the style of Kervadec et al. 2019); ``None`` is eq. 4.3 exactly.

    Args:
        pred_sizes: ``(B, C)`` predicted sizes ``ν̂``.
        upper: ``(B, C)`` upper bounds ``a``.
        labels: ``(B, C)`` image labels ``y`` in {0, 1}; absent classes are not constrained.
        lower: optional ``(B, C)`` lower bounds, ``<= upper``.

    Returns:
        ``(B,)`` losses, 0 whenever every ``ν̂_c`` of a present class lies in its bounds.
    """
    _check_pair(pred_sizes, upper)
    _check_multi_hot(labels, tuple(pred_sizes.shape))
    hinge = F.relu(pred_sizes - upper).square()
    if lower is not None:
        _check_sizes("lower", lower, tuple(pred_sizes.shape))
        if (lower > upper).any():
            raise InvalidInputError("lower size bounds must not exceed the upper bounds")
        hinge = hinge + F.relu(lower - pred_sizes).square()
    return (labels.to(hinge.dtype) * hinge).sum(1)


def _check_pair(pred_sizes: torch.Tensor, sizes: torch.Tensor) -> None:
    if not isinstance(pred_sizes, torch.Tensor) or pred_sizes.ndim != 2:
        got = tuple(pred_sizes.shape) if isinstance(pred_sizes, torch.Tensor) else pred_sizes
        raise InvalidInputError(f"pred_sizes must be a (B, C) tensor, got {got}")
    _check_sizes("sizes", sizes, tuple(pred_sizes.shape))


def _check_multi_hot(labels: torch.Tensor, shape: tuple[int, ...]) -> None:
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != shape:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InvalidInputError(f"multi-label labels must have shape {shape} (B, C), got {got}")
    if not ((labels == 0) | (labels == 1)).all():
        raise InvalidInputError("multi-label labels must contain only 0 and 1")


_SIZE_LOSS_TERMS = ("kl", "l2", "adaptive", "jia")


class SizeSupervisedLoss(nn.Module):
    """Classification + size + entropy loss, normalised (thesis eq. 4.4-4.13).

    ``loss(cams, labels, sizes, output_size)`` returns ``(l_t, parts)`` with
    ``l_t = (l_c + λ_s·l_s + λ_e·l_e) / (1 + λ_s + λ_e)`` (eq. 4.13; ``"jia"``: the
    unnormalised ``l_c + λ_s·l_s + λ_e·l_e`` of Jia et al., eq. 4.2-4.3); see the module
    docstring for each term. With ``size_loss="adaptive"`` the loss owns the
    learnable ``(α, γ)`` of :class:`AdaptiveRobustLoss` (attribute ``robust``):
    give ``loss.parameters()`` to the optimiser along with the model's.

    Args:
        size_loss: ``"kl"`` (eq. 4.8), ``"l2"`` (eq. 4.9), ``"adaptive"`` (eq. 4.10-4.11)
            or ``"jia"`` (Jia et al., eq. 4.1-4.3).
        lambda_s: weight λ_s >= 0 of the size term (10 retained on GlaS, 3 on CAMELYON16).
        lambda_e: weight λ_e >= 0 of the entropy term (0.1 retained, section 4.4.5).
        multi_label: ``False``: softmax maps, labels ``(B,)`` class indices, sizes
            summing to 1; ``True``: sigmoid maps, labels ``(B, C)`` multi-hot. ``"kl"``
            needs ``False`` (sizes must be distributions), ``"jia"`` needs ``True``
            (sigmoid maps and binary cross-entropy); binary Jia is ``C = 1``.
        r: sharpness of Jia's generalized mean (eq. 4.1); used by ``"jia"`` only.

    Example:
        >>> loss_fn = create_size_loss("adaptive", lambda_s=10.0, lambda_e=0.1)
        >>> total, parts = loss_fn(cams, labels, sizes, output_size=(448, 448))  # doctest: +SKIP
    """

    def __init__(
        self,
        size_loss: str = "kl",
        lambda_s: float = 10.0,
        lambda_e: float = 0.1,
        multi_label: bool = False,
        r: float = 4.0,
    ) -> None:
        super().__init__()
        if size_loss not in _SIZE_LOSS_TERMS:
            raise ConfigError(
                f"unknown size loss {size_loss!r}; expected one of: {', '.join(list_size_losses())}"
            )
        for name, value in (("lambda_s", lambda_s), ("lambda_e", lambda_e)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
            if not 0 <= value < math.inf:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if size_loss == "kl" and multi_label:
            raise ConfigError(
                "size_loss 'kl' needs softmax-normalised maps whose sizes sum to 1: "
                "use multi_label=False, or 'l2'/'adaptive' for multi-label problems"
            )
        if size_loss == "jia" and not multi_label:
            raise ConfigError(
                "size_loss 'jia' (eq. 4.1-4.3) uses sigmoid maps and binary cross-entropy: "
                "set multi_label=True (binary problem: one map, labels of shape (B, 1))"
            )
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < math.inf:
            raise ConfigError(f"r must be a finite number > 0, got {r!r}")
        self.size_loss = size_loss
        self.lambda_s = lambda_s
        self.lambda_e = lambda_e
        self.multi_label = multi_label
        self.r = r
        self.robust = AdaptiveRobustLoss(num_dims=1) if size_loss == "adaptive" else None

    def forward(
        self,
        cams: torch.Tensor,
        labels: torch.Tensor,
        sizes: torch.Tensor,
        output_size: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss ``l_t`` (eq. 4.13) and its parts.

        Args:
            cams: raw CAMs ``(B, C, H, W)``.
            labels: ``(B,)`` class indices (multi-class) or ``(B, C)`` multi-hot.
            sizes: ``(B, C)`` annotated sizes ``a`` (upper bounds for ``"jia"``).
            output_size: input size ``(H_in, W_in)`` the CAMs are upsampled to before
                sizes and entropy are measured; ``None`` keeps the CAM resolution.

        Returns:
            ``(total, parts)``: ``total`` is the differentiable scalar ``l_t``; ``parts``
            holds detached ``"l_c"``, ``"l_s"``, ``"l_e"`` (unweighted batch means) and
            ``"pred_sizes"`` ``(B, C)``.

        Raises:
            InvalidInputError: wrong shapes, labels or sizes (see the arguments).
        """
        _check_cams(cams)
        batch, classes = cams.shape[:2]
        _check_sizes("sizes", sizes, (batch, classes))
        if self.multi_label:
            _check_multi_hot(labels, (batch, classes))
            targets = labels.to(cams.dtype)
        else:
            self._check_class_indices(labels, batch, classes)
            if not torch.allclose(sizes.sum(1), sizes.new_ones(batch), atol=1e-4):
                raise InvalidInputError(
                    "multi-class sizes must sum to 1 over classes (background included)"
                )
        sizes = sizes.to(cams.dtype)
        upsampled = _upsample(cams, output_size)
        pred_sizes = _normalise(upsampled, self.multi_label).mean(dim=(2, 3))
        if self.size_loss == "jia":
            probs = generalized_mean(cams, self.r)
            l_c = F.binary_cross_entropy(probs, targets, reduction="none").sum(1)
            l_s = jia_size_loss(pred_sizes, sizes, labels)
        else:
            scores = cams.mean(dim=(2, 3))
            if self.multi_label:
                l_c = F.binary_cross_entropy_with_logits(scores, targets, reduction="none").sum(1)
            else:
                l_c = F.cross_entropy(scores, labels, reduction="none")
            l_s = self._size_term(pred_sizes, sizes)
        l_e = entropy_loss(upsampled, multi_label=self.multi_label)
        l_c, l_s, l_e = l_c.mean(), l_s.mean(), l_e.mean()
        total = l_c + self.lambda_s * l_s + self.lambda_e * l_e
        if self.size_loss != "jia":  # eq. 4.13 normalises the proposed method only
            total = total / (1 + self.lambda_s + self.lambda_e)
        parts = {
            "l_c": l_c.detach(),
            "l_s": l_s.detach(),
            "l_e": l_e.detach(),
            "pred_sizes": pred_sizes.detach(),
        }
        return total, parts

    def _size_term(self, pred_sizes: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        if self.size_loss == "kl":
            return kl_size_loss(pred_sizes, sizes)
        if self.size_loss == "l2":
            return l2_size_loss(pred_sizes, sizes)
        return self.robust((pred_sizes - sizes).unsqueeze(-1)).squeeze(-1).sum(1)

    @staticmethod
    def _check_class_indices(labels: torch.Tensor, batch: int, classes: int) -> None:
        if (
            not isinstance(labels, torch.Tensor)
            or labels.shape != (batch,)
            or labels.is_floating_point()
            or labels.dtype == torch.bool
        ):
            got = (
                f"{tuple(labels.shape)} {labels.dtype}"
                if isinstance(labels, torch.Tensor)
                else type(labels).__name__
            )
            raise InvalidInputError(
                f"multi-class labels must be a ({batch},) integer tensor of class indices, "
                f"got {got}"
            )
        if ((labels < 0) | (labels >= classes)).any():
            raise InvalidInputError(f"class indices must lie in [0, {classes - 1}]")

    def extra_repr(self) -> str:
        return (
            f"size_loss={self.size_loss!r}, lambda_s={self.lambda_s}, "
            f"lambda_e={self.lambda_e}, multi_label={self.multi_label}, r={self.r}"
        )


for _name in _SIZE_LOSS_TERMS:
    SIZE_LOSSES.register(_name)(functools.partial(SizeSupervisedLoss, _name))


def _check_size_matrix(sizes: torch.Tensor) -> tuple[int, int]:
    if not isinstance(sizes, torch.Tensor) or sizes.ndim != 2:
        got = tuple(sizes.shape) if isinstance(sizes, torch.Tensor) else type(sizes).__name__
        raise InvalidInputError(f"sizes must be an (N, C) tensor, got {got}")
    _check_sizes("sizes", sizes, tuple(sizes.shape))
    return sizes.shape[0], sizes.shape[1]


def draw_size_noise(num_samples: int, sigma_s: float, seed: int | torch.Generator) -> torch.Tensor:
    """Record one annotation error ``z_i ~ N(0, σ_s²)`` per sample (thesis section 4.4.3).

    Draw once for the whole training set and keep the record (noise fixed per
    sample, the CAMELYON16 protocol), or once per random crop (GlaS).

    Args:
        num_samples: number of samples ``N >= 0``.
        sigma_s: noise standard deviation ``σ_s >= 0`` (0.001-0.3 in the thesis).
        seed: an integer seed, or a torch generator the draw consumes (to draw
            per crop from one stream).

    Returns:
        ``(N,)`` float64 noise values, to pass to :func:`apply_size_noise`.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
        raise ConfigError(f"num_samples must be an integer >= 0, got {num_samples!r}")
    if isinstance(sigma_s, bool) or not isinstance(sigma_s, (int, float)):
        raise ConfigError(f"sigma_s must be a number >= 0, got {sigma_s!r}")
    if not 0 <= sigma_s < math.inf:
        raise ConfigError(f"sigma_s must be a finite number >= 0, got {sigma_s!r}")
    if isinstance(seed, torch.Generator):
        generator = seed
    elif isinstance(seed, int) and not isinstance(seed, bool):
        generator = torch_generator(seed)
    else:
        raise ConfigError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    return sigma_s * torch.randn(num_samples, generator=generator, dtype=torch.float64)


def apply_size_noise(
    sizes: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor, background: int = 0
) -> torch.Tensor:
    """Noisy sizes ``â_y = clip(a_y + z)``, ``â_0 = 1 − â_y`` (thesis section 4.4.3); deterministic.

    The noise moves area between the labelled class ``y`` and the background only:
    ``â_y = clip(a_y + z, 0, a_y + a_0)`` and ``â_0 = a_y + a_0 − â_y``, so every size
    stays in ``[0, 1]`` and the total is unchanged — exactly the thesis' clip to
    ``[0, 1]`` when those two classes cover the image. Samples labelled background
    (nothing to annotate) keep their sizes.

    Args:
        sizes: ``(N, C)`` true sizes ``a``.
        labels: ``(N,)`` integer image labels ``y``.
        noise: ``(N,)`` recorded noise from :func:`draw_size_noise`.
        background: index of the background class.

    Returns:
        ``(N, C)`` noisy sizes in ``sizes``' dtype.
    """
    count, classes = _check_size_matrix(sizes)
    if isinstance(background, bool) or not isinstance(background, int):
        raise ConfigError(f"background must be a class index, got {background!r}")
    if not 0 <= background < classes:
        raise ConfigError(f"background must lie in [0, {classes - 1}], got {background}")
    SizeSupervisedLoss._check_class_indices(labels, count, classes)
    if not isinstance(noise, torch.Tensor) or noise.shape != (count,):
        got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
        raise InvalidInputError(f"noise must be a ({count},) tensor, got {got}")
    rows = torch.arange(count)
    positive = sizes[rows, labels]
    shared = positive + sizes[:, background]
    noisy_positive = torch.minimum((positive + noise.to(sizes.dtype)).clamp_min(0), shared)
    keep = labels == background
    noisy_positive = torch.where(keep, positive, noisy_positive)
    out = sizes.clone()
    out[rows, labels] = noisy_positive
    out[:, background] = torch.where(keep, sizes[:, background], shared - noisy_positive)
    return out


def perturb_sizes(
    sizes: torch.Tensor,
    labels: torch.Tensor,
    sigma_s: float,
    seed: int | torch.Generator,
    background: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the noise for ``sizes`` and apply it: ``(noisy_sizes, noise)`` (section 4.4.3).

    Args:
        sizes: ``(N, C)`` true sizes.
        labels: ``(N,)`` integer image labels.
        sigma_s: noise standard deviation ``σ_s``.
        seed: integer seed or torch generator consumed by the draw.
        background: index of the background class.

    Returns:
        The noisy ``(N, C)`` sizes and the ``(N,)`` noise record that produced them.
    """
    count, _ = _check_size_matrix(sizes)
    noise = draw_size_noise(count, sigma_s, seed)
    return apply_size_noise(sizes, labels, noise, background), noise
