"""The CNNCS experiment of notebook 04 (Xue et al.) on the smoke preset."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from wslbench.cs.decode import decode
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments import cnncs


@pytest.fixture(scope="module")
def smoke() -> tuple[cnncs.CNNCSConfig, cnncs.CellData]:
    config = cnncs.cnncs_config("smoke")
    return config, cnncs.make_cell_data(config)


@pytest.fixture(scope="module")
def trained(smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData]) -> cnncs.CNNCSTraining:
    config, data = smoke
    return cnncs.train_cnncs_cached(replace(config, epochs=3), data)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="variant"):
        cnncs.cnncs_config("smoke", variant="ecnncs9")
    with pytest.raises(ConfigError, match="solver"):
        cnncs.cnncs_config("smoke", solver="dal")
    with pytest.raises(ConfigError, match="patch_size"):
        cnncs.cnncs_config("smoke", patch_size=128, image_size=96)
    paper = cnncs.cnncs_config("paper")
    assert (paper.m, paper.n_lines, paper.beta, paper.lam, paper.alpha, paper.bandwidth) == (
        112, 27, 0.20, 0.39, 1.3, 40.0)  # 4.3, ICPR 2012
    assert paper.bin_size == 1.0 and paper.depth == 152


def test_paper_preset_makes_the_papers_8960_training_patches() -> None:
    paper = cnncs.cnncs_config("paper")
    per_image = (paper.image_size // paper.patch_size) ** 2
    assert paper.n_train_images * per_image * 4 == 8960


def test_data_patches_rotations_and_rho(smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData]) -> None:
    config, data = smoke
    per_image = (config.image_size // config.patch_size) ** 2
    assert data.train_patches.shape == (config.n_train_images * per_image * 4, 3, 48, 48)
    assert data.test_patches.shape == (config.n_test_images * per_image, 3, 48, 48)
    assert len(data.train_centroids) == len(data.train_patches)
    # the four rotations of a patch hold the same number of cells
    counts = np.array([len(c) for c in data.train_centroids]).reshape(-1, 4)
    assert (counts == counts[:, :1]).all()
    assert sum(len(c) for c in data.test_centroids) == sum(len(c) for c in data.test_image_centroids)
    assert 0 < data.rho <= 8.0
    for centroids in data.train_centroids + data.test_centroids:  # inside the codec's box
        assert ((centroids >= 0) & (centroids <= config.patch_size)).all()


def test_oracle_codes_detect_every_cell(smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData]) -> None:
    """Truth → codec → FISTA → decoding → matching: the whole pipeline without the CNN."""
    config, data = smoke
    model = cnncs.build_cnncs(config)
    code, _ = model.targets(data.test_centroids)
    dense, _ = model.codec.split(code)
    decoded = cnncs.detect_cells(model, dense, lam=config.lam, threshold=0.5,
                                 bandwidth=config.bandwidth)
    scores = cnncs.evaluate_detections(decoded.centres, data.test_centroids, data.rho)
    assert scores["f1"] > 0.95


def test_training_lowers_the_loss_and_is_cached(
    smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData], trained: cnncs.CNNCSTraining
) -> None:
    config, data = smoke
    assert trained.history[-1]["l2"] < trained.history[0]["l2"]
    assert trained.history[-1]["l1"] > 0  # ECNNCS-2 (smoke variant) trains on the L1 term too
    again = cnncs.train_cnncs_cached(replace(config, epochs=3, threshold=0.9, bandwidth=2.0), data)
    assert again is trained  # decoding parameters never retrain


def test_warmup_trains_on_the_l2_term_first(smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData]) -> None:
    config, data = smoke
    run = cnncs.train_cnncs(replace(config, epochs=3, warmup_epochs=2), data)
    assert [h["l1"] > 0 for h in run.history] == [False, False, True]
    with pytest.raises(ConfigError, match="warmup_epochs"):
        cnncs.train_cnncs(replace(config, epochs=2, warmup_epochs=3), data)


def test_training_is_seeded(smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData]) -> None:
    config, data = smoke
    one = cnncs.train_cnncs(replace(config, epochs=1, variant="cnncs"), data)
    two = cnncs.train_cnncs(replace(config, epochs=1, variant="cnncs"), data)
    assert one.history == two.history


def test_evaluate_and_compare_variants(
    smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData], trained: cnncs.CNNCSTraining
) -> None:
    config, data = smoke
    scores = cnncs.evaluate_cnncs(trained, data)
    assert set(scores) == {"precision", "recall", "f1"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    rows = cnncs.compare_variants(replace(config, epochs=1), data)
    assert [r["method"] for r in rows] == ["CNNCS", "ECNNCS-1", "ECNNCS-2", "density map", "local maxima"]
    assert all(0.0 <= float(r["f1"]) <= 1.0 for r in rows)


def test_solver_comparison_trends(smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData]) -> None:
    config, data = smoke
    rows = cnncs.solver_comparison(cnncs.build_codec(config), data.train_centroids[:32], lam=0.01,
                                   iterations=(5, 50))
    err = {(r["solver"], r["iterations"]): r["relative_error"] for r in rows}
    assert err[("fista", 50)] < err[("ista", 50)] < err[("ista", 5)]
    assert err[("lista (untrained)", 5)] == pytest.approx(err[("ista", 5)], rel=1e-4)  # T ISTA steps
    with pytest.raises(InvalidInputError):
        cnncs.solver_comparison(cnncs.build_codec(config), data.train_centroids[:4], lam=0.01,
                                iterations=(0,))


def test_detect_in_whole_image(
    smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData], trained: cnncs.CNNCSTraining
) -> None:
    config, data = smoke
    image = data.test_images[0]
    centres = cnncs.detect_in_image(trained, image)
    assert centres.ndim == 2 and centres.shape[1] == 2
    assert ((centres >= -1) & (centres <= config.image_size + 1)).all()
    hwc = cnncs.detect_in_image(trained, image.permute(1, 2, 0).numpy())
    np.testing.assert_allclose(hwc, centres)
    with pytest.raises(InvalidInputError, match="patch size"):
        cnncs.detect_in_image(trained, torch.rand(3, 20, 20))
    with pytest.raises(InvalidInputError, match="NaN"):
        cnncs.detect_in_image(trained, torch.full((3, 64, 64), float("nan")))


def test_real_images_and_explorer(trained: cnncs.CNNCSTraining,
                                  smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData]) -> None:
    config, data = smoke
    real = cnncs.real_image_detections(trained, config, crop=64)
    assert [r.truth for r in real] == [None, None] and all(r.centres.shape[1] == 2 for r in real)
    from wslbench.widgets import detection_explorer

    explorer = detection_explorer(trained, data, index=0)
    assert len(explorer.widget.children) == 3 and "F1" in explorer.note.value
    with pytest.raises(InvalidInputError):
        detection_explorer(trained, data, index=10_000)


def test_decode_threshold_on_predicted_codes(
    smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData], trained: cnncs.CNNCSTraining
) -> None:
    """A higher peak threshold never yields more candidates."""
    _, data = smoke
    sparse = trained.model.recover(cnncs.predict_codes(trained.model, data.test_patches))
    low = decode(trained.model.codec, sparse, threshold=0.05, bandwidth=4.0)
    high = decode(trained.model.codec, sparse, threshold=0.5, bandwidth=4.0)
    assert sum(map(len, high.candidates)) <= sum(map(len, low.candidates))
