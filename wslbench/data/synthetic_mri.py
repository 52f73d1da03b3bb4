"""Synthetic longitudinal gray-matter (GM) maps in MNI space built from the real template.

Embedded default data for Thibeau-Sutre et al. (2020), "Visualization approach to
assess the robustness of neural networks for medical image classification": GM
probability maps of CN and AD subjects as produced by Clinica's ``t1-volume``
pipeline (section 2.1), on the SPM/Clinica MNI grid.

**Grid.** The paper grid is 121×145×121 voxels at 1.5 mm, SPM12's ``TPM.nii``
bounding box x ∈ [−90, 90], y ∈ [−126, 90], z ∈ [−72, 108] mm with affine::

    [[-1.5, 0,   0,    90],
     [ 0,   1.5, 0,  -126],
     [ 0,   0,   1.5, -72],
     [ 0,   0,   0,     1]]

(LAS orientation; MNI (0, 0, 0) is voxel (60, 84, 48)). A voxel size ``v`` keeps the
bounding box: shape ``(2·⌊90/v⌋+1, ⌊216/v⌋+1, ⌊180/v⌋+1)``, so ``"smoke"`` (3 mm) is
61×73×61. Array axis 0 runs from right (x > 0) to left and the grid is symmetric about
x = 0 (voxel ``⌊90/v⌋``), so flipping axis 0 mirrors the hemispheres.

**Template.** nilearn's ICBM152 2009a GM template (1 mm, shipped in its wheel) is
smoothed with a Gaussian of FWHM ``sqrt(v² − 1)`` mm (anti-aliasing) and resampled
trilinearly to the grid; :func:`gm_template` caches it per voxel size.

**Subjects.** A session's map (:func:`render_synthetic_mri`) is, in this order:

1. the template warped by a smooth displacement field: a low-frequency cosine (DCT)
   basis, as in SPM's non-linear registration, with ``warp_order³`` coefficients per
   axis in mm; the subject draws one field and each session adds a small jitter
   (residual registration error), so sessions of a subject are closer to each other
   than to other subjects;
2. multiplied by the age factor ``1 − age_rate·max(age − 60, 0)`` (global GM loss);
3. multiplied by ``1 − A`` where ``A`` is the ground-truth atrophy map, the voxelwise
   fraction of GM removed: ``A = 1 − Π_r (1 − s_r·p_r)`` over the regions of
   :data:`ATROPHY_REGIONS` (ellipsoids in MNI mm, fixed in image space), with ``p_r``
   1 inside the ellipsoid, a cosine taper over a further half radius, and ``s_r`` the
   region's severity (0 for CN subjects);
4. plus Gaussian intensity noise inside the brain, clipped to [0, 1];
5. multiplied by ``intensity_scale`` (1, or below 0.9 for the sessions drawn to fail
   the quality check of section 2.3.1, whose maximum is then below 0.95).

AD severity of region ``r`` at a session ``t`` years after baseline is
``weight_r · (atrophy·(1 + jitter) + progression·t) · (1 ± asymmetry)`` (``+`` on the
left), capped at :data:`MAX_SEVERITY`.

**Subjects whose atrophy differs** (section 9 of DESIGN; the paper's 2.3.4 compares
sessions of one subject with other subjects, which needs subjects that differ). Each
AD subject draws its own atrophy pattern once, kept by all its sessions: every
bilateral region pair outside the medial temporal core (weight < 1) is absent with
probability ``region_dropout``; each region's weight is multiplied by
``exp(weight_jitter·z)``; each region's centre moves by ``N(0, location_mm²)`` mm per
axis; the subject's asymmetry is ``asymmetry + asymmetry_sd·z`` clipped to [−1, 1].
The records keep the subject's regions, so the true atrophy map of every session is
replayed exactly (:attr:`SyntheticCohort.atrophy_maps`).

**Decoy loss in CN subjects** (``cn_decoy``). Atrophy removes GM, so without a
counterpart a whole-volume GM histogram tells AD from CN (a 20-bin logistic probe
reached balanced accuracy 0.81 at ``atrophy`` 0.6, issue 24). With ``cn_decoy`` each CN
subject draws an AD-like pattern and loses the same GM at random cortical places away
from every AD region; the decoy loss is applied to the map but is not atrophy (the
ground-truth map of a CN session stays 0). Ages and sexes follow the ADNI demographics
of Table 1; sessions follow the ADNI visit schedule M00, M06, M12, M24, M36, …

Random draws are separated from rendering (DESIGN §6): :func:`sample_synthetic_subject`
returns frozen :class:`SyntheticMRIRecord` s (in mm, grid-independent) and
:func:`render_synthetic_mri` replays one at any grid without randomness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from wslbench.data.cohort_tsv import CohortRecord, write_cohort_tsv
from wslbench.data.nifti import save_nifti
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.seeding import numpy_rng

__all__ = [
    "GRID_VOXEL_SIZES",
    "ATROPHY_REGIONS",
    "ADNI_DEMOGRAPHICS",
    "SESSION_MONTHS",
    "MAX_SEVERITY",
    "COHORT_TSV_NAME",
    "MNIGrid",
    "AtrophyRegion",
    "SyntheticMRIRecord",
    "SyntheticCohort",
    "mni_grid",
    "gm_template",
    "region_profile",
    "atrophy_map",
    "sample_synthetic_subject",
    "render_synthetic_mri",
    "sample_synthetic_cohort",
    "make_synthetic_cohort",
    "write_cohort",
]

#: Named grids: voxel size in mm (``"paper"``: 121×145×121, ``"smoke"``: 61×73×61).
GRID_VOXEL_SIZES: dict[str, float] = {"paper": 1.5, "smoke": 3.0}
#: Most GM fraction a region may lose.
MAX_SEVERITY: float = 0.9
#: Months after baseline of the ADNI visits (then yearly).
SESSION_MONTHS: tuple[int, ...] = (0, 6, 12, 24, 36, 48)
#: File name of the participants TSV :func:`write_cohort` writes.
COHORT_TSV_NAME: str = "participants.tsv"
#: ADNI baseline demographics (Table 1): age mean, sd, min, max and P(male).
ADNI_DEMOGRAPHICS: dict[str, tuple[float, float, float, float, float]] = {
    "CN": (74.4, 5.8, 59.8, 89.6, 160 / 330),
    "AD": (75.0, 7.8, 55.1, 90.9, 185 / 336),
}
_AGE_REF = 60.0
_BBOX_LO = (-90.0, -126.0, -72.0)
_BBOX_SIZE = (180.0, 216.0, 180.0)
_TAPER = 0.5


@dataclass(frozen=True)
class MNIGrid:
    """A voxel grid of the SPM/Clinica MNI bounding box (module docstring).

    Attributes:
        voxel_size: isotropic voxel side in mm.
        shape: ``(D, H, W)``.
        affine: ``(4, 4)`` voxel-to-MNI-mm matrix.
    """

    voxel_size: float
    shape: tuple[int, int, int]
    affine: np.ndarray

    def axes_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """MNI x, y, z (mm) of the voxel centres along axes 0, 1, 2 (the affine is diagonal)."""
        return tuple(  # type: ignore[return-value]
            self.affine[a, a] * np.arange(n) + self.affine[a, 3] for a, n in enumerate(self.shape)
        )


@lru_cache(maxsize=16)
def _grid(voxel_size: float) -> MNIGrid:
    half = math.floor(90.0 / voxel_size + 1e-9)
    shape = (2 * half + 1, math.floor(216.0 / voxel_size + 1e-9) + 1,
             math.floor(180.0 / voxel_size + 1e-9) + 1)
    affine = np.diag([-voxel_size, voxel_size, voxel_size, 1.0])
    affine[:3, 3] = (half * voxel_size, _BBOX_LO[1], _BBOX_LO[2])
    affine.flags.writeable = False
    return MNIGrid(float(voxel_size), shape, affine)


def mni_grid(grid: str | float) -> MNIGrid:
    """The MNI grid named ``"paper"`` (1.5 mm) or ``"smoke"`` (3 mm), or of a voxel size.

    Raises:
        ConfigError: unknown grid name.
        InvalidInputError: a voxel size outside [1, 12] mm.
    """
    if isinstance(grid, str):
        if grid not in GRID_VOXEL_SIZES:
            raise ConfigError(
                f"unknown grid {grid!r}; expected one of {sorted(GRID_VOXEL_SIZES)} or a voxel "
                "size in mm"
            )
        return _grid(GRID_VOXEL_SIZES[grid])
    if isinstance(grid, bool) or not isinstance(grid, int | float) or not 1.0 <= grid <= 12.0:
        raise InvalidInputError(f"grid voxel size must be a number in [1, 12] mm, got {grid!r}")
    return _grid(float(grid))


@lru_cache(maxsize=8)
def _template(voxel_size: float) -> np.ndarray:
    from nilearn.datasets import load_mni152_gm_template

    img = load_mni152_gm_template(resolution=1)
    src = np.asarray(img.dataobj, dtype=np.float32)
    sigma = math.sqrt(max(voxel_size**2 - 1.0, 0.0)) / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    if sigma > 0:
        src = ndimage.gaussian_filter(src, sigma)
    g = _grid(voxel_size)
    m = np.linalg.inv(img.affine) @ g.affine
    out = ndimage.affine_transform(src, m[:3, :3], m[:3, 3], output_shape=g.shape, order=1)
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    out.flags.writeable = False
    return out


def gm_template(grid: str | float = "smoke") -> np.ndarray:
    """nilearn's ICBM152 GM template resampled to an MNI grid, ``(D, H, W)`` float32, read-only."""
    return _template(mni_grid(grid).voxel_size)


@dataclass(frozen=True)
class AtrophyRegion:
    """An ellipsoidal region in MNI mm (axis-aligned).

    Attributes:
        name: e.g. ``"L_hippocampus"``.
        centre: ``(x, y, z)`` in mm.
        radii: semi-axes along x, y, z in mm.
        weight: relative severity (the region loses ``weight ×`` the AD atrophy).
    """

    name: str
    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    weight: float

    @property
    def hemisphere(self) -> str:
        """``"L"`` or ``"R"`` (from the name prefix)."""
        return self.name[0]


def _bilateral(name: str, centre: tuple[float, float, float], radii: tuple[float, float, float],
               weight: float) -> tuple[AtrophyRegion, AtrophyRegion]:
    left = AtrophyRegion(f"L_{name}", centre, radii, weight)
    return left, replace(left, name=f"R_{name}", centre=(-centre[0], centre[1], centre[2]))


#: Regions atrophied in AD (medial temporal lobe first), left/right mirrored pairs.
ATROPHY_REGIONS: tuple[AtrophyRegion, ...] = (
    *_bilateral("hippocampus", (-27.0, -22.0, -13.0), (5.0, 16.0, 6.0), 1.0),
    *_bilateral("amygdala", (-23.0, -4.0, -19.0), (6.0, 6.0, 6.0), 1.0),
    *_bilateral("entorhinal", (-22.0, -10.0, -32.0), (5.0, 6.0, 5.0), 0.8),
    *_bilateral("temporal_pole", (-40.0, 14.0, -30.0), (8.0, 8.0, 8.0), 0.6),
    *_bilateral("middle_temporal", (-58.0, -30.0, -6.0), (5.0, 15.0, 6.0), 0.5),
)


@lru_cache(maxsize=32)
def _profile(region: AtrophyRegion, voxel_size: float) -> np.ndarray:
    g = _grid(voxel_size)
    x, y, z = ((ax - c) / r for ax, c, r in zip(g.axes_mm(), region.centre, region.radii))
    rho = np.sqrt(x[:, None, None] ** 2 + y[None, :, None] ** 2 + z[None, None, :] ** 2)
    taper = 0.5 * (1.0 + np.cos(np.pi * np.clip((rho - 1.0) / _TAPER, 0.0, 1.0)))
    out = taper.astype(np.float32)
    out.flags.writeable = False
    return out


def region_profile(region: AtrophyRegion, grid: str | float = "smoke") -> np.ndarray:
    """``(D, H, W)`` float32 weight of a region (read-only, cached per grid): 1 inside the
    ellipsoid, a cosine taper to 0 over a further half radius (normalised radius 1 → 1.5),
    0 beyond."""
    return _profile(region, mni_grid(grid).voxel_size)


def atrophy_map(regions: Sequence[AtrophyRegion], severities: Sequence[float],
                grid: str | float = "smoke") -> np.ndarray:
    """Ground-truth fraction of GM removed, ``1 − Π_r (1 − s_r·p_r)``, ``(D, H, W)`` float32."""
    if len(regions) != len(severities):
        raise InvalidInputError(f"{len(regions)} regions but {len(severities)} severities")
    g = mni_grid(grid)
    keep = np.ones(g.shape, np.float32)
    for region, s in zip(regions, severities):
        if s > 0:
            keep *= 1.0 - np.float32(s) * _profile(region, g.voxel_size)
    return 1.0 - keep


@dataclass(frozen=True)
class SyntheticMRIRecord:
    """Every parameter of one synthetic session; :func:`render_synthetic_mri` replays it.

    Attributes:
        participant_id: ``sub-SYN…``.
        session_id: ``ses-M00``, ``ses-M06``, …
        diagnosis: ``"CN"`` or ``"AD"``.
        age: age at the session (years).
        sex: ``"M"`` or ``"F"``.
        months: months since the baseline session.
        warp_order: DCT basis functions per axis ``K``.
        warp: ``3·K³`` displacement coefficients in mm (x, y, z components, C order).
        regions: atrophy regions.
        severities: GM fraction removed in each region's core (all 0 for CN).
        age_rate: relative GM loss per year after 60.
        noise_std: standard deviation of the intensity noise.
        noise_seed: seed of the noise draw.
        intensity_scale: final multiplicative factor (< 0.9 for a QC-failing map).
        decoy_regions: regions of label-independent GM loss (CN subjects' decoy pattern,
            module docstring); not part of the ground-truth atrophy map.
        decoy_severities: GM fraction removed in each decoy region's core.
    """

    participant_id: str
    session_id: str
    diagnosis: str
    age: float
    sex: str
    months: int
    warp_order: int
    warp: tuple[float, ...]
    regions: tuple[AtrophyRegion, ...]
    severities: tuple[float, ...]
    age_rate: float
    noise_std: float
    noise_seed: int
    intensity_scale: float
    decoy_regions: tuple[AtrophyRegion, ...] = ()
    decoy_severities: tuple[float, ...] = ()

    @property
    def label(self) -> int:
        """1 for AD, 0 for CN."""
        return int(self.diagnosis == "AD")


def _dct_basis(axis: np.ndarray, lo: float, size: float, order: int) -> np.ndarray:
    k = np.arange(order)
    return np.cos(np.pi * k[None, :] * (axis[:, None] - lo) / size).astype(np.float32)


def _displacement_vox(record: SyntheticMRIRecord, g: MNIGrid) -> np.ndarray:
    """``(3, D, H, W)`` displacement in voxels along the array axes (separable DCT sum)."""
    k = record.warp_order
    coef = np.asarray(record.warp, np.float32).reshape(3, k, k, k)
    bx, by, bz = (_dct_basis(ax, lo, size, k)
                  for ax, lo, size in zip(g.axes_mm(), _BBOX_LO, _BBOX_SIZE))
    mm = np.einsum("dajz,ia->dijz", np.einsum("dabz,jb->dajz", coef @ bz.T, by), bx)
    return mm / np.diag(g.affine)[:3, None, None, None].astype(np.float32)


def render_synthetic_mri(
    record: SyntheticMRIRecord, grid: str | float = "smoke"
) -> tuple[np.ndarray, np.ndarray]:
    """Replay a record on a grid, without randomness (steps 1–5 of the module docstring).

    Args:
        record: from :func:`sample_synthetic_subject`.
        grid: ``"paper"``, ``"smoke"`` or a voxel size in mm.

    Returns:
        ``(gm, atrophy)``: the GM map and its ground-truth atrophy map (fraction of GM
        removed), both ``(D, H, W)`` float32 in [0, 1].
    """
    g = mni_grid(grid)
    template = _template(g.voxel_size)
    coords = np.indices(g.shape, dtype=np.float32) + _displacement_vox(record, g)
    gm = ndimage.map_coordinates(template, coords, order=1, mode="constant", cval=0.0,
                                 prefilter=False)
    gm *= np.float32(1.0 - record.age_rate * max(record.age - _AGE_REF, 0.0))
    atrophy = atrophy_map(record.regions, record.severities, g.voxel_size)
    gm *= 1.0 - atrophy
    if record.decoy_regions:
        gm *= 1.0 - atrophy_map(record.decoy_regions, record.decoy_severities, g.voxel_size)
    if record.noise_std > 0:
        noise = np.random.default_rng(record.noise_seed).standard_normal(g.shape, np.float32)
        gm += np.float32(record.noise_std) * noise * (gm > 1e-3)
    np.clip(gm, 0.0, 1.0, out=gm)
    gm *= np.float32(record.intensity_scale)
    return gm, atrophy


def _check_fraction(name: str, value: float, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidInputError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _months(n_sessions: int) -> tuple[int, ...]:
    extra = tuple(SESSION_MONTHS[-1] + 12 * (i + 1) for i in range(n_sessions))
    return (SESSION_MONTHS + extra)[:n_sessions]


def sample_synthetic_subject(
    rng: np.random.Generator | int | None,
    participant_id: str,
    diagnosis: str,
    n_sessions: int = 1,
    *,
    atrophy: float = 0.25,
    progression: float = 0.03,
    asymmetry: float = 0.0,
    severity_jitter: float = 0.1,
    warp_mm: float = 1.0,
    session_warp_mm: float = 0.3,
    warp_order: int = 3,
    age_rate: float = 0.002,
    noise_std: float = 0.02,
    region_dropout: float = 0.0,
    weight_jitter: float = 0.0,
    location_mm: float = 0.0,
    asymmetry_sd: float = 0.0,
    cn_decoy: bool = False,
) -> tuple[SyntheticMRIRecord, ...]:
    """Draw one subject's sessions (all randomness of the generator lives here).

    Args:
        rng: generator or seed.
        participant_id: ``sub-…`` label.
        diagnosis: ``"CN"`` (no atrophy) or ``"AD"``.
        n_sessions: number of sessions (ADNI schedule M00, M06, M12, M24, …).
        atrophy: GM fraction removed at baseline in a weight-1 region of an AD subject.
        progression: extra fraction removed per year (weight-1 region).
        asymmetry: in [−1, 1]; left severities × (1 + asymmetry), right × (1 − asymmetry).
        severity_jitter: relative standard deviation of the subject's atrophy.
        warp_mm: standard deviation (mm) of the subject's lowest-frequency displacement
            coefficients (order-``n`` coefficients are divided by ``1 + n``).
        session_warp_mm: the same for each session's jitter.
        warp_order: DCT basis functions per axis.
        age_rate: relative GM loss per year after 60.
        noise_std: intensity noise standard deviation.
        region_dropout: probability that an AD subject lacks a bilateral region pair of
            weight < 1 (the hippocampus and amygdala, weight 1, are always atrophied).
        weight_jitter: log-normal spread of the subject's region weights.
        location_mm: standard deviation (mm) of the subject's shift of each region centre.
        asymmetry_sd: standard deviation of the subject's asymmetry around ``asymmetry``.
        cn_decoy: a CN subject loses as much GM as an AD subject would, elsewhere: it draws an
            AD-like pattern (same weights, dropout, severities, progression, asymmetry) whose
            region pairs move to random grey-matter locations away from every AD region
            (:func:`_decoy_regions`); global GM statistics then carry no label, only the
            location of the loss does (DESIGN §9). Not part of the ground-truth atrophy map.

    Returns:
        One :class:`SyntheticMRIRecord` per session, in time order.
    """
    rng = numpy_rng(rng)
    if diagnosis not in ADNI_DEMOGRAPHICS:
        raise InvalidInputError(f"diagnosis must be one of {sorted(ADNI_DEMOGRAPHICS)}, got "
                                f"{diagnosis!r}")
    if isinstance(n_sessions, bool) or not isinstance(n_sessions, int) or n_sessions < 1:
        raise InvalidInputError(f"n_sessions must be a positive int, got {n_sessions!r}")
    if isinstance(warp_order, bool) or not isinstance(warp_order, int) or not 1 <= warp_order <= 6:
        raise InvalidInputError(f"warp_order must be an int in [1, 6], got {warp_order!r}")
    for name, value in (("atrophy", atrophy), ("progression", progression),
                        ("severity_jitter", severity_jitter), ("noise_std", noise_std)):
        _check_fraction(name, value)
    _check_fraction("age_rate", age_rate, 0.0, 0.02)
    _check_fraction("asymmetry", asymmetry, -1.0, 1.0)
    _check_fraction("warp_mm", warp_mm, 0.0, 20.0)
    _check_fraction("region_dropout", region_dropout)
    _check_fraction("weight_jitter", weight_jitter)
    _check_fraction("location_mm", location_mm, 0.0, 20.0)
    _check_fraction("asymmetry_sd", asymmetry_sd)
    _check_fraction("session_warp_mm", session_warp_mm, 0.0, 20.0)
    mean, sd, lo, hi, p_male = ADNI_DEMOGRAPHICS[diagnosis]
    age0 = float(np.clip(rng.normal(mean, sd), lo, hi))
    sex = "M" if rng.random() < p_male else "F"
    k = warp_order
    n = np.add.outer(np.add.outer(np.arange(k), np.arange(k)), np.arange(k))
    decay = 1.0 / (1.0 + n)
    subject_warp = rng.normal(0.0, warp_mm, (3, k, k, k)) * decay
    base = atrophy * max(1.0 + severity_jitter * rng.standard_normal(), 0.0)
    regions, asym = _subject_pattern(rng, region_dropout, weight_jitter, location_mm,
                                     asymmetry, asymmetry_sd)
    decoys = _decoy_regions(rng, regions) if cn_decoy and diagnosis == "CN" else ()

    def severities_at(pattern: Sequence[AtrophyRegion], years: float) -> tuple[float, ...]:
        return tuple(float(min(r.weight * (base + progression * years)
                               * (1.0 + asym if r.hemisphere == "L" else 1.0 - asym),
                               MAX_SEVERITY)) for r in pattern)

    records = []
    for months in _months(n_sessions):
        years = months / 12.0
        warp = subject_warp + rng.normal(0.0, session_warp_mm, (3, k, k, k)) * decay
        if diagnosis == "AD":
            severities = severities_at(regions, years)
        else:
            severities = (0.0,) * len(ATROPHY_REGIONS)
        records.append(SyntheticMRIRecord(
            participant_id=participant_id, session_id=f"ses-M{months:02d}",
            diagnosis=diagnosis, age=age0 + years, sex=sex, months=months,
            warp_order=k, warp=tuple(float(w) for w in warp.ravel()),
            regions=regions if diagnosis == "AD" else ATROPHY_REGIONS, severities=severities,
            age_rate=float(age_rate),
            noise_std=float(noise_std), noise_seed=int(rng.integers(2**31)),
            intensity_scale=1.0,
            decoy_regions=decoys, decoy_severities=severities_at(decoys, years),
        ))
    return tuple(records)


#: Where decoy centres are drawn (left hemisphere, MNI mm), and how far the template GM at
#: a decoy centre may differ from that at the centre of the region it stands for.
_DECOY_BOX = ((-70.0, -8.0), (-100.0, 65.0), (-40.0, 70.0))
_DECOY_GM_TOLERANCE = 0.05


def _decoy_regions(
    rng: np.random.Generator, pattern: Sequence[AtrophyRegion]
) -> tuple[AtrophyRegion, ...]:
    """``pattern``'s bilateral pairs moved to random GM locations (``cn_decoy``).

    Each left region gets a centre drawn uniformly in :data:`_DECOY_BOX` until the smoke-grid
    GM template there is within :data:`_DECOY_GM_TOLERANCE` of its value at the region's own
    centre (so that the loss falls on as much GM) and its tapered ellipsoid (1.5 radii)
    cannot touch any region of :data:`ATROPHY_REGIONS`; its right twin is the mirror image.
    """
    g = _grid(GRID_VOXEL_SIZES["smoke"])
    template = _template(g.voxel_size)
    origin, step = g.affine[:3, 3], np.diag(g.affine)[:3]
    def gm_at(mm: Sequence[float]) -> float:
        return float(template[tuple(np.round((np.asarray(mm) - origin) / step).astype(int))])

    out: list[AtrophyRegion] = []
    for left, right in zip(pattern[::2], pattern[1::2]):
        reach = _TAPER + 1.0
        target = gm_at(left.centre)
        for _ in range(100_000):
            centre = np.array([rng.uniform(lo, hi) for lo, hi in _DECOY_BOX])
            if abs(gm_at(centre) - target) > _DECOY_GM_TOLERANCE:
                continue
            clear = all(
                np.linalg.norm(centre - np.asarray(r.centre)) > reach * (max(left.radii)
                                                                          + max(r.radii))
                for r in ATROPHY_REGIONS)
            if clear:
                break
        else:  # pragma: no cover - the box holds plenty of cortex far from the AD regions
            raise ConfigError(f"no decoy location found for {left.name}")
        moved = replace(left, name=f"{left.name}_decoy", centre=tuple(float(c) for c in centre))
        out += [moved, replace(right, name=f"{right.name}_decoy",
                               centre=(-moved.centre[0], *moved.centre[1:]))]
    return tuple(out)


def _subject_pattern(
    rng: np.random.Generator, region_dropout: float, weight_jitter: float, location_mm: float,
    asymmetry: float, asymmetry_sd: float,
) -> tuple[tuple[AtrophyRegion, ...], float]:
    """One subject's atrophy regions (weights, presence, centres) and asymmetry (module docstring)."""
    pairs = len(ATROPHY_REGIONS) // 2
    absent = rng.random(pairs) < region_dropout
    scale = np.exp(weight_jitter * rng.standard_normal(len(ATROPHY_REGIONS)))
    shift = rng.normal(0.0, location_mm, (len(ATROPHY_REGIONS), 3))
    asym = float(np.clip(asymmetry + asymmetry_sd * rng.standard_normal(), -1.0, 1.0))
    regions = []
    for i, r in enumerate(ATROPHY_REGIONS):
        weight = 0.0 if (r.weight < 1.0 and absent[i // 2]) else float(r.weight * scale[i])
        centre = tuple(float(c + d) for c, d in zip(r.centre, shift[i]))
        regions.append(replace(r, centre=centre, weight=weight))  # type: ignore[arg-type]
    return tuple(regions), asym


@dataclass(frozen=True)
class SyntheticCohort:
    """Sessions of a synthetic cohort as tensors (:func:`make_synthetic_cohort`).

    Attributes:
        volumes: ``(N, 1, D, H, W)`` float32 GM maps in [0, 1].
        atrophy_maps: ``(N, 1, D, H, W)`` float32 ground-truth fraction of GM removed.
        labels: ``(N,)`` int64, AD = 1, CN = 0.
        records: the session records, for replay with :func:`render_synthetic_mri`.
        grid: the voxel grid (its ``affine`` is the maps' affine).
    """

    volumes: torch.Tensor
    atrophy_maps: torch.Tensor
    labels: torch.Tensor
    records: tuple[SyntheticMRIRecord, ...]
    grid: MNIGrid

    def __len__(self) -> int:
        return len(self.records)

    @property
    def affine(self) -> np.ndarray:
        """``(4, 4)`` voxel-to-MNI-mm matrix of every map."""
        return self.grid.affine

    @property
    def participant_ids(self) -> tuple[str, ...]:
        """Participant of each session."""
        return tuple(r.participant_id for r in self.records)

    @property
    def session_ids(self) -> tuple[str, ...]:
        """Session label of each session."""
        return tuple(r.session_id for r in self.records)

    @property
    def keys(self) -> tuple[tuple[str, str], ...]:
        """``(participant_id, session_id)`` of each session (for ``quality_check``)."""
        return tuple((r.participant_id, r.session_id) for r in self.records)

    @property
    def ages(self) -> np.ndarray:
        """``(N,)`` ages at the sessions."""
        return np.array([r.age for r in self.records])

    @property
    def sexes(self) -> tuple[str, ...]:
        """``"M"``/``"F"`` of each session."""
        return tuple(r.sex for r in self.records)

    def select(self, indices: Sequence[int]) -> SyntheticCohort:
        """The sessions at ``indices`` (e.g. ``QualityReport.kept``), in that order."""
        idx = list(indices)
        return SyntheticCohort(self.volumes[idx], self.atrophy_maps[idx], self.labels[idx],
                               tuple(self.records[i] for i in idx), self.grid)


def sample_synthetic_cohort(
    n_subjects: int,
    sessions_per_subject: int = 1,
    *,
    seed: int = 0,
    ad_fraction: float = 0.5,
    n_qc_fail: int = 0,
    atrophy: float = 0.25,
    progression: float = 0.03,
    asymmetry: float = 0.0,
    severity_jitter: float = 0.1,
    warp_mm: float = 1.0,
    session_warp_mm: float = 0.3,
    age_rate: float = 0.002,
    noise_std: float = 0.02,
    region_dropout: float = 0.0,
    weight_jitter: float = 0.0,
    location_mm: float = 0.0,
    asymmetry_sd: float = 0.0,
    cn_decoy: bool = False,
) -> tuple[SyntheticMRIRecord, ...]:
    """The records of :func:`make_synthetic_cohort` (every random draw, nothing rendered):
    render them one at a time with :func:`render_synthetic_mri` to build a cohort that
    does not fit in memory (``wslbench.data.caps.write_synthetic_caps``). Arguments as
    :func:`make_synthetic_cohort` (without ``grid``: records are in mm).
    """
    for name, value in (("n_subjects", n_subjects), ("sessions_per_subject",
                                                     sessions_per_subject)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{name} must be a positive int, got {value!r}")
    _check_fraction("ad_fraction", ad_fraction)
    n_sessions = n_subjects * sessions_per_subject
    if isinstance(n_qc_fail, bool) or not isinstance(n_qc_fail, int) or not (
            0 <= n_qc_fail <= n_sessions):
        raise InvalidInputError(f"n_qc_fail must be an int in [0, {n_sessions}], got {n_qc_fail!r}")
    cohort_ss, subjects_ss = np.random.SeedSequence(int(seed)).spawn(2)
    cohort_rng = np.random.default_rng(cohort_ss)
    n_ad = int(round(ad_fraction * n_subjects))
    diagnoses = cohort_rng.permutation(["AD"] * n_ad + ["CN"] * (n_subjects - n_ad))
    records: list[SyntheticMRIRecord] = []
    for i, child in enumerate(subjects_ss.spawn(n_subjects)):
        records.extend(sample_synthetic_subject(
            np.random.default_rng(child), f"sub-SYN{i + 1:04d}", str(diagnoses[i]),
            sessions_per_subject, atrophy=atrophy, progression=progression,
            asymmetry=asymmetry, severity_jitter=severity_jitter, warp_mm=warp_mm,
            session_warp_mm=session_warp_mm, age_rate=age_rate, noise_std=noise_std,
            region_dropout=region_dropout, weight_jitter=weight_jitter,
            location_mm=location_mm, asymmetry_sd=asymmetry_sd, cn_decoy=cn_decoy,
        ))
    failing = cohort_rng.choice(n_sessions, size=n_qc_fail, replace=False)
    for j in failing:
        records[j] = replace(records[j], intensity_scale=float(cohort_rng.uniform(0.6, 0.9)))
    return tuple(records)


def make_synthetic_cohort(
    n_subjects: int,
    sessions_per_subject: int = 1,
    *,
    grid: str | float = "smoke",
    seed: int = 0,
    ad_fraction: float = 0.5,
    n_qc_fail: int = 0,
    atrophy: float = 0.25,
    progression: float = 0.03,
    asymmetry: float = 0.0,
    severity_jitter: float = 0.1,
    warp_mm: float = 1.0,
    session_warp_mm: float = 0.3,
    age_rate: float = 0.002,
    noise_std: float = 0.02,
    region_dropout: float = 0.0,
    weight_jitter: float = 0.0,
    location_mm: float = 0.0,
    asymmetry_sd: float = 0.0,
    cn_decoy: bool = False,
) -> SyntheticCohort:
    """The embedded default cohort: CN and AD subjects with longitudinal sessions.

    ``round(ad_fraction · n_subjects)`` subjects are AD, assigned in a seeded random
    order; subject ``i`` (``sub-SYN0001`` …) is drawn from its own generator spawned
    from ``seed``. ``n_qc_fail`` sessions, drawn at random, get ``intensity_scale`` in
    [0.6, 0.9] so that their maximum falls below the 0.95 of section 2.3.1.

    Args:
        n_subjects: number of subjects (≥ 1).
        sessions_per_subject: sessions per subject (≥ 1).
        grid: ``"paper"`` (121×145×121, 1.5 mm), ``"smoke"`` (61×73×61, 3 mm) or a voxel
            size in mm.
        seed: base seed.
        ad_fraction: fraction of AD subjects.
        n_qc_fail: number of sessions made to fail the quality check.
        atrophy, progression, asymmetry, severity_jitter, warp_mm, session_warp_mm,
        age_rate, noise_std, region_dropout, weight_jitter, location_mm, asymmetry_sd,
        cn_decoy: see :func:`sample_synthetic_subject`.

    Returns:
        :class:`SyntheticCohort`, subjects in order, sessions in time order.
    """
    g = mni_grid(grid)
    records = sample_synthetic_cohort(
        n_subjects, sessions_per_subject, seed=seed, ad_fraction=ad_fraction,
        n_qc_fail=n_qc_fail, atrophy=atrophy, progression=progression, asymmetry=asymmetry,
        severity_jitter=severity_jitter, warp_mm=warp_mm, session_warp_mm=session_warp_mm,
        age_rate=age_rate, noise_std=noise_std, region_dropout=region_dropout,
        weight_jitter=weight_jitter, location_mm=location_mm, asymmetry_sd=asymmetry_sd,
        cn_decoy=cn_decoy)
    n_sessions = len(records)
    volumes = np.empty((n_sessions, 1, *g.shape), np.float32)
    maps = np.empty_like(volumes)
    for j, rec in enumerate(records):
        volumes[j, 0], maps[j, 0] = render_synthetic_mri(rec, g.voxel_size)
    labels = torch.tensor([r.label for r in records], dtype=torch.int64)
    return SyntheticCohort(torch.from_numpy(volumes), torch.from_numpy(maps), labels,
                           tuple(records), g)


def write_cohort(
    cohort: SyntheticCohort, folder: str | Path, *, atrophy_maps: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a cohort as NIfTI maps in a CAPS-like tree plus a participants TSV.

    Layout (``<p>``/``<s>``: participant/session)::

        folder/participants.tsv
        folder/subjects/<p>/<s>/t1/spm/segmentation/normalized_space/
            <p>_<s>_T1w_segm-graymatter_space-Ixi549Space_modulated-off_probability.nii.gz
            <p>_<s>_desc-atrophy_map.nii.gz          (ground truth, with atrophy_maps)

    The TSV has the columns of :mod:`wslbench.data.cohort_tsv` with relative paths, so
    :func:`~wslbench.data.cohort_tsv.load_cohort_tsv` reads it back. Every map carries
    the grid's affine.

    Args:
        cohort: from :func:`make_synthetic_cohort`.
        folder: target folder (created if needed).
        atrophy_maps: also write the ground-truth atrophy maps.
        overwrite: replace existing files; without it an existing file is an error.

    Returns:
        The path of the participants TSV.
    """
    root = Path(folder).expanduser()
    tsv = root / COHORT_TSV_NAME
    if tsv.exists() and not overwrite:
        raise InvalidInputError(f"{tsv} already exists; pass overwrite=True or another folder")
    rows = []
    for j, rec in enumerate(cohort.records):
        p, s = rec.participant_id, rec.session_id
        sub = root / "subjects" / p / s / "t1" / "spm" / "segmentation" / "normalized_space"
        sub.mkdir(parents=True, exist_ok=True)
        gm_path = sub / (f"{p}_{s}_T1w_segm-graymatter_space-Ixi549Space_modulated-off_"
                         "probability.nii.gz")
        save_nifti(cohort.volumes[j, 0].numpy(), cohort.affine, gm_path, overwrite=overwrite)
        if atrophy_maps:
            save_nifti(cohort.atrophy_maps[j, 0].numpy(), cohort.affine,
                       sub / f"{p}_{s}_desc-atrophy_map.nii.gz", overwrite=overwrite)
        rows.append(CohortRecord(p, s, rec.diagnosis, rec.age, rec.sex, gm_path))
    return write_cohort_tsv(rows, tsv, overwrite=overwrite)
