"""Parameter panel: sliders and dropdowns bound to a (long) callback, debounced, cancellable.

A notebook declares its controls as literals (``{"nu": [0.0, 1e-4, 1e-3],
"criterion": ["pi", "omega"], "iterations": (10, 500, 10)}``) and a callback
``work(params, progress)``; moving a control re-runs the work after a short
debounce, in a worker thread so the cancel button stays responsive. ``progress``
is a :data:`~wslbench.training.ProgressCallback`: the long functions of wslbench
(training, mask optimisation) accept it, update the bar through it and stop with
:class:`~wslbench.progress.StopRequested` when cancel is pressed.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets

from wslbench.errors import ConfigError, WslbenchError
from wslbench.progress import ProgressCallback, StopRequested

__all__ = ["ParameterPanel", "make_control"]

Work = Callable[[dict[str, Any], ProgressCallback], Any]


def make_control(name: str, spec: object) -> widgets.ValueWidget:
    """A widget for ``name`` from a literal spec.

    - ``(lo, hi, step)`` of ints → ``IntSlider``; with a float → ``FloatSlider``
      (a 4th entry sets the initial value);
    - a list of numbers → ``SelectionSlider`` over them (ν grids);
    - a list of strings → ``Dropdown``;
    - a bool → ``Checkbox``;
    - an existing widget is returned as is.
    """
    common = {"description": name, "continuous_update": False}
    if isinstance(spec, widgets.ValueWidget):
        return spec
    if isinstance(spec, bool):
        return widgets.Checkbox(value=spec, description=name)
    if isinstance(spec, tuple) and len(spec) in (3, 4) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec
    ):
        lo, hi, step = spec[:3]
        value = spec[3] if len(spec) == 4 else lo
        if not lo <= value <= hi or step <= 0:
            raise ConfigError(f"control {name!r}: expected lo <= value <= hi and step > 0, got {spec}")
        if all(isinstance(v, int) for v in spec):
            return widgets.IntSlider(value=value, min=lo, max=hi, step=step, **common)
        return widgets.FloatSlider(value=value, min=lo, max=hi, step=step, readout_format=".3g",
                                   **common)
    if isinstance(spec, list) and spec:
        if all(isinstance(v, str) for v in spec):
            return widgets.Dropdown(options=spec, value=spec[0], description=name)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec):
            return widgets.SelectionSlider(options=[(f"{v:g}", v) for v in spec], value=spec[0],
                                           **common)
    raise ConfigError(
        f"control {name!r}: cannot build a widget from {spec!r}; expected (lo, hi, step), "
        "a list of numbers or strings, a bool, or an ipywidgets widget"
    )


class ParameterPanel:
    """Controls bound to ``work(params, progress)``, with progress bar, status and cancel.

    Args:
        controls: name → widget spec (see :func:`make_control`).
        work: the callback; its return value is kept in :attr:`result`.
        debounce_s: wait this long after the last change before running (0: at once).
        threaded: run the work in a worker thread (notebooks, dashboards); ``False``
            runs it synchronously in the caller (headless tests, papermill).
        auto_run: re-run when a control changes; otherwise only the Run button runs.
        run_label: text of the Run button.

    A change while work is running cancels that run and schedules a new one with the
    latest values. Errors are shown as one line in the status (never a traceback):
    a wslbench error by its message, anything else by its type and message.
    """

    def __init__(
        self,
        controls: Mapping[str, object],
        work: Work,
        *,
        debounce_s: float = 0.3,
        threaded: bool = True,
        auto_run: bool = True,
        run_label: str = "Run",
    ) -> None:
        if debounce_s < 0:
            raise ConfigError(f"debounce_s must be >= 0, got {debounce_s}")
        self.controls = {name: make_control(name, spec) for name, spec in controls.items()}
        self.work = work
        self.debounce_s = debounce_s
        self.threaded = threaded
        self.auto_run = auto_run
        self.run_button = widgets.Button(description=run_label, button_style="primary")
        self.cancel_button = widgets.Button(description="Cancel", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="progress")
        self.status = widgets.HTML("ready")
        self.result: Any = None
        self.error: str | None = None
        self.runs = 0
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._thread: threading.Thread | None = None
        self.widget = widgets.VBox([
            widgets.VBox(list(self.controls.values())),
            widgets.HBox([self.run_button, self.cancel_button, self.progress, self.status]),
        ])
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.run_button.on_click(lambda _b: self.schedule(delay=0.0))
        self.cancel_button.on_click(lambda _b: self.cancel())

    def values(self) -> dict[str, Any]:
        """Current value of every control."""
        return {name: control.value for name, control in self.controls.items()}

    def _on_change(self, _change: object) -> None:
        if self.auto_run:
            self.schedule()

    def schedule(self, delay: float | None = None) -> None:
        """Run the work after ``delay`` (default: the debounce), cancelling a pending or running one."""
        delay = self.debounce_s if delay is None else delay
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if self.running:
            self.cancel()
        if not self.threaded:
            self.run_now()
            return
        timer = threading.Timer(delay, self._start_thread)
        timer.daemon = True
        with self._lock:
            self._timer = timer
        timer.start()

    def _start_thread(self) -> None:
        previous = self._thread
        if previous is not None:
            previous.join()
        thread = threading.Thread(target=self.run_now, daemon=True)
        with self._lock:
            self._thread = thread
        thread.start()

    @property
    def running(self) -> bool:
        """Whether the work is running now."""
        return self._thread is not None and self._thread.is_alive()

    def cancel(self) -> None:
        """Ask the running work to stop at its next progress report."""
        self._cancel.set()
        self.status.value = "cancelling..."

    def _progress(self, step: int, total: int, logs: Mapping[str, float]) -> None:
        if self._cancel.is_set():
            raise StopRequested("cancelled from the parameter panel")
        self.progress.max = max(int(total), 1)
        self.progress.value = min(int(step), self.progress.max)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in logs.items())
        self.status.value = f"{step}/{total} {shown}".strip()

    def run_now(self) -> Any:
        """Run the work synchronously with the current values; returns its result."""
        self._cancel.clear()
        self.cancel_button.disabled = False
        self.run_button.disabled = True
        self.progress.value = 0
        self.status.value = "running..."
        start = time.perf_counter()
        try:
            self.result = self.work(self.values(), self._progress)
            self.error = None
            self.status.value = f"done in {time.perf_counter() - start:.1f} s"
        except StopRequested:
            self.status.value = "cancelled"
        except WslbenchError as exc:
            self.error = str(exc)
            self.status.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
        except Exception as exc:  # shown in the page, never as a traceback
            self.error = f"{type(exc).__name__}: {exc}"
            self.status.value = f"<span style='color:#b00'>{html.escape(self.error)}</span>"
        finally:
            self.runs += 1
            self.cancel_button.disabled = True
            self.run_button.disabled = False
        return self.result

    def wait(self, timeout: float = 30.0) -> None:
        """Block until scheduled and running work has finished (tests, scripts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                timer, thread = self._timer, self._thread
            if timer is not None and timer.is_alive():
                time.sleep(0.01)
                continue
            if thread is not None and thread.is_alive():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
                continue
            return

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
