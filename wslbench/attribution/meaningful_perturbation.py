"""Meaningful-perturbation masks (Thibeau-Sutre et al. 2020, section 2.3; Fong & Vedaldi 2017).

A mask ``m`` with values in [0, 1] replaces each voxel of the input by a
constant ``μ`` in proportion to ``1 − m`` (eq. 1)::

    X'_m(u) = m(u) X(u) + (1 − m(u)) μ

and is optimised to make the network lose the true class with as few and as
smooth changes as possible (eq. 2)::

    m* = argmin_m λ₁ ‖1 − m‖_{β₁}^{β₁} + λ₂ Σ_u ‖∇m(u)‖_{β₂}^{β₂} + f(X'_m)

where ``f`` is the probability of the explained (true) class. Three uses:

- :meth:`MeaningfulPerturbation.optimise_group`: one mask shared by a set of
  images, updated over them in mini-batches, selected and early-stopped on a
  validation set (group-level masking, 2.3.3 and 2.3.5).
- :meth:`MeaningfulPerturbation.optimise_session`: one mask per image, with
  λ₁ and λ₂ multiplied by 100 and its own patience/tolerance/maximum (session
  level, 2.3.4 and 2.3.5). A batch gets one independent mask per image,
  optimised jointly.
- :meth:`MeaningfulPerturbation.attribute` (the attribution interface): the
  session-level masks of a batch, returned as importance maps ``1 − m``.

Choices where the paper is silent:

- **Norms.** ``‖1 − m‖_{β₁}^{β₁} = Σ_u |1 − m(u)|^β₁`` and
  ``‖∇m(u)‖_{β₂}^{β₂} = Σ_a |m(u + e_a) − m(u)|^β₂``: forward differences
  along every spatial axis a, summed over the voxel pairs inside the volume
  (no boundary term). Both are sums over voxels, not means, so λ's scale with
  the grid as in the paper's values (λ₁ = 1e-4, λ₂ = 1e-2 for 121×145×121).
- **β < 1.** ``|t|^β`` has an infinite derivative at 0 (the mask starts at 1,
  where ``1 − m = 0``). Below ``|t| < eps`` (1e-6) it is replaced by its chord
  ``|t|·eps^(β−1)`` (the same value at ``eps``), so the derivative is finite
  everywhere, bounded by ``eps^(β−1)``, and 0 at ``t = 0``; values differ from
  ``|t|^β`` only for ``|t| < eps``. For β ≥ 1 the exact power is used.
- **Probability.** ``f`` is the softmax probability of the target class for
  ``(B, K)`` outputs (K ≥ 2) and the sigmoid of the score for single-output
  models (``(B,)`` or ``(B, 1)``: a binary logit).
- **Box constraint.** ``m`` is optimised directly (full resolution, no
  up-sampling) with Adam at ``lr`` (0.1 in the paper, 2.3.2) and clamped to
  [0, 1] after every step (projected gradient), starting from ones (2.3.5). A
  sigmoid parameterisation cannot start at exactly 1.
- **Losses and early stopping.** The monitored loss of an epoch is eq. 2
  evaluated with the mask at the end of the epoch (2.3.5: "the loss of the mask
  was evaluated at the end of each epoch"): on the validation images for group
  masks, on the image itself for session masks (an epoch is one step). The kept
  mask is the one with the lowest monitored loss. An epoch counts as an
  improvement when it lowers the reference loss by more than ``tolerance``
  times its value (the reference is the last such improvement); training stops
  after ``patience`` epochs without one, or after ``max_iter`` epochs. A plateau
  therefore stops the optimisation (as the authors' ClinicaDL early stopping).
- **Group mini-batches.** One Adam step per mini-batch of ``batch_size``
  images, on the regularisers plus the *mean* probability over the mini-batch
  (``batch_size=1`` is the paper's one image per update); images are visited
  in the given order, every epoch.
- **Threshold.** At the end, values above ``threshold`` (0.95) are set to 1
  (2.3); the monitored losses use the raw mask.
- **Model mode.** The network is fixed (2.3): it runs in eval mode during the
  optimisation (batch-norm running statistics, no dropout, so the masks of a
  batch are independent and the model's statistics are not updated); its
  train/eval flags and ``requires_grad`` are restored afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from wslbench.attribution._utils import target_weights
from wslbench.attribution.base import (
    Attribution,
    check_input,
    preserved_model_state,
    register_attribution,
)
from wslbench.data.volume_store import VolumeStore
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.progress import ProgressCallback, StopRequested, report
from wslbench.validation import check_int, check_number

__all__ = [
    "MeaningfulPerturbation",
    "PerturbationResult",
    "apply_threshold",
    "mask_sparsity_term",
    "mask_tv_term",
    "perturb",
]

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


def _pow_abs(t: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    """``|t|^β`` element-wise, with the chord ``|t|·eps^(β−1)`` below ``eps`` when β < 1."""
    a = t.abs()
    if beta >= 1.0:
        return a if beta == 1.0 else a**beta
    return torch.where(a >= eps, a.clamp_min(eps) ** beta, a * eps ** (beta - 1.0))


def _check_mask(m: torch.Tensor) -> None:
    if not isinstance(m, torch.Tensor) or m.ndim < 3 or m.shape[1] != 1:
        got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
        raise InvalidInputError(
            f"mask must be (B, 1, *spatial) with 1 or more spatial axes, got {got}"
        )


def mask_sparsity_term(m: torch.Tensor, beta1: float, *, eps: float = 1e-6) -> torch.Tensor:
    """``‖1 − m‖_{β₁}^{β₁} = Σ_u |1 − m(u)|^β₁`` per sample (eq. 2, first term).

    Args:
        m: masks ``(B, 1, *spatial)``.
        beta1: exponent β₁ > 0 (0.1 in the paper, 3.1).
        eps: below ``|1 − m| < eps`` and for β₁ < 1, the chord ``|t|·eps^(β₁−1)``
            replaces ``|t|^β₁`` so the derivative is finite (0 at ``m = 1``).

    Returns:
        ``(B,)`` sums over the voxels.
    """
    _check_mask(m)
    beta1 = check_number("beta1", beta1)
    return _pow_abs(1.0 - m, beta1, eps).flatten(1).sum(dim=1)


def mask_tv_term(m: torch.Tensor, beta2: float, *, eps: float = 1e-6) -> torch.Tensor:
    """``Σ_u ‖∇m(u)‖_{β₂}^{β₂} = Σ_u Σ_a |m(u + e_a) − m(u)|^β₂`` per sample (eq. 2, second term).

    Forward differences along every spatial axis ``a``, over the voxel pairs
    inside the volume (no boundary term).

    Args:
        m: masks ``(B, 1, *spatial)`` (2D or 3D).
        beta2: exponent β₂ > 0 (1 in the paper, 3.1).
        eps: the same near-zero rule as :func:`mask_sparsity_term` for β₂ < 1.

    Returns:
        ``(B,)`` sums over the voxels and axes.
    """
    _check_mask(m)
    beta2 = check_number("beta2", beta2)
    total = m.new_zeros(m.shape[0])
    for axis in range(2, m.ndim):
        if m.shape[axis] > 1:
            total = total + _pow_abs(m.diff(dim=axis), beta2, eps).flatten(1).sum(dim=1)
    return total


def perturb(x: torch.Tensor, m: torch.Tensor, mu: float) -> torch.Tensor:
    """``X'_m = m·X + (1 − m)·μ`` (eq. 1); ``m`` ``(B or 1, 1, *spatial)`` is shared by channels."""
    return mu + m * (x - mu)


def apply_threshold(m: torch.Tensor, threshold: float) -> torch.Tensor:
    """Mask values above ``threshold`` set to 1 (section 2.3: "values above 0.95 are set to 1")."""
    return torch.where(m > threshold, torch.ones_like(m), m)


def _probability(output: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-sample probability ``(B,)`` of the class picked by one-hot ``weights``."""
    if output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1):
        return torch.sigmoid(output.reshape(output.shape[0]))
    return (torch.softmax(output, dim=1) * weights).sum(dim=1)


@dataclass(frozen=True)
class PerturbationResult:
    """Outcome of a mask optimisation.

    Attributes:
        mask: the kept masks after the threshold rule, ``(M, 1, *spatial)``
            (M = 1 for a group mask, the batch size for session masks); low
            values mark the regions replaced by μ.
        history: ``(epochs, M)`` monitored loss of every epoch (NaN once a
            mask has stopped).
        best_epoch: ``(M,)`` epoch (1-based) of each kept mask.
        epochs: ``(M,)`` number of epochs each mask was optimised for.
        interrupted: whether a progress callback raised :class:`StopRequested`.
    """

    mask: torch.Tensor
    history: torch.Tensor
    best_epoch: torch.Tensor
    epochs: torch.Tensor
    interrupted: bool


class _Tracker:
    """Best mask, early-stopping state and loss history of ``M`` masks (see module docstring)."""

    def __init__(self, initial: torch.Tensor, tolerance: float, patience: int) -> None:
        count, device = initial.shape[0], initial.device
        self.tolerance = tolerance
        self.patience = patience
        self.best_loss = torch.full((count,), math.inf, device=device)
        self.reference = torch.full((count,), math.inf, device=device)
        self.bad = torch.zeros(count, dtype=torch.long, device=device)
        self.active = torch.ones(count, dtype=torch.bool, device=device)
        self.best_epoch = torch.zeros(count, dtype=torch.long, device=device)
        self.epochs = torch.zeros(count, dtype=torch.long, device=device)
        self.best_mask = initial
        self.history: list[torch.Tensor] = []

    def update(self, epoch: int, loss: torch.Tensor, mask: torch.Tensor) -> None:
        loss = loss.detach()
        active = self.active
        self.history.append(torch.where(active, loss, math.nan))
        self.epochs = torch.where(active, epoch, self.epochs)
        better = active & (loss < self.best_loss)
        self.best_loss = torch.where(better, loss, self.best_loss)
        self.best_epoch = torch.where(better, epoch, self.best_epoch)
        chosen = better.reshape(-1, *([1] * (mask.ndim - 1)))
        self.best_mask = torch.where(chosen, mask, self.best_mask)
        gain = self.reference - loss > self.tolerance * self.reference.abs()
        improved = active & (torch.isinf(self.reference) | gain)
        self.reference = torch.where(improved, loss, self.reference)
        self.bad = torch.where(improved, 0, torch.where(active, self.bad + 1, self.bad))
        self.active = active & (self.bad < self.patience)

    def result(self, threshold: float, interrupted: bool) -> PerturbationResult:
        return PerturbationResult(
            mask=apply_threshold(self.best_mask, threshold),
            history=torch.stack(self.history),
            best_epoch=self.best_epoch,
            epochs=self.epochs,
            interrupted=interrupted,
        )


class _Adam:
    """Adam (torch's defaults) on one tensor followed by the [0, 1] clamp, differentiable."""

    def __init__(self, like: torch.Tensor, lr: float) -> None:
        self.lr = lr
        self.step_count = 0
        self.exp_avg = torch.zeros_like(like)
        self.exp_avg_sq = torch.zeros_like(like)

    def step(self, m: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        beta1, beta2 = _ADAM_BETAS
        self.step_count += 1
        self.exp_avg = beta1 * self.exp_avg + (1 - beta1) * grad
        self.exp_avg_sq = beta2 * self.exp_avg_sq + (1 - beta2) * grad * grad
        correction1 = 1 - beta1**self.step_count
        correction2 = 1 - beta2**self.step_count
        # clamp_min keeps sqrt differentiable where a gradient is exactly 0 (create_graph)
        denom = (self.exp_avg_sq / correction2).clamp_min(1e-30).sqrt() + _ADAM_EPS
        return (m - (self.lr / correction1) * self.exp_avg / denom).clamp(0.0, 1.0)


def _chunks(n: int, size: int) -> Iterator[slice]:
    for first in range(0, n, size):
        yield slice(first, min(first + size, n))


def _check_images(x: torch.Tensor | VolumeStore) -> None:
    """:func:`check_input` for a tensor; for a :class:`~wslbench.data.volume_store.VolumeStore`
    (volumes read from disk a batch at a time) its shape, the batches being checked as read."""
    if isinstance(x, VolumeStore):
        if len(x) == 0:
            raise InvalidInputError("attribution input holds no image; expected at least one")
        return
    check_input(x)


def _detach(x: torch.Tensor | VolumeStore) -> torch.Tensor | VolumeStore:
    return x if isinstance(x, VolumeStore) else x.detach()


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"MeaningfulPerturbation {name} must be a number >= 0, got {value!r}")
    return float(value)


@register_attribution("meaningful-perturbation")
class MeaningfulPerturbation(Attribution):
    """Masks minimising eq. 2 of Thibeau-Sutre et al. 2020 (section 2.3) — see the module docstring.

    The constructor's ``lambda1``, ``lambda2``, ``max_iter``, ``tolerance`` and
    ``patience`` are the group-level values (2.3.2, 2.3.5, 3.1: λ₁ = 1e-4,
    λ₂ = 1e-2, β₁ = 0.1, β₂ = 1, at most 150 epochs, tolerance 0.05, patience 5);
    session-level masks multiply both λ's by ``session_factor`` (100, 2.3.4) and
    use ``session_max_iter`` (5000), ``session_tolerance`` (0.01) and
    ``session_patience`` (200).

    ``attribute(x, target)`` returns ``1 − m`` of the session-level masks
    (after the threshold rule): high where the voxel had to be replaced by μ to
    remove the class, 0 where the mask is 1. ``target=None`` explains the
    arg-max class of the unmasked input (single-output models: the sigmoid of
    the score). ``create_graph=True`` unrolls the whole optimisation (Adam
    included) so the map is differentiable with respect to the model's
    parameters; memory then grows with every iteration, so keep it to tiny
    inputs and few iterations.

    Memory: a mask, the two Adam moments and the kept best mask cost four
    volumes per image; inputs are processed ``batch_size`` at a time and the
    model's parameters do not record gradients during the optimisation.

    Args:
        model: maps ``(B, C, *spatial)`` to ``(B,)``, ``(B, 1)`` or ``(B, K)``.
        lambda1: weight of the sparsity term ``‖1 − m‖_{β₁}^{β₁}``.
        lambda2: weight of the smoothness term ``Σ_u ‖∇m(u)‖_{β₂}^{β₂}``.
        beta1: sparsity exponent β₁ > 0.
        beta2: smoothness exponent β₂ > 0.
        lr: Adam learning rate.
        max_iter: maximum number of group-level epochs.
        mu: value μ the masked voxels are replaced by (1: full gray matter).
        threshold: mask values above it are set to 1 at the end.
        tolerance: relative loss decrease an epoch must achieve to count as an improvement.
        patience: epochs without improvement before stopping.
        batch_size: images per forward pass (group mini-batch size; chunk of
            independent masks for session-level masks).
        session_factor: multiplier of λ₁ and λ₂ for session-level masks.
        session_max_iter: maximum number of session-level iterations.
        session_tolerance: tolerance of session-level early stopping.
        session_patience: patience of session-level early stopping.
        eps: near-zero rule of the β < 1 powers (:func:`mask_sparsity_term`).

    Shapes:
        ``attribute``: ``(B, C, *spatial) -> (B, 1, *spatial)``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        lambda1: float = 1e-4,
        lambda2: float = 1e-2,
        beta1: float = 0.1,
        beta2: float = 1.0,
        lr: float = 0.1,
        max_iter: int = 150,
        mu: float = 1.0,
        threshold: float = 0.95,
        tolerance: float = 0.05,
        patience: int = 5,
        batch_size: int = 1,
        session_factor: float = 100.0,
        session_max_iter: int = 5000,
        session_tolerance: float = 0.01,
        session_patience: int = 200,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(model)
        self.lambda1 = _non_negative("lambda1", lambda1)
        self.lambda2 = _non_negative("lambda2", lambda2)
        self.beta1 = check_number("beta1", beta1)
        self.beta2 = check_number("beta2", beta2)
        if not _non_negative("lr", lr) > 0:
            raise ConfigError(f"MeaningfulPerturbation lr must be > 0, got {lr!r}")
        self.lr = float(lr)
        self.max_iter = check_int("MeaningfulPerturbation max_iter", max_iter)
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not math.isfinite(mu):
            raise ConfigError(f"MeaningfulPerturbation mu must be a finite number, got {mu!r}")
        self.mu = float(mu)
        if not 0 < _non_negative("threshold", threshold) <= 1:
            raise ConfigError(
                f"MeaningfulPerturbation threshold must be in (0, 1], got {threshold!r}"
            )
        self.threshold = float(threshold)
        self.tolerance = _non_negative("tolerance", tolerance)
        self.patience = check_int("MeaningfulPerturbation patience", patience)
        self.batch_size = check_int("MeaningfulPerturbation batch_size", batch_size)
        if not _non_negative("session_factor", session_factor) > 0:
            raise ConfigError(
                f"MeaningfulPerturbation session_factor must be > 0, got {session_factor!r}"
            )
        self.session_factor = float(session_factor)
        self.session_max_iter = check_int("MeaningfulPerturbation session_max_iter", session_max_iter)
        self.session_tolerance = _non_negative("session_tolerance", session_tolerance)
        self.session_patience = check_int("MeaningfulPerturbation session_patience", session_patience)
        if not _non_negative("eps", eps) > 0:
            raise ConfigError(f"MeaningfulPerturbation eps must be > 0, got {eps!r}")
        self.eps = float(eps)

    # ------------------------------------------------------------------ losses
    def regularisation(self, m: torch.Tensor, lambda1: float, lambda2: float) -> torch.Tensor:
        """``λ₁ ‖1 − m‖_{β₁}^{β₁} + λ₂ Σ_u ‖∇m(u)‖_{β₂}^{β₂}`` per mask, ``(M,)``."""
        total = lambda1 * mask_sparsity_term(m, self.beta1, eps=self.eps)
        if lambda2:
            total = total + lambda2 * mask_tv_term(m, self.beta2, eps=self.eps)
        return total

    def _output(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """The model's output on the masked input ``X'_m`` (eq. 1)."""
        output = self.model(perturb(x, m, self.mu))
        if output.shape[0] != x.shape[0]:
            raise InvalidInputError(
                f"model output {tuple(output.shape)} does not have the batch size {x.shape[0]}"
            )
        return output

    # ------------------------------------------------------------ session level
    def optimise_session(
        self,
        x: torch.Tensor | VolumeStore,
        target: int | torch.Tensor | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> PerturbationResult:
        """Session-level masks (2.3.4): one independent mask per image of ``x``.

        λ₁ and λ₂ are multiplied by ``session_factor``; no validation set: the
        monitored loss is eq. 2 on the image itself, evaluated after every step.
        The images are optimised ``batch_size`` at a time; each mask stops on
        its own (``session_patience``, ``session_tolerance``, ``session_max_iter``).

        Args:
            x: images ``(B, C, *spatial)``: a tensor, or a
                :class:`~wslbench.data.volume_store.VolumeStore` whose images are read
                (and checked) ``batch_size`` at a time.
            target: explained class, an int or ``(B,)`` indices (None: arg-max).
            progress: called as ``progress(step, total, {"loss": mean loss})``
                after every iteration (steps counted over all chunks); raising
                :class:`StopRequested` stops and returns the masks kept so far
                (images of later chunks are not optimised: their mask is ones).

        Returns:
            A :class:`PerturbationResult` with ``B`` masks.
        """
        return self._session(x, target, progress=progress, create_graph=False)

    def _session(
        self,
        x: torch.Tensor | VolumeStore,
        target: int | torch.Tensor | None,
        *,
        progress: ProgressCallback | None,
        create_graph: bool,
    ) -> PerturbationResult:
        _check_images(x)
        target = self._check_target(target, x.shape[0])
        results = []
        interrupted = False
        chunks = list(_chunks(x.shape[0], self.batch_size))
        total = len(chunks) * self.session_max_iter
        with preserved_model_state(self.model):
            self._freeze(create_graph)
            for index, chunk in enumerate(chunks):
                if interrupted:
                    results.append(self._untouched(x[chunk]))
                    continue
                part = target[chunk] if isinstance(target, torch.Tensor) else target
                images = x[chunk]
                if isinstance(x, VolumeStore):  # a store's images are checked as they are read
                    check_input(images)
                result = self._session_chunk(
                    images, part, progress, index * self.session_max_iter, total, create_graph
                )
                interrupted = result.interrupted
                results.append(result)
        return self._concatenate(results, interrupted)

    def _session_chunk(
        self,
        x: torch.Tensor,
        target: int | torch.Tensor | None,
        progress: ProgressCallback | None,
        offset: int,
        total: int,
        create_graph: bool,
    ) -> PerturbationResult:
        data = x if create_graph else x.detach()
        lambda1 = self.lambda1 * self.session_factor
        lambda2 = self.lambda2 * self.session_factor
        m = torch.ones((x.shape[0], 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        adam = _Adam(m, self.lr)
        tracker = _Tracker(m, self.session_tolerance, self.session_patience)
        weights: torch.Tensor | None = None
        interrupted = False
        # the forward pass of step t measures the mask left by step t − 1 ("end of epoch" t − 1)
        for step in range(self.session_max_iter + 1):
            last = step == self.session_max_iter
            with torch.set_grad_enabled(not last or create_graph):
                leaf = (
                    m if create_graph and m.requires_grad else m.detach().requires_grad_(not last)
                )
                output = self._output(data, leaf)
                if weights is None:  # m = 1: X'_m = X, the unmasked output picks the class
                    weights = target_weights(output, target)
                loss = self.regularisation(leaf, lambda1, lambda2) + _probability(output, weights)
            if step > 0:
                tracker.update(step, loss, leaf if create_graph else leaf.detach())
                try:
                    report(progress, offset + step, total, {"loss": float(loss.detach().mean())})
                except StopRequested:
                    interrupted = True
                    break
                if not bool(tracker.active.any()):
                    break
            if last:
                break
            (grad,) = torch.autograd.grad(loss.sum(), leaf, create_graph=create_graph)
            m = adam.step(leaf if create_graph else leaf.detach(), grad)
        return tracker.result(self.threshold, interrupted)

    def _untouched(self, x: torch.Tensor) -> PerturbationResult:
        count = x.shape[0]
        zeros = torch.zeros(count, dtype=torch.long, device=x.device)
        return PerturbationResult(
            mask=torch.ones((count, 1, *x.shape[2:]), dtype=x.dtype, device=x.device),
            history=x.new_full((0, count), math.nan),
            best_epoch=zeros,
            epochs=zeros,
            interrupted=True,
        )

    @staticmethod
    def _concatenate(results: list[PerturbationResult], interrupted: bool) -> PerturbationResult:
        length = max(r.history.shape[0] for r in results)
        histories = [
            torch.cat(
                [
                    r.history,
                    r.history.new_full((length - len(r.history), r.mask.shape[0]), math.nan),
                ]
            )
            for r in results
        ]
        return PerturbationResult(
            mask=torch.cat([r.mask for r in results]),
            history=torch.cat(histories, dim=1),
            best_epoch=torch.cat([r.best_epoch for r in results]),
            epochs=torch.cat([r.epochs for r in results]),
            interrupted=interrupted,
        )

    # -------------------------------------------------------------- group level
    def optimise_group(
        self,
        images: torch.Tensor | VolumeStore,
        targets: int | torch.Tensor | None,
        val_images: torch.Tensor | VolumeStore,
        val_targets: int | torch.Tensor | None,
        *,
        progress: ProgressCallback | None = None,
    ) -> PerturbationResult:
        """One mask shared by ``images`` (group level, 2.3.3 and 2.3.5).

        Every epoch visits ``images`` in order, ``batch_size`` at a time, with
        one Adam step each on λ₁‖1 − m‖ + λ₂ TV + mean probability of the
        mini-batch; then eq. 2 with the mean probability over ``val_images`` is
        the epoch's monitored loss (mask selection and early stopping with
        ``tolerance``, ``patience``, at most ``max_iter`` epochs).

        Args:
            images: training images ``(N, C, *spatial)``, voxel-wise aligned: a tensor,
                or a :class:`~wslbench.data.volume_store.VolumeStore` read ``batch_size``
                images at a time in every epoch (memory bounded by a batch, not the group).
            targets: their class (int, ``(N,)`` indices, or None: arg-max of each unmasked image).
            val_images: validation images ``(V, C, *spatial)`` (same channels and grid; a
                tensor or a store).
            val_targets: their class, as ``targets``.
            progress: called as ``progress(epoch, max_iter, {"loss", "val_loss"})``
                after every epoch; raising :class:`StopRequested` stops and
                returns the best mask so far.

        Returns:
            A :class:`PerturbationResult` with one mask ``(1, 1, *spatial)``.
        """
        _check_images(images)
        _check_images(val_images)
        if tuple(val_images.shape[1:]) != tuple(images.shape[1:]):
            raise InvalidInputError(
                f"val_images must have the images' channels and grid {tuple(images.shape[1:])}, "
                f"got {tuple(val_images.shape[1:])}"
            )
        targets = self._check_target(targets, images.shape[0])
        val_targets = self._check_target(val_targets, val_images.shape[0])
        images, val_images = _detach(images), _detach(val_images)
        with preserved_model_state(self.model):
            self._freeze(create_graph=False)
            weights = self._class_weights(images, targets)
            val_weights = self._class_weights(val_images, val_targets)
            return self._group(images, weights, val_images, val_weights, progress)

    def _group(
        self,
        images: torch.Tensor | VolumeStore,
        weights: torch.Tensor,
        val_images: torch.Tensor | VolumeStore,
        val_weights: torch.Tensor,
        progress: ProgressCallback | None,
    ) -> PerturbationResult:
        m = torch.ones((1, 1, *images.shape[2:]), dtype=images.dtype, device=images.device)
        adam = _Adam(m, self.lr)
        tracker = _Tracker(m, self.tolerance, self.patience)
        interrupted = False
        for epoch in range(1, self.max_iter + 1):
            train_losses = []
            for chunk in _chunks(images.shape[0], self.batch_size):
                leaf = m.detach().requires_grad_(True)
                with torch.enable_grad():
                    probability = _probability(self._output(images[chunk], leaf), weights[chunk])
                    loss = (
                        self.regularisation(leaf, self.lambda1, self.lambda2) + probability.mean()
                    )
                    (grad,) = torch.autograd.grad(loss.sum(), leaf)
                train_losses.append(float(loss.detach()))
                m = adam.step(leaf.detach(), grad)
            val_loss = self._mean_loss(m, val_images, val_weights)
            tracker.update(epoch, val_loss.reshape(1), m)
            logs = {"loss": sum(train_losses) / len(train_losses), "val_loss": float(val_loss)}
            try:
                report(progress, epoch, self.max_iter, logs)
            except StopRequested:
                interrupted = True
                break
            if not bool(tracker.active.any()):
                break
        return tracker.result(self.threshold, interrupted)

    def _mean_loss(
        self, m: torch.Tensor, images: torch.Tensor | VolumeStore, weights: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 2 of a shared mask with the mean probability over ``images`` (no gradient)."""
        with torch.no_grad():
            total = torch.zeros((), dtype=images.dtype, device=images.device)
            for chunk in _chunks(images.shape[0], self.batch_size):
                total = total + _probability(self._output(images[chunk], m), weights[chunk]).sum()
            return self.regularisation(m, self.lambda1, self.lambda2)[0] + total / images.shape[0]

    def _class_weights(
        self, images: torch.Tensor | VolumeStore, target: int | torch.Tensor | None
    ) -> torch.Tensor:
        """One-hot weights of the explained class of every image, from its unmasked output."""
        parts = []
        with torch.no_grad():
            for chunk in _chunks(images.shape[0], self.batch_size):
                part = target[chunk] if isinstance(target, torch.Tensor) else target
                batch = images[chunk]
                if isinstance(images, VolumeStore):  # every image is read here once: check it
                    check_input(batch)
                parts.append(target_weights(self.model(batch), part))
        return torch.cat(parts)

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _check_target(target: int | torch.Tensor | None, count: int) -> int | torch.Tensor | None:
        if isinstance(target, torch.Tensor):
            target = target.reshape(-1) if target.ndim else target.expand(count)
            if target.shape != (count,):
                raise InvalidInputError(
                    f"targets must be an int or {count} class indices, "
                    f"got shape {tuple(target.shape)}"
                )
        return target

    def _freeze(self, create_graph: bool) -> None:
        """Eval mode; parameters stop recording gradients unless the map must depend on them."""
        self.model.eval()
        if not create_graph:
            self.model.requires_grad_(False)

    def _attribute(
        self, x: torch.Tensor, target: int | torch.Tensor | None, *, create_graph: bool
    ) -> torch.Tensor:
        result = self._session(x, target, progress=None, create_graph=create_graph)
        return 1.0 - result.mask
