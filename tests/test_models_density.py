"""FCRN density baseline (Xie et al. 2016) and the local-maxima floor for cell detection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.metrics.detection import compute_detection_scores
from wslbench.models.density import (
    DensityNet,
    count_from_density,
    density_target,
    detect_peaks,
)
from wslbench.models.local_maxima import LocalMaximaDetector
from wslbench.progress import StopRequested
from wslbench.training.density_training import train_density_net

# ---------------------------------------------------------------------------------- target


def test_density_target_mass_is_100_per_cell_including_border_cells() -> None:
    cells = [(0, 0), (0, 31), (23, 5.5), (10.2, 12.7), (23.4, 31.4)]
    d = density_target(cells, (24, 32))
    assert d.shape == (24, 32)
    assert d.sum() == pytest.approx(100.0 * len(cells), rel=1e-12)
    assert (d >= 0).all()
    assert count_from_density(d) == pytest.approx(len(cells))
    for r, c in cells:  # each cell alone keeps its full mass, even in a corner
        assert density_target([(r, c)], (24, 32)).sum() == pytest.approx(100.0)
    assert density_target(np.zeros((0, 2)), (4, 5)).sum() == 0.0
    tiny = density_target([(3.4, 0.0)], (8, 8), sigma=0.01)  # a Gaussian narrower than a pixel
    assert tiny[3, 0] == pytest.approx(100.0)


def test_density_target_peaks_at_the_centroid_with_fcrn_height() -> None:
    d = density_target([(10, 12)], (24, 32))
    assert np.unravel_index(d.argmax(), d.shape) == (10, 12)
    # Discrete unit Gaussian: sum over integers of exp(-x²/2) ≈ sqrt(2π), so the peak is
    # 100 / (2π) for σ = 1, and 100 / (2π σ²) in general (up to the 4σ truncation).
    assert d.max() == pytest.approx(100 / (2 * math.pi), rel=1e-4)
    assert density_target([(10, 12)], (24, 32), sigma=2.0).max() == pytest.approx(
        100 / (8 * math.pi), rel=1e-4
    )
    np.testing.assert_allclose(d[10, 11], d[10, 13])
    np.testing.assert_allclose(d[9, 12], d[11, 12])


def test_density_target_rejects_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="outside"):
        density_target([(24, 0)], (24, 32))
    with pytest.raises(InvalidInputError, match="NaN"):
        density_target([(np.nan, 0)], (24, 32))
    with pytest.raises(InvalidInputError, match=r"\(n, 2\)"):
        density_target([(1, 2, 3)], (24, 32))
    with pytest.raises(InvalidInputError, match="sigma"):
        density_target([(1, 2)], (24, 32), sigma=0.0)
    with pytest.raises(InvalidInputError, match="shape"):
        density_target([(1, 2)], (24,))


def test_detect_peaks_recovers_the_centroids_and_counts() -> None:
    cells = np.array([(0, 0), (4, 20), (12, 7), (19, 30), (23, 16)], dtype=float)
    d = density_target(cells, (24, 32))
    (found,) = detect_peaks(d, min_distance=2, threshold=5.0)
    assert sorted(map(tuple, found)) == sorted(map(tuple, cells))
    # sub-pixel centroids come back at their nearest pixel; a batch gives one array per map
    shifted = cells[1:] + [0.3, -0.2]
    batch = np.stack([d, density_target(shifted, (24, 32))])[:, None]
    out = detect_peaks(torch.as_tensor(batch), min_distance=2, threshold=5.0)
    assert len(out) == 2
    assert sorted(map(tuple, out[1])) == sorted(map(tuple, np.rint(shifted)))
    np.testing.assert_allclose(count_from_density(batch), [5.0, 4.0])
    assert detect_peaks(np.zeros((8, 8)), min_distance=2, threshold=5.0)[0].shape == (0, 2)
    with pytest.raises(InvalidInputError, match=r"\(B, 1, H, W\)"):
        detect_peaks(np.zeros((2, 3, 8, 8)))


# ---------------------------------------------------------------------------------- network


@pytest.mark.parametrize(("depth", "size"), [(3, (8, 8)), (3, (16, 24)), (2, (12, 20))])
def test_density_net_keeps_the_input_size(depth: int, size: tuple[int, int]) -> None:
    net = DensityNet(in_channels=3, base_width=4, depth=depth)
    assert net(torch.rand(2, 3, *size)).shape == (2, 1, *size)


def test_density_net_default_is_fcrn_a() -> None:
    net = DensityNet()
    convs = [m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [32, 64, 128, 512, 128, 64, 32, 1]


def test_density_net_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    net = DensityNet(in_channels=3, base_width=4, depth=3)
    net(torch.rand(2, 3, 16, 16)).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_density_net_validates() -> None:
    net = DensityNet(in_channels=3, base_width=4, depth=3)
    with pytest.raises(InvalidInputError, match="divisible by 8"):
        net(torch.rand(1, 3, 20, 16))
    with pytest.raises(InvalidInputError, match="input channels"):
        net(torch.rand(1, 1, 16, 16))
    with pytest.raises(InvalidInputError, match=r"\(B, C, H, W\)"):
        net(torch.rand(3, 16, 16))
    with pytest.raises(ConfigError, match="base_width"):
        DensityNet(base_width=0)


def _blob_images(n: int, size: int, seed: int) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Light images with dark 3×3 squares at random well-separated cell centroids."""
    rng = np.random.default_rng(seed)
    images = np.full((n, 3, size, size), 0.9, dtype=np.float32)
    cents = []
    for i in range(n):
        pts = np.array([(r, c) for r in range(3, size - 3, 6) for c in range(3, size - 3, 6)])
        pts = pts[rng.random(len(pts)) < 0.4]
        for r, c in pts:
            images[i, :, r - 1 : r + 2, c - 1 : c + 2] = 0.2
        cents.append(pts.astype(float).reshape(-1, 2))
    return torch.as_tensor(images), cents


def test_tiny_seeded_training_lowers_the_loss_and_is_reproducible() -> None:
    images, cents = _blob_images(4, 16, seed=0)
    calls: list[tuple[int, int]] = []

    def run(seed: int) -> list[float]:
        torch.manual_seed(123)  # same initial weights
        net = DensityNet(in_channels=3, base_width=4, depth=2)
        result = train_density_net(
            net, images, cents, epochs=12, lr=1e-2, batch_size=2, seed=seed,
            progress=lambda step, total, logs: calls.append((step, total)),
        )  # fmt: skip
        assert not result.interrupted and not result.model.training
        return result.losses

    losses = run(0)
    assert len(losses) == 12 and calls[-1] == (12, 12)
    assert min(losses[-3:]) < 0.7 * losses[0]
    assert run(0) == losses


def test_training_stops_on_request_and_validates() -> None:
    images, cents = _blob_images(2, 16, seed=1)
    net = DensityNet(in_channels=3, base_width=2, depth=2)

    def stop(step: int, total: int, logs: object) -> None:
        raise StopRequested

    result = train_density_net(net, images, cents, epochs=5, progress=stop)
    assert result.interrupted and len(result.losses) == 1
    with pytest.raises(InvalidInputError, match="centroid arrays"):
        train_density_net(net, images, cents[:1], epochs=1)
    with pytest.raises(InvalidInputError, match="epochs"):
        train_density_net(net, images, cents, epochs=0)


# ---------------------------------------------------------------------------------- local maxima


def _scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Light 64×64 image: dark discs (cells, r = 3) and faint discs (distractors)."""
    rng = np.random.default_rng(seed)
    img = np.full((3, 64, 64), 0.9)
    yy, xx = np.mgrid[:64, :64]
    grid = [(r, c) for r in range(8, 60, 12) for c in range(8, 60, 12)]
    rng.shuffle(grid)
    cells, faint = np.array(grid[:8], float), np.array(grid[8:14], float)
    for (r, c), value in [(p, 0.2) for p in cells] + [(p, 0.75) for p in faint]:
        img[:, (yy - r) ** 2 + (xx - c) ** 2 <= 9] = value
    return img, cells


def test_local_maxima_finds_dark_blobs() -> None:
    img, cells = _scene(0)
    det = LocalMaximaDetector(sigma=2.0, min_distance=4, threshold=0.3)
    found = det.detect(img)
    scores = compute_detection_scores([found], [cells], rho=2.0)
    assert (scores.tp, scores.fp, scores.fn) == (8, 0, 0)
    assert scores.mean_distance < 0.5
    grey = LocalMaximaDetector(sigma=2.0, min_distance=4, threshold=0.3).detect(img[0])
    np.testing.assert_allclose(grey, found)


def test_fit_threshold_beats_a_bad_threshold() -> None:
    train = [_scene(s) for s in (1, 2, 3)]
    test_img, test_cells = _scene(4)
    det = LocalMaximaDetector(sigma=2.0, min_distance=4)
    t = det.fit_threshold([im for im, _ in train], [c for _, c in train], rho=3.0)
    assert det.threshold == t
    fitted = compute_detection_scores([det.detect(test_img)], [test_cells], rho=3.0).f1
    assert fitted == 1.0  # faint distractors and flat background are thresholded away
    for bad in (0.05, 0.9):  # keeps distractors / keeps nothing
        det_bad = LocalMaximaDetector(sigma=2.0, min_distance=4, threshold=bad)
        bad_f1 = compute_detection_scores([det_bad.detect(test_img)], [test_cells], rho=3.0).f1
        assert fitted > bad_f1


def test_haematoxylin_map_finds_a_purple_nucleus() -> None:
    img = np.empty((3, 32, 32))
    img[:] = np.array([0.95, 0.8, 0.9])[:, None, None]  # pink eosin background
    yy, xx = np.mgrid[:32, :32]
    img[:, (yy - 12) ** 2 + (xx - 20) ** 2 <= 9] = np.array([0.35, 0.2, 0.6])[:, None]
    det = LocalMaximaDetector(sigma=2.0, min_distance=4, darkness="haematoxylin")
    assert det.candidates(img)[0, :2].tolist() == [12.0, 20.0]


def test_local_maxima_validates() -> None:
    det = LocalMaximaDetector()
    with pytest.raises(InvalidInputError, match="RGB"):
        det.detect(np.zeros((4, 8, 8)))
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        det.detect(np.full((8, 8), 2.0))
    with pytest.raises(InvalidInputError, match="needs a"):
        LocalMaximaDetector(darkness="haematoxylin").detect(np.zeros((8, 8)))
    with pytest.raises(ConfigError, match="grey"):
        LocalMaximaDetector(darkness="blue")
    with pytest.raises(InvalidInputError, match="sigma"):
        LocalMaximaDetector(sigma=0)
    with pytest.raises(InvalidInputError, match="centroid arrays"):
        det.fit_threshold([np.zeros((8, 8))], [], rho=1.0)
