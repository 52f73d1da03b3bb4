"""Deterministic synthetic H&E histology patches with pixel ground truth.

Embedded default data for the weakly supervised histology experiments of Rony (2020),
chapter 2 (section 2.1.1: BreakHis, BACH part A, GlaS, CAMELYON16) and chapter 4
(section 4.4.1: GlaS and CAMELYON16 with size supervision). Three tasks mimic the
public data sets (:data:`HISTOLOGY_TASKS`):

* ``"glas"`` (benign / malignant colon glands, GlaS-like, section 2.1.1.3): benign
  glands are round and regular with a clear central lumen and a single layer of
  small, regular, basal nuclei; malignant glands are irregular, fused with buds,
  with small or cribriform (several punched-out) lumens and crowded, enlarged,
  pleomorphic, hyperchromatic nuclei filling the epithelium. Each patch draws a
  grade between the two whose class ranges overlap (:data:`GLAS_GRADES`), 1–8
  glands of radii independent of the class (the gland area varies widely), stromal
  inflammation and the stain of both classes alike, so the label is neither certain
  from the morphology nor readable from global colour. The mask is the glands
  (lumen included, as in the GlaS annotations), whatever the class.
* ``"bach"`` (normal / benign / in situ / invasive breast tissue, BACH-like, section
  2.1.1.2): normal = one or two lobules of small regular acini; benign = many
  elongated, regular glands (fibroadenoma-like); in situ = large round ducts with a
  smooth outline, filled (solid or cribriform) with atypical nuclei and bounded by a
  thin layer of flat myoepithelial nuclei; invasive = many small irregular nests and
  cords of pleomorphic cells scattered in the stroma, without lumen. The mask is the
  structures that define the class (acini, glands, ducts, nests).
* ``"camelyon"`` (normal / tumor lymph-node patches, CAMELYON16-like, section
  2.1.1.4): lymph-node-like tissue of densely packed small round lymphocytes with pale
  sinuses; tumour patches add cohesive sheets of large pleomorphic tumour cells with
  pink cytoplasm, of random extent (partly outside the patch), covering at least 20 %
  of the patch (about: the draw checks a 32 × 32 lattice), the p0 of the CAMELYON16
  patch protocol (section 2.1.2.3). The mask is the tumour; it is empty for normal
  patches.

Everything but the nuclei sits in a stroma (pink, fibrous eosin texture with sparse
spindle-shaped fibroblast nuclei) or in the lymphocyte background. Colours follow the
Beer–Lambert model of H&E staining (Ruifrok & Johnston 2001): per-pixel haematoxylin
and eosin concentrations ``c_H, c_E`` give the optical density
``OD = c_H·v_H + c_E·v_E`` and the RGB value ``illumination · 10^(−OD)``. The stain
vectors ``v_H, v_E`` (unit OD vectors, default :data:`DEFAULT_STAIN_VECTORS`, the
reference of Macenko et al. 2009) and per-stain concentration scales are jittered per
image in optical-density space, the stain heterogeneity the thesis lists among the
difficulties of histology (chapter 1).

Structures are star-shaped: in a frame rotated by ``angle`` and stretched by
``elongation`` their boundary is ``r(θ) = radius·(1 + Σ_k a_k cos(kθ + φ_k))``,
k = 2, 3, ...; the shape *regularity* of a structure is the size of its harmonics.
Structure sizes scale with the image side (``size`` is the resolution of a fixed field
of view), so the same record family gives the same content at 64 and at 512 px.

Random draws are separated from deterministic rendering (DESIGN §6):
:func:`sample_histology_case` returns a frozen :class:`HistologyRecord` with every
parameter (structures, every nucleus, stain vectors, texture parameters, noise seed);
:func:`render_histology` turns it into a :class:`HistologyCase` without further
randomness (textures and pixel noise come from ``record.noise_seed``).
:func:`make_histology_dataset` batches cases into tensors with the masks and the
region size fraction of every image (the size supervision of chapter 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from wslbench.data._raster import _smooth_texture, _splat
from wslbench.errors import InvalidInputError
from wslbench.seeding import numpy_rng

__all__ = [
    "stain_transmission",
    "HISTOLOGY_TASKS",
    "GLAS_GRADES",
    "STRUCTURE_KINDS",
    "DEFAULT_STAIN_VECTORS",
    "MIN_SIZE",
    "MAX_SIZE",
    "Structure",
    "Nuclei",
    "HistologyRecord",
    "HistologyCase",
    "SyntheticHistologyDataset",
    "sample_histology_case",
    "render_histology",
    "make_histology_case",
    "make_histology_dataset",
]

#: Task name → class names in label order (label = index).
HISTOLOGY_TASKS: dict[str, tuple[str, ...]] = {
    "glas": ("benign", "malignant"),
    "bach": ("normal", "benign", "in_situ", "invasive"),
    "camelyon": ("normal", "tumor"),
}
#: Kinds of :class:`Structure` → cytoplasm concentrations ``(c_H, c_E)``.
STRUCTURE_KINDS: dict[str, tuple[float, float]] = {
    "benign_gland": (0.20, 0.32),
    "malignant_gland": (0.20, 0.32),
    "normal_acinus": (0.16, 0.28),
    "benign_acinus": (0.16, 0.30),
    "in_situ_duct": (0.24, 0.33),
    "invasive_nest": (0.26, 0.36),
    "metastasis": (0.20, 0.46),
}
#: Unit optical-density vectors of haematoxylin and eosin (RGB; Macenko et al. 2009).
DEFAULT_STAIN_VECTORS: tuple[tuple[float, float, float], tuple[float, float, float]] = (
    (0.5626, 0.7201, 0.4062),
    (0.2159, 0.8012, 0.5581),
)
MIN_SIZE: int = 64
MAX_SIZE: int = 512

#: Concentrations ``(c_H, c_E)`` of the lumen (nearly unstained: white).
_LUMEN_STAIN = (0.01, 0.02)
#: Eosin concentration of collagenous stroma and its haematoxylin background.
_STROMA_STAIN = (0.08, 0.34)
#: Lymph-node background between lymphocytes, and its pale sinuses.
_LYMPH_STAIN = (0.20, 0.16)
_SINUS_STAIN = (0.07, 0.26)
#: Minimum tumour fraction of a CAMELYON-like tumour patch (p0 of section 2.1.2.3).
_MIN_TUMOUR_FRACTION = 0.2
#: Eosin concentration inside nuclei.
_NUCLEUS_EOSIN = 0.08

Vector3 = tuple[float, float, float]


@dataclass(frozen=True)
class Structure:
    """A gland, duct, tumour nest or tumour sheet (a star-shaped region).

    In the frame rotated by ``angle`` and stretched by ``elongation`` (the local
    coordinates are ``u = (dx·cos a + dy·sin a)/√e``, ``v = (−dx·sin a + dy·cos a)·√e``)
    the boundary is ``r(θ) = radius·(1 + Σ_k a_k cos(kθ + φ_k))`` with the k-th entry of
    ``harmonics`` = ``(a_k, φ_k)`` for k = 2, 3, ... A pixel is inside when its
    normalised radius ``ρ = |(u, v)| / r(θ)`` is below 1.

    Attributes:
        kind: a key of :data:`STRUCTURE_KINDS` (sets the cytoplasm colour).
        cy: centre row (px).
        cx: centre column (px).
        radius: mean radius (px).
        angle: rotation (radians).
        elongation: aspect ratio ≥ 1 of the stretched frame.
        harmonics: ``((a_2, φ_2), (a_3, φ_3), ...)`` boundary deformation.
        lumen: relative radius of the central lumen (ρ below it is lumen; 0: none).
        extra_lumens: ``((row, col, radius), ...)`` circular cribriform lumens (px).
    """

    kind: str
    cy: float
    cx: float
    radius: float
    angle: float
    elongation: float
    harmonics: tuple[tuple[float, float], ...]
    lumen: float
    extra_lumens: tuple[tuple[float, float, float], ...]

    @property
    def irregularity(self) -> float:
        """Sum of the harmonic amplitudes ``Σ_k |a_k|`` (0: an ellipse)."""
        return float(sum(abs(a) for a, _ in self.harmonics))


@dataclass(frozen=True)
class Nuclei:
    """All nuclei of a patch, stored column-wise (one entry per nucleus).

    Each nucleus is an ellipse with semi-axes ``ry`` (along ``angle + π/2``) and ``rx``
    (along ``angle``) and haematoxylin concentration ``stain``.

    Attributes:
        cy: centre rows (px).
        cx: centre columns (px).
        ry: semi-axes (px).
        rx: semi-axes (px).
        angle: orientations (radians).
        stain: haematoxylin concentrations (hyperchromatic nuclei are higher).
        kind: ``"epithelial"``, ``"atypical"``, ``"myoepithelial"``, ``"stromal"``,
            ``"lymphocyte"`` or ``"tumour"`` for every nucleus.
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

    def area(self) -> np.ndarray:
        """``(n,)`` ellipse areas ``π·ry·rx`` (px²)."""
        return math.pi * np.asarray(self.ry) * np.asarray(self.rx)


@dataclass(frozen=True)
class HistologyRecord:
    """Every parameter of one synthetic patch; :func:`render_histology` replays it.

    Attributes:
        size: image side in pixels (square image).
        task: a key of :data:`HISTOLOGY_TASKS`.
        label: class index in ``HISTOLOGY_TASKS[task]``.
        background: ``"stroma"`` or ``"lymph_node"``.
        structures: the glands, ducts, nests or tumour sheets.
        nuclei: every nucleus.
        stain_vectors: jittered unit OD vectors ``(v_H, v_E)``.
        stain_scales: concentration multipliers ``(s_H, s_E)``.
        illumination: white level of the unstained glass (RGB multiplier).
        fibre_angle: direction of the stromal fibres (radians).
        fibre_period: period of the fibre pattern (px).
        fibre_warp: amplitude of the fibre waviness (radians of phase).
        noise_std: standard deviation of the additive RGB pixel noise.
        noise_seed: seed of the textures and of the pixel noise.
        grade: GlaS-like patches: the grade ``g`` in [0, 1] their glands scatter around
            (:data:`GLAS_GRADES`); ``None`` for the other tasks.
        spaces: ``((row, col, radius), ...)`` clear spaces of the stroma (vessels,
            retraction, tears: unstained like a lumen but outside every gland and mask).
    """

    size: int
    task: str
    label: int
    background: str
    structures: tuple[Structure, ...]
    nuclei: Nuclei
    stain_vectors: tuple[Vector3, Vector3]
    stain_scales: tuple[float, float]
    illumination: float
    fibre_angle: float
    fibre_period: float
    fibre_warp: float
    noise_std: float
    noise_seed: int
    grade: float | None = None
    spaces: tuple[tuple[float, float, float], ...] = ()

    @property
    def class_name(self) -> str:
        """Name of the label in ``HISTOLOGY_TASKS[task]``."""
        return HISTOLOGY_TASKS[self.task][self.label]


@dataclass(frozen=True)
class HistologyCase:
    """A rendered synthetic patch.

    Attributes:
        image: ``(H, W, 3)`` float32 RGB in [0, 1].
        mask: ``(H, W)`` bool region of the label class (the union of the structures;
            empty for CAMELYON-like normal patches).
        lumen_mask: ``(H, W)`` bool lumens inside the structures.
        nuclei_mask: ``(H, W)`` bool nuclei (every kind).
        label: class index.
        size_fraction: ``mask.mean()``, the region size used as size supervision.
        record: the record the case was rendered from.
    """

    image: np.ndarray
    mask: np.ndarray
    lumen_mask: np.ndarray
    nuclei_mask: np.ndarray
    label: int
    size_fraction: float
    record: HistologyRecord

    def class_masks(self) -> np.ndarray:
        """``(C, H, W)`` bool per-class masks: ``mask`` in channel ``label``, others empty.

        For GlaS this is the background / benign gland / malignant gland labelling of
        section 4.4.1 without its background channel (eq. 4.14 pools channels 1 and 2).
        """
        out = np.zeros((len(HISTOLOGY_TASKS[self.record.task]),) + self.mask.shape, bool)
        out[self.label] = self.mask
        return out


@dataclass(frozen=True)
class SyntheticHistologyDataset:
    """A batch of synthetic patches as tensors (:func:`make_histology_dataset`).

    Attributes:
        images: ``(N, 3, H, W)`` float32 in [0, 1].
        labels: ``(N,)`` int64 class indices.
        masks: ``(N, H, W)`` bool regions of the label class.
        class_masks: ``(N, C, H, W)`` bool, ``masks`` in the channel of the label.
        size_fractions: ``(N,)`` float32 ``masks.mean((1, 2))``.
        class_names: the task's class names.
        records: the records, for replay with :func:`render_histology`.
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    class_masks: torch.Tensor
    size_fractions: torch.Tensor
    class_names: tuple[str, ...]
    records: tuple[HistologyRecord, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])


# --------------------------------------------------------------------------- geometry


def _local_frame(s: Structure, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dy, dx = y - s.cy, x - s.cx
    ca, sa = math.cos(s.angle), math.sin(s.angle)
    e = math.sqrt(s.elongation)
    return (dx * ca + dy * sa) / e, (-dx * sa + dy * ca) * e


def _boundary(s: Structure, cos_t: np.ndarray, sin_t: np.ndarray) -> np.ndarray:
    """``r(θ)`` from ``cos θ`` and ``sin θ`` (powers of ``e^{iθ}``, no trigonometry)."""
    z = cos_t + 1j * sin_t
    zk = z
    r = np.ones(np.shape(cos_t))
    for a, phi in s.harmonics:
        zk = zk * z
        r = r + a * (zk * complex(math.cos(phi), math.sin(phi))).real
    return s.radius * np.maximum(r, 0.3)


def _rho(s: Structure, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Normalised radius ``ρ`` of points (``ρ < 1``: inside the structure)."""
    u, v = _local_frame(s, y, x)
    d = np.hypot(u, v)
    safe = np.maximum(d, 1e-9)
    return d / _boundary(s, u / safe, v / safe)


def _point_at(s: Structure, theta: np.ndarray, rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image ``(row, col)`` of the points at angle ``θ`` and normalised radius ``ρ``."""
    c, sn = np.cos(theta), np.sin(theta)
    d = rho * _boundary(s, c, sn)
    u, v = d * c, d * sn
    ca, sa = math.cos(s.angle), math.sin(s.angle)
    e = math.sqrt(s.elongation)
    dx = e * u * ca - v / e * sa
    dy = e * u * sa + v / e * ca
    return s.cy + dy, s.cx + dx


def _extent(s: Structure) -> float:
    """A bound on the distance from the centre to the boundary (px)."""
    return s.radius * (1.0 + s.irregularity) * math.sqrt(s.elongation) + 2.0


def _in_lumen(s: Structure, y: np.ndarray, x: np.ndarray, rho: np.ndarray) -> np.ndarray:
    lum = rho < s.lumen
    for ly, lx, lr in s.extra_lumens:
        lum |= (y - ly) ** 2 + (x - lx) ** 2 < lr * lr
    return lum & (rho < 1.0)


# --------------------------------------------------------------------------- random draw


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise InvalidInputError(f"size must be an int in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}")
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise InvalidInputError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}] px, got {size}")
    return int(size)


def _check_task(task: str) -> tuple[str, ...]:
    if task not in HISTOLOGY_TASKS:
        raise InvalidInputError(
            f"unknown histology task {task!r}; expected one of {sorted(HISTOLOGY_TASKS)}"
        )
    return HISTOLOGY_TASKS[task]


def _check_weights(weights: Sequence[float] | None, n_classes: int) -> np.ndarray:
    if weights is None:
        return np.full(n_classes, 1.0 / n_classes)
    p = np.asarray(weights, dtype=float)
    if p.shape != (n_classes,) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise InvalidInputError(
            f"class_weights must be {n_classes} finite non-negative weights with a positive "
            f"sum, got {weights!r}"
        )
    return p / p.sum()


#: Ranges of the GlaS-like grade ``g`` per class (benign, malignant): they overlap, so
#: some benign patches look as irregular as some malignant ones (GlaS mixes well and
#: poorly differentiated adenocarcinomas with benign glands, 2.1.1.3).
GLAS_GRADES: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.55), (0.45, 1.0))


class _NucleusList:
    """Column accumulator of nuclei during a draw."""

    def __init__(self) -> None:
        self.cols: list[np.ndarray] = []
        self.kinds: list[str] = []

    def add(self, kind: str, cy: np.ndarray, cx: np.ndarray, ry: np.ndarray, rx: np.ndarray,
            angle: np.ndarray, stain: np.ndarray) -> None:
        n = len(cy)
        if n:
            self.cols.append(np.stack(np.broadcast_arrays(cy, cx, ry, rx, angle, stain), 1))
            self.kinds += [kind] * n

    def freeze(self, size: int) -> Nuclei:
        arr = np.concatenate(self.cols) if self.cols else np.zeros((0, 6))
        keep = (arr[:, 0] > -4) & (arr[:, 0] < size + 4) & (arr[:, 1] > -4) & (arr[:, 1] < size + 4)
        arr = arr[keep]
        kinds = tuple(k for k, ok in zip(self.kinds, keep) if ok)
        cols = [tuple(float(v) for v in arr[:, j]) for j in range(6)]
        return Nuclei(*cols, kind=kinds)


class _Draw:
    """Shared state of one draw: the generator, the size and the accumulated content."""

    def __init__(self, rng: np.random.Generator, size: int,
                 grades: tuple[tuple[float, float], tuple[float, float]] = GLAS_GRADES) -> None:
        self.rng = rng
        self.size = size
        self.grades = grades
        self.structures: list[Structure] = []
        self.nuclei = _NucleusList()
        self.spaces: list[tuple[float, float, float]] = []

    def u(self, low: float, high: float) -> float:
        return float(self.rng.uniform(low, high))

    def structure(self, kind: str, cy: float, cx: float, radius: float, *, amp: float,
                  orders: int = 4, elongation: float = 1.0, lumen: float = 0.0,
                  cribriform: int = 0) -> Structure:
        rng = self.rng
        harm = tuple((float(rng.uniform(0.3, 1.0) * amp / (1 + 0.5 * k)),
                      float(rng.uniform(0, 2 * math.pi))) for k in range(orders))
        s = Structure(kind, float(cy), float(cx), float(radius), self.u(0, math.pi),
                      float(elongation), harm, float(lumen), ())
        if cribriform:
            th = rng.uniform(0, 2 * math.pi, cribriform)
            ly, lx = _point_at(s, th, rng.uniform(0.1, 0.55, cribriform))
            lr = radius * rng.uniform(0.1, 0.22, cribriform)
            s = Structure(kind, s.cy, s.cx, s.radius, s.angle, s.elongation, s.harmonics,
                          s.lumen, tuple((float(a), float(b), float(c))
                                         for a, b, c in zip(ly, lx, lr)))
        self.structures.append(s)
        return s

    def place(self, radius: float, gap: float, margin: float = 0.0,
              tries: int = 60) -> tuple[float, float] | None:
        """A centre at least ``gap`` px from every structure so far (``None`` if none fits)."""
        for _ in range(tries):
            cy = self.u(-margin, self.size + margin)
            cx = self.u(-margin, self.size + margin)
            if all(math.hypot(cy - s.cy, cx - s.cx) > radius + s.radius * s.elongation ** 0.5
                   + gap for s in self.structures):
                return cy, cx
        return None

    # ---------------------------------------------------------------- nuclei layouts

    def ring(self, s: Structure, kind: str, rho: float, r_nuc: float, spacing: float,
             jitter: float, stain: float, flat: float = 1.0) -> None:
        """A regular single layer of nuclei along the contour at normalised radius ``rho``."""
        rng = self.rng
        th = np.linspace(0, 2 * math.pi, 257)
        py, px = _point_at(s, th, np.full_like(th, rho))
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(py), np.diff(px)))])
        n = max(3, int(arc[-1] / spacing))
        t = (np.arange(n) + rng.uniform(0, 1)) / n * arc[-1]
        t = t + rng.normal(0, jitter * spacing, n)
        th_n = np.interp(np.mod(t, arc[-1]), arc, th)
        cy, cx = _point_at(s, th_n, np.full(n, rho))
        normal = np.arctan2(cy - s.cy, cx - s.cx)  # nuclei elongated along the radius
        r = r_nuc * rng.normal(1.0, jitter, n).clip(0.8, 1.2)
        self.nuclei.add(kind, cy, cx, r / flat, r * rng.uniform(1.05, 1.25, n) * flat, normal,
                        stain * rng.normal(1.0, 0.04, n))

    def fill(self, s: Structure, kind: str, r_nuc: float, packing: float,
             pleomorphism: float, stain: float, rho_max: float = 0.93) -> None:
        """Nuclei spread over the epithelium of ``s`` (outside its lumens)."""
        rng = self.rng
        th = np.linspace(0, 2 * math.pi, 129)
        py, px = _point_at(s, th, np.ones_like(th))
        area = 0.5 * abs(np.dot(py[:-1], px[1:]) - np.dot(px[:-1], py[1:]))
        n = int(packing * area / (math.pi * r_nuc * r_nuc))
        if n == 0:
            return
        theta = rng.uniform(0, 2 * math.pi, n)
        rho = rho_max * np.sqrt(rng.uniform(0, 1, n))
        cy, cx = _point_at(s, theta, rho)
        ok = ~_in_lumen(s, cy, cx, _rho(s, cy, cx))
        cy, cx = cy[ok], cx[ok]
        m = len(cy)
        r = r_nuc * np.exp(rng.normal(0, pleomorphism, m))
        aspect = 1.0 + np.abs(rng.normal(0, 1.5 * pleomorphism + 0.05, m))
        self.nuclei.add(kind, cy, cx, r / np.sqrt(aspect), r * np.sqrt(aspect),
                        rng.uniform(0, math.pi, m),
                        stain * np.exp(rng.normal(0, 0.6 * pleomorphism, m)))

    def stromal_nuclei(self, count: int, r_nuc: float) -> None:
        """Sparse spindle-shaped fibroblast nuclei outside every structure."""
        rng = self.rng
        cy = rng.uniform(0, self.size, count)
        cx = rng.uniform(0, self.size, count)
        ok = np.ones(count, bool)
        for s in self.structures:
            ok &= _rho(s, cy, cx) > 1.15
        m = int(ok.sum())
        r = r_nuc * rng.uniform(0.8, 1.1, m)
        self.nuclei.add("stromal", cy[ok], cx[ok], r * 0.45, r * rng.uniform(1.8, 2.6, m),
                        rng.normal(0, 0.35, m), 0.8 * rng.normal(1.0, 0.05, m))

    def lymphocytes(self, count: int, r_nuc: float) -> None:
        """Scattered small round dark lymphocytes outside every structure (inflammation)."""
        rng = self.rng
        cy = rng.uniform(0, self.size, count)
        cx = rng.uniform(0, self.size, count)
        ok = np.ones(count, bool)
        for s in self.structures:
            ok &= _rho(s, cy, cx) > 1.1
        m = int(ok.sum())
        r = 0.8 * r_nuc * rng.normal(1.0, 0.06, m).clip(0.85, 1.15)
        self.nuclei.add("lymphocyte", cy[ok], cx[ok], r, r * rng.uniform(1.0, 1.1, m),
                        rng.uniform(0, math.pi, m), 1.2 * rng.normal(1.0, 0.05, m))


def _glas(d: _Draw, label: int) -> float:
    """GlaS-like glands of a per-patch grade ``g`` (returned) drawn in ``d.grades``
    (default :data:`GLAS_GRADES`).

    Every gland takes ``g_i = g + N(0, 0.1²)`` (clipped to [0, 1]) and interpolates from
    benign (``g_i = 0``: round, one basal layer of small regular nuclei, large clear lumen)
    to malignant (``g_i = 1``: irregular outline, elongated, buds fused to it, small or
    cribriform lumens, epithelium filled with crowded, enlarged, pleomorphic,
    hyperchromatic nuclei). The number (1–8) and the radii (6–17 % of the side) of the
    glands do not depend on the class, so the gland area varies widely in both. The
    stroma holds fibroblasts and a random density of lymphocytes (inflammation), and the
    cytoplasm has one colour for both classes: the class is carried by the morphology
    only, never by a global colour (DESIGN §9).
    """
    s0 = d.size
    rn = max(1.0, 0.014 * s0)
    low, high = d.grades[label]
    grade = d.u(low, high)
    for _ in range(int(d.rng.integers(1, 9))):
        g = float(np.clip(grade + d.rng.normal(0, 0.1), 0.0, 1.0))
        radius = s0 * d.u(0.06, 0.17)
        c = d.place(radius * (1 + 0.4 * g), 0.03 * s0, margin=0.05 * s0)
        if c is None:
            continue
        kind = "malignant_gland" if label else "benign_gland"
        parts = 1 + int(d.rng.binomial(2, 0.6 * g))  # fused buds: more when irregular
        for j in range(parts):
            phi = d.u(0, 2 * math.pi)
            off = 0.0 if j == 0 else radius * d.u(0.8, 1.2)
            gland = d.structure(kind, c[0] + off * math.sin(phi), c[1] + off * math.cos(phi),
                                radius * (1.0 if j == 0 else d.u(0.5, 0.8)),
                                amp=0.05 + 0.5 * g, elongation=d.u(1.0, 1.2 + 0.6 * g),
                                lumen=max(0.0, d.u(0.35, 0.6) - 0.35 * g),
                                cribriform=int(d.rng.poisson(3.0 * g * g)))
            d.ring(gland, "epithelial", 0.84, rn * (1 + 0.4 * g), 2.2 * rn, 0.05 + 0.15 * g,
                   0.9 + 0.1 * g)
            if g > 0.3:
                d.fill(gland, "atypical", rn * (1.2 + 0.5 * g), 0.45 * (g - 0.3),
                       0.05 + 0.25 * g, 0.95 + 0.1 * g)
    for _ in range(int(d.rng.integers(0, 5))):  # clear stromal spaces, as white as lumens
        r = s0 * d.u(0.02, 0.08)
        c = d.place(r, 0.02 * s0)
        if c is not None:
            d.spaces.append((c[0], c[1], r))
    d.stromal_nuclei(int(d.rng.integers(10, 40)), rn)
    d.lymphocytes(int(d.rng.integers(0, 400)), rn)
    return grade


def _bach(d: _Draw, label: int) -> None:
    s0 = d.size
    rn = max(1.0, 0.013 * s0)
    if label == 0:  # normal: one or two lobules of small regular acini
        for _ in range(int(d.rng.integers(1, 3))):
            c = d.place(0.22 * s0, 0.02 * s0, margin=-0.1 * s0)
            if c is None:
                continue
            for _ in range(int(d.rng.integers(6, 12))):
                rho, phi = 0.22 * s0 * math.sqrt(d.u(0, 1)), d.u(0, 2 * math.pi)
                radius = s0 * d.u(0.045, 0.065)
                cy, cx = c[0] + rho * math.sin(phi), c[1] + rho * math.cos(phi)
                if any(math.hypot(cy - s.cy, cx - s.cx) < radius + s.radius + 0.01 * s0
                       for s in d.structures):
                    continue
                a = d.structure("normal_acinus", cy, cx, radius, amp=0.05, lumen=d.u(0.3, 0.45))
                d.ring(a, "epithelial", 0.72, rn, 2.5 * rn, 0.05, 0.85)
    elif label == 1:  # benign: many elongated regular glands, two regular layers
        for _ in range(int(d.rng.integers(7, 13))):
            radius = s0 * d.u(0.05, 0.08)
            c = d.place(radius * 1.6, 0.02 * s0, margin=0.05 * s0)
            if c is None:
                continue
            g = d.structure("benign_acinus", c[0], c[1], radius, amp=0.08,
                            elongation=d.u(1.8, 3.2), lumen=d.u(0.35, 0.5))
            d.ring(g, "epithelial", 0.78, rn, 2.5 * rn, 0.05, 0.85)
            d.ring(g, "myoepithelial", 0.95, 0.7 * rn, 3.0 * rn, 0.05, 0.75, flat=1.8)
    elif label == 2:  # in situ: big smooth ducts filled with atypical cells
        for _ in range(int(d.rng.integers(1, 4))):
            radius = s0 * d.u(0.16, 0.26)
            c = d.place(radius, 0.03 * s0, margin=0.1 * s0)
            if c is None:
                continue
            g = d.structure("in_situ_duct", c[0], c[1], radius, amp=0.04,
                            elongation=d.u(1.0, 1.3), cribriform=int(d.rng.integers(0, 5)))
            d.fill(g, "atypical", 1.6 * rn, 0.5, 0.2, 1.1, rho_max=0.88)
            d.ring(g, "myoepithelial", 0.96, 0.7 * rn, 3.0 * rn, 0.05, 0.75, flat=1.8)
    else:  # invasive: small irregular nests and cords scattered in the stroma
        for _ in range(int(d.rng.integers(12, 25))):
            radius = s0 * d.u(0.025, 0.055)
            c = d.place(radius * 1.5, 0.01 * s0, margin=0.03 * s0)
            if c is None:
                continue
            g = d.structure("invasive_nest", c[0], c[1], radius, amp=0.7,
                            elongation=d.u(1.0, 3.5))
            d.fill(g, "atypical", 1.6 * rn, 0.5, 0.3, 1.15, rho_max=0.9)
    d.stromal_nuclei(int(d.rng.integers(20, 40)), rn)


def _camelyon(d: _Draw, label: int) -> None:
    s0 = d.size
    rn = max(0.9, 0.011 * s0)
    if label == 1:  # tumour sheets of random extent, often cut by the patch border
        lattice = (np.arange(32) + 0.5) * s0 / 32
        ly, lx = (v.ravel() for v in np.meshgrid(lattice, lattice, indexing="ij"))
        covered = np.zeros(ly.size, bool)
        for k in range(12):  # at least one sheet, and p_m ≥ p0 as for CAMELYON16 patches
            if k >= int(d.rng.integers(1, 4)) and covered.mean() >= _MIN_TUMOUR_FRACTION:
                break
            radius = s0 * d.u(0.08, 0.32)
            g = d.structure("metastasis", d.u(-0.1, 1.1) * s0, d.u(-0.1, 1.1) * s0, radius,
                            amp=0.4, elongation=d.u(1.0, 1.8))
            covered |= _rho(g, ly, lx) < 1.0
            d.fill(g, "tumour", 2.1 * rn, 0.38, 0.25, 1.0, rho_max=0.97)
    # Lymphocytes on a jittered lattice, sparse in the sinuses, absent in the tumour.
    step = 2.7 * rn
    g = np.arange(step / 2, s0, step)
    cy, cx = (a.ravel() for a in np.meshgrid(g, g, indexing="ij"))
    n = len(cy)
    cy = cy + d.rng.normal(0, 0.3 * step, n)
    cx = cx + d.rng.normal(0, 0.3 * step, n)
    keep = d.rng.uniform(0, 1, n) < 0.8
    for s in d.structures:
        keep &= _rho(s, cy, cx) > 1.0
    cy, cx = cy[keep], cx[keep]
    m = len(cy)
    r = rn * d.rng.normal(1.0, 0.06, m).clip(0.85, 1.15)
    d.nuclei.add("lymphocyte", cy, cx, r, r * d.rng.uniform(1.0, 1.12, m),
                 d.rng.uniform(0, math.pi, m), 1.25 * d.rng.normal(1.0, 0.05, m))


_TASK_DRAWS: dict[str, Callable[[_Draw, int], float | None]] = {
    "glas": _glas, "bach": _bach, "camelyon": _camelyon}


def sample_histology_case(
    rng: np.random.Generator | int | None,
    size: int,
    task: str = "glas",
    label: int | None = None,
    *,
    class_weights: Sequence[float] | None = None,
    stain_jitter: float = 0.05,
    noise_std: float = 0.01,
    glas_grades: tuple[tuple[float, float], tuple[float, float]] = GLAS_GRADES,
) -> HistologyRecord:
    """Draw the parameters of one synthetic patch (the random half).

    Args:
        rng: NumPy generator or seed.
        size: image side in pixels, in [64, 512].
        task: ``"glas"``, ``"bach"`` or ``"camelyon"`` (:data:`HISTOLOGY_TASKS`).
        label: class index to draw; ``None`` draws it from ``class_weights``.
        class_weights: one weight per class (``None``: uniform).
        stain_jitter: standard deviation of the per-component perturbation of the unit
            stain OD vectors (renormalised); the concentration scales are drawn in
            ``[1 − 2·stain_jitter, 1 + 2·stain_jitter]``. 0 gives the reference stain.
        noise_std: standard deviation of the additive Gaussian RGB noise.
        glas_grades: ``((lo, hi) benign, (lo, hi) malignant)`` grade ranges of GlaS-like
            patches in [0, 1] (default :data:`GLAS_GRADES`, overlapping; disjoint ranges
            make the classes separable by morphology).

    Returns:
        The :class:`HistologyRecord`; render it with :func:`render_histology`.
    """
    size = _check_size(size)
    classes = _check_task(task)
    p = _check_weights(class_weights, len(classes))
    if not 0.0 <= stain_jitter <= 0.2:
        raise InvalidInputError(f"stain_jitter must be in [0, 0.2], got {stain_jitter}")
    if not 0.0 <= noise_std <= 0.2:
        raise InvalidInputError(f"noise_std must be in [0, 0.2], got {noise_std}")
    rng = numpy_rng(rng)
    if label is None:
        label = int(rng.choice(len(classes), p=p))
    if isinstance(label, bool) or not isinstance(label, int | np.integer) \
            or not 0 <= label < len(classes):
        raise InvalidInputError(
            f"label must be an int in 0-{len(classes) - 1} for task {task!r} "
            f"({', '.join(classes)}) or None, got {label!r}"
        )
    label = int(label)
    grades = tuple(tuple(float(v) for v in r) for r in glas_grades)
    if len(grades) != 2 or any(len(r) != 2 or not 0.0 <= r[0] <= r[1] <= 1.0 for r in grades):
        raise InvalidInputError(
            f"glas_grades must be two (lo, hi) ranges with 0 <= lo <= hi <= 1, got {glas_grades!r}")
    draw = _Draw(rng, size, grades)  # type: ignore[arg-type]
    grade = _TASK_DRAWS[task](draw, label)

    vectors = []
    for v in DEFAULT_STAIN_VECTORS:
        w = np.abs(np.asarray(v) + rng.normal(0, stain_jitter, 3))
        w /= np.linalg.norm(w)
        vectors.append((float(w[0]), float(w[1]), float(w[2])))
    scales = rng.uniform(1 - 2 * stain_jitter, 1 + 2 * stain_jitter, 2)
    return HistologyRecord(
        size=size, task=task, label=label,
        background="lymph_node" if task == "camelyon" else "stroma",
        structures=tuple(draw.structures), nuclei=draw.nuclei.freeze(size),
        stain_vectors=(vectors[0], vectors[1]),
        stain_scales=(float(scales[0]), float(scales[1])),
        spaces=tuple(draw.spaces), illumination=float(rng.uniform(0.93, 1.0)),
        fibre_angle=float(rng.uniform(0, math.pi)),
        fibre_period=float(size * rng.uniform(0.025, 0.04)),
        fibre_warp=float(rng.uniform(2.0, 5.0)),
        noise_std=float(noise_std), noise_seed=int(rng.integers(0, 2**31 - 1)),
        grade=None if grade is None else float(grade),
    )


# --------------------------------------------------------------------------- rendering


def stain_transmission(
    c_h: np.ndarray, c_e: np.ndarray, vectors: Sequence[Sequence[float]], scales: Sequence[float]
) -> np.ndarray:
    """Beer–Lambert colouring of haematoxylin / eosin concentration maps ``(H, W)``:
    ``10^(−(s_H c_H v_H + s_E c_E v_E))`` as ``(H, W, 3)`` transmission in [0, 1]."""
    v_h, v_e = (np.asarray(v) for v in vectors)
    od = scales[0] * c_h[..., None] * v_h + scales[1] * c_e[..., None] * v_e
    return np.power(10.0, -od)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """``(size, size)`` smooth noise in about [-1, 1] from a ``cells × cells`` grid."""
    return _smooth_texture(rng.uniform(-1, 1, (cells, cells)), size, size)


def _structure_maps(record: HistologyRecord) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Owner index (−1: none), inside mask and lumen mask of the structures."""
    n = record.size
    best = np.full((n, n), np.inf)
    owner = np.full((n, n), -1, np.int64)
    lumen = np.zeros((n, n), bool)
    for i, s in enumerate(record.structures):
        ext = _extent(s)
        y0, y1 = max(0, int(s.cy - ext)), min(n, int(math.ceil(s.cy + ext)) + 1)
        x0, x1 = max(0, int(s.cx - ext)), min(n, int(math.ceil(s.cx + ext)) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy = np.arange(y0, y1, dtype=np.float64)[:, None]
        xx = np.arange(x0, x1, dtype=np.float64)[None, :]
        rho = _rho(s, yy, xx)
        win = (slice(y0, y1), slice(x0, x1))
        better = (rho < 1.0) & (rho < best[win])
        best[win] = np.where(better, rho, best[win])
        owner[win] = np.where(better, i, owner[win])
        lum = _in_lumen(s, np.broadcast_to(yy, rho.shape), np.broadcast_to(xx, rho.shape), rho)
        lumen[win] |= lum
    inside = owner >= 0
    return owner, inside, lumen & inside


def _nuclei_maps(nuclei: Nuclei, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Coverage in [0, 1] (1 px anti-aliased edge) and stain of the most covering nucleus."""
    cover = np.zeros(size * size)
    stain = np.zeros(size * size)
    if len(nuclei):
        params = np.column_stack([nuclei.cy, nuclei.cx, nuclei.ry, nuclei.rx, nuclei.angle,
                                  np.ones(len(nuclei)), np.zeros(len(nuclei))])
        idx, alpha, _, owner = _splat(size, size, params)
        order = np.lexsort((alpha, idx))  # by pixel, then by coverage: keep the last
        idx, alpha, owner = idx[order], alpha[order], owner[order]
        last = np.append(idx[1:] != idx[:-1], True)
        cover[idx[last]] = alpha[last]
        stain[idx[last]] = np.asarray(nuclei.stain)[owner[last]]
    return cover.reshape(size, size), stain.reshape(size, size)


def render_histology(record: HistologyRecord) -> HistologyCase:
    """Render a record into an H&E image with its masks (the deterministic half).

    Concentration maps are built in the order background (fibrous stroma or lymph-node
    tissue with sinuses), structure cytoplasm, lumens, nuclei (with a chromatin
    texture); then Beer–Lambert colouring ``RGB = illumination · 10^(−(s_H c_H v_H +
    s_E c_E v_E))`` and additive pixel noise from ``record.noise_seed``.

    Args:
        record: a record from :func:`sample_histology_case` (or built by hand).

    Returns:
        The :class:`HistologyCase`; rendering the same record twice gives identical arrays.
    """
    if not isinstance(record, HistologyRecord):
        raise InvalidInputError(
            f"render_histology expects a HistologyRecord, got {type(record).__name__}")
    n = _check_size(record.size)
    _check_task(record.task)
    rng = np.random.default_rng(record.noise_seed)
    yy = np.arange(n, dtype=np.float64)[:, None]
    xx = np.arange(n, dtype=np.float64)[None, :]
    low = _smooth_noise(rng, n, 6)
    if record.background == "lymph_node":
        sinus = _smooth_noise(rng, n, 5) > 0.45
        c_h = np.where(sinus, _SINUS_STAIN[0], _LYMPH_STAIN[0]) * (1 + 0.15 * low)
        c_e = np.where(sinus, _SINUS_STAIN[1], _LYMPH_STAIN[1]) * (1 + 0.15 * low)
    else:
        proj = xx * math.cos(record.fibre_angle) + yy * math.sin(record.fibre_angle)
        warp = record.fibre_warp * _smooth_noise(rng, n, 5)
        fibre = 0.5 + 0.5 * np.sin(2 * math.pi * proj / record.fibre_period + warp)
        c_h = np.full((n, n), _STROMA_STAIN[0]) * (1 + 0.2 * low)
        c_e = _STROMA_STAIN[1] * (0.75 + 0.25 * fibre) * (1 + 0.2 * low)

    for cy, cx, r in record.spaces:
        space = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        c_h[space], c_e[space] = _LUMEN_STAIN
    owner, inside, lumen = _structure_maps(record)
    if record.structures:
        cyto = np.array([STRUCTURE_KINDS[s.kind] for s in record.structures])
        sel = inside & ~lumen
        c_h[sel] = cyto[owner[sel], 0] * (1 + 0.1 * low[sel])
        c_e[sel] = cyto[owner[sel], 1] * (1 + 0.1 * low[sel])
        c_h[lumen] = _LUMEN_STAIN[0]
        c_e[lumen] = _LUMEN_STAIN[1]

    cover, nuc_h = _nuclei_maps(record.nuclei, n)
    chromatin = 1.0 + 0.18 * rng.standard_normal((n, n))
    c_h = c_h * (1 - cover) + cover * nuc_h * chromatin
    c_e = c_e * (1 - cover) + cover * _NUCLEUS_EOSIN

    img = record.illumination * stain_transmission(c_h, c_e, record.stain_vectors, record.stain_scales)
    if record.noise_std > 0:
        img += record.noise_std * rng.standard_normal((n, n, 3))
    mask = inside
    return HistologyCase(
        image=np.clip(img, 0.0, 1.0).astype(np.float32),
        mask=mask,
        lumen_mask=lumen,
        nuclei_mask=cover >= 0.5,
        label=record.label,
        size_fraction=float(mask.mean()),
        record=record,
    )


def make_histology_case(
    seed: int | np.random.Generator | None,
    size: int = 128,
    task: str = "glas",
    label: int | None = None,
) -> HistologyCase:
    """Draw and render one patch (``render_histology(sample_histology_case(...))``)."""
    return render_histology(sample_histology_case(seed, size, task, label))


def make_histology_dataset(
    n: int,
    size: int = 128,
    seed: int = 0,
    task: str = "glas",
    class_weights: Sequence[float] | None = None,
    *,
    stain_jitter: float = 0.05,
    noise_std: float = 0.01,
    glas_grades: tuple[tuple[float, float], tuple[float, float]] = GLAS_GRADES,
) -> SyntheticHistologyDataset:
    """A batch of synthetic patches as tensors.

    Patch ``i`` is drawn from its own generator spawned from ``seed`` (NumPy
    ``SeedSequence(seed).spawn``), so it does not depend on ``n``.

    Args:
        n: number of patches (≥ 1).
        size: image side in pixels, in [64, 512].
        seed: base seed.
        task: ``"glas"``, ``"bach"`` or ``"camelyon"``.
        class_weights: one weight per class (``None``: uniform).
        stain_jitter: see :func:`sample_histology_case`.
        noise_std: see :func:`sample_histology_case`.
        glas_grades: see :func:`sample_histology_case`.

    Returns:
        :class:`SyntheticHistologyDataset` with images ``(N, 3, H, W)``, labels ``(N,)``,
        masks ``(N, H, W)``, class masks ``(N, C, H, W)`` and size fractions ``(N,)``.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InvalidInputError(f"n must be a positive int, got {n!r}")
    size = _check_size(size)
    classes = _check_task(task)
    _check_weights(class_weights, len(classes))
    children = np.random.SeedSequence(int(seed)).spawn(int(n))
    images = np.empty((n, 3, size, size), np.float32)
    masks = np.empty((n, size, size), bool)
    labels = np.empty(n, np.int64)
    records = []
    for i, child in enumerate(children):
        rec = sample_histology_case(np.random.default_rng(child), size, task,
                                    class_weights=class_weights, stain_jitter=stain_jitter,
                                    noise_std=noise_std, glas_grades=glas_grades)
        case = render_histology(rec)
        images[i] = case.image.transpose(2, 0, 1)
        masks[i] = case.mask
        labels[i] = case.label
        records.append(rec)
    class_masks = np.zeros((n, len(classes), size, size), bool)
    class_masks[np.arange(n), labels] = masks
    return SyntheticHistologyDataset(
        images=torch.from_numpy(images), labels=torch.from_numpy(labels),
        masks=torch.from_numpy(masks), class_masks=torch.from_numpy(class_masks),
        size_fractions=torch.from_numpy(masks.mean(axis=(1, 2)).astype(np.float32)),
        class_names=classes, records=tuple(records),
    )
