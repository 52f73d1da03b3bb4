"""Headless logic of the dashboards: model source, uploads, findings, report, analyses, app."""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from wslbench.checkpoint import save_checkpoint
from wslbench.dashboards import fundus, histology, mri
from wslbench.dashboards.app import DashboardApp
from wslbench.dashboards.findings import Finding, connected_regions, findings_csv
from wslbench.dashboards.index import dashboard_entries
from wslbench.dashboards.model_source import (
    ModelSpec,
    dashboard_preset,
    describe_duration,
    resolve_models,
)
from wslbench.dashboards.overlay import Debouncer
from wslbench.dashboards.report import build_report, download_link, report_name
from wslbench.dashboards.uploads import (
    FUNDUS_POLICY,
    HISTOLOGY_POLICY,
    MRI_POLICY,
    UploadedFile,
    UploadPolicy,
    decode_image,
    decode_nifti,
    read_upload,
)
from wslbench.data.synthetic_fundus import make_fundus_case
from wslbench.data.synthetic_mri import mni_grid
from wslbench.errors import ConfigError, DataFormatError, InvalidInputError
from wslbench.progress import report
from wslbench.runner.model_store import model_payload

ROOT = Path(__file__).resolve().parents[1]


def _png_bytes(image: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def _nifti_bytes(data: np.ndarray, affine: np.ndarray, compress: bool = True) -> bytes:
    raw = nib.Nifti1Image(data.astype(np.float32), affine).to_bytes()
    return gzip.compress(raw) if compress else raw


@pytest.fixture(scope="module")
def colour() -> np.ndarray:
    return make_fundus_case(3, 128, 3).image


# --------------------------------------------------------------------------- model source


@dataclass(frozen=True)
class ToyConfig:
    hidden: int = 2


def _toy_spec(calls: list[str]) -> ModelSpec:
    def train(config, progress):  # noqa: ANN001, ANN202
        calls.append("train")
        for step in range(1, 4):
            report(progress, step, 3)
        return nn.Linear(config.hidden, 1), {"auc": 0.7}

    return ModelSpec(key="toy", notebook="01_dr_heatmaps", name="toy", description="toy net",
                     metric="auc", metric_label="validation AUC",
                     make_config=lambda preset: ToyConfig(hidden=2 if preset == "smoke" else 3),
                     config_from_dict=lambda d: ToyConfig(**d),
                     build=lambda c: nn.Linear(c.hidden, 1), train=train,
                     estimate_s=lambda c: 30.0)


def test_fallback_trains_once_announces_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("WSLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[str] = []
    spec = _toy_spec(calls)
    said, steps = [], []
    first = resolve_models(spec, runs=tmp_path / "runs", preset="smoke", announce=said.append,
                           progress=lambda s, t, logs: steps.append(s))
    assert calls == ["train"] and steps == [1, 2, 3]
    assert "about 30 seconds" in said[0] and "smoke" in said[0]
    assert first[0].source == "trained" and "validation AUC 0.700" in first[0].describe(spec)
    again = resolve_models(spec, runs=tmp_path / "runs", preset="smoke")
    assert calls == ["train"] and again[0].source == "cache"
    assert torch.equal(again[0].model.weight, first[0].model.weight)
    cached = list((tmp_path / "cache").glob("toy-smoke-*.pt"))
    assert len(cached) == 1
    cached[0].write_bytes(b"garbage")
    resolve_models(spec, runs=tmp_path / "runs", preset="smoke")
    assert calls == ["train", "train"], "a corrupt cache entry is retrained"


def test_a_completed_run_is_preferred_to_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WSLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[str] = []
    spec = _toy_spec(calls)
    run = tmp_path / "runs" / "01_dr_heatmaps" / "20260101T000000Z-aa"
    (run / "models").mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"status": "succeeded", "ended": 1.0}))
    save_checkpoint(model_payload("toy", nn.Linear(3, 1), config=ToyConfig(3), metrics={"auc": 0.9},
                                  notebook="01_dr_heatmaps", preset="demo"), run / "models" / "toy.pt")
    found = resolve_models(spec, runs=tmp_path / "runs", preset="smoke")
    assert calls == [] and found[0].source == "run" and found[0].config == ToyConfig(3)
    assert "run 01_dr_heatmaps/20260101T000000Z-aa" in found[0].describe(spec)


def test_dashboard_preset_env(monkeypatch):
    monkeypatch.delenv("WSLBENCH_DASHBOARD_PRESET", raising=False)
    assert dashboard_preset() == "demo"
    monkeypatch.setenv("WSLBENCH_DASHBOARD_PRESET", "paper")
    with pytest.raises(ConfigError, match="smoke, demo"):
        dashboard_preset()
    assert describe_duration(400) == "about 7 minutes"


# --------------------------------------------------------------------------- uploads


def test_read_upload_takes_ipywidgets8_values():
    value = ({"name": "a.png", "type": "image/png", "size": 3, "content": memoryview(b"abc")},)
    upload = read_upload(value)
    assert upload == UploadedFile("a.png", b"abc")
    assert read_upload(()) is None


def test_valid_colour_images_decode(colour):
    png = decode_image(UploadedFile("eye.PNG", _png_bytes(colour)), FUNDUS_POLICY)
    jpg = decode_image(UploadedFile("eye.jpg", _png_bytes(colour, "JPEG")), FUNDUS_POLICY)
    tif = decode_image(UploadedFile("patch.tiff", _png_bytes(colour, "TIFF")), HISTOLOGY_POLICY)
    for image in (png, jpg, tif):
        assert image.shape == (128, 128, 3) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
    assert np.abs(png - colour).max() < 1 / 255 + 1e-6


@pytest.mark.parametrize(("name", "content", "policy", "error", "match"), [
    ("empty.png", b"", FUNDUS_POLICY, DataFormatError, "empty"),
    ("eye.gif", b"GIF89a....", FUNDUS_POLICY, DataFormatError, "extension"),
    ("eye.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, FUNDUS_POLICY, DataFormatError, "could not be decoded"),
    ("eye.png", b"hello world, not an image", FUNDUS_POLICY, DataFormatError, "not a readable"),
    ("brain.png", _nifti_bytes(np.ones((8, 8, 8)), np.eye(4), compress=False), FUNDUS_POLICY,
     DataFormatError, "NIfTI volume"),
])
def test_bad_image_uploads_get_clear_messages(name, content, policy, error, match):
    with pytest.raises(error, match=match) as info:
        decode_image(UploadedFile(name, content), policy)
    assert "expect" in str(info.value)


def test_size_pixel_and_colour_limits(colour):
    small = UploadPolicy("a test image", ("png",), (".png",), max_bytes=100)
    with pytest.raises(InvalidInputError, match="limit here is"):
        decode_image(UploadedFile("big.png", _png_bytes(colour)), small)
    with pytest.raises(InvalidInputError, match="only 1×1 pixels"):
        decode_image(UploadedFile("dot.png", _png_bytes(np.ones((1, 1, 3)) * 0.3)), FUNDUS_POLICY)
    grey = np.repeat(colour.mean(axis=2, keepdims=True), 3, axis=2)
    with pytest.raises(InvalidInputError, match="grey-level image; expected a colour fundus"):
        decode_image(UploadedFile("grey.png", _png_bytes(grey)), FUNDUS_POLICY)
    with pytest.raises(InvalidInputError, match="blank"):
        decode_image(UploadedFile("flat.png", _png_bytes(np.full((64, 64, 3), [0.5, 0.2, 0.1]))),
                     HISTOLOGY_POLICY)


def test_uploaded_names_are_escaped_not_used_as_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "../../<script>alert(1)</script>.png"
    with pytest.raises(DataFormatError) as info:
        decode_image(UploadedFile(name, b"\x89PNG\r\n\x1a\n junk"), FUNDUS_POLICY)
    assert "<script>" not in str(info.value) and "&lt;script&gt;" in str(info.value)
    assert not any(tmp_path.iterdir()), "nothing is written"


def test_nifti_uploads_decode_and_refuse_bad_files(colour):
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    volume = np.random.default_rng(0).random((10, 12, 14)).astype(np.float32)
    for compress, name in ((True, "s.nii.gz"), (False, "s.nii")):
        decoded = decode_nifti(UploadedFile(name, _nifti_bytes(volume, affine, compress)))
        assert np.array_equal(decoded.data, volume) and np.array_equal(decoded.affine, affine)
    good = _nifti_bytes(volume, affine)
    with pytest.raises(DataFormatError, match="2D PNG image; the MRI dashboard expects"):
        decode_nifti(UploadedFile("photo.nii", _png_bytes(colour)), MRI_POLICY)
    with pytest.raises(DataFormatError, match="truncated gzip"):
        decode_nifti(UploadedFile("cut.nii.gz", good[: len(good) // 2]), MRI_POLICY)
    with pytest.raises(InvalidInputError, match="one 3D volume"):
        decode_nifti(UploadedFile("4d.nii.gz", _nifti_bytes(np.ones((9, 9, 9, 2)), affine)))
    with pytest.raises(DataFormatError, match="NaN"):
        decode_nifti(UploadedFile("nan.nii.gz", _nifti_bytes(np.full((9, 9, 9), np.nan), affine)))
    bomb = UploadPolicy("a volume", ("nifti",), (".nii.gz",), max_bytes=10**6, max_decoded_bytes=1000,
                        colour=False)
    with pytest.raises(InvalidInputError, match="unpacks to more than"):
        decode_nifti(UploadedFile("bomb.nii.gz", good), bomb)


# --------------------------------------------------------------------------- findings and report


def test_connected_regions_and_csv():
    heat = np.zeros((20, 20))
    heat[2:6, 2:8] = 0.9
    heat[12:18, 12:14] = 0.6
    heat[0, 19] = 1.0  # one pixel: below min_area
    regions = connected_regions(heat, 0.5, min_area=4)
    assert [r.label for r in regions] == ["region 1", "region 2"]
    assert regions[0].size == 24 and regions[0].box == (2, 2, 6, 8)
    assert regions[1].position == (14.5, 12.5)
    text = findings_csv(regions)
    assert text.splitlines()[0] == "rank,kind,label,score,row,col,size"
    assert findings_csv([]).startswith("rank,kind,label,score")


def test_report_zip_and_download_link():
    findings = [Finding("lesion", "hemorrhage", 0.5, (3.0, 4.0))]
    data = build_report(b"\x89PNG fake", findings, {"decision": "p = 0.5"})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["findings.csv", "findings.json", "overlay.png"]
        report = json.loads(archive.read("findings.json"))
        assert report["summary"]["decision"] == "p = 0.5"
        assert report["findings"][0] == {"rank": 1, "kind": "lesion", "label": "hemorrhage",
                                         "score": 0.5, "row": 3.0, "col": 4.0, "size": None}
        assert archive.read("overlay.png") == b"\x89PNG fake"
    name = report_name("fundus", "upload: ../../<evil>.png")
    assert name.startswith("fundus-upload-evil-png-") and name.endswith(".zip") and "/" not in name
    link = download_link(data, name)
    assert f'download="{name}"' in link and "data:application/zip;base64," in link


# --------------------------------------------------------------------------- analyses


def _file(name: str, content: bytes) -> tuple[dict, ...]:
    """A FileUpload value as ipywidgets 8 sends it."""
    return ({"name": name, "type": "", "size": len(content),
             "last_modified": datetime.fromtimestamp(0, UTC), "content": memoryview(content)},)


def _untrained(spec: ModelSpec):  # noqa: ANN202
    config = spec.make_config("smoke")
    torch.manual_seed(0)
    return spec.build(config).eval(), config


def test_analyse_fundus(colour):
    model, config = _untrained(fundus.SPEC)
    result = fundus.analyse_fundus(model, colour, config)
    assert 0.0 <= result.scores["referable_probability"] <= 1.0
    assert result.overlay.shape == (config.input_size, config.input_size)
    assert result.image.shape == (config.input_size, config.input_size, 3)
    assert (result.overlay >= 0).all() and "Referable DR probability" in result.decision
    assert len(result.findings) <= 8
    for f in result.findings:
        assert f.kind == "lesion" and 0 <= f.position[0] < config.input_size
        assert f.label in {"microaneurysm", "hemorrhage", "hard exudate", "cotton-wool spot",
                           "lesion (type unknown)"}
    assert [f.score for f in result.findings] == sorted((f.score for f in result.findings), reverse=True)


def test_lesion_type_guess_follows_colour_contrast():
    photo = np.full((64, 64, 3), [0.8, 0.4, 0.2], np.float32)
    fov = np.ones((64, 64), bool)
    dark = photo.copy()
    dark[30:33, 30:33] = [0.3, 0.05, 0.05]
    bright = photo.copy()
    bright[30:33, 30:33] = [1.0, 0.95, 0.2]
    white = photo.copy()
    white[30:33, 30:33] = [0.95, 0.9, 0.9]
    assert fundus.guess_lesion_type(dark, 31, 31, fov) == "microaneurysm"
    assert fundus.guess_lesion_type(bright, 31, 31, fov) == "hard exudate"
    assert fundus.guess_lesion_type(white, 31, 31, fov) == "cotton-wool spot"


def test_analyse_histology(colour):
    model, config = _untrained(histology.SPEC)
    result = histology.analyse_histology(model, colour, config)
    probs = [v for k, v in result.scores.items() if k.startswith("p_")]
    assert len(probs) == 2 and abs(sum(probs) - 1.0) < 1e-5
    assert result.overlay.shape == (config.image_size, config.image_size)
    assert 0.0 <= result.overlay.min() and result.overlay.max() <= 1.0
    assert all(f.kind == "region" and f.size and f.box for f in result.findings)


def test_analyse_mri_and_uploads_to_the_model_grid():
    from wslbench.dashboards.uploads import DecodedVolume
    from wslbench.data.parcellation import default_parcellation
    from wslbench.data.synthetic_mri import make_synthetic_cohort

    model, config = _untrained(mri.SPEC)
    cohort = make_synthetic_cohort(1, 1, grid=config.grid, seed=1)
    volume = cohort.volumes[0, 0].numpy()
    atlas = default_parcellation(grid=config.grid)
    steps = []
    result = mri.analyse_mri(model, volume, config, atlas, iterations=3,
                             progress=lambda s, t, logs: steps.append(s))
    assert steps[-1] == 3 and 0.0 <= result.scores["ad_probability"] <= 1.0
    assert result.overlay.shape == volume.shape and (result.overlay >= 0).all()
    densities = [f.score for f in result.findings]
    assert densities == sorted(densities, reverse=True) and len(densities) <= 10
    assert all(len(f.position) == 3 and f.label in atlas.names for f in result.findings)
    grid = mni_grid(config.grid)
    same, notes = mri.to_model_grid(DecodedVolume(volume, grid.affine), config.grid)
    assert np.array_equal(same, volume) and notes == ()
    fine = mni_grid("paper")
    upsampled = np.asarray(cohort.volumes[0, 0].numpy()).repeat(2, 0).repeat(2, 1).repeat(2, 2)
    big = DecodedVolume(upsampled[: fine.shape[0], : fine.shape[1], : fine.shape[2]].copy(), fine.affine)
    resampled, notes = mri.to_model_grid(big, config.grid)
    assert resampled.shape == grid.shape and "resampled" in notes[0]
    far = grid.affine.copy()
    far[:3, 3] += 1000.0
    with pytest.raises(InvalidInputError, match="covers only 0 %"):
        mri.to_model_grid(DecodedVolume(volume, far), config.grid)
    with pytest.raises(InvalidInputError, match="gray-matter"):
        mri.to_model_grid(DecodedVolume(volume - 1.0, grid.affine), config.grid)
    assert "WARNING: this model is at chance" in result.decision, "no known score: warn"
    learned = mri.analyse_mri(model, volume, config, atlas, iterations=1, val_balanced_accuracy=0.9)
    assert "WARNING" not in learned.decision
    at_chance = mri.analyse_mri(model, volume, config, atlas, iterations=1, val_balanced_accuracy=0.5)
    assert at_chance.decision.index("WARNING") < at_chance.decision.index("AD probability")


# --------------------------------------------------------------------------- app and widgets


def test_debouncer_merges_rapid_calls_and_the_last_value_wins():
    seen, state = [], {"value": 0}
    debounce = Debouncer(lambda: seen.append(state["value"]), 0.1)
    for i in range(50):
        state["value"] = i
        debounce.schedule()
    time.sleep(0.4)
    assert seen == [49]


def test_fundus_app_headless(tmp_path, monkeypatch, colour):
    model, config = _untrained(fundus.SPEC)
    run = tmp_path / "runs" / "01_dr_heatmaps" / "20260101T000000Z-aa"
    (run / "models").mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"status": "succeeded", "ended": 1.0}))
    save_checkpoint(model_payload("dr", model, config=config, metrics={"val_image_auc": 0.8},
                                  notebook="01_dr_heatmaps", preset="smoke"), run / "models" / "dr.pt")
    monkeypatch.setenv("WSLBENCH_RUNS_DIR", str(tmp_path / "runs"))
    app = fundus.build_dashboard(threaded=False)
    assert "20260101T000000Z-aa" in app.model_line.value and "0.800" in app.model_line.value
    assert app.analysis is not None and app.view.png and "synthetic case 1" in app.decision.value
    first = app.view.png
    app.view.opacity.value = 0.1
    assert app.view.png != first and "opacity 0.10" in app.view.caption.value
    if app.analysis.findings:
        before = app.view.png
        app.findings.value = 0
        assert app.view.png != before
    good = app.view.png
    app.upload.value = _file("bad.png", b"\x89PNG\r\n\x1a\nxx")
    assert "bad.png" in app.message.value and app.view.png == good, "previous result kept"
    app.upload.value = _file("mine.png", _png_bytes(colour))
    assert app.message.value == "" and "upload: mine.png" in app.decision.value
    with zipfile.ZipFile(io.BytesIO(app.report_bytes())) as archive:
        summary = json.loads(archive.read("findings.json"))["summary"]
    assert summary["image"] == "upload: mine.png" and summary["model"] == "dr"
    assert "download=" in app.download.value


def test_a_missing_model_is_a_message_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("WSLBENCH_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("WSLBENCH_DASHBOARD_PRESET", "huge")
    app = DashboardApp(histology.HistologyModality(), threaded=False).start()
    assert "No model available" in app.model_line.value and "huge" in app.model_line.value
    assert app.sample.disabled and app.analysis is None


def test_index_lists_the_dashboards():
    entries = {name: title for name, title, _ in dashboard_entries(ROOT / "notebooks" / "dashboards")}
    assert {"fundus.ipynb", "histology.ipynb", "mri.ipynb"} <= set(entries)
    assert "index.ipynb" not in entries and "fundus" in entries["fundus.ipynb"].lower()


def test_histology_head_picker_switches_the_cam(tmp_path, monkeypatch):
    from wslbench.experiments import wsl

    run = tmp_path / "runs" / "02_wsl_histology" / "20260101T000000Z-aa"
    (run / "models").mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"status": "succeeded", "ended": 1.0}))
    for head in ("lse", "gap"):
        config = wsl.wsl_config("smoke", head=head)
        model = histology.SPEC.build(config)
        save_checkpoint(model_payload(f"wsl-{head}", model, config=config, metrics={"val_accuracy": 0.5},
                                      notebook="02_wsl_histology", preset="smoke"),
                        run / "models" / f"wsl-{head}.pt")
    monkeypatch.setenv("WSLBENCH_RUNS_DIR", str(tmp_path / "runs"))
    app = histology.build_dashboard(threaded=False)
    assert app.model_picker.options == (("gap", "wsl-gap"), ("lse", "wsl-lse"))
    assert app.model_picker.layout.display is None, "the head dropdown is shown"
    assert "gap head" in app.analysis.overlay_title
    app.model_picker.value = "wsl-lse"
    assert "lse head" in app.analysis.overlay_title and "wsl-lse" in app.model_line.value


# --------------------------------------------------------------------------- cell counting


def _cells_run(seed: int = 0):  # noqa: ANN202
    from wslbench.experiments import cnncs

    config = cnncs.cnncs_config("smoke")
    torch.manual_seed(seed)
    model = cnncs.build_cnncs(config).eval()
    model.code_scale.fill_(30.0)  # the scale training gives signed-distance labels (px)
    return cnncs.CNNCSTraining(model, config, [], 0.0)


def _cell_field(size: int = 96, seed: int = 3):  # noqa: ANN202
    from wslbench.data.synthetic_cells import CellImageConfig, make_cell_dataset

    ds = make_cell_dataset(1, CellImageConfig(size=size), seed=seed)
    return np.moveaxis(ds.images[0], 0, -1).astype(np.float32), ds.centroids[0]


def test_cached_image_codes_decode_like_detect_in_image():
    from wslbench.experiments import cnncs

    run = _cells_run()
    image, _ = _cell_field(128)
    codes = cnncs.image_codes(run, image)
    assert codes.shape == (128, 128) and len(codes.origins) == len(codes.dense) == len(codes.sparse)
    for threshold in (0.05, 0.2):
        cached = cnncs.decode_image_codes(run, codes, threshold=threshold)
        direct = cnncs.detect_in_image(run, image, threshold=threshold)
        assert np.array_equal(cached.centres, direct) and cached.support.shape == (len(direct),)
    low = cnncs.decode_image_codes(run, codes, threshold=0.05)
    high = cnncs.decode_image_codes(run, codes, threshold=0.9)
    assert len(low.candidates) > len(high.candidates) and (low.support >= 1).all()
    with pytest.raises(InvalidInputError, match="patch size 48"):
        cnncs.image_codes(run, image[:40, :40])


def test_decode_image_codes_finds_the_cells_of_true_codes():
    """Tiles carrying the true sparse codes of their cells decode to the true centres."""
    from wslbench.data.cell_patches import crop_centroids
    from wslbench.experiments import cnncs

    run = _cells_run()
    image, truth = _cell_field(128, seed=5)
    codes = cnncs.image_codes(run, image)
    codec, size = run.model.codec, run.config.patch_size
    limits = np.array([codec.height, codec.width], float)
    inside = [np.clip(crop_centroids(truth, o, size=size), 0, limits) for o in codes.origins]
    true_codes = cnncs.ImageCodes(codes.dense, codec.sparse(inside).float(), codes.origins,
                                  codes.shape, codes.bandwidth)
    found = cnncs.decode_image_codes(run, true_codes, threshold=0.5)
    assert len(truth) >= 2 and len(found.centres) == len(truth)
    distance = np.hypot(*(found.centres[:, None] - truth[None]).transpose(2, 0, 1)).min(1)
    assert distance.max() < 2.0


def test_analyse_cells_and_threshold_redecodes_without_the_cnn(monkeypatch):
    from wslbench.dashboards import cells
    from wslbench.experiments import cnncs

    run = _cells_run()
    image, truth = _cell_field(96)
    steps = []
    result = cells.analyse_cells(run, cells.CellInput(image, truth), threshold=0.05,
                                 progress=lambda s, t, logs: steps.append(s))
    assert steps == [1, 2] and result.image.shape == (96, 96, 3)
    assert result.overlay.shape == (96, 96) and 0 <= result.overlay.min() and result.overlay.max() == 1
    count = int(result.scores["cell_count"])
    assert count == len(result.findings) > 0 and f"Cell count: {count}" in result.decision
    assert f"true count {len(truth)}" in result.decision and result.scores["true_count"] == len(truth)
    assert all(f.kind == "cell" and f.size is None and 0 <= f.position[0] < 96 for f in result.findings)
    assert [f.score for f in result.findings] == sorted((f.score for f in result.findings), reverse=True)

    def no_cnn(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the CNN ran again")

    monkeypatch.setattr(cnncs, "predict_codes", no_cnn)
    monkeypatch.setattr(run.model, "forward", no_cnn)
    # 8 px: twice the presets' 4-px threshold on signed distances (an untrained CNN's codes
    # are distances of tens of px, so a sub-pixel threshold hardly prunes any peak)
    assert cells.redecode(result, 8.0) and not cells.redecode(result, 8.0)
    assert result.scores["threshold"] == 8.0 and "threshold 8.00" in result.overlay_title
    assert len(result.findings) == result.scores["cell_count"] < count
    cells.redecode(result, 0.0)  # the decoder needs a positive threshold: the slider's minimum
    assert result.scores["threshold"] == cells.MIN_THRESHOLD


def test_cell_uploads_are_prepared_for_the_detector():
    from wslbench.dashboards import cells
    from wslbench.dashboards.uploads import MICROSCOPY_POLICY

    grey = np.random.default_rng(0).random((70, 90)).astype(np.float32)
    decoded = decode_image(UploadedFile("phase.png", _png_bytes(grey)), MICROSCOPY_POLICY)
    item = cells.prepare_upload(decoded, 48)
    assert item.image.shape == (70, 90, 3) and item.truth is None and item.notes == ()
    assert np.array_equal(item.image[..., 0], item.image[..., 2])
    with pytest.raises(InvalidInputError, match="at least 48 pixels per side"):
        cells.prepare_upload(grey[:40], 48, name="tiny.png")
    big = cells.prepare_upload(np.zeros((700, 600, 3), np.float32), 48)
    assert big.image.shape == (512, 512, 3) and "600×700" in big.notes[0]
    with pytest.raises(DataFormatError, match="JPEG image, but this dashboard expects a microscopy"):
        decode_image(UploadedFile("cells.png", _png_bytes(np.dstack([grey] * 3), "JPEG")),
                     MICROSCOPY_POLICY)


def test_cell_training_estimate_grows_with_the_preset():
    from wslbench.dashboards import cells
    from wslbench.experiments import cnncs

    smoke, demo = (cells.SPEC.estimate_s(cnncs.cnncs_config(p)) for p in ("smoke", "demo"))
    assert smoke < 60 < demo < 20 * 60
    assert describe_duration(demo).endswith("minutes")


def test_cells_app_headless(tmp_path, monkeypatch):
    from wslbench.dashboards import cells

    run_model = _cells_run()
    run = tmp_path / "runs" / "04_cnncs_cells" / "20260101T000000Z-aa"
    (run / "models").mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"status": "succeeded", "ended": 1.0}))
    save_checkpoint(model_payload("cnncs", run_model.model, config=run_model.config,
                                  metrics={"f1": 0.42, "precision": 0.5, "recall": 0.4},
                                  notebook="04_cnncs_cells", preset="smoke"), run / "models" / "cnncs.pt")
    monkeypatch.setenv("WSLBENCH_RUNS_DIR", str(tmp_path / "runs"))
    app = cells.build_dashboard(threaded=False)
    assert "run 04_cnncs_cells/20260101T000000Z-aa" in app.model_line.value
    assert "held-out F1 (synthetic test patches) 0.420" in app.model_line.value
    assert any("scikit-image" in label for label in app.sample.options)
    assert "Cell count:" in app.decision.value and "true count" in app.decision.value
    assert "synthetic field 1" in app.decision.value

    decodes = []
    real = cells.cnncs.decode_image_codes
    monkeypatch.setattr(cells.cnncs, "decode_image_codes",
                        lambda *a, **k: decodes.append(k["threshold"]) or real(*a, **k))
    first = app.view.png
    app.view.opacity.value = 0.9
    assert app.view.png != first and decodes == [], "opacity only redraws"
    app.view.threshold.value = 0.05
    low = int(app.analysis.scores["cell_count"])
    assert decodes == [0.05] and f"Cell count: {low}" in app.decision.value
    assert len(app.findings.options) == low + 1 and "threshold 0.05" in app.view.caption.value
    app.findings.value = 0
    selected = app.view.png
    app.view.threshold.value = 8.0  # px, twice the presets' threshold
    high = int(app.analysis.scores["cell_count"])
    assert high < low and len(app.findings.options) == high + 1 and app.findings.value == -1
    assert app.view.selected is None and app.view.png != selected
    with zipfile.ZipFile(io.BytesIO(app.report_bytes())) as archive:
        summary = json.loads(archive.read("findings.json"))["summary"]
        assert summary["scores"]["cell_count"] == high and summary["threshold"] == 8.0
        assert archive.read("findings.csv").decode().startswith("rank,kind,label,score")

    app.view.threshold.value = 0.05
    app.upload.value = _file("cells.png", _png_bytes(_cell_field(128, seed=9)[0]))
    assert app.message.value == "" and "upload: cells.png" in app.decision.value
    assert "true count" not in app.decision.value and app.analysis.image.shape == (128, 128, 3)
    assert app.analysis.scores["threshold"] == 0.05, "a new image is decoded at the slider's threshold"
    with zipfile.ZipFile(io.BytesIO(app.report_bytes())) as archive:
        rows = archive.read("findings.csv").decode().splitlines()
    assert len(rows) == int(app.analysis.scores["cell_count"]) + 1 and ",cell,cell 1," in rows[1]
    good = app.view.png
    for name, content, text in (
        ("broken.tif", b"II*\x00" + bytes(300), "could not be decoded"),
        ("tiny.png", _png_bytes(np.random.default_rng(1).random((40, 40))), "at least 48 pixels"),
        ("empty.png", b"", "empty"),
    ):
        app.upload.value = _file(name, content)
        assert name in app.message.value and text in app.message.value
        assert app.view.png == good and "upload: cells.png" in app.decision.value


def test_index_lists_the_cell_dashboard():
    entries = {name: title for name, title, _ in dashboard_entries(ROOT / "notebooks" / "dashboards")}
    assert "cell counting" in entries["cells.ipynb"].lower()
