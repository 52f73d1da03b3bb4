"""Progress reporting and cancellation for long work (training, mask optimisation).

Long-running functions take ``progress: ProgressCallback | None``. They call
``progress(step, total, logs)`` after each step; the callback may raise
:class:`StopRequested` to interrupt (the widgets' cancel button does), and the
function then returns what it has so far or lets the exception propagate, as
its docstring says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["ProgressCallback", "StopRequested", "tqdm_progress", "report", "stop_if_interrupted"]

ProgressCallback = Callable[[int, int, Mapping[str, float]], None]


class StopRequested(Exception):
    """Raised by a progress callback to interrupt long work (user pressed cancel)."""


def tqdm_progress(total: int, desc: str = "") -> ProgressCallback:
    """A callback drawing a tqdm bar (notebook-aware through ``tqdm.auto``)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, leave=True)

    def callback(step: int, total_: int, logs: Mapping[str, float]) -> None:
        bar.total = total_
        bar.n = step
        if logs:
            bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
        bar.refresh()
        if step >= total_:
            bar.close()

    return callback


def report(
    progress: ProgressCallback | None, step: int, total: int, logs: Mapping[str, float] | None = None
) -> None:
    """Call ``progress`` if given (convenience for loops)."""
    if progress is not None:
        progress(step, total, logs or {})


def stop_if_interrupted(result: object, what: str) -> None:
    """Raise :class:`StopRequested` when ``result.interrupted``: a sweep over several
    trainings stops at a cancelled one instead of going on to the next value."""
    if getattr(result, "interrupted", False):
        raise StopRequested(f"cancelled while {what}")
