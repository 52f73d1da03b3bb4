"""Cell-detection data (Xue et al., 4.2-4.3): generator, patches, real-folder loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy.ndimage import center_of_mass, gaussian_filter
from scipy.optimize import linear_sum_assignment
from skimage.feature import peak_local_max

from wslbench.data.cell_loaders import load_cell_folder, read_cell_csv
from wslbench.data.cell_patches import (
    crop_centroids,
    extract_cell_patches,
    merge_tile_detections,
    patch_origins,
    rotate_centroids,
    rotate_patch,
    tile_image,
    tile_origins,
)
from wslbench.data.synthetic_cells import (
    CellImageConfig,
    make_cell_dataset,
    render_cell_image,
    sample_cell_record,
)
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError


@pytest.fixture(scope="module")
def cells256():
    return make_cell_dataset(6, CellImageConfig(size=256), seed=3)


# --------------------------------------------------------------------------- generator


def test_same_seed_same_data_and_different_seed_differs():
    cfg = CellImageConfig(size=64, target_mean=2.0)
    a, b = make_cell_dataset(3, cfg, seed=11), make_cell_dataset(3, cfg, seed=11)
    c = make_cell_dataset(3, cfg, seed=12)
    np.testing.assert_array_equal(a.images, b.images)
    assert all(np.array_equal(x, y) for x, y in zip(a.centroids, b.centroids))
    assert a.records == b.records
    assert not np.array_equal(a.images, c.images)


def test_record_replay_equals_original(cells256):
    for i in (0, 3):
        case = render_cell_image(cells256.records[i])
        np.testing.assert_array_equal(case.image.transpose(2, 0, 1), cells256.images[i])
        np.testing.assert_array_equal(case.labels, cells256.labels[i])
        np.testing.assert_array_equal(case.centroids, cells256.centroids[i])


@pytest.mark.parametrize("size", [64, 256])
def test_layout_sizes_and_centroids_inside(size):
    ds = make_cell_dataset(3, CellImageConfig(size=size, target_mean=3.0), seed=5)
    assert ds.images.shape == (3, 3, size, size) and ds.images.dtype == np.float32
    assert ds.labels.shape == (3, size, size) and ds.labels.dtype == np.int32
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    for cents, lab in zip(ds.centroids, ds.labels):
        assert cents.dtype == np.float64 and cents.shape == (len(cents), 2)
        assert np.all((cents >= 0) & (cents <= size - 1))
        assert lab.max() == len(cents)
    assert sum(len(c) for c in ds.centroids) > 0


def test_centroids_are_mask_centres_and_radius_is_smallest(cells256):
    radii = []
    for cents, lab, rec in zip(cells256.centroids, cells256.labels, cells256.records):
        for k, (cent, t) in enumerate(zip(cents, rec.targets)):
            m = lab == k + 1
            assert np.hypot(*(np.array(center_of_mass(m)) - cent)) < 1.0
            assert 0.75 < m.sum() / (np.pi * t.radius ** 2) < 1.3
            radii.append(t.radius)
    assert len(radii) >= 10
    assert cells256.min_radius == min(radii)
    assert cells256.config.target_radius[0] <= cells256.min_radius
    np.testing.assert_array_equal(cells256.counts(), [len(c) for c in cells256.centroids])


def test_targets_darker_than_clutter_nuclei():
    for seed in (1, 2):
        case = render_cell_image(sample_cell_record(seed, CellImageConfig(size=256)))
        grey = case.image.mean(axis=2)
        assert case.mask.any() and case.clutter_mask.any()
        assert grey[case.mask].mean() < grey[case.clutter_mask & ~case.mask].mean() - 0.05
    kinds = set(sample_cell_record(4, CellImageConfig(size=512)).clutter.kind)
    assert kinds == {"normal", "lymphocyte", "pyknotic", "spindle"}


def _floor_f1(ds) -> float:
    """Best F1 (oracle threshold) of local maxima of a smoothed optical density."""
    od = -np.log10(np.clip(ds.images.mean(axis=1), 1e-3, 1.0))
    dark = [gaussian_filter(o, 0.8 * ds.min_radius) for o in od]
    peaks = [peak_local_max(d, min_distance=int(ds.min_radius), exclude_border=False)
             for d in dark]
    values = np.concatenate([d[tuple(p.T)] for d, p in zip(dark, peaks)])
    best = 0.0
    for thr in np.quantile(values, np.linspace(0.0, 0.995, 60)):
        tp = fp = fn = 0
        for d, p, gt in zip(dark, peaks, ds.centroids):
            pred = p[d[tuple(p.T)] >= thr].astype(float)
            dist = np.hypot(pred[:, None, 0] - gt[None, :, 0], pred[:, None, 1] - gt[None, :, 1])
            r, c = linear_sum_assignment(np.where(dist < ds.min_radius, dist, 1e6))
            hit = int((dist[r, c] < ds.min_radius).sum()) if dist.size else 0
            tp, fp, fn = tp + hit, fp + len(pred) - hit, fn + len(gt) - hit
        best = max(best, 2 * tp / max(1, 2 * tp + fp + fn))
    return best


def test_local_maximum_floor_is_modest_and_fooled_by_clutter():
    cluttered = _floor_f1(make_cell_dataset(8, CellImageConfig(size=256), seed=9))
    clean = _floor_f1(make_cell_dataset(8, CellImageConfig(size=256, clutter_density=0.0),
                                        seed=9))
    assert 0.15 < cluttered < 0.75
    assert clean > max(0.55, cluttered + 0.15)


def test_config_and_record_validation():
    with pytest.raises(InvalidInputError):
        CellImageConfig(size=63)
    with pytest.raises(InvalidInputError):
        CellImageConfig(target_radius=(8.0, 5.0))
    with pytest.raises(InvalidInputError):
        CellImageConfig(hard_negative_fraction=1.5)
    with pytest.raises(InvalidInputError):
        make_cell_dataset(0)
    with pytest.raises(InvalidInputError):
        render_cell_image("not a record")


# --------------------------------------------------------------------------- patches


def test_paper_patch_count():
    # 35 ICPR 2012 images of 2084 px, 260 px sub-samples without overlap, ×4 rotations.
    assert len(patch_origins(2084, 2084, size=260)) * 35 * 4 == 8960


def test_patches_keep_every_cell_once_inside_and_across_rotations(cells256):
    images, cents = cells256.images, cells256.centroids
    p = extract_cell_patches(images, cents, size=64)
    assert p.images.shape == (6 * 16 * 4, 3, 64, 64)
    for c in p.centroids:
        assert np.all((c >= -0.5) & (c <= 63.5))
    counts = p.counts().reshape(-1, 4)
    assert np.all(counts == counts[:, :1])
    assert counts[:, 0].sum() == sum(len(c) for c in cents)
    first = np.flatnonzero(p.rotations == 0)
    for j in first[:8]:
        (r0, c0), src = p.origins[j], p.sources[j]
        np.testing.assert_array_equal(p.images[j], images[src][:, r0:r0 + 64, c0:c0 + 64])
        np.testing.assert_allclose(p.centroids[j] + (r0, c0),
                                   crop_centroids(cents[src], (r0, c0), size=64) + (r0, c0))
    no_rot = extract_cell_patches(images, cents, size=100, stride=50, rotations=False)
    assert len(no_rot) == 6 * 16 and np.all(no_rot.rotations == 0)


def test_border_rule_is_half_open():
    pts = np.array([[-0.5, 0.0], [9.49, 5.0], [9.5, 5.0], [5.0, 9.75]])
    np.testing.assert_array_equal(crop_centroids(pts, (0, 0), size=10), pts[:2])
    np.testing.assert_array_equal(crop_centroids(pts, (10, 0), size=10), [[-0.5, 5.0]])
    np.testing.assert_array_equal(crop_centroids(pts, (0, 10), size=10), [[5.0, -0.25]])


def test_rotation_of_hand_placed_centroid_is_exact():
    image = np.zeros((2, 40, 40), np.float32)
    image[:, 7, 25] = 1.0
    p = extract_cell_patches([image], [np.array([[7.0, 25.0]])], size=20)
    sel = np.flatnonzero(p.origins[:, 0] * 100 + p.origins[:, 1] == 20)  # patch (0, 20)
    expected = {0: (7.0, 5.0), 1: (14.0, 7.0), 2: (12.0, 14.0), 3: (5.0, 12.0)}
    for j in sel:
        k = int(p.rotations[j])
        np.testing.assert_array_equal(p.centroids[j], [expected[k]])
        np.testing.assert_array_equal(np.argwhere(p.images[j][0] == 1.0), [expected[k]])
    rect = np.zeros((5, 9))
    rect[1, 6] = 1.0
    for k in range(-1, 6):
        out, pts = rotate_patch(rect, np.array([[1.0, 6.0]]), k=k)
        np.testing.assert_array_equal(np.argwhere(out == 1.0), pts)
    back = rotate_centroids(rotate_centroids(np.array([[1.0, 6.0]]), k=1, height=5, width=9),
                            k=3, height=9, width=5)
    np.testing.assert_array_equal(back, [[1.0, 6.0]])


def test_tiling_covers_image_and_merge_round_trips(cells256):
    image, cents = cells256.images[0], cells256.centroids[0]
    tiles, origins = tile_image(image, size=100, overlap=20)
    assert tiles.shape[1:] == (3, 100, 100)
    covered = np.zeros(image.shape[1:], int)
    for (r, c), t in zip(origins, tiles):
        covered[r:r + 100, c:c + 100] += 1
        np.testing.assert_array_equal(t, image[:, r:r + 100, c:c + 100])
    assert covered.min() >= 1 and origins.max() == 256 - 100
    dets = [crop_centroids(cents, o, size=100) for o in origins]
    assert sum(len(d) for d in dets) > len(cents)  # overlaps see some cells twice
    merged, scores = merge_tile_detections(dets, origins, min_distance=cells256.min_radius)
    assert merged.shape == cents.shape and np.all(scores == 1.0)
    np.testing.assert_allclose(np.sort(merged, axis=0), np.sort(cents, axis=0))


def test_merge_keeps_best_score_and_validates():
    dets = [np.array([[5.0, 5.0]]), np.array([[1.0, 1.5], [30.0, 30.0]])]
    origins = np.array([[0, 0], [4, 4]])
    pts, sc = merge_tile_detections(dets, origins, min_distance=3.0,
                                    scores=[np.array([0.4]), np.array([0.9, 0.1])])
    np.testing.assert_allclose(pts, [[5.0, 5.5], [34.0, 34.0]])
    np.testing.assert_allclose(sc, [0.9, 0.1])
    with pytest.raises(InvalidInputError):
        merge_tile_detections(dets, origins[:1], min_distance=3.0)
    with pytest.raises(InvalidInputError):
        tile_origins(50, 80, size=64)
    with pytest.raises(InvalidInputError):
        tile_origins(100, 100, size=64, overlap=64)
    with pytest.raises(InvalidInputError):
        extract_cell_patches([np.zeros((3, 30, 30))], [np.zeros((0, 2))], size=64)
    with pytest.raises(InvalidInputError):
        extract_cell_patches([np.zeros((3, 64, 64))], [np.zeros((2, 3))], size=32)


# --------------------------------------------------------------------------- loaders


def _png(path: Path, h: int = 40, w: int = 50) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(path)


def _tif(path: Path, h: int = 40, w: int = 50) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.full((h, w, 3), 90, np.uint8), photometric="rgb")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_icpr2012_centroids_and_pixel_lists(tmp_path):
    _png(tmp_path / "A00_v2" / "A00_00.bmp")
    _write(tmp_path / "A00_v2" / "A00_00.csv", "10,20\n30.5,5\n")
    _png(tmp_path / "A00_v2" / "A00_01.png")
    _write(tmp_path / "A00_v2" / "A00_01.csv", "10,20,12,22,14,24\n")
    _png(tmp_path / "A01_v2" / "A01_00.png")
    _write(tmp_path / "A01_v2" / "A01_00.csv", "")
    ds = load_cell_folder(tmp_path, style="icpr2012", min_radius=8.0)
    assert ds.names == ("A00_00", "A00_01", "A01_00") and ds.min_radius == 8.0
    np.testing.assert_allclose(ds.centroids[0], [[20.0, 10.0], [5.0, 30.5]])
    np.testing.assert_allclose(ds.centroids[1], [[22.0, 12.0]])
    assert ds.centroids[2].shape == (0, 2) and list(ds.counts()) == [2, 1, 0]
    img = ds.image(0)
    assert img.shape == (3, 40, 50) and img.dtype == np.float32
    np.testing.assert_allclose(img, 120 / 255, atol=1e-6)
    assert ds[0].shape == (40, 50) and ds[0].patient_id == "A00"


def test_mitos_atypia14_layout_and_confidence(tmp_path):
    _tif(tmp_path / "A03" / "frames" / "x40" / "A03_00Aa.tiff")
    _tif(tmp_path / "A03" / "frames" / "x40" / "A03_00Ab.tiff")
    _tif(tmp_path / "A03" / "frames" / "x20" / "A03_00A.tiff")
    _write(tmp_path / "A03" / "mitosis" / "A03_00Aa_mitosis.csv", "10,20,1\n30,5,0.4\n")
    _write(tmp_path / "A03" / "mitosis" / "A03_00Aa_not_mitosis.csv", "1,1,0.2\n")
    _write(tmp_path / "A03" / "mitosis" / "A03_00Ab_mitosis.csv", "x,y,confidence\n8,9,0.5\n")
    ds = load_cell_folder(tmp_path, style="mitos_atypia14")
    assert ds.names == ("A03_00Aa", "A03_00Ab")
    np.testing.assert_allclose(ds.centroids[0], [[20.0, 10.0]])
    np.testing.assert_allclose(ds.centroids[1], [[9.0, 8.0]])
    every = load_cell_folder(tmp_path, style="mitos_atypia14", confidence_threshold=0.0)
    assert list(every.counts()) == [2, 1]
    assert ds.image(1).shape == (3, 40, 50)


def test_amida13_patients_row_col_and_missing_csv_is_zero(tmp_path):
    _tif(tmp_path / "mitoses_image_data" / "01" / "01.tif")
    _tif(tmp_path / "mitoses_image_data" / "01" / "02.tif")
    _tif(tmp_path / "mitoses_image_data" / "02" / "01.tif")
    _write(tmp_path / "mitoses_ground_truth" / "01" / "01.csv", "12,30\n39,49\n")
    _write(tmp_path / "mitoses_ground_truth" / "02" / "01.csv", "col,row\n7,3\n")
    ds = load_cell_folder(tmp_path, style="amida13")
    assert ds.names == ("01/01", "01/02", "02/01")
    np.testing.assert_allclose(ds.centroids[0], [[12.0, 30.0], [39.0, 49.0]])
    assert ds.centroids[1].shape == (0, 2) and ds[1].csv_path is None
    np.testing.assert_allclose(ds.centroids[2], [[3.0, 7.0]])
    assert ds[2].patient_id == "02"


def test_headers_and_missing_columns(tmp_path):
    yx = _write(tmp_path / "yx.csv", "Y, X\n4,6\n")
    np.testing.assert_allclose(read_cell_csv(yx, style="amida13"), [[4.0, 6.0]])
    xy = _write(tmp_path / "xy.csv", "x;y\n4;6\n")
    np.testing.assert_allclose(read_cell_csv(xy, style="icpr2012"), [[6.0, 4.0]])
    with pytest.raises(DataFormatError, match="confidence"):
        read_cell_csv(_write(tmp_path / "m.csv", "x,y\n1,2\n"), style="mitos_atypia14")
    with pytest.raises(DataFormatError, match="missing column"):
        read_cell_csv(_write(tmp_path / "m2.csv", "1,2\n"), style="mitos_atypia14")
    with pytest.raises(DataFormatError, match="missing column"):
        read_cell_csv(_write(tmp_path / "odd.csv", "1,2,3\n"), style="icpr2012")


@pytest.mark.parametrize("text, match", [
    ("10,abc\n", "not a number"),
    ("10,nan\n", "finite"),
    ("-1,5\n", "outside"),
    ("41,10\n", "outside"),
])
def test_bad_values_raise(tmp_path, text, match):
    _png(tmp_path / "01" / "01.png")
    _write(tmp_path / "01" / "01.csv", text)
    with pytest.raises(DataFormatError, match=match):
        load_cell_folder(tmp_path, style="amida13")


def test_missing_or_empty_folders_and_missing_csv(tmp_path):
    with pytest.raises(DataNotFoundError):
        load_cell_folder(tmp_path / "nope", style="icpr2012")
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "empty" / "only.csv", "1,2\n")
    with pytest.raises(DataNotFoundError):
        load_cell_folder(tmp_path / "empty", style="icpr2012")
    _png(tmp_path / "icpr" / "A00_00.png")
    with pytest.raises(DataFormatError, match="no annotation file"):
        load_cell_folder(tmp_path / "icpr", style="icpr2012")
    ds = load_cell_folder(tmp_path / "icpr", style="icpr2012", missing_csv="empty")
    assert list(ds.counts()) == [0]
    with pytest.raises(InvalidInputError):
        load_cell_folder(tmp_path / "icpr", style="mitos2012")
    with pytest.raises(DataNotFoundError):
        read_cell_csv(tmp_path / "absent.csv", style="amida13")
    _write(tmp_path / "bad" / "01" / "01.png", "not an image")
    with pytest.raises(DataFormatError, match="cannot read image"):
        load_cell_folder(tmp_path / "bad", style="amida13")
