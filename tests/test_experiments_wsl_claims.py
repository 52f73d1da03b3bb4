"""Claims of Rony 2020 ch. 4 for ``wslbench reproduce 02_wsl_histology`` (issue 20 item 7)."""

from __future__ import annotations

from dataclasses import replace

import nbformat
import pytest

from wslbench.claims import judge
from wslbench.experiments import wsl
from wslbench.experiments.wsl import claims


def test_claims_are_declared_by_notebook_02():
    nb = nbformat.read("notebooks/02_wsl_histology.ipynb", as_version=4)
    assert nb.metadata["wslbench"]["claims"] == "wslbench.experiments.wsl:CLAIMS"
    assert [c.id for c in wsl.CLAIMS.claims] == ["adaptive_beats_cam", "accuracy_kept",
                                                 "deepmil_beats_cam", "noise_tolerated"]


def test_one_seed_is_a_fold_and_seed_pair_and_measures_every_arm(monkeypatch):
    """Seed 4 = fold 1 of the data drawn with seed 1; every arm trains on that fold."""
    seen = []

    def fake_train(config, data, *, fold):
        seen.append((config.seed, fold, config.size_loss, config.head, config.sigma_s))
        return wsl.train_wsl(replace(config, epochs=1), data, fold=fold)

    monkeypatch.setattr(claims, "train_wsl", fake_train)
    values = claims.measure("smoke", 4)
    assert (values["fold"], values["data_seed"]) == (1.0, 1.0)
    assert {(s, f) for s, f, *_ in seen} == {(1, 1)}
    assert [arm[2:] for arm in seen] == [("none", "gap", 0.0), ("none", "deepmil-multi", 0.0),
                                         ("adaptive", "gap", 0.0),
                                         ("adaptive", "gap", claims.NOISE)]
    for arm in claims.ARMS:
        assert 0.0 <= values[f"accuracy_{arm}"] <= 1.0 and 0.0 <= values[f"dice_{arm}"] <= 1.0


def _seed(acc_cam=0.9, acc_ad=0.88, dice_cam=0.3, dice_ad=0.5, dice_noisy=0.49,
          dice_mil=0.35, acc_mil=0.9):
    return {"accuracy_cam": acc_cam, "accuracy_adaptive": acc_ad, "accuracy_deepmil": acc_mil,
            "accuracy_adaptive_noisy": acc_ad, "dice_cam": dice_cam, "dice_adaptive": dice_ad,
            "dice_adaptive_noisy": dice_noisy, "dice_deepmil": dice_mil}


def test_thresholds_and_floors_of_the_claims():
    by_id = {c.id: c for c in wsl.CLAIMS.claims}
    good = [_seed(), _seed(dice_ad=0.52, dice_noisy=0.5, acc_ad=0.87),
            _seed(dice_ad=0.48, dice_noisy=0.47)]
    verdicts = {k: judge(c, good) for k, c in by_id.items()}
    assert all(v["reproduced"] for v in verdicts.values())
    # accuracy lost by more than 5 points: not kept
    lost = [_seed(acc_ad=0.8), _seed(acc_ad=0.82), _seed(acc_ad=0.81)]
    assert not judge(by_id["accuracy_kept"], lost)["reproduced"]
    # noise costing 5 Dice points: not tolerated
    noisy = [_seed(dice_noisy=0.45), _seed(dice_noisy=0.44), _seed(dice_noisy=0.46)]
    assert not judge(by_id["noise_tolerated"], noisy)["reproduced"]
    # a CAM at chance voids the comparison however large the effect
    chance = [_seed(acc_cam=0.5), _seed(acc_cam=0.52), _seed(acc_cam=0.5)]
    verdict = judge(by_id["adaptive_beats_cam"], chance)
    assert verdict["effect"] == pytest.approx(0.2) and not verdict["reproduced"]
    assert verdict["below_floor"]
