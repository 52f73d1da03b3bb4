"""Random-projection codec and its decoding (Xue et al., §3.1, §4.1, §4.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.cluster import MeanShift

from wslbench.cs.codec import ProjectionCodec
from wslbench.cs.decode import decode, find_peaks, mean_shift
from wslbench.errors import ConfigError, InvalidInputError


def _draw_cells(
    rng: np.random.Generator, shape: tuple[int, int], k: int, apart: float
) -> np.ndarray:
    """``k`` centroids uniformly in the patch, pairwise at least ``apart`` pixels apart."""
    cells: list[np.ndarray] = []
    while len(cells) < k:
        p = rng.uniform([0, 0], shape)
        if all(np.hypot(*(p - q)) >= apart for q in cells):
            cells.append(p)
    return np.array(cells).reshape(-1, 2)


def _match(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Distance from every true centroid to the nearest found centre."""
    return np.hypot(*(truth[:, None] - found[None]).transpose(2, 0, 1)).min(axis=1)


# ------------------------------------------------------------------------------- dictionary


def test_dictionary_is_gaussian_with_variance_one_over_m() -> None:
    codec = ProjectionCodec(height=400, width=400, code_length=300, seed=3)
    D = codec.dictionary
    assert D.shape == (300, codec.n) and D.dtype == torch.float32
    values = D.double()
    size = values.numel()  # 300 × 566
    assert abs(values.mean().item()) < 4 / math.sqrt(size * 300)
    assert values.var().item() * 300 == pytest.approx(1.0, rel=0.02)


def test_dictionary_depends_only_on_seed() -> None:
    first = ProjectionCodec(height=50, width=70, seed=1).dictionary
    torch.manual_seed(123)  # the global generator plays no part
    again = ProjectionCodec(height=50, width=70, seed=1).dictionary
    other = ProjectionCodec(height=50, width=70, seed=2).dictionary
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_dictionary_is_a_copy() -> None:
    codec = ProjectionCodec(height=20, width=20)
    codec.dictionary.zero_()
    assert codec.dictionary.abs().sum() > 0


def test_code_length_may_exceed_n() -> None:
    codec = ProjectionCodec(height=10, width=10, code_length=112)
    assert codec.n == 15 and codec.dictionary.shape == (112, 15)
    assert codec.encode([np.array([[5.0, 5.0]])]).shape == (1, 27 * 112 + 1)


# ------------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    ("height", "width", "n"),
    [(100, 100, 142), (60, 80, 100), (200, 200, 283), (260, 260, 368), (1, 1, 2), (3, 500, 501)],
)
def test_n_is_ceil_of_diagonal(height: int, width: int, n: int) -> None:
    codec = ProjectionCodec(height=height, width=width)
    assert codec.n == n == math.ceil(math.hypot(height, width))
    assert codec.sparse([np.zeros((0, 2))]).shape == (1, 27, n)


def test_angles_are_evenly_spread_over_half_a_turn_or_a_full_one() -> None:
    angles = ProjectionCodec(height=10, width=10, n_lines=4, encoding="count").angles
    assert torch.allclose(angles, torch.tensor([0, 0.25, 0.5, 0.75], dtype=torch.float64) * math.pi)
    angles = ProjectionCodec(height=10, width=10, n_lines=4).angles  # signed: around the patch
    assert torch.allclose(angles, torch.tensor([0, 0.5, 1.0, 1.5], dtype=torch.float64) * math.pi)


def test_hand_worked_positions_and_bins() -> None:
    # 100×100: c = (50, 50), R = 50√2 = 70.7107; line 0 (θ = 0) measures the column,
    # line 1 (θ = π/2) the row: t = coordinate − 50 + R.
    codec = ProjectionCodec(height=100, width=100, n_lines=2, encoding="count")
    radius = 50 * math.sqrt(2)
    t = codec.positions(np.array([[30.0, 40.0]]))
    assert t.shape == (1, 2)
    assert t[0, 0].item() == pytest.approx(40 - 50 + radius)  # 60.71
    assert t[0, 1].item() == pytest.approx(30 - 50 + radius)  # 50.71
    a = codec.sparse([np.array([[30.0, 40.0]])])
    assert a[0, 0, 60] == 1 and a[0, 1, 50] == 1  # bin = ⌊t⌋
    assert torch.equal(a.sum(dim=2), torch.ones(1, 2))


def test_positions_of_corners_span_zero_to_diagonal() -> None:
    codec = ProjectionCodec(height=100, width=100, n_lines=4, encoding="count")  # θ = π/4 runs along the diagonal
    corners = np.array([[0.0, 0.0], [100.0, 100.0], [0.0, 100.0], [100.0, 0.0]])
    t = codec.positions(corners)
    assert t[0, 1].item() == pytest.approx(0.0, abs=1e-9)
    assert t[1, 1].item() == pytest.approx(100 * math.sqrt(2))
    assert (t >= -1e-9).all() and (t <= 2 * codec.radius + 1e-9).all()
    a = codec.sparse([corners])
    assert a[0, 1, 0] == 1 and a[0, 1, codec.n - 1] == 1  # ⌊141.42⌋ = 141 = n − 1
    for lines in (3, 7, 27, 30):  # every corner lands in a valid bin for any L
        other = ProjectionCodec(height=60, width=80, n_lines=lines, encoding="count")
        assert torch.equal(
            other.sparse([corners * [0.6, 0.8]]).sum(dim=2), torch.full((1, lines), 4.0)
        )


def test_two_cells_in_one_bin_add_up() -> None:
    codec = ProjectionCodec(height=100, width=100, n_lines=2, encoding="count")
    a = codec.sparse([np.array([[20.0, 40.0], [70.0, 40.2]])])  # t = 60.71 and 60.91 on line 0
    assert a[0, 0, 60] == 2 and a[0, 0].sum() == 2
    assert a[0, 1, 40] == 1 and a[0, 1, 90] == 1


def test_line_geometry_axes_lie_outside_the_patch() -> None:
    codec = ProjectionCodec(height=60, width=90, n_lines=9)
    geometry = codec.line_geometry()
    u, q = geometry.directions, geometry.origins
    assert geometry.length == pytest.approx(math.hypot(60, 90))
    assert np.allclose(np.linalg.norm(u, axis=1), 1)
    normal = np.stack([-u[:, 1], u[:, 0]], axis=1)
    corners = np.array([[0, 0], [0, 90], [60, 0], [60, 90]], dtype=float)
    side = (corners[:, None] - q[None]) * normal[None]
    assert (side.sum(axis=2) <= 1e-9).all()  # every corner on one side of every axis
    cells = np.array([[10.0, 20.0], [55.0, 3.0]])
    t = codec.positions(cells).numpy()  # (2, L)
    foot = q[None] + t[..., None] * u[None]
    assert np.allclose(((cells[:, None] - foot) * u[None]).sum(axis=2), 0)  # orthogonal projection


# ------------------------------------------------------------------------------- encoding


def test_encode_concatenates_lines_then_weighted_count() -> None:
    codec = ProjectionCodec(height=40, width=50, n_lines=5, code_length=7, count_weight=0.2)
    cells = [
        np.array([[1.0, 2.0], [30.0, 40.0], [39.5, 0.0]]),
        np.zeros((0, 2)),
        torch.tensor([[5.0, 5.0]]),
    ]
    code = codec.encode(cells)
    assert code.shape == (3, 5 * 7 + 1)
    assert torch.allclose(code[:, -1], torch.tensor([0.6, 0.0, 0.2]))
    a = codec.sparse(cells)
    expected = torch.einsum("mn,bln->blm", codec.dictionary, a)
    assert torch.allclose(code[:, :-1].reshape(3, 5, 7), expected, atol=1e-6)
    x, count = codec.split(code)
    assert torch.allclose(x, expected, atol=1e-6)
    assert torch.allclose(count, torch.tensor([3.0, 0.0, 1.0]))


def test_compress_is_linear_and_differentiable() -> None:
    codec = ProjectionCodec(height=8, width=9, n_lines=3, code_length=5)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(2, 3, codec.n, generator=generator, dtype=torch.float64)
    b = torch.randn(2, 3, codec.n, generator=generator, dtype=torch.float64)
    D = codec.dictionary.double()
    assert torch.allclose(codec.compress(2 * a - b), 2 * codec.compress(a) - codec.compress(b))
    assert torch.allclose(codec.compress(a), codec.compress(a, D))
    assert torch.autograd.gradcheck(codec.compress, (a.requires_grad_(), D.requires_grad_()))


def test_split_is_differentiable() -> None:
    codec = ProjectionCodec(height=8, width=9, n_lines=3, code_length=5, count_weight=0.5)
    code = torch.randn(2, 16, dtype=torch.float64, requires_grad=True)
    x, count = codec.split(code)
    (x.sum() + count.sum()).backward()
    assert torch.allclose(code.grad[:, :-1], torch.ones(2, 15, dtype=torch.float64))
    assert torch.allclose(code.grad[:, -1], torch.full((2,), 2.0, dtype=torch.float64))


# ------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("shape", [(100, 100), (60, 90)])
def test_round_trip_true_codes_recovers_centroids(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(7)
    codec = ProjectionCodec(height=shape[0], width=shape[1])
    bandwidth = 4.0
    cells = [_draw_cells(rng, shape, int(rng.integers(1, 7)), 2 * bandwidth) for _ in range(20)]
    code = codec.encode(cells)
    _, count = codec.split(code)
    decoded = decode(codec, codec.sparse(cells), threshold=0.5, bandwidth=bandwidth)
    for truth, found, support in zip(cells, decoded.centres, decoded.support):
        assert found.shape == truth.shape
        assert _match(truth, found).max() < 1.0
        assert (support >= 1).all() and (np.diff(support) <= 0).all()
    with_count = decode(codec, codec.sparse(cells), threshold=0.5, bandwidth=bandwidth, count=count)
    assert all(np.allclose(f, g) for f, g in zip(with_count.centres, decoded.centres))


def test_round_trip_ten_cells_without_false_positives() -> None:
    rng = np.random.default_rng(11)
    codec = ProjectionCodec(height=200, width=200)
    cells = [_draw_cells(rng, (200, 200), 10, 10.0) for _ in range(5)]
    decoded = decode(codec, codec.sparse(cells), threshold=0.5, bandwidth=5.0)
    for truth, found, candidates in zip(cells, decoded.centres, decoded.candidates):
        assert found.shape == (10, 2)
        assert _match(truth, found).max() < 0.5
        near = _match(candidates, truth)  # green crosses gather on the cells
        assert np.median(near) < 1.0 and (near < 1.5).mean() > 0.6


def test_close_cells_are_resolved_with_a_small_bandwidth() -> None:
    codec = ProjectionCodec(height=100, width=100)
    truth = np.array([[50.3, 40.2], [53.3, 44.2]])  # 5 px apart
    decoded = decode(codec, codec.sparse([truth]), threshold=0.5, bandwidth=2.0)
    assert decoded.centres[0].shape == (2, 2)
    assert _match(truth, decoded.centres[0]).max() < 0.5


def test_cells_sharing_a_bin_are_recovered_from_the_other_lines() -> None:
    codec = ProjectionCodec(height=100, width=100, encoding="count")
    truth = np.array([[20.0, 50.3], [70.0, 50.5]])  # same bin on line 0 (θ = 0)
    a = codec.sparse([truth])
    assert a[0, 0].max() == 2
    decoded = decode(codec, a, threshold=0.5, bandwidth=3.0)
    assert decoded.centres[0].shape == (2, 2)
    assert _match(truth, decoded.centres[0]).max() < 1.0
    assert len(decoded.peaks[0][0]) == 1 and len(decoded.peaks[0]) == 27


def test_cells_closer_than_bandwidth_give_one_of_them() -> None:
    codec = ProjectionCodec(height=100, width=100, encoding="count")
    truth = np.array([[50.3, 40.2], [52.1, 42.6]])  # 3 px apart
    found = decode(codec, codec.sparse([truth]), threshold=0.5, bandwidth=6.0).centres[0]
    assert found.shape == (1, 2)
    assert _match(found, truth).max() < 1.0


def test_spread_and_noisy_codes_still_decode() -> None:
    rng = np.random.default_rng(5)
    codec = ProjectionCodec(height=200, width=200, encoding="count")
    cells = [_draw_cells(rng, (200, 200), int(rng.integers(1, 9)), 25.0) for _ in range(8)]
    a = codec.sparse(cells)
    smeared = 0.6 * a + 0.4 * torch.roll(a, 1, dims=2)  # each cell spread over two bins
    smeared[(torch.rand(a.shape, generator=torch.Generator().manual_seed(0)) < 0.1) & (a > 0)] = 0
    smeared += 0.08 * torch.randn(a.shape, generator=torch.Generator().manual_seed(1)).abs()
    decoded = decode(codec, smeared, threshold=0.3, bandwidth=10.0)
    for truth, found in zip(cells, decoded.centres):
        assert found.shape == truth.shape
        assert _match(truth, found).max() < 1.5


def test_count_keeps_the_best_supported_centres() -> None:
    codec = ProjectionCodec(height=100, width=100)
    truth = np.array([[20.0, 20.0], [50.0, 80.0], [80.0, 30.0]])
    a = codec.sparse([truth, truth])
    full = decode(codec, a, threshold=0.5, bandwidth=4.0)
    cut = decode(codec, a, threshold=0.5, bandwidth=4.0, count=torch.tensor([1.4, -0.3]))
    assert np.allclose(cut.centres[0], full.centres[0][:1])
    assert cut.centres[1].shape == (0, 2)


def test_empty_codes_decode_to_nothing() -> None:
    codec = ProjectionCodec(height=50, width=50)
    below = torch.zeros(3, 27, codec.n)
    below[1, :, 10] = 0.2  # under the threshold
    decoded = decode(codec, below, threshold=0.5, bandwidth=3.0)
    for i in range(3):
        assert decoded.centres[i].shape == (0, 2)
        assert decoded.candidates[i].shape == (0, 2)
        assert decoded.support[i].shape == (0,)
        assert len(decoded.peaks[i]) == 27 and all(len(p) == 0 for p in decoded.peaks[i])


def test_find_peaks_merges_adjacent_bins_and_thresholds() -> None:
    a = np.array([[0.0, 0.5, 0.5, 0.0, 1.0, 0.0, 0.3, 0.0], [0.0] * 8])
    line, position, height = find_peaks(a, threshold=0.4)
    assert line.tolist() == [0, 0]
    assert position.tolist() == pytest.approx([2.0, 4.5])  # (1.5 + 2.5) / 2; bin 4 centre
    assert height.tolist() == [0.5, 1.0]
    line, position, _ = find_peaks(a, threshold=0.4, radius=0)
    assert position.tolist() == pytest.approx([1.5, 2.5, 4.5])
    with pytest.raises(InvalidInputError, match=r"\(L, n\)"):
        find_peaks(a[0], threshold=0.4)
    with pytest.raises(ConfigError, match="threshold"):
        find_peaks(a, threshold=0.0)


def test_noisy_codes_with_a_low_threshold_stay_bounded() -> None:
    codec = ProjectionCodec(height=200, width=200, encoding="count")
    truth = np.array([[50.0, 60.0], [150.0, 120.0]])
    noise = torch.rand(1, 27, codec.n, generator=torch.Generator().manual_seed(2))
    a = codec.sparse([truth]) * 3 + noise  # local maxima everywhere above 0.05
    decoded = decode(codec, a, threshold=0.05, bandwidth=5.0, max_peaks=8)
    assert all(len(p) <= 8 for p in decoded.peaks[0])
    assert _match(truth, decoded.centres[0]).max() < 1.0


def test_mean_shift_orders_modes_by_support() -> None:
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal([10, 10], 0.3, (5, 2)), rng.normal([40, 5], 0.3, (9, 2))])
    modes, support = mean_shift(points, bandwidth=3.0)
    assert support.tolist() == [9, 5]
    assert np.allclose(modes, [points[5:].mean(axis=0), points[:5].mean(axis=0)])
    blobs = np.concatenate([rng.normal(c, 1.0, (n, 2)) for c, n in [((0, 0), 30), ((6, 2), 20)]])
    blobs = np.concatenate([blobs, rng.uniform(-10, 20, (15, 2))])
    reference = MeanShift(bandwidth=2.5, bin_seeding=True).fit(blobs)
    modes, _ = mean_shift(blobs, bandwidth=2.5)
    assert np.allclose(modes[:2], reference.cluster_centers_[:2])  # the two blobs, biggest first
    assert np.allclose(np.unique(modes, axis=0), np.unique(reference.cluster_centers_, axis=0))
    empty, none = mean_shift(np.zeros((0, 2)), bandwidth=1.0)
    assert empty.shape == (0, 2) and none.shape == (0,)
    with pytest.raises(InvalidInputError, match=r"\(N, 2\)"):
        mean_shift(np.zeros((3, 3)), bandwidth=1.0)
    with pytest.raises(ConfigError, match="bandwidth"):
        mean_shift(points, bandwidth=0.0)


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"height": 0, "width": 10}, "height"),
        ({"height": 10.5, "width": 10}, "height"),
        ({"height": True, "width": 10}, "height"),
        ({"height": 10, "width": -3}, "width"),
        ({"height": 10, "width": 10, "n_lines": 0}, "n_lines"),
        ({"height": 10, "width": 10, "code_length": 0}, "code_length"),
        ({"height": 10, "width": 10, "count_weight": 0.0}, "count_weight"),
        ({"height": 10, "width": 10, "count_weight": float("nan")}, "count_weight"),
        ({"height": 10, "width": 10, "seed": -1}, "seed"),
    ],
)
def test_bad_codec_settings_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ProjectionCodec(**kwargs)


@pytest.mark.parametrize(
    ("centroids", "match"),
    [
        ([np.array([[-1.0, 5.0]])], "outside the 20×30 patch"),
        ([np.array([[5.0, 30.5]])], "outside"),
        ([np.array([[np.nan, 5.0]])], "NaN"),
        ([np.zeros((2, 3))], r"\(k, 2\)"),
        (np.array([[1.0, 2.0], [3.0, 4.0]]), "one .* array per patch"),
        (5, "sequence"),
        ("cells", "sequence"),
    ],
)
def test_bad_centroids_raise(centroids: object, match: str) -> None:
    codec = ProjectionCodec(height=20, width=30)
    with pytest.raises(InvalidInputError, match=match):
        codec.sparse(centroids)  # type: ignore[arg-type]


def test_bad_tensors_raise() -> None:
    codec = ProjectionCodec(height=20, width=30, n_lines=3, code_length=4)
    with pytest.raises(InvalidInputError, match="outside"):
        codec.positions(np.array([[21.0, 0.0]]))
    with pytest.raises(InvalidInputError, match=r"\(B, L=3, n=37\)"):
        codec.compress(torch.zeros(2, 3, 36))
    with pytest.raises(InvalidInputError, match=r"D must be a \(m=4, n=37\)"):
        codec.compress(torch.zeros(2, 3, 37), torch.zeros(5, 37))
    with pytest.raises(InvalidInputError, match="L·m \\+ 1 = 13"):
        codec.split(torch.zeros(2, 12))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"threshold": 0.0}, ConfigError, "threshold"),
        ({"bandwidth": -1.0}, ConfigError, "bandwidth"),
        ({"tolerance": float("inf")}, ConfigError, "tolerance"),
        ({"min_votes": 1}, ConfigError, "min_votes"),
        ({"min_votes": 28}, ConfigError, "min_votes"),
        ({"peak_radius": -1}, ConfigError, "peak_radius"),
        ({"max_peaks": 0}, ConfigError, "max_peaks"),
        ({"min_angle": 2.0}, ConfigError, "min_angle"),
        ({"count": torch.zeros(3)}, InvalidInputError, r"count must be a \(2,\)"),
        ({"count": torch.tensor([1.0, float("nan")])}, InvalidInputError, "count"),
    ],
)
def test_bad_decode_arguments_raise(kwargs: dict, error: type[Exception], match: str) -> None:
    codec = ProjectionCodec(height=20, width=20, encoding="count")
    arguments = {"threshold": 0.5, "bandwidth": 2.0} | kwargs
    with pytest.raises(error, match=match):
        decode(codec, torch.zeros(2, 27, codec.n), **arguments)


def test_bad_codes_raise() -> None:
    codec = ProjectionCodec(height=20, width=20, encoding="count")
    with pytest.raises(InvalidInputError, match=r"a_hat must be a \(B, L=27, n=29\)"):
        decode(codec, torch.zeros(2, 27, 28), threshold=0.5, bandwidth=2.0)
    nan = torch.zeros(1, 27, codec.n)
    nan[0, 0, 0] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        decode(codec, nan, threshold=0.5, bandwidth=2.0)
    single = ProjectionCodec(height=20, width=20, n_lines=1, encoding="count")
    with pytest.raises(ConfigError, match="at least 2"):
        decode(single, torch.zeros(1, 1, single.n), threshold=0.5, bandwidth=2.0)
