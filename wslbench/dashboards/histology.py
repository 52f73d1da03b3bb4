"""Histology dashboard: class probabilities, the CAM of the chosen head, regions with area.

The models are the WSL networks of notebook ``02_wsl_histology`` (Rony 2020): a
ResNet backbone and a pooling head per model (``models/wsl-<head>.pt``), picked in
the *head* dropdown when the run saved several. The explanation is the class
activation map of the predicted class (upsampled to the patch, min–max scaled for
display); regions are the connected components of the CAM above half its range,
listed with their area (the localisation rule of chapter 2 binarises CAMs the
same way).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from wslbench.dashboards.app import DashboardApp
from wslbench.dashboards.findings import connected_regions
from wslbench.dashboards.model_source import LoadedModel, ModelSpec
from wslbench.dashboards.overlay import Analysis, OverlayView
from wslbench.dashboards.uploads import HISTOLOGY_POLICY, UploadedFile, decode_image
from wslbench.data.synthetic_histology import HISTOLOGY_TASKS, make_histology_dataset
from wslbench.experiments import wsl
from wslbench.pooling.postprocess import upsample_maps
from wslbench.progress import ProgressCallback

__all__ = ["SPEC", "HistologyModality", "analyse_histology", "build_dashboard"]


def _train(config: wsl.WSLConfig, progress: ProgressCallback | None) -> tuple[nn.Module, dict]:
    data = wsl.make_wsl_data(config)
    run = wsl.train_wsl(config, data, progress=progress)
    return run.model, {"val_accuracy": max(r["val_accuracy"] for r in run.history),
                       "best_epoch": float(run.best_epoch)}


def _estimate_s(config: wsl.WSLConfig) -> float:
    """Rough 2-core time: about 0.05 s per training image and epoch at 96 px, width 16."""
    train_images = config.n_images * (1 - config.test_fraction) * (1 - 1 / config.n_folds)
    scale = (config.image_size / 96) ** 2 * (config.base_width / 16) ** 2
    return 5 + config.epochs * train_images * 0.05 * scale


SPEC = ModelSpec(
    key="histology", notebook="02_wsl_histology", name="wsl-", prefix=True,
    fallback_name="wsl-gap", description="WSL network", metric="val_accuracy",
    metric_label="validation accuracy",
    make_config=lambda preset: wsl.wsl_config(preset, head="gap", size_loss="none"),
    config_from_dict=lambda d: wsl.wsl_config("demo", **{**d, "device": "cpu"}),
    build=lambda c: wsl.build_wsl_model(c, len(HISTOLOGY_TASKS[c.task])),
    train=_train, estimate_s=_estimate_s,
)


@torch.no_grad()
def analyse_histology(
    model: nn.Module, image: np.ndarray, config: wsl.WSLConfig, *, max_findings: int = 8
) -> Analysis:
    """Class probabilities, CAM of the predicted class and its regions for one patch.

    Args:
        model: a trained :class:`~wslbench.pooling.WSLModel`.
        image: ``(H, W, 3)`` float RGB in [0, 1] (centre square, resized to the model).
        config: the model's config (task, head, image size, size loss).
        max_findings: most regions listed.

    Returns:
        :class:`~wslbench.dashboards.overlay.Analysis` whose ``scores`` are the class
        probabilities (softmax of the head's scores; background excluded).
    """
    x = wsl.real_image_tensor(image, config)
    model.eval()
    out = model.predict(x)
    offset = int(config.background_channel)
    names = HISTOLOGY_TASKS[config.task]
    probs = wsl.image_scores(out, config)[0].softmax(0)
    predicted = int(probs.argmax())
    cam = upsample_maps(out.maps, tuple(x.shape[2:]))[0, predicted + offset].numpy()
    span = float(cam.max() - cam.min())
    cam = (cam - cam.min()) / span if span > 0 else np.zeros_like(cam)
    regions = connected_regions(cam, 0.5, min_area=max(4, cam.size // 2000), limit=max_findings)
    parts = " · ".join(f"{n} {float(p):.2f}" for n, p in zip(names, probs))
    decision = f"<b>Predicted: {names[predicted]} ({float(probs[predicted]):.2f})</b> — class probabilities: {parts}"
    title = f"CAM of '{names[predicted]}' ({config.head} head)"
    return Analysis(decision, {f"p_{n}": float(p) for n, p in zip(names, probs)}, regions,
                    x[0].permute(1, 2, 0).numpy(), cam, title)


@lru_cache(maxsize=4)
def _samples(task: str, size: int) -> dict[str, np.ndarray]:
    from wslbench.data import load_skimage_ihc

    ds = make_histology_dataset(4, size=size, seed=777, task=task)
    samples = {f"synthetic patch {i + 1} ({ds.class_names[int(ds.labels[i])]})":
               ds.images[i].permute(1, 2, 0).numpy() for i in range(len(ds.labels))}
    samples["scikit-image immunohistochemistry (real, crop)"] = load_skimage_ihc()[:256, :256]
    return samples


class HistologyModality:
    """The histology dashboard's :class:`~wslbench.dashboards.app.Modality`."""

    key = "histology"
    title = "Histology patch classification"
    intro = ("Pick a sample or upload a colour histology patch. The network gives the class "
             "probabilities and its class activation map (CAM), with the regions the CAM "
             "marks and their area. Research prototype: not a medical device.")
    spec = SPEC
    policy = HISTOLOGY_POLICY
    model_label = "head"

    def make_view(self) -> OverlayView:
        return OverlayView(cmap="auto", opacity=0.5, threshold=0.3)

    def samples(self, loaded: LoadedModel) -> dict[str, Callable[[], Any]]:
        images = _samples(loaded.config.task, max(64, loaded.config.image_size))
        return {label: (lambda img=img: img) for label, img in images.items()}

    def decode(self, upload: UploadedFile, loaded: LoadedModel) -> np.ndarray:
        return decode_image(upload, HISTOLOGY_POLICY)

    def analyse(self, loaded: LoadedModel, image: np.ndarray,
                progress: ProgressCallback | None) -> Analysis:
        return analyse_histology(loaded.model, image, loaded.config)


def build_dashboard(*, threaded: bool = True) -> DashboardApp:
    """The histology dashboard, started (model resolved in the background)."""
    return DashboardApp(HistologyModality(), threaded=threaded).start()
