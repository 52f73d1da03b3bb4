"""The CNNCS experiment of notebook 04 (Xue et al.) on the smoke preset."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from wslbench.cs.decode import decode
from wslbench.errors import ConfigError, DataNotFoundError, InvalidInputError
from wslbench.experiments import cnncs


@pytest.fixture(scope="module")
def smoke() -> tuple[cnncs.CNNCSConfig, cnncs.CellData]:
    config = cnncs.cnncs_config("smoke")
    return config, cnncs.make_cell_data(config)


@pytest.fixture(scope="module")
def trained(smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData]) -> cnncs.CNNCSTraining:
    config, data = smoke
    return cnncs.train_cnncs_cached(replace(config, epochs=3, warmup_epochs=1), data)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="variant"):
        cnncs.cnncs_config("smoke", variant="ecnncs9")
    with pytest.raises(ConfigError, match="solver"):
        cnncs.cnncs_config("smoke", solver="dal")
    with pytest.raises(ConfigError, match="patch_size"):
        cnncs.cnncs_config("smoke", patch_size=128, image_size=96)


def test_paper_preset_has_the_papers_fields() -> None:
    paper = cnncs.cnncs_config("paper")
    fields = {"m": 112, "n_lines": 27, "beta": 0.20, "lam": 0.39, "alpha": 1.3,  # 4.3, ICPR 2012
              "bandwidth": 40.0, "threshold": 15.0, "encoding": "signed", "bin_size": 1.0,
              "depth": 152, "base_width": 64, "head_grid": 1, "rotations": True}
    assert {name: getattr(paper, name) for name in fields} == fields
    # our additions for training from scratch (model and config docstrings)
    assert 0 < paper.warmup_epochs < paper.epochs and 0 < paper.recovery_lr < paper.lr
    codec = cnncs.build_codec(paper)
    assert codec.encoding == "signed" and codec.n == 363  # ⌈256·√2⌉, 1-px bins


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
    decoded = cnncs.detect_cells(model, dense, lam=config.lam, threshold=config.threshold,
                                 bandwidth=config.bandwidth)
    scores = cnncs.evaluate_detections(decoded.centres, data.test_centroids, data.rho)
    assert scores["f1"] > 0.95


def test_training_lowers_the_loss_and_is_cached(
    smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData], trained: cnncs.CNNCSTraining
) -> None:
    config, data = smoke
    assert trained.history[-1]["l2"] < trained.history[0]["l2"]
    assert trained.history[-1]["l1"] > 0  # ECNNCS-2 (smoke variant) trains on the L1 term too
    again = cnncs.train_cnncs_cached(replace(config, epochs=3, warmup_epochs=1, threshold=0.9,
                                             bandwidth=2.0), data)
    assert again is trained  # decoding parameters never retrain


def test_warmup_trains_on_the_l2_term_first(smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData]) -> None:
    config, data = smoke
    run = cnncs.train_cnncs(replace(config, epochs=3, warmup_epochs=2), data)
    assert [h["l1"] > 0 for h in run.history] == [False, False, True]
    with pytest.raises(ConfigError, match="warmup_epochs"):
        cnncs.train_cnncs(replace(config, epochs=2, warmup_epochs=3), data)


def test_training_is_seeded(smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData]) -> None:
    config, data = smoke
    one = cnncs.train_cnncs(replace(config, epochs=1, warmup_epochs=0, variant="cnncs"), data)
    two = cnncs.train_cnncs(replace(config, epochs=1, warmup_epochs=0, variant="cnncs"), data)
    assert one.history == two.history


def test_evaluate_and_compare_variants(
    smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData], trained: cnncs.CNNCSTraining
) -> None:
    config, data = smoke
    scores = cnncs.evaluate_cnncs(trained, data)
    assert set(scores) == {"precision", "recall", "f1"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    rows = cnncs.compare_variants(replace(config, epochs=1, warmup_epochs=1), data)
    assert [r["method"] for r in rows] == ["CNNCS", "ECNNCS-1", "ECNNCS-2", "density map", "local maxima"]
    assert all(0.0 <= float(r["f1"]) <= 1.0 for r in rows)
    assert all("patch_f1" in r for r in rows[:3])  # whole images first, patches a diagnostic


def test_whole_image_scores_are_those_of_detect_in_image(
    smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData], trained: cnncs.CNNCSTraining
) -> None:
    config, data = smoke
    found = [cnncs.detect_in_image(trained, image, threshold=2.0) for image in data.test_images]
    expected = cnncs.evaluate_detections(found, data.test_image_centroids, data.rho)
    assert cnncs.evaluate_cnncs_images(trained, data, threshold=2.0) == expected


def test_claims_measure_every_arm_and_the_table_reads_them(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wslbench.claims import judge
    from wslbench.experiments.cnncs import claims
    from wslbench.experiments.cnncs.claims import measure

    # the wiring, not the numbers: every arm on 4 images and 2 epochs (the smoke preset's
    # 20 epochs on 24 images make this test 45 s)
    monkeypatch.setattr(claims, "cnncs_config", lambda preset, seed: cnncs.cnncs_config(
        preset, seed=seed, n_train_images=4, epochs=2, warmup_epochs=1))
    values = measure("smoke", 0)
    arms = {"f1_cnncs", "f1_ecnncs1", "f1_ecnncs2", "f1_cnncs_few_lines", "f1_local_maxima",
            "f1_density"}
    assert arms <= set(values) and all(0.0 <= values[k] <= 1.0 for k in arms)
    per_seed = [values, {**values, "f1_cnncs": values["f1_cnncs"] + 0.1}]
    document = {"preset": "smoke", "seeds": [0, 1], "measurements": per_seed,
                "claims": [judge(c, per_seed) for c in cnncs.CLAIMS.claims]}
    path = tmp_path / "reproduce.json"
    path.write_text(json.dumps(document))
    rows = cnncs.claims_table(path)
    assert [r["claim"] for r in rows] == [c.id for c in cnncs.CLAIMS.claims]
    assert rows[0]["density-map F1"] == pytest.approx(values["f1_density"])
    assert cnncs.claims_table(tmp_path / "missing.json") == []


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


def test_pretrained_backbone_and_training_the_last_layer_only(
    smoke: tuple[cnncs.CNNCSConfig, cnncs.CellData], tmp_path
) -> None:
    config, data = smoke
    donor = cnncs.build_cnncs(replace(config, seed=7)).regressor.backbone.state_dict()
    path = tmp_path / "backbone.pt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in donor.items()}}, path)
    tuned = replace(config, epochs=1, warmup_epochs=0, variant="cnncs", pretrained_weights=str(path),
                    train_last_layer_only=True)
    run = cnncs.train_cnncs(tuned, data)
    params = dict(run.model.regressor.backbone.named_parameters())
    assert all(torch.equal(params[k], donor[k]) for k in params)  # loaded, then frozen
    fresh = cnncs.build_cnncs(tuned).regressor.fc.weight
    assert not torch.equal(run.model.regressor.fc.weight, fresh)  # the FC layer trained
    whole = cnncs.train_cnncs(replace(tuned, train_last_layer_only=False), data)
    first = next(iter(params))
    assert not torch.equal(dict(whole.model.regressor.backbone.named_parameters())[first], donor[first])
    with pytest.raises(ConfigError, match="needs pretrained_weights"):
        cnncs.cnncs_config("smoke", train_last_layer_only=True)
    with pytest.raises(DataNotFoundError):
        cnncs.train_cnncs(replace(tuned, pretrained_weights=str(tmp_path / "none.pt")), data)
    other = replace(config, base_width=4)
    torch.save(cnncs.build_cnncs(other).regressor.backbone.state_dict(), path)
    with pytest.raises(ConfigError, match="does not match the backbone"):
        cnncs.train_cnncs(tuned, data)
