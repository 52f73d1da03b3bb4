"""The histology WSL experiment (Rony 2020, ch. 1–4) on the smoke preset."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments import wsl
from wslbench.pooling import list_pooling


@pytest.fixture(scope="module")
def smoke():
    config = wsl.wsl_config("smoke")
    return config, wsl.make_wsl_data(config)


def test_paper_preset_follows_the_thesis():
    paper = wsl.wsl_config("paper")
    assert (paper.momentum, paper.weight_decay, paper.lr) == (0.9, 1e-4, 0.01)
    assert (paper.epochs, paper.batch_size, paper.schedule, paper.image_size) == (160, 32, "cosine", 416)
    assert (paper.lambda_s, paper.lambda_e, paper.q, paper.k_pos, paper.wildcat_alpha) == (
        10.0, 0.1, 10.0, 0.1, 0.6)
    with pytest.raises(ConfigError, match="head='gap'"):
        wsl.wsl_config("smoke", head="lse", size_loss="kl")
    with pytest.raises(ConfigError, match="folds_to_run"):
        wsl.wsl_config("smoke", folds_to_run=5)


def test_data_folds_share_one_test_set(smoke):
    config, data = smoke
    assert data.images.shape == (config.n_images, 3, 64, 64)
    tests = {tuple(f.test) for f in data.folds}
    assert len(tests) == 1 and len(data.folds) == config.n_folds
    for f in data.folds:
        assert not set(f.train) & set(f.test) and not set(f.val) & set(f.test)
    torch.testing.assert_close(data.sizes, data.masks.float().mean((1, 2)))


def test_size_targets_put_the_rest_in_the_background():
    sizes = torch.tensor([0.25, 0.6])
    targets = wsl.train._size_targets(sizes, torch.tensor([1, 0]), num_classes=2)
    torch.testing.assert_close(targets, torch.tensor([[0.75, 0.0, 0.25], [0.4, 0.6, 0.0]]))


@pytest.mark.parametrize("head", list_pooling())
def test_every_head_trains_and_evaluates(smoke, head):
    config, data = smoke
    run = wsl.train_wsl(replace(config, head=head, epochs=1), data)
    metrics = wsl.evaluate_wsl(run.model, data, run.config)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["dice"] <= 1.0
    assert len(run.history) == 1 and np.isfinite(run.history[0]["loss"])


@pytest.mark.parametrize("size_loss", ["jia", "kl", "l2", "adaptive"])
def test_size_supervised_models_have_a_background_channel(smoke, size_loss):
    """The proposed losses add a background CAM (4.3); Jia et al. keep sigmoid class maps
    and train without entropy (eq. 4.1-4.3, λ_e = 0)."""
    config, data = smoke
    run = wsl.train_wsl(replace(config, size_loss=size_loss, epochs=1, sigma_s=0.05), data)
    jia = size_loss == "jia"
    assert run.model.head.num_classes == data.num_classes + (not jia)
    assert (run.size_loss.lambda_e == 0.0) == jia and run.size_loss.multi_label == jia
    scores, seg, cams = wsl.predict_wsl(run.model, data.images[:3], data.labels[:3], run.config)
    assert scores.shape == (3, data.num_classes) and seg.shape == (3, 64, 64)
    assert seg.min() >= 0 and seg.max() <= data.num_classes
    assert ((cams >= 0) & (cams <= 1)).all(), "softmax / sigmoid probabilities of the true class"
    if size_loss == "adaptive":
        assert any(p.requires_grad for p in run.size_loss.parameters())


def test_training_is_seeded(smoke):
    config, data = smoke
    a, b = wsl.train_wsl(config, data), wsl.train_wsl(config, data)
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(x, y)


def test_cross_validation_and_comparison_tables(smoke):
    config, data = smoke
    summary = wsl.cross_validate(config, data)
    assert len(summary["folds"]) == config.folds_to_run and "±" in summary["dice_text"]
    rows = wsl.compare_methods(config, data, {"cam": {"head": "gap"}, "max": {"head": "max"}})
    assert [r["method"] for r in rows] == ["cam", "max"]
    assert rows[0]["dice"] == summary["dice"], "the cached run is reused"


def test_sweeps_unet_and_real_image(smoke):
    from wslbench.data import load_skimage_ihc

    config, data = smoke
    rows = wsl.sweep_parameter(replace(config, size_loss="kl"), data, "lambda_s", [0.1, 1.0])
    assert [r["lambda_s"] for r in rows] == [0.1, 1.0]
    with pytest.raises(ConfigError, match="unknown parameter"):
        wsl.sweep_parameter(config, data, "lambda_z", [1.0])
    assert 0.0 <= wsl.train_unet(config, data)["dice"] <= 1.0
    x = wsl.real_image_tensor(load_skimage_ihc(), config)
    assert x.shape == (1, 3, 64, 64)
    maps = wsl.real_image_cams(wsl.train_wsl_cached(config, data), x)
    assert len(maps) == data.num_classes and sum("(predicted)" in k for k in maps) == 1
    with pytest.raises(InvalidInputError, match="index"):
        wsl.cam_gallery({}, data, index=10_000)


def _glas_folder(root, names):
    from PIL import Image

    root.mkdir()
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(root / f"{name}.bmp")
        anno = np.zeros((20, 24), np.uint8)
        anno[4:12, 6:14] = 1
        Image.fromarray(anno).save(root / f"{name}_anno.bmp")
    rows = ["name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)"]
    rows += [f"{n}, {i}, {'benign' if i % 2 else 'malignant'}, x" for i, n in enumerate(names)]
    (root / "Grade.csv").write_text("\n".join(rows) + "\n")
    return root


def test_real_glas_folder_trains_with_its_official_test_split(tmp_path):
    names = [f"train_{i}" for i in range(1, 9)] + ["testA_1", "testB_1"]
    root = _glas_folder(tmp_path / "glas", names)
    config = wsl.wsl_config("smoke", data_dir=str(root), epochs=1)
    data = wsl.make_wsl_data(config)
    assert data.images.shape[1:] == (3, 64, 64) and data.class_names == ("benign", "malignant")
    fold = data.folds[0]
    assert len(fold.test) == 2 and not set(fold.test) & (set(fold.train) | set(fold.val))
    torch.testing.assert_close(data.sizes, data.masks.float().mean((1, 2)))
    run = wsl.train_wsl(config, data)
    assert 0.0 <= wsl.evaluate_wsl(run.model, data, config)["dice"] <= 1.0
    with pytest.raises(ConfigError, match="task='glas'"):
        wsl.make_wsl_data(replace(config, task="bach"))


def test_alpha_and_gamma_get_their_own_learning_rate(smoke):
    config, data = smoke
    config = replace(config, size_loss="adaptive", size_lr_factor=10.0)
    model = wsl.build_wsl_model(config, data.num_classes)
    loss = wsl.train.SizeSupervisedLoss(size_loss="adaptive")
    groups = wsl.train._optimiser(config, model, loss).param_groups
    assert [g["lr"] for g in groups] == [config.lr, 10 * config.lr]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in loss.parameters()}
    assert len(wsl.train._optimiser(config, model, None).param_groups) == 1
    with pytest.raises(ConfigError, match="size_lr_factor"):
        wsl.wsl_config("smoke", size_lr_factor=0.0)


@pytest.mark.parametrize("select", ["last", "size_error", "accuracy"])
def test_model_selection_criteria(smoke, select):
    """``last`` keeps the last epoch; ``size_error`` the smallest validation |ν_y − a_y|,
    ``accuracy`` the best validation accuracy (latest on ties); image-label models have
    no sizes and select on accuracy."""
    config, data = smoke

    def chosen(history, key, best):
        return max(i + 1 for i, r in enumerate(history) if r[key] == best)

    run = wsl.train_wsl(replace(config, size_loss="l2", epochs=4, select=select), data)
    errors = [r["val_size_error"] for r in run.history]
    accuracies = [r["val_accuracy"] for r in run.history]
    if select == "last":
        assert run.best_epoch == 4
    elif select == "size_error":
        assert run.best_epoch == chosen(run.history, "val_size_error", min(errors))
    else:
        assert run.best_epoch == chosen(run.history, "val_accuracy", max(accuracies))
    cam = wsl.train_wsl(replace(config, epochs=3, select=select), data)
    if select != "last":
        best = max(r["val_accuracy"] for r in cam.history)
        assert cam.best_epoch == chosen(cam.history, "val_accuracy", best)
