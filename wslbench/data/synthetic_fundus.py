"""Deterministic synthetic colour fundus photographs with pixel ground truth.

Embedded default data for the DR screening experiments of Quellec et al. (2017),
"Deep image mining for diabetic retinopathy screening". Each case is a circular
field of view on a dark background with edge illumination falloff, an optic disc, a
macula, an artery and a vein tree (red, darker than the retina, thinner at the tips)
and the four lesion types of DiaretDB1 (paper section 5.3.2) drawn with their clinical
appearance:

* ``microaneurysm``: tiny, sharp, dark-red dots (at least 1 px radius at any size);
* ``hemorrhage``: larger dark-red blots (ellipses) with soft edges;
* ``hard_exudate``: bright yellow, sharp spots in clusters;
* ``cotton_wool``: larger, pale, fuzzy patches;

and *confounders*, the structures that trigger drafting artifacts when they lie next
to a true lesion (paper section 3.6, section 5.4): artery/vein crossings (the two trees
are grown independently and cross), tortuous vessel segments, dust specks on the
optics (grey dark dots that look like red lesions), specular reflections (white
glossy spots) and drusen (pale yellow, soft-edged deposits that look like exudates).
A fraction of the confounders is placed right next to a lesion. Proliferative cases
additionally carry neovascular tufts (tangles of fine, tortuous, bright-red vessels).

No global shortcut (DESIGN §9). Referable DR is carried by the lesions only, not by
colour or brightness statistics of the whole field: every acquisition and anatomy
nuisance is drawn independently of the grade and varies more than the lesions move the
global statistics of the preprocessed image — illumination (log-uniform ×0.55–1.5),
camera white balance (per channel ×0.7–1.43), pigmentation (a fine choroidal texture of
random strength), vessel contrast and calibre, sensor noise (per case and per channel),
and the number of dust specks (0–16), reflections (0–16) and drusen (0–32), which
saturate after Graham preprocessing as red lesions and exudates do. Severe cases differ
from moderate ones by their hemorrhages (the rule below), not by extra other lesions.
A logistic regression on the per-channel field-of-view means and standard deviations
of the preprocessed demo data reaches test AUC ≈ 0.6 for referable DR (it reached 0.97
before; :func:`wslbench.experiments.dr.shortcut_probe`, ``benchmarks/dr_shortcut_probe.py``).

Random draws are separated from deterministic rendering (DESIGN §6): the draw
:func:`sample_fundus_case` returns a frozen :class:`FundusRecord` holding every
parameter (positions, radii, colours, vessel polylines, noise seed), and
:func:`render_fundus` turns a record into a :class:`FundusCase` without any further
randomness, so a case can be replayed from its record.

Grade rule (ETDRS-like, Wilkinson et al. 2003, as used for the Kaggle labels of paper
section 5.3.1), computed by :func:`etdrs_grade` from the lesions of a record:

* 4 proliferative: at least one neovascular tuft;
* 3 severe NPDR: at least :data:`SEVERE_HEMORRHAGES_PER_QUADRANT` (3) hemorrhages in
  each of at least :data:`SEVERE_QUADRANTS` (3) of the four quadrants around the
  field-of-view centre (a relaxed form of the "4" of the 4-2-1 rule);
* 2 moderate NPDR: any hemorrhage, hard exudate or cotton-wool spot;
* 1 mild NPDR: microaneurysms only;
* 0 no DR: no lesion.

Referable DR is grade ≥ 2 (paper section 5.3.1). Confounders never change the grade.
The pixel masks are stacked in the fixed order :data:`LESION_TYPES`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage as ndi

from wslbench.data._raster import _smooth_texture, _splat
from wslbench.errors import InvalidInputError
from wslbench.seeding import numpy_rng

__all__ = [
    "LESION_TYPES",
    "CONFOUNDER_TYPES",
    "VESSEL_KINDS",
    "GRADE_NAMES",
    "KAGGLE_TRAIN_GRADE_DISTRIBUTION",
    "SEVERE_HEMORRHAGES_PER_QUADRANT",
    "SEVERE_QUADRANTS",
    "MIN_SIZE",
    "MAX_SIZE",
    "Blob",
    "VesselPath",
    "NeovascularTuft",
    "FundusRecord",
    "FundusCase",
    "SyntheticFundusDataset",
    "quadrant_of",
    "etdrs_grade",
    "sample_fundus_case",
    "render_fundus",
    "make_fundus_case",
    "make_fundus_dataset",
]

#: Lesion types, in the order of the mask channels of :func:`make_fundus_dataset`.
LESION_TYPES: tuple[str, ...] = ("microaneurysm", "hemorrhage", "hard_exudate", "cotton_wool")
#: Blob-shaped confounders (vessel crossings and tortuous segments live in the vessels).
CONFOUNDER_TYPES: tuple[str, ...] = ("dust", "specular", "drusen")
#: Kinds of :class:`VesselPath`.
VESSEL_KINDS: tuple[str, ...] = ("artery", "vein", "neovascular")
#: ETDRS severity names of grades 0–4 (paper section 5.3.1).
GRADE_NAMES: tuple[str, ...] = (
    "no DR",
    "mild NPDR",
    "moderate NPDR",
    "severe NPDR",
    "proliferative DR",
)
#: Grade prevalence of Kaggle-train (25810/2443/5292/873/708 of 35126 images; section 5.3.1).
KAGGLE_TRAIN_GRADE_DISTRIBUTION: tuple[float, ...] = (0.7348, 0.0696, 0.1507, 0.0249, 0.0202)
#: Severe NPDR: at least this many hemorrhages in a quadrant ...
SEVERE_HEMORRHAGES_PER_QUADRANT: int = 3
#: ... in at least this many quadrants.
SEVERE_QUADRANTS: int = 3
MIN_SIZE: int = 64
MAX_SIZE: int = 512

Colour = tuple[float, float, float]


@dataclass(frozen=True)
class Blob:
    """An elliptical spot: a lesion, a confounder or the optic disc.

    Coordinates are in pixels of the record's image (row ``cy``, column ``cx``).
    The drawn opacity falls from ``opacity`` to 0 across an edge of relative width
    ``softness`` (at least 1 px) centred on the ellipse boundary, where it is half of
    ``opacity``; the pixel mask is the inside of the ellipse.

    Attributes:
        kind: one of :data:`LESION_TYPES`, :data:`CONFOUNDER_TYPES`, ``"optic_disc"``
            or ``"optic_cup"``.
        cy: centre row.
        cx: centre column.
        ry: semi-axis along the rotated row direction (px).
        rx: semi-axis along the rotated column direction (px).
        angle: rotation of the ellipse (radians).
        colour: RGB colour in [0, 1] blended over the image.
        opacity: peak blending weight in [0, 1].
        softness: edge width relative to the smaller semi-axis.
    """

    kind: str
    cy: float
    cx: float
    ry: float
    rx: float
    angle: float
    colour: Colour
    opacity: float
    softness: float

    @property
    def centre(self) -> tuple[float, float]:
        """``(row, column)`` of the centre."""
        return (self.cy, self.cx)

    @property
    def radius(self) -> float:
        """Equivalent radius ``sqrt(ry · rx)`` (px)."""
        return math.sqrt(self.ry * self.rx)


@dataclass(frozen=True)
class VesselPath:
    """A vessel drawn as a polyline of varying width.

    Attributes:
        kind: one of :data:`VESSEL_KINDS`.
        points: ``((row, col), ...)`` vertices in pixels.
        widths: full vessel width at each vertex (px), decreasing towards the tip.
        colour: RGB colour blended over the retina.
        opacity: peak blending weight (reduced automatically for sub-pixel widths).
        tortuous: the segment was drawn with a strong sinusoidal wiggle (confounder).
    """

    kind: str
    points: tuple[tuple[float, float], ...]
    widths: tuple[float, ...]
    colour: Colour
    opacity: float
    tortuous: bool


@dataclass(frozen=True)
class NeovascularTuft:
    """Location of a neovascular tuft (its vessels are ``VesselPath(kind="neovascular")``)."""

    cy: float
    cx: float
    radius: float


@dataclass(frozen=True)
class FundusRecord:
    """Every parameter of one synthetic fundus case; :func:`render_fundus` replays it.

    Attributes:
        size: image side in pixels (square image).
        eye: ``"left"`` or ``"right"`` (the optic disc is nasal: right of centre
            for a right eye as displayed, left for a left eye).
        fov_cy: field-of-view centre row.
        fov_cx: field-of-view centre column.
        fov_radius: field-of-view radius (px).
        background: base RGB colour of the retina.
        texture: low-resolution grid of choroidal texture values in [-1, 1].
        texture_amplitude: relative brightness modulation of the texture.
        gain: global brightness factor (illumination, drawn independently of the grade).
        falloff: relative darkening at the field-of-view edge (vignetting).
        falloff_power: exponent of the radial vignetting profile.
        optic_disc: the disc blob.
        optic_cup: the brighter cup inside the disc.
        macula: ``(row, col, radius, depth)`` of the darker macula (Gaussian).
        vessels: artery, vein and neovascular polylines.
        lesions: the lesion blobs (kinds in :data:`LESION_TYPES`).
        confounders: dust specks, specular reflections and drusen.
        tufts: neovascular tufts.
        noise_std: standard deviation of the additive pixel noise.
        noise_seed: seed of the pixel noise (rendering stays deterministic).
        colour_balance: per-channel RGB gain of the camera (white balance), applied
            with ``gain``; drawn independently of the grade.
        pigment_amplitude: relative brightness modulation of the fine pigment texture
            (choroidal / tigroid pattern and nerve-fibre striation seen through a thin
            pigment epithelium), drawn independently of the grade.
        pigment_scale: correlation length of that texture, relative to ``fov_radius``.
        noise_channels: per-channel factor of ``noise_std`` (colour sensors differ in
            noise, the blue one most in fundus cameras), drawn independently of the grade.
    """

    size: int
    eye: str
    fov_cy: float
    fov_cx: float
    fov_radius: float
    background: Colour
    texture: tuple[tuple[float, ...], ...]
    texture_amplitude: float
    gain: float
    falloff: float
    falloff_power: float
    optic_disc: Blob
    optic_cup: Blob
    macula: tuple[float, float, float, float]
    vessels: tuple[VesselPath, ...]
    lesions: tuple[Blob, ...]
    confounders: tuple[Blob, ...]
    tufts: tuple[NeovascularTuft, ...]
    noise_std: float
    noise_seed: int
    colour_balance: Colour = (1.0, 1.0, 1.0)
    pigment_amplitude: float = 0.0
    pigment_scale: float = 0.015
    noise_channels: Colour = (1.0, 1.0, 1.0)

    @property
    def grade(self) -> int:
        """ETDRS-like grade 0–4 (:func:`etdrs_grade`)."""
        return etdrs_grade(self)

    @property
    def referable(self) -> bool:
        """Referable DR: grade ≥ 2 (paper section 5.3.1)."""
        return self.grade >= 2


@dataclass(frozen=True)
class FundusCase:
    """A rendered synthetic case.

    Attributes:
        image: ``(H, W, 3)`` float32 RGB in [0, 1].
        masks: lesion type → ``(H, W)`` bool mask, keys in :data:`LESION_TYPES` order.
        fov: ``(H, W)`` bool field-of-view mask.
        vessel_mask: ``(H, W)`` bool mask of the artery and vein trees.
        confounder_masks: ``"dust"``, ``"specular"``, ``"drusen"``, ``"tortuous"`` → ``(H, W)`` bool.
        neovascular_mask: ``(H, W)`` bool mask of the neovascular tufts' vessels.
        grade: ETDRS-like grade 0–4.
        referable: grade ≥ 2.
        record: the record the case was rendered from.
    """

    image: np.ndarray
    masks: dict[str, np.ndarray]
    fov: np.ndarray
    vessel_mask: np.ndarray
    confounder_masks: dict[str, np.ndarray]
    neovascular_mask: np.ndarray
    grade: int
    referable: bool
    record: FundusRecord

    @property
    def lesions(self) -> tuple[Blob, ...]:
        """The lesion list (type ``kind``, ``centre``, ``radius`` of each blob)."""
        return self.record.lesions

    def mask_stack(self) -> np.ndarray:
        """``(4, H, W)`` bool masks in :data:`LESION_TYPES` order."""
        return np.stack([self.masks[k] for k in LESION_TYPES])


@dataclass(frozen=True)
class SyntheticFundusDataset:
    """A batch of synthetic cases as tensors (:func:`make_fundus_dataset`).

    Attributes:
        images: ``(N, 3, H, W)`` float32 in [0, 1].
        grades: ``(N,)`` int64 grades 0–4.
        referable: ``(N,)`` bool, grade ≥ 2.
        masks: ``(N, 4, H, W)`` bool lesion masks in :data:`LESION_TYPES` order.
        fov: ``(N, H, W)`` bool field-of-view masks.
        records: the records, for replay with :func:`render_fundus`.
    """

    images: torch.Tensor
    grades: torch.Tensor
    referable: torch.Tensor
    masks: torch.Tensor
    fov: torch.Tensor
    records: tuple[FundusRecord, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])


# --------------------------------------------------------------------------- grade rule


def quadrant_of(cy: float, cx: float, fov_cy: float, fov_cx: float) -> int:
    """Quadrant index ``2·(row ≥ centre row) + (col ≥ centre col)`` of a point (0–3)."""
    return 2 * int(cy >= fov_cy) + int(cx >= fov_cx)


def etdrs_grade(record: FundusRecord) -> int:
    """ETDRS-like grade of a record from its lesions (rule in the module docstring).

    Args:
        record: a synthetic fundus record.

    Returns:
        The grade in 0–4.
    """
    if record.tufts:
        return 4
    kinds = [b.kind for b in record.lesions]
    per_quadrant = [0, 0, 0, 0]
    for b in record.lesions:
        if b.kind == "hemorrhage":
            per_quadrant[quadrant_of(b.cy, b.cx, record.fov_cy, record.fov_cx)] += 1
    if sum(c >= SEVERE_HEMORRHAGES_PER_QUADRANT for c in per_quadrant) >= SEVERE_QUADRANTS:
        return 3
    if any(k in ("hemorrhage", "hard_exudate", "cotton_wool") for k in kinds):
        return 2
    if "microaneurysm" in kinds:
        return 1
    return 0


# --------------------------------------------------------------------------- random draw


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise InvalidInputError(f"size must be an int in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}")
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise InvalidInputError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}] px, got {size}")
    return int(size)


def _check_distribution(grade_distribution: Sequence[float] | None) -> np.ndarray:
    if grade_distribution is None:
        return np.full(5, 0.2)
    p = np.asarray(grade_distribution, dtype=float)
    if p.shape != (5,) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise InvalidInputError(
            "grade_distribution must be 5 finite non-negative weights for grades 0-4 "
            f"with a positive sum, got {grade_distribution!r}"
        )
    return p / p.sum()


def _jitter(rng: np.random.Generator, colour: Sequence[float], amount: float) -> Colour:
    c = np.clip(np.asarray(colour) * rng.uniform(1 - amount, 1 + amount, 3), 0.0, 1.0)
    return (float(c[0]), float(c[1]), float(c[2]))


class _Scene:
    """Geometry helpers shared by the lesion samplers of one draw."""

    def __init__(self, rng: np.random.Generator, cy: float, cx: float, radius: float,
                 disc: tuple[float, float, float], macula: tuple[float, float, float]) -> None:
        self.rng = rng
        self.cy, self.cx, self.radius = cy, cx, radius
        self.disc = disc
        self.macula = macula

    def point(self, quadrant: int | None = None, max_rho: float = 0.85,
              near: tuple[float, float, float] | None = None) -> tuple[float, float]:
        """A point in the FOV (optionally in a quadrant or within ``near``), off the disc."""
        rng = self.rng
        for _ in range(100):
            if near is not None:
                rho = near[2] * math.sqrt(rng.uniform())
                phi = rng.uniform(0, 2 * math.pi)
                y, x = near[0] + rho * math.sin(phi), near[1] + rho * math.cos(phi)
            else:
                rho = self.radius * max_rho * math.sqrt(rng.uniform(0.02, 1.0))
                phi = rng.uniform(0.08, math.pi / 2 - 0.08)
                q = int(rng.integers(4)) if quadrant is None else quadrant
                sy = 1.0 if q >= 2 else -1.0
                sx = 1.0 if q % 2 == 1 else -1.0
                y, x = self.cy + sy * rho * math.sin(phi), self.cx + sx * rho * math.cos(phi)
                if quadrant is not None and quadrant_of(y, x, self.cy, self.cx) != quadrant:
                    continue
            if math.hypot(y - self.cy, x - self.cx) > max_rho * self.radius:
                continue
            if math.hypot(y - self.disc[0], x - self.disc[1]) < 1.4 * self.disc[2]:
                continue
            return (y, x)
        return (self.macula[0], self.macula[1])  # pragma: no cover - practically unreachable

    def size(self, low: float, high: float, minimum: float) -> float:
        return max(minimum, self.radius * self.rng.uniform(low, high))


def _microaneurysm(s: _Scene, centre: tuple[float, float]) -> Blob:
    r = s.size(0.006, 0.010, 1.0)
    return Blob("microaneurysm", centre[0], centre[1], r, r * s.rng.uniform(1.0, 1.15),
                s.rng.uniform(0, math.pi), _jitter(s.rng, (0.42, 0.05, 0.04), 0.1),
                float(s.rng.uniform(0.5, 0.75)), 0.15)


def _hemorrhage(s: _Scene, centre: tuple[float, float]) -> Blob:
    r = s.size(0.020, 0.045, 1.6)
    e = s.rng.uniform(1.0, 1.7)
    return Blob("hemorrhage", centre[0], centre[1], r * math.sqrt(e), r / math.sqrt(e),
                s.rng.uniform(0, math.pi), _jitter(s.rng, (0.36, 0.04, 0.03), 0.1),
                float(s.rng.uniform(0.55, 0.8)), float(s.rng.uniform(0.4, 0.7)))


def _exudate_cluster(s: _Scene) -> list[Blob]:
    # Hard exudates gather around the macula (circinate rings) more often than not.
    if s.rng.uniform() < 0.6:
        centre = s.point(near=(s.macula[0], s.macula[1], 0.35 * s.radius))
    else:
        centre = s.point()
    spread = s.size(0.03, 0.08, 2.5)
    blobs = []
    for _ in range(int(s.rng.integers(3, 10))):
        y, x = s.point(near=(centre[0], centre[1], spread))
        r = s.size(0.006, 0.015, 0.9)
        blobs.append(Blob("hard_exudate", y, x, r, r * s.rng.uniform(1.0, 1.4),
                          s.rng.uniform(0, math.pi), _jitter(s.rng, (0.97, 0.86, 0.30), 0.05),
                          float(s.rng.uniform(0.6, 0.85)), 0.25))
    return blobs


def _cotton_wool(s: _Scene) -> Blob:
    y, x = s.point(max_rho=0.7)
    r = s.size(0.04, 0.065, 2.2)
    e = s.rng.uniform(1.0, 1.6)
    return Blob("cotton_wool", y, x, r * math.sqrt(e), r / math.sqrt(e), s.rng.uniform(0, math.pi),
                _jitter(s.rng, (0.93, 0.87, 0.72), 0.04), float(s.rng.uniform(0.55, 0.75)), 1.0)


def _dust(s: _Scene, centre: tuple[float, float], background: Colour) -> Blob:
    r = s.size(0.007, 0.025, 1.0)
    dark = s.rng.uniform(0.35, 0.5)
    colour = (background[0] * dark, background[1] * dark, background[2] * dark)
    return Blob("dust", centre[0], centre[1], r, r, 0.0, colour,
                float(s.rng.uniform(0.75, 0.9)), 0.6)


def _specular(s: _Scene, centre: tuple[float, float]) -> Blob:
    r = s.size(0.008, 0.02, 0.9)
    e = s.rng.uniform(1.5, 3.0)
    return Blob("specular", centre[0], centre[1], r * math.sqrt(e), r / math.sqrt(e),
                s.rng.uniform(0, math.pi), _jitter(s.rng, (0.98, 0.97, 0.93), 0.02),
                float(s.rng.uniform(0.45, 0.75)), 0.6)


def _drusen(s: _Scene, centre: tuple[float, float]) -> Blob:
    """A druse: a round, pale yellow, soft-edged deposit (ageing, not DR), the classic
    look-alike of a hard exudate (which is sharper, waxier and more saturated)."""
    r = s.size(0.008, 0.025, 0.9)
    return Blob("drusen", centre[0], centre[1], r, r * s.rng.uniform(1.0, 1.2),
                s.rng.uniform(0, math.pi), _jitter(s.rng, (0.93, 0.84, 0.38), 0.04),
                float(s.rng.uniform(0.5, 0.8)), float(s.rng.uniform(0.7, 1.0)))


def _near(s: _Scene, target: Blob, own_radius: float) -> tuple[float, float]:
    """A point just outside ``target`` (gap of 1–3 own radii): the drafting setting."""
    d = target.radius * 1.2 + own_radius * s.rng.uniform(1.5, 3.5) + 1.0
    phi = s.rng.uniform(0, 2 * math.pi)
    return (target.cy + d * math.sin(phi), target.cx + d * math.cos(phi))


def _grow_vessel(rng: np.random.Generator, start: tuple[float, float], angle: float,
                 width: float, length: float, step: float, target: float | None,
                 turn: float, fov: tuple[float, float, float], kind: str, colour: Colour,
                 depth: int, tortuous_p: float, out: list[VesselPath]) -> None:
    """Random-walk growth of one vessel and, recursively, its branches."""
    n = max(3, int(length / step))
    tortuous = depth > 0 and rng.uniform() < tortuous_p
    pts = [start]
    y, x, a = start[0], start[1], angle
    for _ in range(n):
        if target is not None:
            a += turn * math.atan2(math.sin(target - a), math.cos(target - a))
        a += rng.normal(0, 0.12)
        y, x = y + step * math.sin(a), x + step * math.cos(a)
        if math.hypot(y - fov[0], x - fov[1]) > 0.98 * fov[2]:
            break
        pts.append((y, x))
    if len(pts) < 3:
        return
    p = np.asarray(pts)
    if tortuous:  # resample 3 points per step, then wiggle along the local normal
        u = np.linspace(0, len(p) - 1, 3 * len(p) - 2)
        p = np.column_stack([np.interp(u, np.arange(len(p)), p[:, 0]),
                             np.interp(u, np.arange(len(p)), p[:, 1])])
        seg = np.diff(p, axis=0)
        normal = np.stack([seg[:, 1], -seg[:, 0]], 1) / (np.linalg.norm(seg, axis=1)[:, None] + 1e-9)
        normal = np.vstack([normal, normal[-1:]])
        t = np.arange(len(p)) / 3.0
        amp = step * rng.uniform(0.4, 0.7)
        p = p + normal * (amp * np.sin(t * rng.uniform(1.6, 2.4)) * np.minimum(1, t / 2))[:, None]
    widths = width * np.linspace(1.0, 0.4, len(p))
    out.append(VesselPath(kind, tuple((float(a_), float(b_)) for a_, b_ in p),
                          tuple(float(w) for w in widths), colour, 0.85, bool(tortuous)))
    if depth >= 2:
        return
    n_children = int(rng.integers(2, 4)) if depth == 0 else int(rng.integers(1, 3))
    for _ in range(n_children):
        k = int(rng.integers(1, max(2, len(p) - 2)))
        side = 1 if rng.uniform() < 0.5 else -1
        seg = p[min(k + 1, len(p) - 1)] - p[k - 1]
        base = math.atan2(seg[0], seg[1])
        _grow_vessel(rng, (float(p[k, 0]), float(p[k, 1])), base + side * rng.uniform(0.4, 1.0),
                     float(widths[k]) * rng.uniform(0.55, 0.75), length * rng.uniform(0.35, 0.6),
                     step, None, 0.0, fov, kind, colour, depth + 1, tortuous_p, out)


def _tuft(rng: np.random.Generator, cy: float, cx: float, radius: float, width: float,
          step: float) -> list[VesselPath]:
    """A tangle of fine tortuous loops within ``radius`` of (cy, cx)."""
    paths = []
    for _ in range(int(rng.integers(5, 9))):
        a = rng.uniform(0, 2 * math.pi)
        y, x = cy + 0.3 * radius * math.sin(a), cx + 0.3 * radius * math.cos(a)
        pts = [(y, x)]
        for _ in range(int(rng.integers(5, 9))):
            a += rng.normal(0, 0.9)
            ny, nx = y + step * math.sin(a), x + step * math.cos(a)
            if math.hypot(ny - cy, nx - cx) > radius:  # turn back inside the tuft
                a += math.pi
                ny, nx = y + step * math.sin(a), x + step * math.cos(a)
            y, x = ny, nx
            pts.append((y, x))
        paths.append(VesselPath("neovascular", tuple((float(p), float(q)) for p, q in pts),
                                tuple(float(width) for _ in pts), (0.75, 0.10, 0.08), 0.95, True))
    return paths


def sample_fundus_case(
    rng: np.random.Generator | int | None,
    size: int,
    grade: int | None = None,
    *,
    grade_distribution: Sequence[float] | None = None,
    confounders: bool = True,
    adjacent_confounder_fraction: float = 0.5,
    noise_std: float = 0.01,
) -> FundusRecord:
    """Draw the parameters of one synthetic fundus case (the random half).

    Grade-independent nuisance (module docstring) is drawn after every grade-dependent
    parameter. Lesion sizes scale with the field-of-view radius R (microaneurysm radius
    0.006–0.010·R but ≥ 1 px, hemorrhages 0.020–0.045·R, exudate spots 0.006–0.015·R,
    cotton-wool spots 0.04–0.065·R). Lesion counts follow the requested grade so that
    :func:`etdrs_grade` of the record equals it.

    Args:
        rng: NumPy generator or seed.
        size: image side in pixels, in [64, 512].
        grade: ETDRS-like grade 0–4 to draw; ``None`` draws it from ``grade_distribution``.
        grade_distribution: 5 weights for grades 0–4 (``None``: uniform; see
            :data:`KAGGLE_TRAIN_GRADE_DISTRIBUTION` for the paper's prevalence).
        confounders: draw dust specks, specular reflections, drusen and tortuous segments.
        adjacent_confounder_fraction: fraction of confounders placed right next to a
            lesion (drafting setting, paper section 3.6), when the case has lesions.
        noise_std: typical standard deviation of the additive Gaussian pixel noise; each
            case draws its own (camera sensor, exposure) log-uniformly in
            ``[noise_std / 2.5, 2.5 · noise_std]``, independently of the grade (0: no noise).

    Returns:
        The :class:`FundusRecord`; render it with :func:`render_fundus`.
    """
    size = _check_size(size)
    p = _check_distribution(grade_distribution)
    if not 0.0 <= adjacent_confounder_fraction <= 1.0:
        raise InvalidInputError(
            f"adjacent_confounder_fraction must be in [0, 1], got {adjacent_confounder_fraction}"
        )
    if not 0.0 <= noise_std <= 0.2:
        raise InvalidInputError(f"noise_std must be in [0, 0.2], got {noise_std}")
    rng = numpy_rng(rng)
    if grade is None:
        grade = int(rng.choice(5, p=p))
    if isinstance(grade, bool) or not isinstance(grade, int | np.integer) or not 0 <= grade <= 4:
        raise InvalidInputError(f"grade must be an int in 0-4 or None, got {grade!r}")
    grade = int(grade)

    # Field of view, anatomy, colours.
    radius = size * 0.47 * rng.uniform(0.95, 1.0)
    cy = size / 2 - 0.5 + rng.uniform(-0.01, 0.01) * size
    cx = size / 2 - 0.5 + rng.uniform(-0.01, 0.01) * size
    eye = "right" if rng.uniform() < 0.5 else "left"
    nasal = 1.0 if eye == "right" else -1.0
    background = _jitter(rng, (0.80, 0.37, 0.16), 0.08)
    disc_r = radius * rng.uniform(0.10, 0.12)
    disc_y = cy + radius * rng.uniform(-0.06, 0.02)
    disc_x = cx + nasal * radius * rng.uniform(0.36, 0.42)
    mac_y = cy + radius * rng.uniform(0.0, 0.06)
    mac_x = cx - nasal * radius * rng.uniform(0.26, 0.32)
    mac_r = radius * rng.uniform(0.13, 0.17)
    disc = Blob("optic_disc", disc_y, disc_x, disc_r * rng.uniform(1.0, 1.1), disc_r, 0.0,
                _jitter(rng, (0.98, 0.82, 0.55), 0.03), 0.9, 0.35)
    cup_r = disc_r * rng.uniform(0.3, 0.5)
    cup = Blob("optic_cup", disc_y + rng.uniform(-0.1, 0.1) * disc_r,
               disc_x + nasal * 0.15 * disc_r, cup_r, cup_r, 0.0, (1.0, 0.95, 0.82), 0.7, 0.8)
    texture = tuple(tuple(float(v) for v in row) for row in rng.uniform(-1, 1, (8, 8)))
    scene = _Scene(rng, cy, cx, radius, (disc_y, disc_x, disc_r), (mac_y, mac_x, mac_r))

    # Vessel trees from the disc: temporal arcades around the macula, nasal branches.
    vessels: list[VesselPath] = []
    fov = (cy, cx, radius)
    step = radius * 0.04
    temporal = 0.0 if nasal < 0 else math.pi  # direction from the disc towards the macula
    for kind, w0, colour in (("vein", 0.024, (0.42, 0.07, 0.06)),
                             ("artery", 0.017, (0.60, 0.14, 0.08))):
        colour = _jitter(rng, colour, 0.05)
        for up in (-1.0, 1.0):
            # Arcade: leaves vertically, bends towards the temporal horizontal direction.
            start_a = math.atan2(up, 0.0) + rng.normal(0, 0.15)
            target = math.atan2(0.35 * up, math.cos(temporal))
            _grow_vessel(rng, (disc_y, disc_x), start_a, radius * w0, radius * rng.uniform(1.1, 1.4),
                         step, target, 0.12, fov, kind, colour, 0, 0.15, vessels)
            nasal_a = math.atan2(up * rng.uniform(0.4, 1.0), nasal)
            _grow_vessel(rng, (disc_y, disc_x), nasal_a, radius * w0 * 0.8,
                         radius * rng.uniform(0.5, 0.7), step, None, 0.0, fov, kind, colour, 1,
                         0.15, vessels)

    # Lesions for the requested grade.
    lesions: list[Blob] = []
    if grade >= 1:
        # Severe cases differ from moderate ones by what defines them (hemorrhages in
        # quadrants); their other lesions are drawn as for moderate cases, so the grade is
        # not told by an overall lesion load that shifts the global image statistics.
        lo, hi = {1: (1, 7), 2: (2, 11), 3: (2, 11), 4: (2, 11)}[grade]
        lesions += [_microaneurysm(scene, scene.point()) for _ in range(int(rng.integers(lo, hi)))]
    severe = grade == 3 or (grade == 4 and rng.uniform() < 0.5)
    if grade >= 2:
        if severe:
            quads = rng.permutation(4)[: int(rng.integers(SEVERE_QUADRANTS, 5))]
            counts = [int(rng.integers(SEVERE_HEMORRHAGES_PER_QUADRANT, 6)) if q in quads
                      else int(rng.integers(0, SEVERE_HEMORRHAGES_PER_QUADRANT)) for q in range(4)]
            n_ex, n_cws = int(rng.integers(0, 4)), int(rng.integers(0, 3))
        else:
            # Moderate: fewer than SEVERE_HEMORRHAGES_PER_QUADRANT per quadrant, never severe.
            counts = [int(rng.integers(0, SEVERE_HEMORRHAGES_PER_QUADRANT)) if rng.uniform() < 0.5
                      else 0 for _ in range(4)]
            n_ex, n_cws = int(rng.integers(0, 4)), int(rng.integers(0, 3))
            if sum(counts) + n_ex + n_cws == 0:
                choice = int(rng.integers(3))
                if choice == 0:
                    counts[int(rng.integers(4))] = 1
                elif choice == 1:
                    n_ex = 1
                else:
                    n_cws = 1
        for q, c in enumerate(counts):
            lesions += [_hemorrhage(scene, scene.point(quadrant=q)) for _ in range(c)]
        for _ in range(n_ex):
            lesions += _exudate_cluster(scene)
        lesions += [_cotton_wool(scene) for _ in range(n_cws)]

    tufts: list[NeovascularTuft] = []
    if grade == 4:
        trunk_points = [pt for v in vessels if v.kind == "vein" for pt in v.points[2:]]
        for _ in range(int(rng.integers(1, 3))):
            t_r = max(3.0, radius * rng.uniform(0.05, 0.08))
            if rng.uniform() < 0.4:  # on the disc (NVD), else along a vein (NVE)
                ty, tx = disc_y + rng.normal(0, 0.3) * disc_r, disc_x + rng.normal(0, 0.3) * disc_r
            else:
                ty, tx = trunk_points[int(rng.integers(len(trunk_points)))]
            tufts.append(NeovascularTuft(float(ty), float(tx), float(t_r)))
            vessels += _tuft(rng, float(ty), float(tx), t_r, max(0.7, radius * 0.006),
                             max(1.0, t_r * 0.4))

    # Confounders, some right next to a lesion.
    confs: list[Blob] = []
    if confounders:
        # Counts with a wide, grade-independent spread: dark dust and bright reflections
        # and drusen saturate after preprocessing like red lesions and exudates do, so the
        # global statistics they shift cannot tell the grade.
        n_dust, n_spec, n_tort = (int(rng.integers(0, 17)), int(rng.integers(0, 17)),
                                  int(rng.integers(0, 3)))
        n_drusen = int(rng.integers(0, 33))
        for kind_i, count in ((0, n_dust), (1, n_spec), (2, n_tort), (3, n_drusen)):
            for _ in range(count):
                adjacent = bool(lesions) and rng.uniform() < adjacent_confounder_fraction
                own = radius * 0.012
                centre = _near(scene, lesions[int(rng.integers(len(lesions)))], own) if adjacent \
                    else scene.point()
                if kind_i == 0:
                    confs.append(_dust(scene, centre, background))
                elif kind_i == 1:
                    confs.append(_specular(scene, centre))
                elif kind_i == 3:
                    confs.append(_drusen(scene, centre))
                else:
                    seg: list[VesselPath] = []
                    _grow_vessel(rng, centre, rng.uniform(0, 2 * math.pi), radius * 0.008,
                                 radius * rng.uniform(0.1, 0.18), step * 0.6, None, 0.0, fov,
                                 "vein", vessels[0].colour, 1, 1.0, seg)
                    vessels += seg[:1]

    # Acquisition nuisance, drawn after (and independently of) everything grade-related:
    # illumination and the camera's white balance (log-uniform).
    illumination = float(math.exp(rng.uniform(math.log(0.55), math.log(1.5))))
    balance = np.exp(rng.uniform(math.log(0.7), math.log(1.43), 3))
    # Pigmentation: how strongly the fine choroidal pattern shows through.
    pigment = float(rng.uniform(0.0, 0.1))
    # Sensor noise of this acquisition.
    case_noise = float(noise_std * math.exp(rng.uniform(math.log(0.4), math.log(6.0))))
    noise_channels = np.exp(rng.uniform(math.log(0.5), math.log(2.0), 3))
    # Vessel contrast (pigmentation, media clarity) and calibre: the vessel trees are the
    # largest dark-red structure, so their variation outweighs the red lesions' in the
    # global statistics. Neovascular tufts (a lesion) are left as drawn.
    contrast = float(rng.uniform(0.6, 1.15))
    calibre = float(math.exp(rng.uniform(math.log(0.8), math.log(1.25))))
    vessels = [v if v.kind == "neovascular" else dataclasses.replace(
        v, widths=tuple(w * calibre for w in v.widths), opacity=min(1.0, v.opacity * contrast))
        for v in vessels]

    return FundusRecord(
        size=size, eye=eye, fov_cy=float(cy), fov_cx=float(cx), fov_radius=float(radius),
        background=background, texture=texture,
        texture_amplitude=float(rng.uniform(0.04, 0.09)), gain=illumination,
        falloff=float(rng.uniform(0.3, 0.5)), falloff_power=float(rng.uniform(2.5, 3.5)),
        optic_disc=disc, optic_cup=cup,
        macula=(float(mac_y), float(mac_x), float(mac_r), float(rng.uniform(0.25, 0.4))),
        vessels=tuple(vessels), lesions=tuple(lesions), confounders=tuple(confs),
        tufts=tuple(tufts), noise_std=case_noise,
        noise_seed=int(rng.integers(0, 2**31 - 1)),
        colour_balance=(float(balance[0]), float(balance[1]), float(balance[2])),
        pigment_amplitude=pigment,
        noise_channels=(float(noise_channels[0]), float(noise_channels[1]),
                        float(noise_channels[2])),
    )


# --------------------------------------------------------------------------- rendering






def _layer(h: int, w: int, params: np.ndarray, colours: np.ndarray,
           flags: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Max-combined opacity ``(H, W)``, colour ``(H, W, 3)`` and masks ``(H, W)`` of shapes.

    The colour at a pixel is the opacity-weighted mean of the shapes covering it (shapes
    of one layer differ only by a small colour jitter). The second mask covers only the
    shapes whose ``flags`` entry is true (all zeros when ``flags`` is ``None``).
    """
    n = h * w
    alpha = np.zeros(n)
    colour = np.zeros((n, 3))
    mask = np.zeros(n, bool)
    flagged = np.zeros(n, bool)
    idx, a, inside, owner = _splat(h, w, params)
    if len(idx):
        np.maximum.at(alpha, idx, a)
        mask[idx[inside]] = True
        if flags is not None:
            flagged[idx[inside & flags[owner]]] = True
        den = np.bincount(idx, weights=a, minlength=n)
        for c in range(3):
            colour[:, c] = np.bincount(idx, weights=a * colours[owner, c], minlength=n)
        colour /= np.maximum(den, 1e-12)[:, None]
    return (alpha.reshape(h, w), colour.reshape(h, w, 3), mask.reshape(h, w),
            flagged.reshape(h, w))


def _blob_params(blobs: Sequence[Blob]) -> tuple[np.ndarray, np.ndarray]:
    if not blobs:
        return np.zeros((0, 7)), np.zeros((0, 3))
    arr = np.array([[b.cy, b.cx, b.ry, b.rx, b.angle, b.opacity, b.softness] for b in blobs])
    return arr, np.array([b.colour for b in blobs], dtype=float)


def _vessel_params(paths: Sequence[VesselPath]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Densify polylines into overlapping discs (spacing 0.4 radius, within 0.5–1.5 px).

    Sub-pixel vessels are drawn 1 px wide with their opacity scaled by their width,
    so thin tips fade instead of vanishing or thickening. Returns shape parameters,
    colours and a per-disc flag telling whether its path is tortuous.
    """
    paths = [v for v in paths if len(v.points) >= 2]
    if not paths:
        return np.zeros((0, 7)), np.zeros((0, 3)), np.zeros(0, bool)
    lengths = np.array([len(v.points) for v in paths])
    p = np.concatenate([np.asarray(v.points, dtype=float) for v in paths])
    wd = np.concatenate([np.asarray(v.widths, dtype=float) for v in paths])
    path_of = np.repeat(np.arange(len(paths)), lengths)
    starts = np.flatnonzero(path_of[:-1] == path_of[1:])  # segment i joins vertex i and i + 1
    seg_len = np.linalg.norm(p[starts + 1] - p[starts], axis=1)
    r_seg = np.maximum(0.5 * np.minimum(wd[starts], wd[starts + 1]), 0.5)
    n = np.maximum(1, np.ceil(seg_len / np.clip(0.4 * r_seg, 0.5, 1.5))).astype(int)
    seg = np.repeat(starts, n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(n, n)
    ends = np.cumsum(lengths) - 1  # the last vertex of every path
    pts = np.vstack([p[seg] + (p[seg + 1] - p[seg]) * t[:, None], p[ends]])
    width = np.concatenate([wd[seg] + (wd[seg + 1] - wd[seg]) * t, wd[ends]])
    owner = np.concatenate([path_of[seg], path_of[ends]])
    opacity = np.array([v.opacity for v in paths])[owner] * np.minimum(1.0, width)
    r = np.maximum(width / 2, 0.5)
    m = len(r)
    params = np.column_stack([pts, r, r, np.zeros(m), opacity, np.full(m, 0.7)])
    colours = np.array([v.colour for v in paths], dtype=float)[owner]
    return params, colours, np.array([v.tortuous for v in paths], bool)[owner]




def _blend(img: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """``img ← (1 − α)·img + α·colour`` in place, only where α > 0."""
    sel = np.nonzero(alpha)
    if sel[0].size:
        a = alpha[sel][:, None]
        img[sel] = img[sel] * (1.0 - a) + a * colour[sel]


def _pigment_texture(record: FundusRecord, h: int, w: int) -> np.ndarray:
    """Unit-variance Gaussian-smoothed noise (σ = ``pigment_scale · fov_radius``, ≥ 0.5 px),
    seeded from the record's noise seed on a separate stream."""
    field = np.random.default_rng([record.noise_seed, 1]).standard_normal((h, w))
    field = ndi.gaussian_filter(field, max(0.5, record.pigment_scale * record.fov_radius))
    return field / max(float(field.std()), 1e-12)


def render_fundus(record: FundusRecord) -> FundusCase:
    """Render a record into an image with its masks (the deterministic half).

    Order of drawing: retina with choroidal texture, macula, optic disc and cup,
    vessels (veins, arteries, neovascular tufts), cotton-wool spots, hemorrhages,
    microaneurysms, hard exudates, dust, specular reflections, then edge vignetting,
    pixel noise (from ``record.noise_seed``) and the dark outside of the field of view.
    Lesion masks are the inside of each lesion ellipse within the field of view.

    Args:
        record: a record from :func:`sample_fundus_case` (or built by hand).

    Returns:
        The :class:`FundusCase`; rendering the same record twice gives identical arrays.
    """
    if not isinstance(record, FundusRecord):
        raise InvalidInputError(f"render_fundus expects a FundusRecord, got {type(record).__name__}")
    h = w = _check_size(record.size)
    yy = np.arange(h, dtype=np.float64)[:, None]
    xx = np.arange(w, dtype=np.float64)[None, :]
    rr = np.sqrt((yy - record.fov_cy) ** 2 + (xx - record.fov_cx) ** 2)
    fov = rr <= record.fov_radius

    tex = _smooth_texture(np.asarray(record.texture, dtype=float), h, w)
    img = np.empty((h, w, 3))
    img[:] = record.background
    img *= (1.0 + record.texture_amplitude * tex)[..., None]
    if record.pigment_amplitude > 0:
        img *= (1.0 + record.pigment_amplitude * _pigment_texture(record, h, w))[..., None]
    my, mx, mr, depth = record.macula
    dm2 = ((yy - my) ** 2 + (xx - mx) ** 2) / (mr * mr)
    img *= (1.0 - depth * np.exp(-0.5 * dm2) - 0.5 * depth * np.exp(-8.0 * dm2))[..., None]

    for blobs in ((record.optic_disc,), (record.optic_cup,)):
        a, c, _, _ = _layer(h, w, *_blob_params(blobs))
        _blend(img, a, c)

    vessel_mask = np.zeros((h, w), bool)
    tortuous = np.zeros((h, w), bool)
    neovascular = np.zeros((h, w), bool)
    for kind in ("vein", "artery", "neovascular"):
        paths = [v for v in record.vessels if v.kind == kind]
        if not paths:
            continue
        a, c, m, twisted = _layer(h, w, *_vessel_params(paths))
        _blend(img, a, c)
        if kind == "neovascular":
            neovascular |= m
        else:
            vessel_mask |= m
            tortuous |= twisted

    masks: dict[str, np.ndarray] = {}
    for kind in ("cotton_wool", "hemorrhage", "microaneurysm", "hard_exudate"):
        a, c, m, _ = _layer(h, w, *_blob_params([b for b in record.lesions if b.kind == kind]))
        _blend(img, a, c)
        masks[kind] = m & fov
    conf_masks: dict[str, np.ndarray] = {}
    for kind in CONFOUNDER_TYPES:
        a, c, m, _ = _layer(h, w, *_blob_params([b for b in record.confounders if b.kind == kind]))
        _blend(img, a, c)
        conf_masks[kind] = m & fov
    conf_masks["tortuous"] = tortuous & fov

    img *= record.gain * (1.0 - record.falloff
                          * np.clip(rr / record.fov_radius, 0, 1) ** record.falloff_power)[..., None]
    img *= np.asarray(record.colour_balance, dtype=np.float64)
    if record.noise_std > 0:
        noise = np.random.default_rng(record.noise_seed).standard_normal((h, w, 3), np.float32)
        img += record.noise_std * np.asarray(record.noise_channels, np.float32) * noise
    edge = np.clip(record.fov_radius - rr + 0.5, 0.0, 1.0)[..., None]
    img = img * edge + 0.015 * (1.0 - edge)
    image = np.clip(img, 0.0, 1.0).astype(np.float32)
    grade = etdrs_grade(record)
    return FundusCase(
        image=image,
        masks={k: masks[k] for k in LESION_TYPES},
        fov=fov,
        vessel_mask=vessel_mask & fov,
        confounder_masks=conf_masks,
        neovascular_mask=neovascular & fov,
        grade=grade,
        referable=grade >= 2,
        record=record,
    )


def make_fundus_case(
    seed: int | np.random.Generator | None,
    size: int = 128,
    grade: int | None = None,
) -> FundusCase:
    """Draw and render one case (``render_fundus(sample_fundus_case(seed, size, grade))``)."""
    return render_fundus(sample_fundus_case(seed, size, grade))


def make_fundus_dataset(
    n: int,
    size: int = 128,
    seed: int = 0,
    grade_distribution: Sequence[float] | None = None,
    *,
    confounders: bool = True,
    adjacent_confounder_fraction: float = 0.5,
    noise_std: float = 0.01,
) -> SyntheticFundusDataset:
    """A batch of synthetic cases as tensors.

    Case ``i`` is drawn from its own generator spawned from ``seed`` (NumPy
    ``SeedSequence(seed).spawn``), so it does not depend on ``n``: the first cases of a
    larger batch equal a smaller batch with the same seed.

    Args:
        n: number of cases (≥ 1).
        size: image side in pixels, in [64, 512].
        seed: base seed.
        grade_distribution: 5 weights for grades 0–4; ``None`` is uniform (balanced
            demo data, 60 % referable). :data:`KAGGLE_TRAIN_GRADE_DISTRIBUTION` gives the
            paper's 19.6 % referable prevalence.
        confounders: see :func:`sample_fundus_case`.
        adjacent_confounder_fraction: see :func:`sample_fundus_case`.
        noise_std: see :func:`sample_fundus_case`.

    Returns:
        :class:`SyntheticFundusDataset` with images ``(N, 3, H, W)``, grades ``(N,)``,
        referable ``(N,)``, masks ``(N, 4, H, W)`` in :data:`LESION_TYPES` order and fov
        ``(N, H, W)``.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InvalidInputError(f"n must be a positive int, got {n!r}")
    size = _check_size(size)
    _check_distribution(grade_distribution)
    children = np.random.SeedSequence(int(seed)).spawn(int(n))
    images = np.empty((n, 3, size, size), np.float32)
    masks = np.empty((n, len(LESION_TYPES), size, size), bool)
    fovs = np.empty((n, size, size), bool)
    grades = np.empty(n, np.int64)
    records = []
    for i, child in enumerate(children):
        rec = sample_fundus_case(
            np.random.default_rng(child), size, None, grade_distribution=grade_distribution,
            confounders=confounders, adjacent_confounder_fraction=adjacent_confounder_fraction,
            noise_std=noise_std,
        )
        case = render_fundus(rec)
        images[i] = case.image.transpose(2, 0, 1)
        masks[i] = case.mask_stack()
        fovs[i] = case.fov
        grades[i] = case.grade
        records.append(rec)
    g = torch.from_numpy(grades)
    return SyntheticFundusDataset(
        images=torch.from_numpy(images), grades=g, referable=g >= 2,
        masks=torch.from_numpy(masks), fov=torch.from_numpy(fovs), records=tuple(records),
    )
