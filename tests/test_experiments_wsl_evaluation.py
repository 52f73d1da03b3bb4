"""The thesis's evaluation rules for the histology WSL experiment (Rony 2020, 2.1.2, 4.4.1).

A model whose CAMs are its input channels (identity backbone, identity 1×1 classifier)
lets every prediction be written by hand.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wslbench.data.splits import Fold
from wslbench.experiments import wsl
from wslbench.pooling import WSLModel, create_pooling


def _identity_model(channels: int) -> WSLModel:
    head = create_pooling("gap", in_channels=channels, num_classes=channels)
    with torch.no_grad():
        head.classifier.weight.copy_(torch.eye(channels))
        head.classifier.bias.zero_()
    return WSLModel(nn.Identity(), head)


def _data(images: torch.Tensor, labels: list[int], masks: torch.Tensor,
          names: tuple[str, ...] = ("benign", "malignant")) -> wsl.WSLData:
    n = len(labels)
    test = list(range(n))
    return wsl.WSLData(images, torch.tensor(labels), masks, masks.float().mean((1, 2)), names,
                       [Fold(test, test, test)])


def test_dice_4_14_counts_the_other_gland_class_as_an_error():
    """Two 2 × 4 images: a benign gland of 4 px found as benign (TP 4) and a malignant
    gland of 4 px predicted benign (FP 4 for benign, FN 4 for malignant):
    eq. 4.14 = 2·4 / (2·4 + 4 + 4) = 0.5 (the old rule, 'foreground anywhere', gave 1)."""
    truth = torch.tensor([[[1, 1, 0, 0], [1, 1, 0, 0]], [[2, 2, 2, 2], [0, 0, 0, 0]]])
    pred = torch.tensor([[[1, 1, 0, 0], [1, 1, 0, 0]], [[1, 1, 1, 1], [0, 0, 0, 0]]])
    assert wsl.evaluate._dice_4_14(pred, truth, 2) == pytest.approx(0.5)
    assert wsl.evaluate._dice_4_14(truth, truth, 2) == 1.0
    # per-image mean (Table 2.7): image 1 Dice 1, image 2 Dice 0
    assert wsl.evaluate._dice_4_14(pred, truth, 2, "image_mean") == pytest.approx(0.5)


def test_image_label_segmentation_is_the_cam_of_the_predicted_class():
    """CAM model: the pixels of the predicted class's CAM above 0 (GAP's zero-score rule)
    carry the predicted class; a misclassified image scores 0 Dice."""
    s = 4
    images = torch.full((2, 2, s, s), -1.0)
    images[0, 0, :2] = 3.0        # image 0: benign map positive on the top half, scores benign
    images[1, 0, :2] = 3.0        # image 1: also scores benign, but it is malignant
    images[1, 1, :, :1] = 1.0     # its malignant map is positive on the left column
    masks = torch.zeros(2, s, s, dtype=torch.bool)
    masks[:, :2] = True
    data = _data(images, [0, 1], masks)
    config = wsl.wsl_config("smoke", head="gap")
    scores, seg, cams = wsl.predict_wsl(_identity_model(2), images, data.labels, config)
    assert scores.argmax(1).tolist() == [0, 0]
    assert (seg[0, :2] == 1).all() and (seg[0, 2:] == 0).all()
    assert (seg[1, :2] == 1).all(), "the predicted (benign) map, not the true one"
    torch.testing.assert_close(cams[1], images[1, 1], msg="display: the CAM of the true label")
    metrics = wsl.evaluate_wsl(_identity_model(2), data, config)
    assert metrics["accuracy"] == 0.5
    assert metrics["dice"] == pytest.approx(2 * 8 / (2 * 8 + 8 + 8))
    assert metrics["dice_image"] == pytest.approx(0.5)
    # eq. 4.6 size of the label's region: 0.5 = 0.5 for image 0; 0 vs 0.5 for image 1
    assert metrics["size_error"] == pytest.approx(0.25)


def test_size_supervised_segmentation_is_the_arg_max_with_background():
    """Background channel first (4.3): arg max of the softmax, eq. 4.6."""
    s = 4
    images = torch.zeros(1, 3, s, s)
    images[0, 0] = 1.0                 # background wins everywhere ...
    images[0, 2, :, :2] = 2.0          # ... but on the left half, where malignant wins
    masks = torch.zeros(1, s, s, dtype=torch.bool)
    masks[0, :, :2] = True
    config = wsl.wsl_config("smoke", size_loss="adaptive")
    _, seg, cams = wsl.predict_wsl(_identity_model(3), images, torch.tensor([1]), config)
    assert (seg[0, :, :2] == 2).all() and (seg[0, :, 2:] == 0).all()
    assert ((cams > 0) & (cams < 1)).all(), "softmax probability of the true class"


def test_jia_predicts_from_generalised_means_and_sigmoid_maps():
    """Jia et al. (eq. 4.1): no background channel; p_c = generalised mean of σ(M_c);
    pixels are the class of the largest σ where it exceeds 1/2."""
    s = 4
    images = torch.full((1, 2, s, s), -4.0)
    images[0, 0, 0, 0] = 8.0   # benign: one very confident pixel
    images[0, 1] = -0.5        # malignant: σ = 0.38 everywhere, higher mean logit
    config = wsl.wsl_config("smoke", size_loss="jia")
    assert not config.background_channel
    scores, seg, _ = wsl.predict_wsl(_identity_model(2), images, torch.tensor([0]), config)
    from wslbench.losses.size import generalized_mean

    torch.testing.assert_close(scores, generalized_mean(images, config.jia_r))
    assert scores.argmax(1).item() == 0, "the generalised mean approaches the max (eq. 4.1)"
    assert images.mean((2, 3)).argmax(1).item() == 1, "the mean of logits would say malignant"
    assert seg[0, 0, 0] == 1 and (seg.flatten()[1:] == 0).all()


def test_camelyon_dice_uses_the_metastatic_map_and_binary_ap_the_positive_class():
    """CAMELYON: the tumour map gives the segmentation whatever the class (Table 2.8);
    binary AP is the AP of the positive class, not the mean over both classes."""
    s = 4
    images = torch.full((3, 2, s, s), -1.0)
    images[0, 0] = 2.0                       # normal patch, normal map everywhere: no tumour
    images[1, 1, :2] = 2.0                   # tumour patch, tumour found on the top half
    images[2, 1] = 1.0                       # normal patch the tumour map fires on: it
    masks = torch.zeros(3, s, s, dtype=torch.bool)  # outranks the tumour patch
    masks[1, :2] = True
    data = _data(images, [0, 1, 0], masks, names=("normal", "tumor"))
    config = wsl.wsl_config("smoke", task="camelyon")
    metrics = wsl.evaluate_wsl(_identity_model(2), data, config)
    # tumour map: image 1 TP 8, image 2 FP 16 → 2·8 / (16 + 16)
    assert metrics["dice"] == pytest.approx(16 / 32)
    assert metrics["dice_image"] == 1.0, "mDice over metastatic images only"
    # tumour ranking: image 2 (normal), image 1 (tumour), image 0 → AP_tumour = 1/2;
    # the mean with AP_normal (= (1 + 2/3) / 2) would give 2/3
    assert metrics["ap"] == pytest.approx(0.5)
