"""Synthetic SSL fundus data (Arora et al. 4.1, 4.5, 4.6): hospitals, splits, pools, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wslbench.data import (
    HOSPITAL_STYLES,
    SSL_ROTATION_RANGE,
    SSL_SCALE_RANGE,
    AugmentationParams,
    HospitalStyle,
    apply_hospital_style,
    augment_batch,
    augment_image,
    labelled_pool,
    make_ssl_fundus_dataset,
    render_fundus,
    render_ssl_fundus,
    sample_fundus_case,
    sample_ssl_augmentation,
    sample_ssl_fundus_case,
    stratified_split,
)
from wslbench.errors import InvalidInputError


@pytest.fixture(scope="module")
def styled() -> list[np.ndarray]:
    """The same grade-2 case seen through the three hospitals' cameras."""
    image = render_fundus(sample_fundus_case(3, 96, 2)).image
    return [apply_hospital_style(image, style) for style in HOSPITAL_STYLES]


def _fov(img: np.ndarray) -> np.ndarray:
    return img.sum(axis=2) > 0.1


def _sharpness(img: np.ndarray) -> float:
    """Mean |vertical gradient| of the green channel in the central disc, over its mean."""
    g = img[..., 1].astype(np.float64)
    s = g.shape[0]
    yy, xx = np.mgrid[:s, :s]
    centre = (yy - s / 2) ** 2 + (xx - s / 2) ** 2 < (0.3 * s) ** 2
    grad = np.abs(np.diff(g, axis=0))[centre[:-1]]
    return float(grad.mean() / g[centre].mean())


def test_hospital_styles_are_deterministic_and_measurably_different(
    styled: list[np.ndarray],
) -> None:
    image = render_fundus(sample_fundus_case(3, 96, 2)).image
    for style, out in zip(HOSPITAL_STYLES, styled, strict=True):
        assert out.shape == (96, 96, 3) and out.dtype == np.float32
        assert np.array_equal(apply_hospital_style(image, style), out)
        assert 0.0 <= out.min() and out.max() <= 1.0
    a, b, c = styled
    # Colour cast: B is warm (more red than blue), C cool, A in between.
    red_blue = [float(x[_fov(x)][:, 0].mean() / x[_fov(x)][:, 2].mean()) for x in styled]
    assert red_blue[1] > 1.2 * red_blue[0] and red_blue[2] < 0.85 * red_blue[0]
    # Field-of-view scale: B's FOV is smallest, A's largest (ratio of areas ≈ scale²).
    areas = [float(_fov(x).mean()) for x in styled]
    assert areas[1] < areas[2] < areas[0]
    assert abs(areas[1] / areas[0] - 0.85**2) < 0.05
    # Blur: sharpness falls A > B > C.
    sharp = [_sharpness(x) for x in styled]
    assert sharp[0] > 1.2 * sharp[1] and sharp[1] > 1.1 * sharp[2]
    # The identity style leaves the image unchanged.
    identity = HospitalStyle("id", 1.0, (1.0, 1.0, 1.0), 0.0)
    assert np.allclose(apply_hospital_style(image, identity), image)


def test_record_replay_and_binary_labels_from_grades_0_to_3() -> None:
    ds = make_ssl_fundus_dataset(16, 64, seed=4)
    assert ds.images.shape == (16, 3, 64, 64) and ds.images.dtype == torch.float32
    assert set(ds.grades.tolist()) <= {0, 1, 2, 3} and len(set(ds.grades.tolist())) > 2
    assert torch.equal(ds.labels, (ds.grades > 0).long())
    assert set(ds.labels.tolist()) == {0, 1}
    assert ds.hospital.tolist() == [i % 3 for i in range(16)]
    for i in (0, 5):
        rec = ds.records[i]
        assert rec.style == HOSPITAL_STYLES[rec.hospital] and rec.label == int(rec.grade > 0)
        assert np.array_equal(render_ssl_fundus(rec), ds.images[i].numpy().transpose(1, 2, 0))
    # Case i does not depend on n, and the seed matters.
    small = make_ssl_fundus_dataset(4, 64, seed=4)
    assert torch.equal(small.images, ds.images[:4])
    assert not torch.equal(make_ssl_fundus_dataset(4, 64, seed=5).images, small.images)
    one = make_ssl_fundus_dataset(3, 64, seed=0, hospitals=1, grade_weights=(0, 0, 0, 1))
    assert one.hospital.tolist() == [0, 0, 0] and one.grades.tolist() == [3, 3, 3]
    assert sample_ssl_fundus_case(0, 64, grade=0, hospital=2).label == 0


def test_ssl_case_errors() -> None:
    with pytest.raises(InvalidInputError, match="grade"):
        sample_ssl_fundus_case(0, 64, grade=4)
    with pytest.raises(InvalidInputError, match="hospital"):
        sample_ssl_fundus_case(0, 64, hospital=3)
    with pytest.raises(InvalidInputError, match="hospitals"):
        make_ssl_fundus_dataset(2, 64, hospitals=4)
    with pytest.raises(InvalidInputError, match="grade_weights"):
        make_ssl_fundus_dataset(2, 64, grade_weights=(1, 1, 1, 1, 1))
    with pytest.raises(InvalidInputError, match="fov_scale"):
        apply_hospital_style(np.zeros((8, 8, 3)), HospitalStyle("x", 3.0, (1, 1, 1), 0.0))
    with pytest.raises(InvalidInputError, match="colour_cast"):
        apply_hospital_style(np.zeros((8, 8, 3)), HospitalStyle("x", 1.0, (1, -1, 1), 0.0))
    with pytest.raises(InvalidInputError, match="H, W, 3"):
        apply_hospital_style(np.zeros((8, 8)), HOSPITAL_STYLES[0])


def _strata_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hospital = rng.choice(3, size=187, p=[0.5, 0.3, 0.2])
    labels = (rng.uniform(size=187) < np.array([0.4, 0.6, 0.5])[hospital]).astype(int)
    return labels, hospital


def test_stratified_split_fractions_and_hospital_proportions() -> None:
    labels, hospital = _strata_data()
    n = labels.size
    split = stratified_split(labels, hospital, seed=3)
    parts = (split.train, split.val, split.test)
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))
    for part, f in zip(parts, (0.6, 0.2, 0.2), strict=True):
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)
        assert abs(part.size - f * n) <= 1
        for h in range(3):
            for y in (0, 1):
                stratum = (hospital == h) & (labels == y)
                assert abs(stratum[part].sum() - f * stratum.sum()) < 1
    assert stratified_split(labels, hospital, seed=3).test.tolist() == split.test.tolist()
    assert stratified_split(labels, hospital, seed=4).test.tolist() != split.test.tolist()


def test_fixed_test_set_with_redrawn_train_val() -> None:
    labels, hospital = _strata_data(1)
    a = stratified_split(labels, hospital, seed=0, test_seed=7)
    b = stratified_split(labels, hospital, seed=1, test_seed=7)
    assert np.array_equal(a.test, b.test)
    assert not np.array_equal(a.val, b.val)
    assert np.array_equal(np.union1d(a.train, a.val), np.union1d(b.train, b.val))
    c = stratified_split(labels, hospital, (0.8, 0.0, 0.2), seed=0, test_seed=7)
    assert c.val.size == 0 and np.array_equal(c.test, a.test)
    assert c.train.size == a.train.size + a.val.size


def test_stratified_split_errors() -> None:
    with pytest.raises(InvalidInputError, match="fractions"):
        stratified_split([0, 1], [0, 0], fractions=(0.5, 0.2, 0.2))
    with pytest.raises(InvalidInputError, match="fractions"):
        stratified_split([0, 1], [0, 0], fractions=(0.0, 0.5, 0.5))
    with pytest.raises(InvalidInputError, match="hospitals"):
        stratified_split([0, 1, 1], [0, 0])
    with pytest.raises(InvalidInputError, match="labels"):
        stratified_split([], [])


def test_labelled_pool_disjoint_fraction_and_strata() -> None:
    labels, hospital = _strata_data(2)
    train = stratified_split(labels, hospital, seed=0).train
    strata = hospital * 2 + labels
    for fraction in (0.1, 0.25, 0.5, 1.0):
        lab, unl = labelled_pool(train, fraction, seed=1, stratify=strata)
        assert np.intersect1d(lab, unl).size == 0
        assert np.array_equal(np.union1d(lab, unl), train)
        assert abs(lab.size - fraction * train.size) <= 1
        for s in np.unique(strata[train]):
            in_s = strata[train] == s
            assert abs((strata[lab] == s).sum() - fraction * in_s.sum()) < 1
    plain, _ = labelled_pool(train, 0.25, seed=1)
    assert abs(plain.size - 0.25 * train.size) <= 1 and np.isin(plain, train).all()
    assert not np.array_equal(plain, labelled_pool(train, 0.25, seed=2)[0])
    assert np.array_equal(plain, labelled_pool(torch.from_numpy(train), 0.25, seed=1)[0])
    with pytest.raises(InvalidInputError, match="fraction"):
        labelled_pool(train, 0.0)
    with pytest.raises(InvalidInputError, match="keeps no label"):
        labelled_pool([1, 2, 3], 0.1)
    with pytest.raises(InvalidInputError, match="repeated"):
        labelled_pool([1, 1, 2], 0.5)
    with pytest.raises(InvalidInputError, match="stratify"):
        labelled_pool([1, 5], 0.5, stratify=[0, 1])


def test_ssl_augmentation_ranges_and_batch_application() -> None:
    rng = np.random.default_rng(0)
    draws = [sample_ssl_augmentation(rng) for _ in range(400)]
    rot = np.array([d.rotation_deg for d in draws])
    scale = np.array([d.scale for d in draws])
    assert SSL_ROTATION_RANGE == (-15.0, 15.0) and SSL_SCALE_RANGE == (0.9, 1.0)
    assert rot.min() >= -15 and rot.max() <= 15 and rot.min() < -13 and rot.max() > 13
    assert scale.min() >= 0.9 and scale.max() <= 1.0
    assert 0.35 < np.mean([d.flip for d in draws]) < 0.65
    assert all(d.translation == (0.0, 0.0) and d.contrast == 1.0 for d in draws)
    assert sample_ssl_augmentation(5) == sample_ssl_augmentation(5)

    images = make_ssl_fundus_dataset(3, 64, seed=0).images
    params = draws[:3]
    out = augment_batch(images, params, output_size=48)
    assert out.shape == (3, 3, 48, 48) and out.dtype == torch.float32
    for i in range(3):
        assert torch.equal(out[i], augment_image(images[i], params[i], output_size=48, neutral=0.0))
    flip = AugmentationParams(0.0, (0.0, 0.0), 1.0, True, 1.0)
    flipped = augment_batch(images[:1], [flip])
    assert torch.allclose(flipped[0], images[0].flip(-1), atol=1e-6)
    with pytest.raises(InvalidInputError, match="one per image"):
        augment_batch(images, params[:2])
    with pytest.raises(InvalidInputError, match="B, C, H, W"):
        augment_batch(images[0], params[:1])


def test_global_colour_does_not_solve_the_task() -> None:
    """DESIGN §9 probe: a logistic regression on the three global channel means is at chance
    (5-fold balanced accuracy 0.50 on 200 cases at 64 px when measured), so a classifier
    must find the lesions. (Per-channel 16-bin histograms reach about 0.73: they count the
    lesions' dark-red and yellow pixels, the label's own carrier.)"""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    data = make_ssl_fundus_dataset(200, size=64, seed=0)
    means = data.images.mean(dim=(2, 3)).numpy()
    score = cross_val_score(LogisticRegression(max_iter=1000), means, data.labels.numpy(), cv=5,
                            scoring="balanced_accuracy").mean()
    assert score < 0.6
