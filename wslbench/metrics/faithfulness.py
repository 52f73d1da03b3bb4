"""Model-based faithfulness of attribution maps: deletion, insertion and ROAD-style scores.

A faithful map ranks first the pixels the model's output depends on most. The
scores here perturb the input in that order and watch the explained output:

* :func:`deletion_curve` — Petsiuk et al. 2018 ("RISE", BMVC, section 4.1):
  replace the most important pixels by a baseline, a growing fraction at a
  time; a fast drop (low area) means a faithful map.
* :func:`insertion_curve` — same paper: start from the baseline and restore
  the most important pixels first; a fast rise (high area) means a faithful map.
* :func:`road_score` — the *idea* of Rong et al. 2022 ("A consistent and
  efficient evaluation strategy for attribution methods", ICML, "ROAD"):
  removed pixels are filled from their non-removed neighbours plus a little
  noise instead of a constant, so the shape of the removed set tells the model
  little. This is our own implementation (a diffused local mean, not the
  paper's sparse linear solve).

Inputs are ``(B, C, H, W)`` or ``(B, C, D, H, W)``; maps ``(B, 1, *spatial)`` (one
importance per location, all channels perturbed together). The model maps
inputs to ``(B,)``, ``(B, 1)`` or ``(B, K)``; ``target`` follows
:func:`wslbench.attribution.base.select_target`, except that ``None`` with
``K > 1`` outputs is resolved once, to the arg-max class of the *clean* input, so
the same class is followed along the curve. Scores are the model's raw outputs
(apply a softmax inside the model if probabilities are wanted). The model is
evaluated in eval mode under ``torch.no_grad()``, and its train/eval flags are
restored afterwards. Every perturbed input of every sample goes through the
model in batches of ``batch_size``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.attribution.base import check_input, select_target
from wslbench.errors import InvalidInputError
from wslbench.model_state import preserved_model_state

__all__ = [
    "PerturbationCurve",
    "RoadResult",
    "deletion_curve",
    "impute_neighbours",
    "insertion_curve",
    "road_score",
]

Baseline = Literal["blur", "zero", "mean"]
Target = int | torch.Tensor | None


@dataclass(frozen=True)
class PerturbationCurve:
    """A deletion or insertion curve for each sample.

    Attributes:
        fractions: ``(S + 1,)`` fraction of locations removed/inserted at each step,
            from 0 to 1.
        scores: ``(B, S + 1)`` explained output at each step.
        auc: ``(B,)`` trapezoidal area of ``scores`` over ``fractions``.
    """

    fractions: torch.Tensor
    scores: torch.Tensor
    auc: torch.Tensor


@dataclass(frozen=True)
class RoadResult:
    """ROAD-style scores for each sample.

    Attributes:
        fractions: ``(P,)`` fractions of locations removed.
        clean: ``(B,)`` explained output on the unperturbed input.
        morf: ``(B, P)`` output with the *most* important fraction removed and imputed.
        lerf: ``(B, P)`` output with the *least* important fraction removed and imputed.
        score: ``(B,)`` mean over fractions of ``lerf − morf``: larger means the
            map's top pixels matter more to the model than its bottom pixels.
    """

    fractions: torch.Tensor
    clean: torch.Tensor
    morf: torch.Tensor
    lerf: torch.Tensor
    score: torch.Tensor


# ---------------------------------------------------------------------------------- helpers


def _check(x: torch.Tensor, maps: torch.Tensor, batch_size: int) -> torch.Tensor:
    check_input(x)
    if not isinstance(maps, torch.Tensor):
        raise InvalidInputError(f"maps must be a torch.Tensor, got {type(maps).__name__}")
    expected = (x.shape[0], 1, *x.shape[2:])
    if tuple(maps.shape) != expected:
        raise InvalidInputError(
            f"maps must have shape (B, 1, *spatial) = {expected} for input {tuple(x.shape)}, "
            f"got {tuple(maps.shape)}"
        )
    if not torch.isfinite(maps).all():
        raise InvalidInputError("maps contain NaN or Inf; expected finite values")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return maps.detach().to(x.device)


def _ranks(maps: torch.Tensor, descending: bool = True) -> torch.Tensor:
    """``(B, N)`` rank of every location (0 = first to perturb); ties in row-major order."""
    flat = maps.flatten(1).float()
    order = torch.argsort(flat, dim=1, descending=descending, stable=True)
    ranks = torch.empty_like(order)
    ar = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    ranks.scatter_(1, order, ar)
    return ranks


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur over every spatial axis, border replicated."""
    b, c, *spatial = x.shape
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    y = x.reshape(b * c, *spatial)
    for axis in range(1, len(spatial) + 1):
        y = y.movedim(axis, -1)
        shape = y.shape
        flat = F.pad(y.reshape(-1, 1, shape[-1]), (radius, radius), mode="replicate")
        y = F.conv1d(flat, kernel).reshape(shape).movedim(-1, axis)
    return y.reshape(b, c, *spatial)


def _make_baseline(x: torch.Tensor, baseline: str, blur_sigma: float) -> torch.Tensor:
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "mean":
        dims = tuple(range(2, x.ndim))
        return x.mean(dim=dims, keepdim=True).expand_as(x)
    if baseline == "blur":
        if not blur_sigma > 0:
            raise InvalidInputError(f"blur_sigma must be > 0 pixels, got {blur_sigma}")
        return _gaussian_blur(x, float(blur_sigma))
    raise InvalidInputError(f"unknown baseline {baseline!r}; expected 'blur', 'zero' or 'mean'")


def _forward(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if not isinstance(out, torch.Tensor):
        raise InvalidInputError(f"model must return a tensor, got {type(out).__name__}")
    return out


def _resolve_target(out: torch.Tensor, target: Target) -> Target:
    """Fix ``None`` with ``(B, K > 1)`` outputs to the clean arg-max class."""
    if target is None and out.ndim == 2 and out.shape[1] > 1:
        return out.argmax(dim=1)
    if isinstance(target, torch.Tensor):
        return torch.as_tensor(target, device=out.device).long().reshape(-1)
    return target


def _pick(out: torch.Tensor, target: Target, index: torch.Tensor) -> torch.Tensor:
    """``select_target`` for a chunk whose rows belong to samples ``index``."""
    if isinstance(target, torch.Tensor):
        return select_target(out, target[index])
    return select_target(out, target)


def _scores_for(
    model: Callable[[torch.Tensor], torch.Tensor],
    build: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    ranks: torch.Tensor,
    counts: torch.Tensor,
    target: Target,
    batch_size: int,
) -> torch.Tensor:
    """``(B, S)`` outputs on ``build(sample_idx, step_idx, perturbed)`` for every (sample, step)."""
    b, s = ranks.shape[0], counts.numel()
    pairs_b = torch.arange(b, device=ranks.device).repeat_interleave(s)
    pairs_k = torch.arange(s, device=ranks.device).repeat(b)
    out = torch.empty(b * s, dtype=torch.float32, device=ranks.device)
    for start in range(0, b * s, batch_size):
        bi = pairs_b[start : start + batch_size]
        ki = pairs_k[start : start + batch_size]
        perturbed = ranks[bi] < counts[ki][:, None]  # (n, N)
        inputs = build(bi, ki, perturbed)
        out[start : start + bi.numel()] = _pick(_forward(model, inputs), target, bi).float()
    return out.view(b, s)


@contextlib.contextmanager
def _eval_mode(model: object) -> Iterator[None]:
    """``torch.no_grad()`` and, for an ``nn.Module``, eval mode with its flags restored."""
    if not callable(model):
        raise InvalidInputError(f"model must be callable, got {type(model).__name__}")
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        if isinstance(model, nn.Module):
            stack.enter_context(preserved_model_state(model))
            model.eval()
        yield


def _counts(n: int, steps: int, device: torch.device) -> torch.Tensor:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"steps must be an int >= 1, got {steps!r}")
    k = torch.arange(steps + 1, dtype=torch.float64)
    return torch.round(k * n / steps).long().to(device)


def _curve(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    maps: torch.Tensor,
    *,
    insert: bool,
    target: Target,
    steps: int,
    baseline: str,
    blur_sigma: float,
    batch_size: int,
) -> PerturbationCurve:
    maps = _check(x, maps, batch_size)
    x = x.detach()
    spatial = x.shape[2:]
    n = math.prod(spatial)
    counts = _counts(n, steps, x.device)
    with _eval_mode(model):
        fill = _make_baseline(x, baseline, blur_sigma)
        target = _resolve_target(_forward(model, x), target)
        ranks = _ranks(maps)

        def build(bi: torch.Tensor, ki: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
            m = perturbed.view(-1, 1, *spatial)
            if insert:
                return torch.where(m, x[bi], fill[bi])
            return torch.where(m, fill[bi], x[bi])

        scores = _scores_for(model, build, ranks, counts, target, batch_size)
    fractions = (counts.double() / n).float()
    auc = torch.trapezoid(scores, fractions[None, :].to(scores.device), dim=1)
    return PerturbationCurve(fractions=fractions, scores=scores, auc=auc)


# ---------------------------------------------------------------------------------- public


def deletion_curve(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    maps: torch.Tensor,
    *,
    target: Target = None,
    steps: int = 20,
    baseline: Baseline = "zero",
    blur_sigma: float = 5.0,
    batch_size: int = 32,
) -> PerturbationCurve:
    """Deletion curve: remove the most important locations first (Petsiuk 2018, section 4.1).

    At step ``k`` the ``round(k · N / steps)`` top-ranked locations of each map
    (``N`` locations, all channels) are replaced by the baseline. Lower area means a
    more faithful map.

    Args:
        model: maps ``(n, C, *spatial)`` to ``(n,)``, ``(n, 1)`` or ``(n, K)``.
        x: ``(B, C, H, W)`` or ``(B, C, D, H, W)`` finite input.
        maps: ``(B, 1, *spatial)`` importance maps (higher = more important).
        target: as in ``select_target``; ``None`` with ``K > 1`` follows the clean
            arg-max class.
        steps: number of perturbation steps ``S`` (``S + 1`` points, 0 % to 100 %).
        baseline: the fill: ``"zero"`` (Petsiuk's deletion default), ``"mean"`` (per
            sample and channel) or ``"blur"`` (Gaussian, ``blur_sigma`` px).
        blur_sigma: standard deviation of the blur baseline, in pixels.
        batch_size: perturbed inputs per forward pass.

    Returns:
        A :class:`PerturbationCurve`.
    """
    return _curve(
        model,
        x,
        maps,
        insert=False,
        target=target,
        steps=steps,
        baseline=baseline,
        blur_sigma=blur_sigma,
        batch_size=batch_size,
    )


def insertion_curve(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    maps: torch.Tensor,
    *,
    target: Target = None,
    steps: int = 20,
    baseline: Baseline = "blur",
    blur_sigma: float = 5.0,
    batch_size: int = 32,
) -> PerturbationCurve:
    """Insertion curve: start from the baseline, restore the most important locations first.

    Petsiuk 2018, section 4.1 (a blurred canvas by default, as there). Higher area
    means a more faithful map. Arguments as in :func:`deletion_curve`.

    Returns:
        A :class:`PerturbationCurve`.
    """
    return _curve(
        model,
        x,
        maps,
        insert=True,
        target=target,
        steps=steps,
        baseline=baseline,
        blur_sigma=blur_sigma,
        batch_size=batch_size,
    )


def _box_sum(v: torch.Tensor) -> torch.Tensor:
    """Sum over the 3^d neighbourhood (zero padding), for ``(n, C, *spatial)``."""
    k = 3 ** (v.ndim - 2)
    pool = F.avg_pool2d if v.ndim == 4 else F.avg_pool3d
    return pool(v, kernel_size=3, stride=1, padding=1, count_include_pad=True) * k


def impute_neighbours(
    x: torch.Tensor,
    removed: torch.Tensor,
    *,
    smooth_iterations: int = 20,
    noise_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill removed locations from their non-removed neighbours (ROAD-style imputation).

    Our take on the noisy linear imputation of Rong et al. 2022: first, removed
    locations are filled front by front with the mean of their already-known
    3^d neighbours (a hole is filled from its rim inwards); then
    ``smooth_iterations`` Jacobi sweeps replace each removed value by the mean of
    its neighbours (known values fixed), approaching the harmonic interpolation
    of the hole; finally Gaussian noise of standard deviation ``noise_std`` (in
    input units) is added to the removed locations.

    Args:
        x: ``(n, C, H, W)`` or ``(n, C, D, H, W)`` input.
        removed: ``(n, 1, *spatial)`` bool, True where the value is removed; at least
            one location per sample must be kept.
        smooth_iterations: Jacobi sweeps after the fill, ``>= 0``.
        noise_std: noise added to imputed values, ``>= 0``.
        generator: random generator for the noise (on ``x``'s device).

    Returns:
        The imputed input, same shape as ``x``; kept locations are unchanged.
    """
    if removed.shape != (x.shape[0], 1, *x.shape[2:]) or removed.dtype != torch.bool:
        raise InvalidInputError(
            f"removed must be a bool tensor of shape {(x.shape[0], 1, *x.shape[2:])}, got "
            f"{removed.dtype} {tuple(removed.shape)}"
        )
    if (removed.flatten(1).all(dim=1)).any():
        raise InvalidInputError("cannot impute a sample whose every location is removed")
    if smooth_iterations < 0 or noise_std < 0:
        raise InvalidInputError("smooth_iterations and noise_std must be >= 0")
    noise = None
    if noise_std > 0:
        noise = noise_std * torch.randn(
            x.shape, generator=generator, device=x.device, dtype=x.dtype
        )
    return _impute(x, removed, smooth_iterations, noise)


def _impute(
    x: torch.Tensor, removed: torch.Tensor, smooth_iterations: int, noise: torch.Tensor | None
) -> torch.Tensor:
    """:func:`impute_neighbours` with the noise (``x``'s shape) given, or none."""
    known = (~removed).to(x.dtype)
    v = x * known
    w = known.clone()
    while True:
        holes = removed & (w == 0)
        if not holes.any():
            break
        num = _box_sum(v * w)
        den = _box_sum(w)
        newly = holes & (den > 0)
        if not newly.any():  # only when a sample has no kept location at all
            raise InvalidInputError("cannot impute a sample whose every location is removed")
        v = torch.where(newly, num / den.clamp_min(1e-12), v)
        w = torch.where(newly, torch.ones_like(w), w)
    if smooth_iterations:
        den = _box_sum(torch.ones_like(w)) - 1.0
        for _ in range(smooth_iterations):
            v = torch.where(removed, (_box_sum(v) - v) / den, v)
    if noise is not None:
        v = torch.where(removed, v + noise, v)
    return v


def _seeded_noise(
    shape: torch.Size, seeds: list[int], generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """``(len(seeds), *shape)`` standard normal noise, row ``i`` drawn with seed ``seeds[i]``."""
    rows = [
        torch.randn(shape, generator=generator.manual_seed(s), device=like.device, dtype=like.dtype)
        for s in seeds
    ]
    return torch.stack(rows)


def road_score(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    maps: torch.Tensor,
    *,
    target: Target = None,
    fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    noise_std: float = 0.01,
    smooth_iterations: int = 20,
    batch_size: int = 32,
    seed: int = 0,
) -> RoadResult:
    """Remove-and-debias style faithfulness: MoRF and LeRF outputs with neighbour imputation.

    For each fraction ``f``, the ``round(f · N)`` most important (MoRF) or least
    important (LeRF) locations are removed and filled by :func:`impute_neighbours`,
    then the model is evaluated. The idea follows Rong et al. 2022 (ROAD); the
    imputation is ours. ``score = mean_f(LeRF − MoRF)``.

    Args:
        model: maps ``(n, C, *spatial)`` to ``(n,)``, ``(n, 1)`` or ``(n, K)``.
        x: ``(B, C, H, W)`` or ``(B, C, D, H, W)`` finite input.
        maps: ``(B, 1, *spatial)`` importance maps.
        target: as in :func:`deletion_curve`.
        fractions: fractions in (0, 1) of locations removed.
        noise_std: standard deviation of the imputation noise, in input units.
        smooth_iterations: Jacobi sweeps of the imputation.
        batch_size: perturbed inputs per forward pass.
        seed: seed of the imputation noise; each (sample, fraction, MoRF/LeRF) draws
            from its own seeded generator, so the numbers do not depend on ``batch_size``.

    Returns:
        A :class:`RoadResult`.
    """
    maps = _check(x, maps, batch_size)
    fr = torch.as_tensor(list(fractions), dtype=torch.float64)
    if fr.ndim != 1 or fr.numel() == 0 or not ((fr > 0) & (fr < 1)).all():
        raise InvalidInputError(
            f"fractions must be a non-empty sequence of values in (0, 1), got {list(fractions)}"
        )
    if not noise_std >= 0 or isinstance(smooth_iterations, bool) or smooth_iterations < 0:
        raise InvalidInputError(
            f"noise_std and smooth_iterations must be >= 0, got {noise_std} and {smooth_iterations}"
        )
    x = x.detach()
    spatial = x.shape[2:]
    n = math.prod(spatial)
    counts = torch.round(fr * n).long().clamp(0, n - 1).to(x.device)
    generator = torch.Generator(device=x.device).manual_seed(int(seed))

    with _eval_mode(model):
        clean_out = _forward(model, x)
        target = _resolve_target(clean_out, target)
        clean = _pick(clean_out, target, torch.arange(x.shape[0], device=x.device)).float()

        def build_for(direction: int) -> Callable[..., torch.Tensor]:
            def build(bi: torch.Tensor, ki: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
                noise = None
                if noise_std > 0:
                    # one seed per (direction, sample, fraction): independent of batch_size
                    pair = (direction * x.shape[0] + bi) * counts.numel() + ki
                    seeds = (int(seed) * 1_000_003 + pair).tolist()
                    noise = noise_std * _seeded_noise(x.shape[1:], seeds, generator, x)
                return _impute(x[bi], perturbed.view(-1, 1, *spatial), smooth_iterations, noise)

            return build

        morf = _scores_for(model, build_for(0), _ranks(maps, True), counts, target, batch_size)
        lerf = _scores_for(model, build_for(1), _ranks(maps, False), counts, target, batch_size)
    return RoadResult(
        fractions=fr.float(), clean=clean, morf=morf, lerf=lerf, score=(lerf - morf).mean(dim=1)
    )
