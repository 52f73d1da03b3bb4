"""The dashboard frame every modality shares: model line, image choice, decision, findings, report.

A modality module (``fundus``, ``histology``, ``mri``…) supplies a :class:`Modality`:
its :class:`~wslbench.dashboards.model_source.ModelSpec`, upload policy, samples,
decoding and ``analyse`` function and the view that draws an
:class:`~wslbench.dashboards.overlay.Analysis`. :class:`DashboardApp` wires the
widgets: the model is resolved in a background thread (so Voila shows the page and
the training progress bar at once), then the first sample is analysed; picking a
sample or uploading a file re-runs the analysis; any failure becomes one line in
the page (never a traceback) and the previous result stays usable.

Adding a dashboard = one module defining a ``Modality`` and ``build_dashboard()``,
plus one notebook calling it.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import ipywidgets as widgets

from wslbench.dashboards.model_source import LoadedModel, ModelSpec, resolve_models
from wslbench.dashboards.overlay import Analysis, OverlayView
from wslbench.dashboards.report import build_report, download_link, report_name
from wslbench.dashboards.uploads import UploadedFile, UploadPolicy, read_upload
from wslbench.errors import WslbenchError
from wslbench.progress import ProgressCallback

__all__ = ["Modality", "DashboardApp", "error_text"]


class Modality(Protocol):
    """What a dashboard module provides (see :mod:`wslbench.dashboards.fundus`)."""

    key: str
    title: str
    intro: str
    spec: ModelSpec
    policy: UploadPolicy
    model_label: str

    def make_view(self) -> OverlayView: ...

    def samples(self, loaded: LoadedModel) -> Mapping[str, Callable[[], Any]]: ...

    def decode(self, upload: UploadedFile, loaded: LoadedModel) -> Any: ...

    def analyse(self, loaded: LoadedModel, image: Any,
                progress: ProgressCallback | None) -> Analysis: ...


def error_text(exc: BaseException) -> str:
    """The message shown for ``exc``: a wslbench error as is, anything else by type."""
    if isinstance(exc, WslbenchError):
        return str(exc)
    return f"Unexpected problem ({type(exc).__name__}): {html.escape(str(exc))[:300]}"


class DashboardApp:
    """Widgets and behaviour of one dashboard.

    Args:
        modality: the modality module's :class:`Modality`.
        runs: runs root override (default: resolved by the model store).
        threaded: resolve the model in a background thread (Voila); ``False`` runs
            everything synchronously (headless tests).
        debounce_s: slider debounce of the view (0 with ``threaded=False``).
    """

    def __init__(self, modality: Modality, *, runs: Path | None = None, threaded: bool = True,
                 debounce_s: float | None = None) -> None:
        self.modality = modality
        self.runs = runs
        self.threaded = threaded
        self.models: dict[str, LoadedModel] = {}
        self.analysis: Analysis | None = None
        self.source = ""
        self._input: Any = None
        self.ready = threading.Event()
        self.header = widgets.HTML(f"<p>{modality.intro}</p>")
        self.model_line = widgets.HTML("Loading the model…")
        self.model_line.add_class("wslbench-model")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="progress",
                                            layout=widgets.Layout(display="none"))
        self.progress_note = widgets.HTML()
        self.model_picker = widgets.Dropdown(description=modality.model_label,
                                             layout=widgets.Layout(display="none"))
        self.sample = widgets.Dropdown(description="sample", options=[], disabled=True,
                                       layout=widgets.Layout(width="420px"))
        self.upload = widgets.FileUpload(accept=modality.policy.accept, multiple=False,
                                         description="Upload a file", disabled=True)
        self.upload_hint = widgets.HTML(
            f"<small>or upload {modality.policy.what}, up to "
            f"{modality.policy.max_bytes // (1024 * 1024)} MB</small>")
        self.message = widgets.HTML()
        self.message.add_class("wslbench-message")
        self.decision = widgets.HTML()
        self.decision.add_class("wslbench-decision")
        self.view = modality.make_view()
        if not threaded:
            self.view.debouncer.delay_s = 0.0
        elif debounce_s is not None:
            self.view.debouncer.delay_s = debounce_s
        self.findings = widgets.Select(options=[("(no finding)", -1)], value=-1, rows=8,
                                       description="findings",
                                       layout=widgets.Layout(width="640px"))
        self.download = widgets.HTML()
        self.view.on_render.append(self._refresh_report)
        self.sample.observe(self._on_sample, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.findings.observe(self._on_finding, names="value")
        self.model_picker.observe(self._on_model, names="value")
        self.widget = widgets.VBox([
            self.header, self.model_line, widgets.HBox([self.progress, self.progress_note]),
            widgets.HBox([self.sample, self.upload, self.model_picker]), self.upload_hint,
            self.message, self.decision, self.view.widget, self.findings, self.download,
        ])

    # ------------------------------------------------------------------ model
    @property
    def loaded(self) -> LoadedModel:
        """The model in use (the picker's choice)."""
        return self.models[self.model_picker.value]

    def start(self) -> DashboardApp:
        """Resolve the model (in a thread unless ``threaded=False``), then show the first sample."""
        if self.threaded:
            threading.Thread(target=self._load_models, daemon=True).start()
        else:
            self._load_models()
        return self

    def _announce(self, text: str) -> None:
        self.model_line.value = html.escape(text)

    def _progress(self, step: int, total: int, logs: Mapping[str, float]) -> None:
        self.progress.layout.display = None
        self.progress.max = max(int(total), 1)
        self.progress.value = min(int(step), self.progress.max)
        self.progress_note.value = f"{step}/{total}"

    def _hide_progress(self) -> None:
        self.progress.layout.display = "none"
        self.progress_note.value = ""

    def _load_models(self) -> None:
        try:
            found = resolve_models(self.modality.spec, runs=self.runs, announce=self._announce,
                                   progress=self._progress)
        except Exception as exc:  # shown in the page, never as a traceback
            self.model_line.value = f"<b>No model available:</b> {error_text(exc)}"
            self._hide_progress()
            self.ready.set()
            return
        self._hide_progress()
        spec = self.modality.spec
        found.sort(key=lambda m: m.name != (spec.fallback_name or spec.name))  # the main one first
        self.models = {m.name: m for m in found}
        cut = len(spec.name) if spec.prefix else 0
        self.model_picker.options = [(m.name[cut:] or m.name, m.name) for m in found]
        self.model_picker.value = found[0].name
        if len(found) > 1:
            self.model_picker.layout.display = None
        self._describe_model()
        self.sample.options = list(self.modality.samples(self.loaded))
        self.sample.disabled = False
        self.upload.disabled = False
        self.sample.value = self.sample.options[0]  # analyses the first sample
        self.ready.set()

    def _describe_model(self) -> None:
        self.model_line.value = "<b>Model:</b> " + self.loaded.describe(self.modality.spec)

    def _on_model(self, _change: object) -> None:
        if self.models and self.model_picker.value in self.models:
            self._describe_model()
            if self._input is not None:
                self._analyse(lambda: self._input, self.source)

    # ------------------------------------------------------------------ input
    def _on_sample(self, change: Mapping[str, Any]) -> None:
        label = change["new"]
        if label is None or not self.models:
            return
        loader = self.modality.samples(self.loaded)[label]
        self._analyse(loader, f"sample: {label}")

    def _on_upload(self, change: Mapping[str, Any]) -> None:
        try:
            upload = read_upload(change["new"])
        except WslbenchError as exc:
            self._error(str(exc))
            return
        if upload is None or not self.models:
            return
        self._analyse(lambda: self.modality.decode(upload, self.loaded),
                      f"upload: {upload.shown_name}")
        self.upload.value = ()  # so the same file can be chosen again

    def _error(self, text: str) -> None:
        self.message.value = f"<div style='color:#b00020;font-weight:600'>⚠ {text}</div>"

    def _analyse(self, make_input: Callable[[], Any], source: str) -> None:
        """Decode and analyse; on failure show the message and keep the previous result."""
        self.message.value = "<i>Analysing…</i>"
        try:
            image = make_input()
            analysis = self.modality.analyse(self.loaded, image, self._progress)
        except Exception as exc:  # shown in the page, never as a traceback
            self._error(error_text(exc))
            self._hide_progress()
            return
        self._hide_progress()
        self._input, self.source, self.analysis = image, source, analysis
        self.message.value = ""
        notes = "".join(f"<br><small>{note}</small>" for note in analysis.notes)
        self.decision.value = (f"<div style='font-size:1.15em'>{analysis.decision}</div>"
                               f"<small>image: {source}</small>{notes}")
        self.findings.unobserve(self._on_finding, names="value")
        self.findings.options = [("(no finding selected)", -1)] + [
            (f"{i + 1}. {f.describe()}", i) for i, f in enumerate(analysis.findings)]
        self.findings.value = -1
        self.findings.observe(self._on_finding, names="value")
        self.view.show(analysis)

    def _on_finding(self, change: Mapping[str, Any]) -> None:
        index = change["new"]
        self.view.select(None if index is None or index < 0 else int(index))

    # ------------------------------------------------------------------ report
    def report_bytes(self) -> bytes:
        """The current report zip (see :func:`~wslbench.dashboards.report.build_report`)."""
        if self.analysis is None:
            return b""
        summary = {"dashboard": self.modality.title, "decision": self.analysis.decision,
                   "scores": self.analysis.scores, "image": self.source,
                   "model": self.loaded.name, "model_metrics": self.loaded.metrics,
                   "overlay": self.analysis.overlay_title,
                   "opacity": self.view.opacity.value, "threshold": self.view.threshold.value}
        return build_report(self.view.png, self.analysis.findings, summary)

    def _refresh_report(self) -> None:
        data = self.report_bytes()
        if data:
            self.download.value = download_link(data, report_name(self.modality.key, self.source))

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
