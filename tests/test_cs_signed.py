"""The paper's signed-distance encoding (Xue et al., §3.1, §4.3, Fig. 3 and 6) and its decoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wslbench.cs.codec import ProjectionCodec
from wslbench.cs.decode import decode
from wslbench.cs.solvers import create_solver
from wslbench.errors import ConfigError


def _nearest(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Distance from every true centroid to the nearest found point."""
    return np.hypot(*(truth[:, None] - found[None]).transpose(2, 0, 1)).min(axis=1)


def _cells(rng: np.random.Generator, size: int, k: int, apart: float) -> np.ndarray:
    cells: list[np.ndarray] = []
    while len(cells) < k:
        p = rng.uniform(0, size, 2)
        if all(np.hypot(*(p - q)) > apart for q in cells):
            cells.append(p)
    return np.array(cells)


def test_bins_are_one_pixel_and_n_is_the_rounded_up_diagonal() -> None:
    assert ProjectionCodec(height=260, width=260).n == 368  # ⌈260·√2⌉ (§4.3)
    assert ProjectionCodec(height=200, width=200).n == 283  # the authors' 2R + 1 = 283
    assert ProjectionCodec(height=60, width=80).n == 100


def test_hand_worked_signed_distance_at_the_projection_bin() -> None:
    # 100×100, L = 4: θ = 0, π/2, π, 3π/2. Line 0 runs along the columns (u = (0, 1)) on the
    # top side (v = (−1, 0)): t = col − 50 + R, d = R − (p − c)·v = R + row − 50.
    codec = ProjectionCodec(height=100, width=100, n_lines=4)
    radius = 50 * math.sqrt(2)
    a = codec.sparse([np.array([[30.0, 40.0]])])
    assert a[0, 0, 60].item() == pytest.approx(radius - 20, abs=1e-4)  # 50.71 at bin ⌊60.71⌋
    assert (a[0] != 0).sum(dim=1).tolist() == [1, 1, 1, 1]  # one value per line and cell
    d = codec.distances(np.array([[30.0, 40.0]]))[0].numpy()
    assert d == pytest.approx([radius - 20, radius + 10, radius + 20, radius - 10])
    assert (d > 0).all()  # the axes lie outside the patch: the patch side is positive


def test_two_cells_in_one_bin_keep_the_larger_distance() -> None:
    codec = ProjectionCodec(height=100, width=100, n_lines=4)
    a = codec.sparse([np.array([[20.0, 40.0], [70.0, 40.2]])])  # both at bin 60 of line 0
    assert a[0, 0, 60].item() == pytest.approx(50 * math.sqrt(2) + 20, abs=1e-4)
    assert (a[0, 0] != 0).sum() == 1


def test_each_line_alone_gives_one_2d_point_per_cell() -> None:
    rng = np.random.default_rng(0)
    codec = ProjectionCodec(height=120, width=90, n_lines=9)
    truth = _cells(rng, 90, 5, 12.0)
    a = codec.sparse([truth])
    bins = np.floor(codec.positions(truth).numpy()).astype(int)  # (5, L)
    for line in range(codec.n_lines):
        alone = torch.zeros_like(a)
        alone[:, line] = a[:, line]
        decoded = decode(codec, alone, threshold=1e-3, bandwidth=1.0, min_votes=1, peak_radius=0)
        points = decoded.candidates[0]
        assert len(points) == len(set(bins[:, line]))  # one point per cell (per occupied bin)
        assert _nearest(points, truth).max() <= 0.5 + 1e-9  # each within half a 1-px bin
        if len(points) == len(truth):
            assert _nearest(truth, points).max() <= 0.5 + 1e-9


def test_decode_of_encode_returns_the_cells() -> None:
    rng = np.random.default_rng(1)
    codec = ProjectionCodec(height=260, width=260)  # the paper's 260 px, L = 27, m = 112
    truth = [_cells(rng, 260, k, 45.0) for k in (1, 3, 6)]
    decoded = decode(codec, codec.sparse(truth), threshold=15.0, bandwidth=40.0)
    for cells, found in zip(truth, decoded.centres):
        assert found.shape == cells.shape
        assert _nearest(cells, found).max() < 0.5
        assert _nearest(found, cells).max() < 0.5
    # through the dense code x = D a and the lasso of eq. 4 at the paper's λ = 0.39
    x = codec.compress(codec.sparse(truth)).reshape(-1, codec.code_length)
    recovered = create_solver("fista", max_iter=300).solve(x, codec.dictionary, 0.39)
    decoded = decode(codec, recovered.reshape(3, codec.n_lines, -1), threshold=15.0, bandwidth=40.0)
    for cells, found in zip(truth, decoded.centres):
        assert found.shape == cells.shape
        assert _nearest(cells, found).max() < 1.0


def test_the_threshold_prunes_small_values_not_cells() -> None:
    codec = ProjectionCodec(height=260, width=260)
    corner = np.array([[1.0, 1.0], [130.0, 130.0]])
    a = codec.sparse([corner])
    assert a[0][a[0] > 0].min() < 15  # the corner cell lies within 15 px of some axes
    generator = torch.Generator().manual_seed(0)
    spikes = torch.rand(a.shape, generator=generator) < 0.03  # sparse, as lasso noise is
    noisy = a + 10 * spikes * torch.rand(a.shape, generator=generator)
    found = decode(codec, noisy, threshold=15.0, bandwidth=40.0).centres[0]
    assert found.shape == (2, 2) and _nearest(corner, found).max() < 6.0
    nothing = decode(codec, a, threshold=float(a.max()) + 1, bandwidth=40.0)
    assert nothing.centres[0].shape == (0, 2) and nothing.candidates[0].shape == (0, 2)


def test_a_distance_spread_over_neighbouring_bins_is_summed() -> None:
    codec = ProjectionCodec(height=100, width=100)
    truth = np.array([[30.0, 60.0]])
    a = codec.sparse([truth])
    spread = 0.5 * a + 0.25 * torch.roll(a, 1, dims=2) + 0.25 * torch.roll(a, -1, dims=2)
    found = decode(codec, spread, threshold=1.0, bandwidth=10.0).centres[0]
    assert found.shape == (1, 2) and _nearest(truth, found).max() < 0.5
    alone = decode(codec, spread, threshold=1.0, bandwidth=10.0, peak_radius=0, min_votes=1)
    assert _nearest(truth, alone.centres[0]).max() > 5  # one bin's value: half the distance


def test_a_detection_is_the_average_of_its_cluster_of_line_points() -> None:
    codec = ProjectionCodec(height=100, width=100)
    truth = np.array([[50.0, 40.0], [53.0, 44.0]])  # 5 px apart: one cluster at bandwidth 40
    decoded = decode(codec, codec.sparse([truth]), threshold=1.0, bandwidth=40.0, peak_radius=0)
    assert decoded.centres[0].shape == (1, 2)
    assert decoded.centres[0][0] == pytest.approx(decoded.candidates[0].mean(axis=0))
    assert decoded.support[0].tolist() == [len(decoded.candidates[0])]
    assert decoded.centres[0][0] == pytest.approx(truth.mean(axis=0), abs=0.5)
    apart = decode(codec, codec.sparse([truth]), threshold=1.0, bandwidth=2.0)
    assert apart.centres[0].shape == (2, 2)


def test_small_clusters_and_the_count_limit_drop_detections() -> None:
    codec = ProjectionCodec(height=100, width=100, n_lines=12)
    truth = np.array([[20.0, 20.0], [50.0, 80.0], [80.0, 30.0]])
    a = codec.sparse([truth, truth])
    a[0, 5:] = 0  # 5 of 12 lines: clusters of 5 points, above the default ⌈L/3⌉ = 4
    assert decode(codec, a, threshold=1.0, bandwidth=5.0).centres[0].shape == (3, 2)
    assert decode(codec, a, threshold=1.0, bandwidth=5.0, min_votes=6).centres[0].shape == (0, 2)
    cut = decode(codec, a, threshold=1.0, bandwidth=5.0, count=torch.tensor([1.4, 2.0]))
    assert [len(c) for c in cut.centres] == [1, 2]
    with pytest.raises(ConfigError, match=r"min_votes must be an integer in \[1, 12\]"):
        decode(codec, a, threshold=1.0, bandwidth=5.0, min_votes=0)


def test_unknown_encoding_raises() -> None:
    with pytest.raises(ConfigError, match="signed, count"):
        ProjectionCodec(height=10, width=10, encoding="dots")  # type: ignore[arg-type]


def test_encode_appends_the_number_of_cells() -> None:
    codec = ProjectionCodec(height=40, width=40, n_lines=3, code_length=5, count_weight=0.5)
    label = codec.encode([np.array([[5.0, 5.0], [30.0, 30.0]]), np.zeros((0, 2))])
    assert label[:, -1].tolist() == [1.0, 0.0]
