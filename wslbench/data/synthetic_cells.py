"""Deterministic synthetic mitosis-detection images with centroid ground truth.

Embedded default data for the cell-detection experiments of Xue et al. (CNN + compressed
sensing, section 4.2: ICPR 2012, MITOS-ATYPIA-14, AMIDA13). The real sets annotate the
centroids of a few mitotic figures per large H&E image (Table 1: 2.1 to 5.3 per image)
among hundreds of ordinary nuclei; the generator mimics that:

* **targets** (mitotic figures, a Poisson number per image, :attr:`CellImageConfig.target_mean`):
  dark, hyperchromatic nuclei with clumped chromatin and a ragged ("hairy") outline, in
  three phases: ``"prophase"`` (roundish, coarse clumps), ``"metaphase"`` (an elongated
  plate) and ``"anaphase"`` (two parallel plates pulling apart); a pale halo of retracted
  cytoplasm surrounds them;
* **clutter**: many ordinary nuclei of the same size (``"normal"``: lighter, smooth,
  round or oval, fine chromatin) and a fraction of hard negatives that are as dark as a
  target but regular (``"lymphocyte"``: small and round, ``"pyknotic"``: smaller and darker,
  ``"spindle"``: elongated fibroblast-like).

Colours follow the Beer–Lambert H&E model of :mod:`wslbench.data.synthetic_histology`
(its :data:`~wslbench.data.synthetic_histology.DEFAULT_STAIN_VECTORS`, jittered per image),
over an eosin background with smooth texture and pale spaces; each image also gets its own
illumination level and gradient, Gaussian blur and pixel noise. Cell sizes are in pixels
(a fixed magnification): a larger image is a larger field of view, as when the paper
cuts 260 × 260 training sub-samples out of 2084 × 2084 slides (section 4.3).

A target's outline is point-symmetric about its centroid (lobes with even harmonics,
two mirror lobes for anaphase), so the centre of mass of its mask is its centroid up to
rasterisation, and the area of the mask is about ``π · radius²``. Targets lie entirely
inside the image. Ordinary nuclei overlapping a target are removed, so target masks are
never occluded. Anaphase figures put their two dark plates up to about one radius from
the centroid, so a single-peak darkness detector often misses them or fires twice.

Random draws are separated from deterministic rendering (DESIGN §6):
:func:`sample_cell_record` returns a frozen :class:`CellRecord`; :func:`render_cell_image`
replays it without further randomness (textures, blur and noise come from
``record.noise_seed``). :func:`make_cell_dataset` batches images with their centroids.
Conventions: centroids are ``(k, 2)`` float64 arrays of ``(row, col)`` pixel coordinates
(pixel ``(i, j)`` has its centre at ``(i, j)``); images are float32 RGB in [0, 1],
``(H, W, 3)`` for one :class:`CellImage` and ``(N, 3, H, W)`` in a :class:`CellDataset`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter

from wslbench.data._raster import _smooth_texture, _splat
from wslbench.data.synthetic_histology import DEFAULT_STAIN_VECTORS, stain_transmission
from wslbench.errors import InvalidInputError
from wslbench.seeding import numpy_rng

__all__ = [
    "MITOTIC_PHASES",
    "CLUTTER_KINDS",
    "MIN_CELL_SIZE",
    "MAX_CELL_SIZE",
    "CellImageConfig",
    "MitoticFigure",
    "ClutterNuclei",
    "CellRecord",
    "CellImage",
    "CellDataset",
    "sample_cell_record",
    "render_cell_image",
    "make_cell_dataset",
]

MITOTIC_PHASES: tuple[str, ...] = ("prophase", "metaphase", "anaphase")
#: Clutter kinds: ``"normal"`` nuclei and the three dark hard negatives.
CLUTTER_KINDS: tuple[str, ...] = ("normal", "lymphocyte", "pyknotic", "spindle")
MIN_CELL_SIZE: int = 64
MAX_CELL_SIZE: int = 512

#: Background concentrations ``(c_H, c_E)`` of the tissue and of the pale spaces.
_TISSUE_STAIN = (0.10, 0.32)
_SPACE_STAIN = (0.02, 0.05)
#: Eosin concentration inside nuclei.
_NUCLEUS_EOSIN = 0.06

Vector3 = tuple[float, float, float]


def _is_real(value: object) -> bool:
    """A finite real number (not a bool, not a string)."""
    return (not isinstance(value, bool) and isinstance(value, int | float | np.number)
            and math.isfinite(value))


@dataclass(frozen=True)
class CellImageConfig:
    """Parameters of the synthetic cell-detection images (Xue et al., 4.2).

    Attributes:
        size: image side in pixels, in [64, 512] (square images).
        target_mean: Poisson mean of the number of mitotic figures per image (Table 1:
            2.1 to 5.3 per image); fewer are kept when they do not fit.
        max_targets: upper bound on the number of targets per image.
        target_radius: ``(low, high)`` range of the target radii (px); the mask of a
            target has an area of about ``π · radius²``.
        clutter_density: probability that a site of the nucleus lattice (spacing
            2.6 × the mean clutter radius) holds a nucleus, before the smooth cellularity
            modulation.
        hard_negative_fraction: fraction of the clutter nuclei that are dark hard
            negatives (lymphocyte, pyknotic or spindle, equally likely).
        clutter_radius: ``(low, high)`` range of the ordinary nucleus radii (px).
        stain_jitter: standard deviation of the per-component perturbation of the unit
            stain vectors; concentration scales are drawn in ``1 ± 2·stain_jitter``.
        intensity_jitter: amplitude of the per-image illumination changes (level and
            linear gradient).
        blur_sigma: ``(low, high)`` range of the Gaussian blur (px, per image).
        noise_std: standard deviation of the additive RGB pixel noise.
    """

    size: int = 256
    target_mean: float = 4.0
    max_targets: int = 12
    target_radius: tuple[float, float] = (5.0, 8.0)
    clutter_density: float = 0.55
    hard_negative_fraction: float = 0.2
    clutter_radius: tuple[float, float] = (4.5, 7.5)
    stain_jitter: float = 0.05
    intensity_jitter: float = 0.05
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    noise_std: float = 0.015

    def __post_init__(self) -> None:
        size = self.size
        if isinstance(size, bool) or not isinstance(size, int | np.integer) \
                or not MIN_CELL_SIZE <= int(size) <= MAX_CELL_SIZE:
            raise InvalidInputError(
                f"size must be an int in [{MIN_CELL_SIZE}, {MAX_CELL_SIZE}] px, got {size!r}")
        if not (_is_real(self.target_mean) and 0.0 <= self.target_mean <= 100.0):
            raise InvalidInputError(
                f"target_mean must be a number in [0, 100], got {self.target_mean!r}")
        if isinstance(self.max_targets, bool) \
                or not isinstance(self.max_targets, int | np.integer) or self.max_targets < 0:
            raise InvalidInputError(
                f"max_targets must be a non-negative int, got {self.max_targets!r}")
        for name, pair, bound in (("target_radius", self.target_radius, (2.0, 40.0)),
                                  ("clutter_radius", self.clutter_radius, (1.5, 40.0)),
                                  ("blur_sigma", self.blur_sigma, (0.0, 5.0))):
            ok = isinstance(pair, tuple | list) and len(pair) == 2 \
                and all(_is_real(v) for v in pair)
            if not (ok and bound[0] <= pair[0] <= pair[1] <= bound[1]):
                raise InvalidInputError(
                    f"{name} must be (low, high) with {bound[0]} <= low <= high <= "
                    f"{bound[1]}, got {pair!r}")
        for name, value, high in (("clutter_density", self.clutter_density, 1.0),
                                  ("hard_negative_fraction", self.hard_negative_fraction, 1.0),
                                  ("stain_jitter", self.stain_jitter, 0.2),
                                  ("intensity_jitter", self.intensity_jitter, 0.3),
                                  ("noise_std", self.noise_std, 0.2)):
            if not (_is_real(value) and 0.0 <= value <= high):
                raise InvalidInputError(f"{name} must be a number in [0, {high}], got {value!r}")


@dataclass(frozen=True)
class MitoticFigure:
    """One target cell: one or two point-symmetric lobes with clumped chromatin.

    A lobe centred at ``(cy, cx) ± offset · (sin angle, cos angle)`` has, in its frame
    rotated by ``angle`` (``u`` along the axis, ``v`` across), the boundary
    ``r(θ) = 1 + Σ_k a_k cos(kθ + φ_k)`` (k = 2, 4, 6: even, hence point-symmetric) in
    units of the semi-axes ``(lobe_ru, lobe_rv)``.

    Attributes:
        cy: centroid row (px).
        cx: centroid column (px).
        radius: nominal radius (px): the mask area is about ``π · radius²``.
        phase: a :data:`MITOTIC_PHASES` entry.
        angle: axis direction (radians, from the column axis towards the row axis).
        lobe_ru: lobe semi-axis along the axis (px).
        lobe_rv: lobe semi-axis across the axis (px).
        offset: distance of each lobe centre from the centroid along the axis (0: one lobe).
        harmonics: ``((a_2, φ_2), (a_4, φ_4), (a_6, φ_6))`` ragged outline.
        stain: haematoxylin concentration of the figure.
        clumps: ``((dy, dx, ry, rx, angle), ...)`` dense chromatin clumps relative to the
            centroid (px), drawn inside the mask only.
    """

    cy: float
    cx: float
    radius: float
    phase: str
    angle: float
    lobe_ru: float
    lobe_rv: float
    offset: float
    harmonics: tuple[tuple[float, float], ...]
    stain: float
    clumps: tuple[tuple[float, float, float, float, float], ...]

    @property
    def extent(self) -> float:
        """A bound on the distance from the centroid to the outline (px)."""
        amp = 1.0 + sum(abs(a) for a, _ in self.harmonics)
        return self.offset + amp * max(self.lobe_ru, self.lobe_rv) + 1.5


@dataclass(frozen=True)
class ClutterNuclei:
    """The non-target nuclei of an image, column-wise (one entry per nucleus).

    Each is an ellipse with semi-axes ``ry`` (along ``angle + π/2``) and ``rx`` (along
    ``angle``) and haematoxylin concentration ``stain``.

    Attributes:
        cy: centre rows (px).
        cx: centre columns (px).
        ry: semi-axes (px).
        rx: semi-axes (px).
        angle: orientations (radians).
        stain: haematoxylin concentrations.
        kind: a :data:`CLUTTER_KINDS` entry per nucleus.
    """

    cy: tuple[float, ...]
    cx: tuple[float, ...]
    ry: tuple[float, ...]
    rx: tuple[float, ...]
    angle: tuple[float, ...]
    stain: tuple[float, ...]
    kind: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.cy)


@dataclass(frozen=True)
class CellRecord:
    """Every parameter of one synthetic image; :func:`render_cell_image` replays it.

    Attributes:
        size: image side (px).
        targets: the mitotic figures (the detection ground truth).
        clutter: every other nucleus.
        stain_vectors: jittered unit OD vectors ``(v_H, v_E)``.
        stain_scales: concentration multipliers ``(s_H, s_E)``.
        illumination: white level of the glass.
        illumination_gradient: ``(g_row, g_col)`` relative illumination change per image
            side (a linear ramp through the image centre).
        space_fraction: fraction of the image covered by pale spaces (about).
        blur_sigma: Gaussian blur (px).
        noise_std: standard deviation of the additive RGB noise.
        noise_seed: seed of the textures and of the pixel noise.
    """

    size: int
    targets: tuple[MitoticFigure, ...]
    clutter: ClutterNuclei
    stain_vectors: tuple[Vector3, Vector3]
    stain_scales: tuple[float, float]
    illumination: float
    illumination_gradient: tuple[float, float]
    space_fraction: float
    blur_sigma: float
    noise_std: float
    noise_seed: int

    @property
    def centroids(self) -> np.ndarray:
        """``(k, 2)`` float64 ``(row, col)`` centroids of the targets."""
        return np.array([(t.cy, t.cx) for t in self.targets], np.float64).reshape(-1, 2)


@dataclass(frozen=True)
class CellImage:
    """A rendered synthetic image.

    Attributes:
        image: ``(H, W, 3)`` float32 RGB in [0, 1].
        centroids: ``(k, 2)`` float64 ``(row, col)`` target centroids.
        labels: ``(H, W)`` int32 target instance map (0: none, ``i + 1``: target ``i``).
        clutter_mask: ``(H, W)`` bool pixels covered by clutter nuclei.
        record: the record the image was rendered from.
    """

    image: np.ndarray
    centroids: np.ndarray
    labels: np.ndarray
    clutter_mask: np.ndarray
    record: CellRecord

    @property
    def mask(self) -> np.ndarray:
        """``(H, W)`` bool union of the target masks."""
        return self.labels > 0


@dataclass(frozen=True)
class CellDataset:
    """A batch of synthetic images (:func:`make_cell_dataset`).

    ``names``, ``centroids``, ``counts()``, ``image(i)`` and ``len()`` match
    :class:`~wslbench.data.cell_loaders.CellFolderDataset`, so code written for one runs
    on the other.

    Attributes:
        images: ``(N, 3, H, W)`` float32 RGB in [0, 1] (NumPy).
        centroids: per image, ``(k_i, 2)`` float64 ``(row, col)`` target centroids.
        labels: ``(N, H, W)`` int32 target instance maps (0: none, ``i + 1``: target ``i``).
        min_radius: radius of the smallest target of the batch (px): the matching
            distance ρ of Xue et al., 4.2 (the lower bound of ``config.target_radius``
            when the batch has no target).
        names: image names ``"synthetic_0000"``, ...
        records: the records, for replay with :func:`render_cell_image`.
        config: the configuration the batch was drawn with.
    """

    images: np.ndarray
    centroids: list[np.ndarray]
    labels: np.ndarray
    min_radius: float
    names: tuple[str, ...]
    records: tuple[CellRecord, ...]
    config: CellImageConfig

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def masks(self) -> np.ndarray:
        """``(N, H, W)`` bool union of the target masks of each image."""
        return self.labels > 0

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as ``(3, H, W)`` float32 in [0, 1]."""
        return self.images[index]

    def counts(self) -> np.ndarray:
        """``(N,)`` int64 number of targets per image (the cell count c of 4.1)."""
        return np.array([len(c) for c in self.centroids], np.int64)


# --------------------------------------------------------------------------- random draw


def _target(rng: np.random.Generator, cy: float, cx: float, radius: float) -> MitoticFigure:
    """Draw one mitotic figure of nominal ``radius`` centred at ``(cy, cx)``."""
    phase = MITOTIC_PHASES[int(rng.integers(len(MITOTIC_PHASES)))]
    if phase == "prophase":
        e = rng.uniform(1.0, 1.35)
        ru, rv, offset, amp = radius * math.sqrt(e), radius / math.sqrt(e), 0.0, 0.10
    elif phase == "metaphase":
        e = rng.uniform(1.8, 2.6)
        ru, rv, offset, amp = radius / math.sqrt(e), radius * math.sqrt(e), 0.0, 0.16
    else:  # two plates, each of half the area, pulled apart along the axis
        e = rng.uniform(1.8, 2.4)
        ru = radius / math.sqrt(2 * e)
        rv = radius * math.sqrt(e / 2)
        offset, amp = ru + radius * rng.uniform(0.25, 0.6), 0.14
    harmonics = tuple((float(rng.uniform(0.3, 1.0) * amp), float(rng.uniform(0, 2 * math.pi)))
                      for _ in range(3))
    n = int(rng.integers(4, 9))
    span = np.array([offset + ru, rv]) * 0.75
    u, v = rng.uniform(-1, 1, (2, n)) * span[:, None]
    angle = float(rng.uniform(0, math.pi))
    ca, sa = math.cos(angle), math.sin(angle)
    dy, dx = u * sa + v * ca, u * ca - v * sa
    cr = radius * rng.uniform(0.18, 0.35, (2, n))
    clumps = tuple((float(a), float(b), float(c), float(d), float(f)) for a, b, c, d, f in
                   zip(dy, dx, cr[0], cr[1], rng.uniform(0, math.pi, n)))
    return MitoticFigure(cy=float(cy), cx=float(cx), radius=float(radius), phase=phase,
                         angle=angle, lobe_ru=float(ru), lobe_rv=float(rv), offset=float(offset),
                         harmonics=harmonics, stain=float(rng.uniform(1.25, 1.7)),
                         clumps=clumps)


def _clutter(rng: np.random.Generator, config: CellImageConfig,
             targets: list[MitoticFigure]) -> ClutterNuclei:
    """Clutter nuclei on a jittered lattice, modulated by a smooth cellularity field."""
    n = int(config.size)
    r_lo, r_hi = config.clutter_radius
    step = 2.6 * 0.5 * (r_lo + r_hi)
    g = np.arange(step / 2, n, step)
    cy, cx = (a.ravel() for a in np.meshgrid(g, g, indexing="ij"))
    m = len(cy)
    cy = cy + rng.normal(0, 0.3 * step, m)
    cx = cx + rng.normal(0, 0.3 * step, m)
    cell = _smooth_texture(rng.uniform(-1, 1, (5, 5)), n, n)
    iy, ix = np.clip(cy, 0, n - 1).astype(int), np.clip(cx, 0, n - 1).astype(int)
    keep = rng.uniform(0, 1, m) < config.clutter_density * (1.0 + 0.6 * cell[iy, ix])
    r = rng.uniform(r_lo, r_hi, m)
    for t in targets:  # never occlude a target
        keep &= np.hypot(cy - t.cy, cx - t.cx) > t.extent + 0.8 * r
    cy, cx, r = cy[keep], cx[keep], r[keep]
    m = len(cy)
    hard = rng.uniform(0, 1, m) < config.hard_negative_fraction
    which = rng.integers(1, len(CLUTTER_KINDS), m)
    kind_idx = np.where(hard, which, 0)
    aspect = rng.uniform(1.0, 1.45, m)
    stain = rng.uniform(0.5, 0.85, m)
    scale = np.ones(m)
    lym, pyk, spi = kind_idx == 1, kind_idx == 2, kind_idx == 3
    scale[lym], aspect[lym], stain[lym] = 0.62, rng.uniform(1.0, 1.12, lym.sum()), \
        rng.uniform(1.15, 1.5, lym.sum())
    scale[pyk], aspect[pyk], stain[pyk] = 0.45, rng.uniform(1.0, 1.08, pyk.sum()), \
        rng.uniform(1.5, 1.9, pyk.sum())
    scale[spi], aspect[spi], stain[spi] = 0.85, rng.uniform(3.0, 4.5, spi.sum()), \
        rng.uniform(1.05, 1.4, spi.sum())
    r = r * scale
    ry, rx = r / np.sqrt(aspect), r * np.sqrt(aspect)
    angle = rng.uniform(0, math.pi, m)
    cols = [tuple(float(v) for v in a) for a in (cy, cx, ry, rx, angle, stain)]
    return ClutterNuclei(*cols, kind=tuple(CLUTTER_KINDS[k] for k in kind_idx))


def sample_cell_record(
    rng: np.random.Generator | int | None,
    config: CellImageConfig | None = None,
) -> CellRecord:
    """Draw the parameters of one synthetic image (the random half; Xue et al., 4.2).

    Args:
        rng: NumPy generator or seed.
        config: the :class:`CellImageConfig` (``None``: the defaults, 256 px).

    Returns:
        The :class:`CellRecord`; render it with :func:`render_cell_image`.
    """
    config = CellImageConfig() if config is None else config
    if not isinstance(config, CellImageConfig):
        raise InvalidInputError(
            f"config must be a CellImageConfig, got {type(config).__name__}")
    rng = numpy_rng(rng)
    n = int(config.size)
    wanted = min(int(rng.poisson(config.target_mean)), config.max_targets)
    targets: list[MitoticFigure] = []
    for _ in range(wanted):
        radius = float(rng.uniform(*config.target_radius))
        for _try in range(30):
            t = _target(rng, 0.0, 0.0, radius)
            margin = t.extent + 1.0
            if 2 * margin >= n:
                break
            cy, cx = rng.uniform(margin, n - 1 - margin, 2)
            if all(math.hypot(cy - o.cy, cx - o.cx) > margin + o.extent + 2.0 for o in targets):
                targets.append(replace(t, cy=float(cy), cx=float(cx)))
                break
    clutter = _clutter(rng, config, targets)
    vectors = []
    for v in DEFAULT_STAIN_VECTORS:
        w = np.abs(np.asarray(v) + rng.normal(0, config.stain_jitter, 3))
        w /= np.linalg.norm(w)
        vectors.append((float(w[0]), float(w[1]), float(w[2])))
    scales = rng.uniform(1 - 2 * config.stain_jitter, 1 + 2 * config.stain_jitter, 2)
    ij = config.intensity_jitter
    grad = rng.uniform(-ij, ij, 2)
    return CellRecord(
        size=n, targets=tuple(targets), clutter=clutter,
        stain_vectors=(vectors[0], vectors[1]),
        stain_scales=(float(scales[0]), float(scales[1])),
        illumination=float(np.clip(1.0 - rng.uniform(0, 2 * ij), 0.5, 1.0)),
        illumination_gradient=(float(grad[0]), float(grad[1])),
        space_fraction=float(rng.uniform(0.0, 0.15)),
        blur_sigma=float(rng.uniform(*config.blur_sigma)),
        noise_std=float(config.noise_std), noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


# --------------------------------------------------------------------------- rendering


def _ellipse_layer(n: int, params: np.ndarray, values: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Coverage in [0, 1] and value of the most covering ellipse (``params``: ``_splat`` rows)."""
    cover = np.zeros(n * n)
    value = np.zeros(n * n)
    if len(params):
        idx, alpha, _, owner = _splat(n, n, params)
        order = np.lexsort((alpha, idx))
        idx, alpha, owner = idx[order], alpha[order], owner[order]
        last = np.append(idx[1:] != idx[:-1], True)
        cover[idx[last]] = alpha[last]
        value[idx[last]] = values[owner[last]]
    return cover.reshape(n, n), value.reshape(n, n)


def _figure_rho(t: MitoticFigure, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Normalised radius of the nearest lobe (``< 1``: inside the figure)."""
    ca, sa = math.cos(t.angle), math.sin(t.angle)
    best = np.full(np.broadcast(yy, xx).shape, np.inf)
    for sign in ((1.0, -1.0) if t.offset > 0 else (0.0,)):
        dy, dx = yy - t.cy - sign * t.offset * sa, xx - t.cx - sign * t.offset * ca
        u = (dx * ca + dy * sa) / t.lobe_ru
        v = (-dx * sa + dy * ca) / t.lobe_rv
        d = np.hypot(u, v)
        theta = np.arctan2(v, u)
        r = np.ones_like(d)
        for k, (a, phi) in zip((2, 4, 6), t.harmonics):
            r = r + a * np.cos(k * theta + phi)
        best = np.minimum(best, d / r)
    return best


def render_cell_image(record: CellRecord) -> CellImage:
    """Render a record into an H&E image with its target masks (the deterministic half).

    Concentration maps are built in the order tissue background (smooth texture, pale
    spaces), clutter nuclei (granular chromatin), pale halos and mitotic figures (clumped
    chromatin inside a ragged outline); then Beer–Lambert colouring
    ``RGB = illumination · ramp · 10^(−(s_H c_H v_H + s_E c_E v_E))``, Gaussian blur and
    pixel noise from ``record.noise_seed`` (Xue et al., 4.2).

    Args:
        record: a record from :func:`sample_cell_record` (or built by hand).

    Returns:
        The :class:`CellImage`; rendering the same record twice gives identical arrays.
    """
    if not isinstance(record, CellRecord):
        raise InvalidInputError(
            f"render_cell_image expects a CellRecord, got {type(record).__name__}")
    n = int(record.size)
    if not MIN_CELL_SIZE <= n <= MAX_CELL_SIZE:
        raise InvalidInputError(f"record.size must be in [{MIN_CELL_SIZE}, {MAX_CELL_SIZE}]")
    rng = np.random.default_rng(record.noise_seed)
    low = _smooth_texture(rng.uniform(-1, 1, (6, 6)), n, n)
    fine = gaussian_filter(rng.standard_normal((n, n)), 1.5) * 3.0
    space_field = _smooth_texture(rng.uniform(-1, 1, (7, 7)), n, n)
    space = space_field > np.quantile(space_field, 1.0 - record.space_fraction)
    c_h = np.where(space, _SPACE_STAIN[0], _TISSUE_STAIN[0]) * (1 + 0.25 * low + 0.1 * fine)
    c_e = np.where(space, _SPACE_STAIN[1], _TISSUE_STAIN[1]) * (1 + 0.2 * low + 0.15 * fine)

    cl = record.clutter
    if len(cl):
        params = np.column_stack([cl.cy, cl.cx, cl.ry, cl.rx, cl.angle, np.ones(len(cl)),
                                  np.zeros(len(cl))])
        cover, nuc_h = _ellipse_layer(n, params, np.asarray(cl.stain))
    else:
        cover, nuc_h = np.zeros((n, n)), np.zeros((n, n))
    chromatin = 1.0 + 0.12 * rng.standard_normal((n, n))
    c_h = c_h * (1 - cover) + cover * nuc_h * chromatin
    c_e = c_e * (1 - cover) + cover * _NUCLEUS_EOSIN

    labels = np.zeros((n, n), np.int32)
    if record.targets:
        clump_rows = [(t.cy + dy, t.cx + dx, ry, rx, a, 1.0, 0.5)
                      for t in record.targets for dy, dx, ry, rx, a in t.clumps]
        clumps, _ = _ellipse_layer(n, np.array(clump_rows).reshape(-1, 7),
                                   np.zeros(len(clump_rows)))
        grain = 1.0 + 0.2 * rng.standard_normal((n, n))
        for i, t in enumerate(record.targets):
            ext = 1.8 * t.extent
            y0, y1 = max(0, int(t.cy - ext)), min(n, int(math.ceil(t.cy + ext)) + 1)
            x0, x1 = max(0, int(t.cx - ext)), min(n, int(math.ceil(t.cx + ext)) + 1)
            yy = np.arange(y0, y1, dtype=np.float64)[:, None]
            xx = np.arange(x0, x1, dtype=np.float64)[None, :]
            win = (slice(y0, y1), slice(x0, x1))
            rho = _figure_rho(t, yy, xx)
            dist = np.hypot(yy - t.cy, xx - t.cx)
            halo = np.clip(1.6 - dist / t.extent, 0.0, 1.0) * 0.35
            c_e[win] *= 1 - halo
            c_h[win] *= 1 - 0.5 * halo
            edge = 1.0 / min(t.lobe_ru, t.lobe_rv)
            s = np.clip(0.5 + (1.0 - rho) / edge, 0.0, 1.0)
            alpha = s * s * (3.0 - 2.0 * s)
            inside = rho < 1.0
            value = t.stain * (0.7 + 0.55 * clumps[win]) * grain[win]
            c_h[win] = c_h[win] * (1 - alpha) + alpha * value
            c_e[win] = c_e[win] * (1 - alpha) + alpha * _NUCLEUS_EOSIN
            labels[win] = np.where(inside & (labels[win] == 0), i + 1, labels[win])

    ramp_axis = np.linspace(-0.5, 0.5, n)
    ramp = (1.0 + record.illumination_gradient[0] * ramp_axis[:, None]
            + record.illumination_gradient[1] * ramp_axis[None, :])
    img = record.illumination * ramp[..., None] * stain_transmission(
        c_h, c_e, record.stain_vectors, record.stain_scales)
    if record.blur_sigma > 0:
        img = gaussian_filter(img, (record.blur_sigma, record.blur_sigma, 0))
    if record.noise_std > 0:
        img = img + record.noise_std * rng.standard_normal((n, n, 3))
    return CellImage(
        image=np.clip(img, 0.0, 1.0).astype(np.float32),
        centroids=record.centroids,
        labels=labels,
        clutter_mask=cover >= 0.5,
        record=record,
    )


def make_cell_dataset(
    n_images: int,
    config: CellImageConfig | None = None,
    seed: int = 0,
) -> CellDataset:
    """A batch of synthetic cell-detection images (Xue et al., 4.2).

    Image ``i`` is drawn from its own generator spawned from ``seed`` (NumPy
    ``SeedSequence(seed).spawn``), so it does not depend on ``n_images``.

    Args:
        n_images: number of images (≥ 1).
        config: the :class:`CellImageConfig` (``None``: the defaults, 256 px).
        seed: base seed.

    Returns:
        :class:`CellDataset` with images ``(N, 3, H, W)`` float32, per-image ``(k, 2)``
        ``(row, col)`` centroids, target instance maps and the matching radius ρ.
    """
    if isinstance(n_images, bool) or not isinstance(n_images, int | np.integer) \
            or n_images < 1:
        raise InvalidInputError(f"n_images must be a positive int, got {n_images!r}")
    config = CellImageConfig() if config is None else config
    if not isinstance(config, CellImageConfig):
        raise InvalidInputError(
            f"config must be a CellImageConfig, got {type(config).__name__}")
    n, size = int(n_images), int(config.size)
    images = np.empty((n, 3, size, size), np.float32)
    labels = np.empty((n, size, size), np.int32)
    centroids, records = [], []
    for i, child in enumerate(np.random.SeedSequence(int(seed)).spawn(n)):
        case = render_cell_image(sample_cell_record(np.random.default_rng(child), config))
        images[i] = case.image.transpose(2, 0, 1)
        labels[i] = case.labels
        centroids.append(case.centroids)
        records.append(case.record)
    radii = [t.radius for r in records for t in r.targets]
    return CellDataset(
        images=images, centroids=centroids, labels=labels,
        min_radius=float(min(radii)) if radii else float(config.target_radius[0]),
        names=tuple(f"synthetic_{i:04d}" for i in range(n)), records=tuple(records),
        config=config,
    )
