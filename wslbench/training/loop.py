"""The one training loop every paper uses (issue 18): :func:`fit`.

A paper supplies what is its own — how batches are drawn (``batches(epoch)``,
an iterable, so its seeded sampling order stays its own), what one step
computes (``step(batch)`` → loss, optional logs), how to validate
(``validate()`` → metrics) — and :func:`fit` owns the rest: device placement of
the model, the optimiser step and per-step learning-rate schedule, progress
reports, validation every epoch or every ``validate_every`` steps, checkpoint
keeping, model selection by any validation metric, division of the learning
rate by 10 on a validation plateau, early stopping, and one cancel rule:

    A progress callback raising :class:`~wslbench.progress.StopRequested` stops
    the loop at that step; :func:`fit` restores the best state selected so far
    (if any) and returns a result with ``interrupted=True``, which callers may
    show but never cache as final (:class:`~wslbench.experiments.cache.ExperimentCache`
    refuses it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from wslbench.errors import ConfigError
from wslbench.progress import ProgressCallback, StopRequested, report
from wslbench.training.early_stopping import EarlyStopping
from wslbench.validation import check_int

__all__ = ["StepOutput", "Checkpoint", "FitResult", "fit", "index_batches"]


@dataclass(frozen=True)
class StepOutput:
    """What a step returns when it has more to say than its loss.

    Attributes:
        loss: the scalar to minimise (``backward`` is called on it).
        logs: extra scalars of this step (kept per step and averaged per epoch).
        weight: items in the batch, for the epoch's weighted mean loss.
    """

    loss: torch.Tensor
    logs: Mapping[str, Any] = field(default_factory=dict)
    weight: float = 1.0


@dataclass(frozen=True)
class Checkpoint:
    """A model state at a validation point, with its metrics."""

    epoch: int
    step: int
    metrics: dict[str, float]
    state: dict[str, torch.Tensor]


@dataclass
class FitResult:
    """What :func:`fit` did.

    Attributes:
        history: one row per validation point (``epoch``, ``step``, the mean ``train_loss``
            and logs since the previous row, then the validation metrics); with
            ``report_every="epoch"`` the progress logs are this row without epoch/step.
        steps: one row per step (``step``, ``loss``, logs) when ``record_steps``.
        checkpoints: every validation point's state when ``keep_checkpoints``.
        best: the selected checkpoint (its state is loaded at the end), or ``None``.
        interrupted: cancelled through ``progress``.
        early_stopped: stopped by ``early_stopping`` before the last epoch.
        n_steps: optimiser steps taken; ``seconds``: wall time.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    best: Checkpoint | None = None
    interrupted: bool = False
    early_stopped: bool = False
    n_steps: int = 0
    seconds: float = 0.0


def index_batches(indices: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``indices`` in batches of ``batch_size``; a trailing batch of one joins the previous
    one (batch normalisation in train mode fails on a single sample)."""
    chunks = list(torch.split(indices, batch_size))
    if len(chunks) > 1 and chunks[-1].numel() == 1:
        chunks[-2:] = [torch.cat(chunks[-2:])]
    return chunks


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


class _Selector:
    """Keeps the best checkpoint by one metric (``ties``: which of equal scores wins)."""

    def __init__(self, metric: str | None, mode: str, ties: str) -> None:
        self.metric, self.sign, self.latest = metric, 1.0 if mode == "max" else -1.0, ties == "latest"
        self.best: Checkpoint | None = None
        self.score = -math.inf

    def offer(self, ckpt: Checkpoint) -> None:
        if self.metric is None:
            return
        if self.metric not in ckpt.metrics:
            raise ConfigError(f"select={self.metric!r} is not among the validation metrics "
                              f"{sorted(ckpt.metrics)}")
        score = self.sign * float(ckpt.metrics[self.metric])
        if score > self.score or (self.latest and score == self.score):
            self.best, self.score = ckpt, score


def fit(
    model: nn.Module,
    step: Callable[[Any], torch.Tensor | StepOutput],
    batches: Callable[[int], Iterable[Any]],
    *,
    epochs: int,
    optimiser: torch.optim.Optimizer,
    schedule: Any | None = None,
    validate: Callable[[], Mapping[str, float]] | None = None,
    validate_every: int | None = None,
    select: str | None = None,
    mode: Literal["max", "min"] = "max",
    ties: Literal["latest", "earliest"] = "latest",
    plateau_patience: int | None = None,
    early_stopping: EarlyStopping | None = None,
    monitor: str | None = None,
    keep_checkpoints: bool = False,
    record_steps: bool = False,
    progress: ProgressCallback | None = None,
    report_every: Literal["step", "epoch"] = "step",
    steps_per_epoch: int | None = None,
    step_offset: int = 0,
    total_steps: int | None = None,
    device: torch.device | str | None = None,
) -> FitResult:
    """Train ``model`` for ``epochs`` passes of ``batches(epoch)`` (epochs count from 1).

    Args:
        model: trained in place (moved to ``device`` when given).
        step: one batch → loss (or :class:`StepOutput`); the model is in train mode.
        batches: epoch → the batches of that epoch, drawn by the caller's seeded sampler.
        epochs: passes over ``batches``.
        optimiser: stepped after every ``backward``.
        schedule: a ``torch.optim.lr_scheduler`` stepped after every optimiser step.
        validate: → metrics, run in eval mode at every validation point (gradients stay
            enabled: a heatmap-based metric may need them).
        validate_every: steps between validation points (and at the very end);
            ``None`` validates at the end of every epoch.
        select: validation metric whose best checkpoint is restored at the end.
        mode, ties: ``select`` is maximised or minimised; equal scores keep the
            ``latest`` or the ``earliest`` checkpoint.
        plateau_patience: divide every learning rate by 10 when ``select`` has not
            improved for this many validation points.
        early_stopping: stops when ``monitor`` (a validation metric) stalls.
        keep_checkpoints: keep every validation point's state in the result.
        record_steps: keep one row per step in ``result.steps``.
        progress: ``progress(done, total, logs)`` after every step (``report_every
            = "step"``) or every epoch; may raise ``StopRequested`` (see module doc).
        steps_per_epoch: batches per epoch, for the step total of the progress bar.
        step_offset, total_steps: place this call inside a longer job (several
            phases with their own optimiser report on one bar).
        device: where the model goes.
    """
    check_int("epochs", epochs)
    if validate_every is not None:
        check_int("validate_every", validate_every)
    if (select or monitor) and validate is None:
        raise ConfigError("select and monitor need a validate function")
    if early_stopping is not None and monitor is None:
        raise ConfigError("early_stopping needs monitor (the validation metric it watches)")
    if device is not None:
        model.to(device)
    selector = _Selector(select, mode, ties)
    plateau = None
    if plateau_patience is not None:
        if select is None:
            raise ConfigError("plateau_patience needs select (the metric whose plateau divides the lr)")
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, mode=mode, factor=0.1, patience=check_int("plateau_patience", plateau_patience, minimum=0))
    result = FitResult()
    started = time.perf_counter()
    total = total_steps if total_steps is not None else (
        epochs * steps_per_epoch if steps_per_epoch is not None else None)
    sums: dict[str, float] = {}
    weight = 0.0
    done = step_offset

    def checkpoint(epoch: int) -> bool:
        """Validate, keep and select; True when early stopping says stop."""
        nonlocal sums, weight
        row: dict[str, Any] = {"epoch": epoch, "step": done}
        row.update({k: v / weight for k, v in sums.items()} if weight else {})
        sums, weight = {}, 0.0
        if validate is None:
            result.history.append(row)
            return False
        model.eval()
        metrics = {k: float(v) for k, v in validate().items()}
        model.train()
        row.update(metrics)
        result.history.append(row)
        ckpt = Checkpoint(epoch, done, metrics, _state(model) if (keep_checkpoints or select) else {})
        if keep_checkpoints:
            result.checkpoints.append(ckpt)
        selector.offer(ckpt)
        if plateau is not None:
            plateau.step(metrics[select])
        if early_stopping is not None:
            if monitor not in metrics:
                raise ConfigError(f"monitor={monitor!r} is not among the validation metrics {sorted(metrics)}")
            return early_stopping.step(metrics[monitor])
        return False

    try:
        for epoch in range(1, epochs + 1):
            model.train()
            for batch in batches(epoch):
                out = step(batch)
                out = out if isinstance(out, StepOutput) else StepOutput(out)
                optimiser.zero_grad(set_to_none=True)
                out.loss.backward()
                optimiser.step()
                if schedule is not None:
                    schedule.step()
                done += 1
                loss = float(out.loss.detach())
                logs = {k: float(v) for k, v in out.logs.items()}
                for k, v in {"train_loss": loss, **logs}.items():
                    sums[k] = sums.get(k, 0.0) + v * out.weight
                weight += out.weight
                if record_steps:
                    result.steps.append({"step": done, "loss": loss, **out.logs})
                if validate_every is not None and done % validate_every == 0:
                    if checkpoint(epoch):
                        result.early_stopped = True
                        break
                if report_every == "step":
                    report(progress, done, total if total is not None else done, {"loss": loss, **logs})
            if result.early_stopped:
                break
            if validate_every is None or (epoch == epochs and done % validate_every != 0):
                stop = checkpoint(epoch)
                result.early_stopped = stop and epoch < epochs
            if report_every == "epoch":
                last = result.history[-1] if result.history else {}
                report(progress, epoch, epoch if result.early_stopped else epochs,
                       {k: v for k, v in last.items() if k not in ("epoch", "step")})
            if result.early_stopped:
                break
    except StopRequested:
        result.interrupted = True
    result.best = selector.best
    if result.best is not None:
        model.load_state_dict(result.best.state)
    model.eval()
    result.n_steps = done - step_offset
    result.seconds = time.perf_counter() - started
    return result
