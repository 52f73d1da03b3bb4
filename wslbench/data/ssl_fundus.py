"""Synthetic fundus data, splits and augmentation for semi-supervised DR screening.

Embedded default data for Arora, Gaudio & Satpathy, "Semi-supervised learning for
diabetic retinopathy". The paper trains on Messidor (section 4.1): grades 0–3, images
from three hospitals whose cameras give "different dimensions", and the binary task
healthy (grade 0) against diseased (grade > 0) (section 4.6).

* **Cases.** Grades 0–3 of the synthetic fundus generator
  (:mod:`wslbench.data.synthetic_fundus`; its grade 3 is severe NPDR — Messidor's own
  0–3 scale, which the paper calls "0 (healthy) to 3 (Proliferative DR)", is not
  ETDRS, so the generator's grades are used as they are). Binary label = grade > 0.
* **Hospitals.** Each case comes from one of up to three hospitals, each with an
  acquisition style (:class:`HospitalStyle`): field-of-view scale (the camera's image
  dimensions differ, so after resizing to a square the FOV fills a different share of
  the frame), a per-channel colour cast and an optical blur. The style is applied by
  :func:`apply_hospital_style`, a deterministic transform of the rendered case.
  Case ``i`` of :func:`make_ssl_fundus_dataset` comes from hospital ``i % hospitals``
  (Messidor has 400 images per department).
* **Splits.** Section 4.6: "a 60/20/20 random split stratified across hospitals"; the
  test set "is always the same". :func:`stratified_split` stratifies on (hospital,
  label) and can draw the test part with its own seed, so the train/val split can be
  re-drawn around a fixed test set. :func:`labelled_pool` keeps the labels of a
  fraction of the training part and turns the rest into the unlabelled pool.
* **Augmentation.** Section 4.5: "15 degree random rotation, random scaling in the
  range [0.9, 1], and random horizontal flips", a configuration of the existing fundus
  augmentation (:func:`~wslbench.data.fundus_preprocess.sample_augmentation`):
  rotation uniform in [−15°, 15°] (torchvision's ``RandomRotation(15)`` reading),
  scale uniform in [0.9, 1], flip with probability 0.5, no translation, no contrast
  change. :func:`augment_batch` applies recorded draws to a batch, resizing to a
  chosen output size (512 in the paper).

Random draws are separated from deterministic application (DESIGN §6):
:func:`sample_ssl_fundus_case` returns a :class:`SSLFundusRecord` and
:func:`render_ssl_fundus` replays it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage as ndi

from wslbench.data.fundus_preprocess import AugmentationParams, augment_image, sample_augmentation
from wslbench.data.splits import Fold
from wslbench.data.synthetic_fundus import (
    FundusRecord,
    _check_size,
    render_fundus,
    sample_fundus_case,
)
from wslbench.errors import InvalidInputError
from wslbench.seeding import numpy_rng
from wslbench.validation import as_1d

__all__ = [
    "SSL_GRADES",
    "SSL_GRADE_DISTRIBUTION",
    "SSL_ROTATION_RANGE",
    "SSL_SCALE_RANGE",
    "HospitalStyle",
    "HOSPITAL_STYLES",
    "SSLFundusRecord",
    "SSLFundusDataset",
    "apply_hospital_style",
    "sample_ssl_fundus_case",
    "render_ssl_fundus",
    "make_ssl_fundus_dataset",
    "stratified_split",
    "labelled_pool",
    "sample_ssl_augmentation",
    "augment_batch",
]

#: Messidor grades (section 4.1): 0 healthy … 3.
SSL_GRADES: tuple[int, ...] = (0, 1, 2, 3)
#: Default grade weights: 500 healthy of 1187 images (section 4.1); the paper does not
#: give the split of the 687 diseased images, spread evenly over grades 1–3 (229 each).
SSL_GRADE_DISTRIBUTION: tuple[float, ...] = (500 / 1187, 229 / 1187, 229 / 1187, 229 / 1187)
#: Rotation range of section 4.5 in degrees ("15 degree random rotation").
SSL_ROTATION_RANGE: tuple[float, float] = (-15.0, 15.0)
#: Scale range of section 4.5 ("random scaling in the range [0.9, 1]").
SSL_SCALE_RANGE: tuple[float, float] = (0.9, 1.0)

_BACKGROUND = 0.015  # the generator's dark outside of the field of view


@dataclass(frozen=True)
class HospitalStyle:
    """Acquisition style of one hospital's camera.

    Attributes:
        name: short label.
        fov_scale: zoom about the image centre; < 1 shrinks the field of view inside
            the frame (a wider sensor resized to a square), > 1 crops its edges.
        colour_cast: per-channel RGB gain (white balance of the camera).
        blur: Gaussian optical blur σ as a fraction of the image side (0: none), so the
            style looks the same at every size.
    """

    name: str
    fov_scale: float
    colour_cast: tuple[float, float, float]
    blur: float


#: Three default styles: a neutral sharp camera, a warm small-FOV one with mild blur,
#: and a cool, greenish, blurrier one.
HOSPITAL_STYLES: tuple[HospitalStyle, ...] = (
    HospitalStyle("A", fov_scale=1.0, colour_cast=(1.0, 1.0, 1.0), blur=0.0),
    HospitalStyle("B", fov_scale=0.85, colour_cast=(1.12, 0.94, 0.8), blur=0.004),
    HospitalStyle("C", fov_scale=0.93, colour_cast=(0.86, 1.06, 1.15), blur=0.009),
)


@dataclass(frozen=True)
class SSLFundusRecord:
    """Every parameter of one SSL case; :func:`render_ssl_fundus` replays it.

    Attributes:
        fundus: the synthetic fundus record (grade 0–3).
        hospital: index of the hospital.
        style: that hospital's acquisition style.
    """

    fundus: FundusRecord
    hospital: int
    style: HospitalStyle

    @property
    def grade(self) -> int:
        """Grade 0–3."""
        return self.fundus.grade

    @property
    def label(self) -> int:
        """Binary label: 1 = diseased (grade > 0), 0 = healthy (section 4.6)."""
        return int(self.grade > 0)


@dataclass(frozen=True)
class SSLFundusDataset:
    """A batch of SSL cases (:func:`make_ssl_fundus_dataset`).

    Attributes:
        images: ``(N, 3, S, S)`` float32 in [0, 1].
        grades: ``(N,)`` int64 grades 0–3.
        labels: ``(N,)`` int64 binary labels, 1 = grade > 0.
        hospital: ``(N,)`` int64 hospital indices.
        records: the records, for replay with :func:`render_ssl_fundus`.
    """

    images: torch.Tensor
    grades: torch.Tensor
    labels: torch.Tensor
    hospital: torch.Tensor
    records: tuple[SSLFundusRecord, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])


# --------------------------------------------------------------------------- hospitals


def _check_style(style: HospitalStyle) -> None:
    if not isinstance(style, HospitalStyle):
        raise InvalidInputError(f"style must be a HospitalStyle, got {type(style).__name__}")
    cast = np.asarray(style.colour_cast, dtype=float)
    if not 0.5 <= style.fov_scale <= 1.5:
        raise InvalidInputError(f"fov_scale must be in [0.5, 1.5], got {style.fov_scale}")
    if cast.shape != (3,) or not np.all(np.isfinite(cast)) or np.any(cast <= 0):
        raise InvalidInputError(
            f"colour_cast must be 3 positive finite RGB gains, got {style.colour_cast!r}"
        )
    if not 0.0 <= style.blur <= 0.05:
        raise InvalidInputError(f"blur must be in [0, 0.05] of the image side, got {style.blur}")


def apply_hospital_style(image: np.ndarray, style: HospitalStyle) -> np.ndarray:
    """Apply a hospital's acquisition style to a rendered fundus image (deterministic).

    Zoom about the centre by ``fov_scale`` (outside filled with the generator's dark
    background), Gaussian blur with σ = ``blur`` · side, per-channel ``colour_cast``
    gain, clip to [0, 1]. The zoom reuses the fundus augmentation's warp.

    Args:
        image: ``(H, W, 3)`` float RGB in [0, 1] (``FundusCase.image``).
        style: the acquisition style.

    Returns:
        ``(H, W, 3)`` float32 image.
    """
    _check_style(style)
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(
            f"image must be a (H, W, 3) NumPy array, got "
            f"{getattr(image, 'shape', type(image).__name__)}"
        )
    out = np.asarray(image, dtype=np.float32)
    if style.fov_scale != 1.0:
        zoom = AugmentationParams(rotation_deg=0.0, translation=(0.0, 0.0),
                                  scale=style.fov_scale, flip=False, contrast=1.0)
        out = np.asarray(augment_image(out, zoom, neutral=_BACKGROUND))
    if style.blur > 0:
        sigma = style.blur * min(out.shape[:2])
        out = ndi.gaussian_filter(out, sigma=(sigma, sigma, 0.0), mode="nearest")
    out = out * np.asarray(style.colour_cast, dtype=np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- cases


def _check_grade_weights(grade_weights: Sequence[float] | None) -> np.ndarray:
    p = np.asarray(SSL_GRADE_DISTRIBUTION if grade_weights is None else grade_weights, float)
    if p.shape != (4,) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise InvalidInputError(
            "grade_weights must be 4 finite non-negative weights for grades 0-3 with a "
            f"positive sum, got {grade_weights!r}"
        )
    return p / p.sum()


def _check_hospital(hospital: int, styles: Sequence[HospitalStyle]) -> int:
    if isinstance(hospital, bool) or not isinstance(hospital, int | np.integer) \
            or not 0 <= hospital < len(styles):
        raise InvalidInputError(
            f"hospital must be an int in 0-{len(styles) - 1} (one per style), got {hospital!r}"
        )
    return int(hospital)


def sample_ssl_fundus_case(
    rng: np.random.Generator | int | None,
    size: int = 128,
    grade: int | None = None,
    hospital: int = 0,
    *,
    grade_weights: Sequence[float] | None = None,
    styles: Sequence[HospitalStyle] = HOSPITAL_STYLES,
) -> SSLFundusRecord:
    """Draw one SSL case (the random half): a grade 0–3 fundus record and its hospital.

    Args:
        rng: NumPy generator or seed.
        size: image side in pixels, in [64, 512].
        grade: grade 0–3; ``None`` draws it from ``grade_weights``.
        hospital: hospital index into ``styles``.
        grade_weights: 4 weights for grades 0–3 (default :data:`SSL_GRADE_DISTRIBUTION`).
        styles: the hospitals' acquisition styles.

    Returns:
        The :class:`SSLFundusRecord`.
    """
    p = _check_grade_weights(grade_weights)
    hospital = _check_hospital(hospital, styles)
    _check_style(styles[hospital])
    rng = numpy_rng(rng)
    if grade is None:
        grade = int(rng.choice(4, p=p))
    if isinstance(grade, bool) or not isinstance(grade, int | np.integer) or grade not in SSL_GRADES:
        raise InvalidInputError(f"grade must be an int in 0-3 or None, got {grade!r}")
    fundus = sample_fundus_case(rng, size, int(grade))
    return SSLFundusRecord(fundus=fundus, hospital=hospital, style=styles[hospital])


def render_ssl_fundus(record: SSLFundusRecord) -> np.ndarray:
    """Render a record: :func:`render_fundus` then :func:`apply_hospital_style`.

    Returns:
        ``(S, S, 3)`` float32 image in [0, 1]; the same record gives the same array.
    """
    if not isinstance(record, SSLFundusRecord):
        raise InvalidInputError(
            f"render_ssl_fundus expects an SSLFundusRecord, got {type(record).__name__}"
        )
    return apply_hospital_style(render_fundus(record.fundus).image, record.style)


def make_ssl_fundus_dataset(
    n: int,
    size: int = 128,
    seed: int = 0,
    hospitals: int = 3,
    grade_weights: Sequence[float] | None = None,
) -> SSLFundusDataset:
    """A batch of SSL cases as tensors (the Messidor stand-in of section 4.1).

    Case ``i`` comes from hospital ``i % hospitals`` (equal shares, as Messidor's three
    departments) and is drawn from its own generator spawned from ``seed``, so it does
    not depend on ``n``.

    Args:
        n: number of cases (≥ 1).
        size: image side in pixels, in [64, 512].
        seed: base seed.
        hospitals: number of hospitals, 1 to ``len(HOSPITAL_STYLES)`` (3); hospital
            ``h`` uses ``HOSPITAL_STYLES[h]``.
        grade_weights: 4 weights for grades 0–3 (default :data:`SSL_GRADE_DISTRIBUTION`).

    Returns:
        :class:`SSLFundusDataset` with images ``(N, 3, S, S)``, grades, binary labels,
        hospital indices and records.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InvalidInputError(f"n must be a positive int, got {n!r}")
    if isinstance(hospitals, bool) or not isinstance(hospitals, int | np.integer) \
            or not 1 <= hospitals <= len(HOSPITAL_STYLES):
        raise InvalidInputError(
            f"hospitals must be an int in 1-{len(HOSPITAL_STYLES)}, got {hospitals!r}"
        )
    size = _check_size(size)
    _check_grade_weights(grade_weights)
    images = np.empty((n, 3, size, size), np.float32)
    records = []
    for i, child in enumerate(np.random.SeedSequence(int(seed)).spawn(int(n))):
        rec = sample_ssl_fundus_case(np.random.default_rng(child), size, None, i % hospitals,
                                     grade_weights=grade_weights)
        images[i] = render_ssl_fundus(rec).transpose(2, 0, 1)
        records.append(rec)
    grades = torch.tensor([r.grade for r in records], dtype=torch.int64)
    return SSLFundusDataset(
        images=torch.from_numpy(images), grades=grades, labels=(grades > 0).long(),
        hospital=torch.tensor([r.hospital for r in records], dtype=torch.int64),
        records=tuple(records),
    )


# --------------------------------------------------------------------------- splits


def _allocate(sizes: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """``(S, P)`` item counts of each part in each stratum.

    Each stratum gives ``floor(size · fraction)`` items to each part, then its leftover
    items, one per part, to parts with a fractional remainder, those furthest below
    their overall target ``N · fraction`` first (ties: larger remainder, then lower part
    index). Every count is strictly within one item of ``size · fraction``; the greedy
    choice keeps the part totals close to ``N · fraction`` (within one item in
    practice).
    """
    target = sizes[:, None] * fractions[None, :]
    counts = np.floor(target + 1e-9).astype(np.int64)
    deficit = sizes.sum() * fractions - counts.sum(0)
    for s in range(len(sizes)):
        left = int(sizes[s] - counts[s].sum())
        if left == 0:
            continue
        remainder = target[s] - counts[s]
        # Parts with a remainder always outnumber the leftover items (remainders < 1).
        order = np.lexsort((np.arange(len(fractions)), -remainder, -deficit, remainder <= 1e-9))
        chosen = order[:left]
        counts[s, chosen] += 1
        deficit[chosen] -= 1
    return counts


def _strata(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stratum index of every item (joint values of ``columns``) and stratum sizes."""
    _, stratum = np.unique(np.stack([np.unique(c, return_inverse=True)[1] for c in columns]),
                           axis=1, return_inverse=True)
    stratum = stratum.ravel()
    return stratum, np.bincount(stratum)


def _check_seed(seed: object, name: str) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InvalidInputError(f"{name} must be an int, got {seed!r}")


def stratified_split(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    hospitals: Sequence[int] | np.ndarray | torch.Tensor,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    *,
    test_seed: int | None = None,
) -> Fold:
    """Random train/val/test split stratified across hospitals and labels (section 4.6).

    Items are grouped into strata of equal (hospital, label); each stratum is shuffled
    and cut into the three parts with counts from a largest-remainder allocation, so
    every part holds each stratum's share to within one item and the part sizes stay
    close to ``N · fraction``. The paper keeps "the same" test set while the
    train/val split "is re-computed each time a model is trained": pass a fixed
    ``test_seed`` and vary ``seed``. The test items are drawn first from ``test_seed``
    (default: ``seed``), then train and val from ``seed`` among the rest; the counts do
    not depend on either seed.

    Args:
        labels: ``(N,)`` binary (or any) labels.
        hospitals: ``(N,)`` hospital of each item.
        fractions: ``(train, val, test)`` fractions, non-negative, summing to 1, with a
            positive train fraction (60/20/20 in the paper).
        seed: seed of the train/val draw (and of the test draw without ``test_seed``).
        test_seed: seed of the test draw, to keep the test set fixed across seeds.

    Returns:
        A :class:`~wslbench.data.splits.Fold` of sorted int64 ``train``, ``val`` and
        ``test`` indices, disjoint and covering ``range(N)``.
    """
    y = as_1d(labels, "labels")
    h = as_1d(hospitals, "hospitals")
    if y.size != h.size:
        raise InvalidInputError(f"labels has {y.size} entries but hospitals has {h.size}")
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or not np.all(np.isfinite(f)) or np.any(f < 0) or f[0] <= 0 \
            or abs(f.sum() - 1.0) > 1e-6:
        raise InvalidInputError(
            "fractions must be (train, val, test), non-negative with train > 0 and summing "
            f"to 1, got {fractions!r}"
        )
    _check_seed(seed, "seed")
    if test_seed is not None:
        _check_seed(test_seed, "test_seed")
    stratum, sizes = _strata(h, y)
    counts = _allocate(sizes, f)
    test_rng = numpy_rng(int(seed if test_seed is None else test_seed))
    rng = numpy_rng(int(seed))
    part = np.empty(y.size, dtype=np.int64)
    for s in range(len(sizes)):
        members = np.flatnonzero(stratum == s)
        n_train, n_val, n_test = counts[s]
        shuffled = test_rng.permutation(members)
        part[shuffled[:n_test]] = 2
        rest = rng.permutation(np.sort(shuffled[n_test:]))
        part[rest[:n_train]] = 0
        part[rest[n_train:]] = 1
    return Fold(train=np.flatnonzero(part == 0), val=np.flatnonzero(part == 1),
                test=np.flatnonzero(part == 2))


def labelled_pool(
    train_idx: Sequence[int] | np.ndarray | torch.Tensor,
    fraction: float,
    seed: int = 0,
    *,
    stratify: Sequence[object] | np.ndarray | torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split training indices into a labelled pool and an unlabelled pool.

    Semi-supervised setting of sections 4.3 and 4.6: the labels of a fraction of the
    training items are kept, the others are used as unlabelled data. With
    ``stratify`` the pool keeps each stratum's share to within one item (same
    allocation as :func:`stratified_split`).

    Args:
        train_idx: ``(M,)`` distinct data set indices of the training part.
        fraction: share of ``train_idx`` that keeps its label, in (0, 1]; the labelled
            pool has ``fraction · M`` items to within one.
        seed: seed of the draw.
        stratify: optional ``(N,)`` stratum of every item of the *whole data set*,
            indexed by ``train_idx`` (e.g. ``labels``, or ``hospital * 2 + labels`` for
            the joint (hospital, label) strata).

    Returns:
        ``(labelled, unlabelled)`` sorted int64 index arrays, disjoint, whose union is
        ``train_idx``.
    """
    idx = as_1d(train_idx, "train_idx")
    if not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0:
        raise InvalidInputError("train_idx must hold non-negative integer indices")
    idx = idx.astype(np.int64)
    if np.unique(idx).size != idx.size:
        raise InvalidInputError("train_idx has repeated indices; expected distinct indices")
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
            or not 0.0 < fraction <= 1.0:
        raise InvalidInputError(f"fraction must be in (0, 1], got {fraction!r}")
    _check_seed(seed, "seed")
    if stratify is None:
        stratum, sizes = np.zeros(idx.size, np.int64), np.array([idx.size])
    else:
        strata = as_1d(stratify, "stratify")
        if idx.max() >= strata.size:
            raise InvalidInputError(
                f"train_idx holds index {int(idx.max())} but stratify has {strata.size} "
                "entries; expected one stratum per item of the whole data set"
            )
        stratum, sizes = _strata(strata[idx])
    counts = _allocate(sizes, np.array([fraction, 1.0 - fraction]))
    if counts[:, 0].sum() == 0:
        raise InvalidInputError(
            f"fraction={fraction} of {idx.size} training items keeps no label; raise it"
        )
    rng = numpy_rng(int(seed))
    keep = np.zeros(idx.size, bool)
    for s in range(len(sizes)):
        members = rng.permutation(np.flatnonzero(stratum == s))
        keep[members[: counts[s, 0]]] = True
    return np.sort(idx[keep]), np.sort(idx[~keep])


# --------------------------------------------------------------------------- augmentation


def sample_ssl_augmentation(rng: np.random.Generator | int | None) -> AugmentationParams:
    """Draw the section 4.5 augmentation: rotation ±15°, scale [0.9, 1], horizontal flip.

    A configuration of :func:`~wslbench.data.fundus_preprocess.sample_augmentation`
    with :data:`SSL_ROTATION_RANGE`, :data:`SSL_SCALE_RANGE`, flip probability 0.5, no
    translation and no contrast change (the paper lists neither).

    Args:
        rng: NumPy generator or seed.

    Returns:
        The recorded :class:`~wslbench.data.fundus_preprocess.AugmentationParams`.
    """
    return sample_augmentation(
        rng, rotation_range=SSL_ROTATION_RANGE, translation_range=(0.0, 0.0),
        scale_range=SSL_SCALE_RANGE, flip_probability=0.5, contrast_range=(1.0, 1.0),
    )


def augment_batch(
    images: torch.Tensor,
    params: Sequence[AugmentationParams],
    *,
    output_size: int | None = None,
    fill: float = 0.0,
) -> torch.Tensor:
    """Apply one recorded augmentation per image of a batch (deterministic).

    Each image goes through :func:`~wslbench.data.fundus_preprocess.augment_image`:
    resized by ``output_size / min(H, W)`` ("all images were resized to 512×512",
    section 4.5) and then flipped, rotated and scaled about the centre.

    Args:
        images: ``(B, C, H, W)`` float tensor in [0, 1].
        params: ``B`` draws, e.g. ``[sample_ssl_augmentation(rng) for _ in range(B)]``.
        output_size: side of the square output; ``None`` keeps ``H × W``.
        fill: value of pixels coming from outside the input (0 = the black outside
            of a fundus photograph).

    Returns:
        ``(B, C, S, S)`` tensor (``S`` = ``output_size``), same dtype and device.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise InvalidInputError(
            f"images must be a (B, C, H, W) tensor, got "
            f"{getattr(images, 'shape', type(images).__name__)}"
        )
    if len(params) != images.shape[0]:
        raise InvalidInputError(
            f"got {len(params)} augmentation draw(s) for a batch of {images.shape[0]}; "
            "expected one per image"
        )
    if output_size is not None and (isinstance(output_size, bool)
                                    or not isinstance(output_size, int) or output_size < 8):
        raise InvalidInputError(f"output_size must be an int ≥ 8 or None, got {output_size!r}")
    if not math.isfinite(fill):
        raise InvalidInputError(f"fill must be finite, got {fill}")
    return torch.stack([augment_image(img, p, output_size=output_size, neutral=fill)
                        for img, p in zip(images, params, strict=True)])
