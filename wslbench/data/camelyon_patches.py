"""CAMELYON16 patch protocol for weakly supervised localisation (Rony 2020, section 2.1.2.3).

Patches with an image-level label (normal / metastatic) and a pixel-level tumour mask
are sampled from whole-slide images (WSIs) at level 0:

* **Tissue.** A tissue mask is computed at a coarse level (level 6 of the WSI pyramid,
  a downsampling by 2^6 = 64, "where it is easy for the OTSU binarization method to
  split the tissue from the background") and a patch is kept only if its tissue
  percentage is at least ``p_t`` (10 %); the tissue mass is checked again at level 0.
  The mask follows the authors' public code (survey_wsl_histology): a pixel is tissue
  when it is not above the Otsu threshold in all of R, G and B, its HSV saturation is
  above the saturation Otsu threshold, and no channel is below ``rgb_min`` (black
  scanner padding). The thresholds are found once per slide on the coarse image and
  applied unchanged at level 0 (our choice: Otsu on a single patch full of tissue would
  split the tissue itself).
* **Metastatic patches** (from tumour WSIs; steps 1–7): every non-overlapping patch of
  a grid aligned on (0, 0) is a candidate (the thesis samples "all possible" patches and
  never lets them overlap). ``p_m`` is the fraction of tumour pixels of the patch in the
  level-0 annotation mask; patches with ``p_m < p0`` are discarded. Category 1 is
  ``p0 ≤ p_m ≤ p1``, category 2 ``p_m > p1`` (p0 = 20 %, p1 = 50 %).
* **Calibration.** All ``n`` category-1 patches are kept and ``⌈n · p_n⌉`` category-2
  patches are drawn (p_n = 1 %): a histogram of ``p_m`` with bins of width 0.05 over
  [0, 1] is built, a non-empty bin with ``p_m > p1`` is picked uniformly, then a patch
  uniformly in that bin, without replacement, until enough are drawn. The thesis is
  silent on rounding: ``⌈·⌉`` keeps one category-2 patch for any slide with category-1
  patches. (Table 2.4 of the thesis keeps about 0.64 category-2 patch per category-1
  patch, which does not match p_n = 1 %; pass ``p_n`` to reproduce other ratios.)
* **Normal patches** (from normal WSIs): ``n`` grid patches with enough tissue, drawn
  uniformly without replacement (hence without repetition nor overlap);
  :func:`normal_patch_quota` splits the ``n_m`` metastatic patches of a set over its
  ``h`` normal WSIs (``n_m / h`` each).

Slides are any ``(H, W, 3)`` array (NumPy, ``np.memmap``) or a TIFF file read with
tifffile by tiles (or memory-mapped when stored contiguously), the tumour mask any
``(H, W)`` array or TIFF (non-zero = tumour). The output, for a given slide, mask and
seed, is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wslbench.data._files import MAX_IMAGE_PIXELS
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError
from wslbench.seeding import numpy_rng

__all__ = [
    "CAMELYON_P0",
    "CAMELYON_P1",
    "CAMELYON_PT",
    "CAMELYON_PN",
    "CAMELYON_BIN_WIDTH",
    "CAMELYON_TISSUE_LEVEL",
    "CAMELYON_PATCH_SIZES",
    "Slide",
    "ArraySlide",
    "TiffSlide",
    "open_slide",
    "TissueThresholds",
    "otsu_tissue_thresholds",
    "apply_tissue_thresholds",
    "tissue_mask",
    "Patch",
    "PatchSampling",
    "sample_metastatic_patches",
    "sample_normal_patches",
    "calibrate_category2",
    "normal_patch_quota",
    "extract_patch",
]

#: Minimum metastatic fraction of a metastatic patch (section 2.1.2.3).
CAMELYON_P0: float = 0.2
#: Upper bound of category 1 (``p0 ≤ p_m ≤ p1``).
CAMELYON_P1: float = 0.5
#: Minimum tissue fraction of any patch.
CAMELYON_PT: float = 0.1
#: Number of category-2 patches drawn per category-1 patch.
CAMELYON_PN: float = 0.01
#: Width of the histogram bins of ``p_m`` used by the calibration.
CAMELYON_BIN_WIDTH: float = 0.05
#: Pyramid level of the tissue mask (downsampling 2^6).
CAMELYON_TISSUE_LEVEL: int = 6
#: Patch sides studied in the thesis (Table 2.4).
CAMELYON_PATCH_SIZES: tuple[int, ...] = (512, 768, 1024)


# --------------------------------------------------------------------------- slides


def _to_unit(arr: np.ndarray) -> np.ndarray:
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    out = arr.astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise InvalidInputError("image holds NaN or infinite values; expected finite values")
    return np.clip(out, 0.0, 1.0)


def _binary(region: np.ndarray) -> np.ndarray:
    """``(h, w)`` bool: non-zero in any channel."""
    return region > 0 if region.ndim == 2 else np.any(region > 0, axis=2)


def _block_mean(arr: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor × factor`` blocks (partial blocks at the border averaged too)."""
    a = arr.astype(np.float64)
    ys = np.arange(0, a.shape[0], factor)
    xs = np.arange(0, a.shape[1], factor)
    s = np.add.reduceat(np.add.reduceat(a, ys, axis=0), xs, axis=1)
    ny = np.diff(np.append(ys, a.shape[0]))
    nx = np.diff(np.append(xs, a.shape[1]))
    count = (ny[:, None] * nx[None, :]).reshape(ny.size, nx.size, *([1] * (a.ndim - 2)))
    return s / count


class Slide:
    """A level-0 image read by regions: an array or a TIFF file.

    Attributes:
        shape: ``(H, W)`` at level 0.
        channels: number of channels (1 for masks).
    """

    shape: tuple[int, int]
    channels: int

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        """Raw values of rows ``y:y+h`` and columns ``x:x+w``: ``(h, w)`` or ``(h, w, C)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement read_region")

    def thumbnail(self, downsample: int) -> np.ndarray:
        """Block mean by ``downsample`` in [0, 1]: ``(⌈H/d⌉, ⌈W/d⌉)`` or ``(..., C)``.

        Read in bands of ``downsample`` rows, so memory stays bounded on large slides.
        """
        h, w = self.shape
        rows = [_block_mean(_to_unit(self.read_region(y, 0, min(downsample, h - y), w)),
                            downsample) for y in range(0, h, downsample)]
        return np.concatenate(rows, axis=0)


def _check_array(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) \
            or min(arr.shape[:2]) < 1:
        raise InvalidInputError(
            f"{what} must be (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
            or arr.dtype == bool):
        raise InvalidInputError(f"{what} must be numeric, got dtype {arr.dtype}")
    return arr


class ArraySlide(Slide):
    """A slide held in an array (or ``np.memmap``) of shape ``(H, W)`` or ``(H, W, C)``."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = _check_array(np.asanyarray(array), "slide array")
        if self.array.dtype == bool:
            self.array = self.array.view(np.uint8)
        self.shape = (int(self.array.shape[0]), int(self.array.shape[1]))
        self.channels = 1 if self.array.ndim == 2 else int(self.array.shape[2])

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        return np.asarray(self.array[y:y + h, x:x + w])


class TiffSlide(Slide):
    """Level 0 of a TIFF file: tiled pages are read tile by tile, contiguous ones memory-mapped.

    Pyramid levels stored in the file (``series[0].levels``) are used for thumbnails
    when one has a downsampling that divides the requested one.
    """

    def __init__(self, path: str | Path) -> None:
        import tifffile

        self.path = Path(path)
        if not self.path.is_file():
            raise DataNotFoundError(
                f"slide file {self.path} does not exist; expected a TIFF slide (level 0 first)")
        try:
            self._tif = tifffile.TiffFile(self.path)
            page = self._tif.pages[0]
            self._page = page
            shape = page.shape
        except Exception as exc:  # tifffile raises many types on corrupt files
            raise DataFormatError(
                f"cannot read TIFF slide {self.path}: {exc}; expected an uncorrupted TIFF file"
            ) from exc
        if len(shape) not in (2, 3) or page.planarconfig == 2 and len(shape) == 3:
            raise DataFormatError(
                f"TIFF slide {self.path} has page shape {shape} (planar configuration "
                f"{page.planarconfig}); expected (H, W) or contiguous (H, W, C)")
        self.shape = (int(shape[0]), int(shape[1]))
        self.channels = 1 if len(shape) == 2 else int(shape[2])
        self._full: np.ndarray | None = None
        if not page.is_tiled:
            if not page.is_memmappable and self.shape[0] * self.shape[1] > MAX_IMAGE_PIXELS:
                self._tif.close()
                raise DataFormatError(
                    f"TIFF slide {self.path} is a compressed {self.shape[1]}×{self.shape[0]} "
                    f"image without tiles; expected a tiled (pyramidal) TIFF, or an untiled "
                    f"one of at most {MAX_IMAGE_PIXELS} pixels")
            try:
                self._full = self._tif.asarray(key=0, out="memmap") if page.is_memmappable \
                    else page.asarray()
            except Exception as exc:  # truncated strips: tifffile/mmap raise many types
                self._tif.close()
                raise DataFormatError(
                    f"cannot read TIFF slide {self.path}: {exc}; expected an uncorrupted "
                    "TIFF file") from exc

    def close(self) -> None:
        """Close the file handle."""
        self._tif.close()

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        if self._full is not None:
            return np.asarray(self._full[y:y + h, x:x + w])
        page = self._page
        th, tw = int(page.tilelength), int(page.tilewidth)
        per_row = -(-self.shape[1] // tw)
        y1, x1 = min(y + h, self.shape[0]), min(x + w, self.shape[1])
        out = np.zeros((y1 - y, x1 - x) + (() if self.channels == 1 else (self.channels,)),
                       page.dtype)
        fh = self._tif.filehandle
        for ty in range(y // th, (y1 - 1) // th + 1):
            for tx in range(x // tw, (x1 - 1) // tw + 1):
                i = ty * per_row + tx
                try:
                    fh.seek(page.dataoffsets[i])
                    tile = page.decode(fh.read(page.databytecounts[i]), i)[0]
                except Exception as exc:
                    raise DataFormatError(
                        f"cannot decode tile {i} of TIFF slide {self.path}: {exc}") from exc
                tile = np.asarray(tile).reshape(th, tw, -1)
                if self.channels == 1:
                    tile = tile[..., 0]
                sy0, sx0 = max(y, ty * th), max(x, tx * tw)
                sy1, sx1 = min(y1, (ty + 1) * th), min(x1, (tx + 1) * tw)
                out[sy0 - y:sy1 - y, sx0 - x:sx1 - x] = \
                    tile[sy0 - ty * th:sy1 - ty * th, sx0 - tx * tw:sx1 - tx * tw]
        return out

    def thumbnail(self, downsample: int) -> np.ndarray:
        levels = self._tif.series[0].levels if self._tif.series else []
        for level in reversed(levels[1:]):
            f = self.shape[0] / level.shape[0]
            factor = round(f)
            if factor > 1 and abs(f - factor) < 0.05 and downsample % factor == 0:
                return _block_mean(_to_unit(level.asarray()), downsample // factor)
        return super().thumbnail(downsample)


def open_slide(source: np.ndarray | str | Path | Slide) -> Slide:
    """A :class:`Slide` from an array, a TIFF path or an existing slide."""
    if isinstance(source, Slide):
        return source
    if isinstance(source, str | Path):
        return TiffSlide(source)
    if isinstance(source, np.ndarray):
        return ArraySlide(source)
    raise InvalidInputError(
        f"a slide must be an (H, W, 3) array, a TIFF path or a Slide, got "
        f"{type(source).__name__}")


# --------------------------------------------------------------------------- tissue


@dataclass(frozen=True)
class TissueThresholds:
    """Otsu thresholds of a slide's tissue mask (values in [0, 1]).

    Attributes:
        rgb: thresholds of R, G and B (background is above all three).
        saturation: threshold of the HSV saturation (tissue is above it).
        rgb_min: tissue pixels have every channel above this (excludes black padding).
    """

    rgb: tuple[float, float, float]
    saturation: float
    rgb_min: float


def _rgb(image: np.ndarray) -> np.ndarray:
    img = _to_unit(np.asarray(image))
    if img.ndim != 3 or img.shape[2] < 3:
        raise InvalidInputError(f"expected an (H, W, 3) RGB image, got shape {img.shape}")
    return img[..., :3]


def _saturation(img: np.ndarray) -> np.ndarray:
    mx = img.max(axis=2)
    return np.where(mx > 0, (mx - img.min(axis=2)) / np.maximum(mx, 1e-12), 0.0)


def otsu_tissue_thresholds(image: np.ndarray, *, rgb_min: float = 50 / 255) -> TissueThresholds:
    """Fit the tissue thresholds on a (coarse) RGB image (the draw, once per slide).

    Args:
        image: ``(H, W, 3)`` RGB (uint8/uint16 or float in [0, 1]), e.g. a level-6
            thumbnail.
        rgb_min: minimum value of every channel of a tissue pixel.

    Returns:
        The :class:`TissueThresholds`. A constant channel (nothing to split) gets the
        threshold 1, so nothing is background by that channel.
    """
    from skimage.filters import threshold_otsu

    img = _rgb(image)

    def otsu(values: np.ndarray) -> float:
        return 1.0 if float(values.max()) == float(values.min()) else float(threshold_otsu(values))

    return TissueThresholds(rgb=(otsu(img[..., 0]), otsu(img[..., 1]), otsu(img[..., 2])),
                            saturation=otsu(_saturation(img)), rgb_min=float(rgb_min))


def apply_tissue_thresholds(image: np.ndarray, thresholds: TissueThresholds) -> np.ndarray:
    """``(H, W)`` bool tissue mask of an RGB image with given thresholds (deterministic)."""
    img = _rgb(image)
    t = np.asarray(thresholds.rgb, dtype=np.float32)
    background = np.all(img > t, axis=2)
    return ~background & (_saturation(img) > thresholds.saturation) \
        & np.all(img > thresholds.rgb_min, axis=2)


def tissue_mask(image: np.ndarray, *, rgb_min: float = 50 / 255) -> np.ndarray:
    """Otsu tissue mask of an RGB image (thresholds fitted on the image itself)."""
    return apply_tissue_thresholds(image, otsu_tissue_thresholds(image, rgb_min=rgb_min))


# --------------------------------------------------------------------------- patches


@dataclass(frozen=True)
class Patch:
    """A level-0 patch of a slide.

    Attributes:
        y: top row.
        x: left column.
        height: rows.
        width: columns.
        category: 0 normal (from a normal slide), 1 (``p0 ≤ p_m ≤ p1``) or 2 (``p_m > p1``).
        metastatic_fraction: ``p_m``, fraction of tumour pixels.
        tissue_fraction: tissue fraction measured at level 0.
    """

    y: int
    x: int
    height: int
    width: int
    category: int
    metastatic_fraction: float
    tissue_fraction: float

    @property
    def label(self) -> int:
        """Image-level label: 0 normal, 1 metastatic."""
        return int(self.category > 0)


@dataclass(frozen=True)
class PatchSampling:
    """Metastatic patches of one slide after calibration.

    Attributes:
        patches: every category-1 patch and the calibrated category-2 ones, by (y, x).
        n_category1: category-1 patches found (all kept).
        n_category2: category-2 patches found before calibration.
        histogram: counts of ``p_m`` of all metastatic patches in the bins.
        bin_edges: the bin edges (width ``bin_width`` over [0, 1]).
    """

    patches: tuple[Patch, ...]
    n_category1: int
    n_category2: int
    histogram: tuple[int, ...]
    bin_edges: tuple[float, ...]


def _check_fraction(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise InvalidInputError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _patch_shape(patch_size: int | Sequence[int], shape: tuple[int, int]) -> tuple[int, int]:
    ph, pw = (patch_size, patch_size) if isinstance(patch_size, int | np.integer) \
        else tuple(patch_size)
    if min(ph, pw) < 1 or ph > shape[0] or pw > shape[1]:
        raise InvalidInputError(
            f"patch_size {patch_size!r} must be positive and fit in the slide of shape {shape}")
    return int(ph), int(pw)


class _Grid:
    """The non-overlapping patch grid of a slide with its coarse tissue fractions."""

    def __init__(self, slide: Slide, ph: int, pw: int, downsample: int,
                 rgb_min: float) -> None:
        thumb = slide.thumbnail(downsample)
        self.thresholds = otsu_tissue_thresholds(thumb, rgb_min=rgb_min)
        tissue = apply_tissue_thresholds(thumb, self.thresholds)
        self.ys = np.arange(0, slide.shape[0] - ph + 1, ph)
        self.xs = np.arange(0, slide.shape[1] - pw + 1, pw)
        self.ph, self.pw, self.d = ph, pw, downsample
        self.coarse_tissue = self.window_means(tissue)

    def window_means(self, coarse: np.ndarray) -> np.ndarray:
        """``(rows, cols)`` mean of a coarse map over the window of every grid patch."""
        c = np.zeros((coarse.shape[0] + 1, coarse.shape[1] + 1))
        c[1:, 1:] = np.cumsum(np.cumsum(coarse.astype(np.float64), 0), 1)
        y0, x0 = self.ys // self.d, self.xs // self.d
        y1 = np.minimum(-(-(self.ys + self.ph) // self.d), coarse.shape[0])
        x1 = np.minimum(-(-(self.xs + self.pw) // self.d), coarse.shape[1])
        s = c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0]
        return s / ((y1 - y0)[:, None] * (x1 - x0)[None, :])

    def level0_tissue(self, slide: Slide, y: int, x: int) -> float:
        return float(apply_tissue_thresholds(slide.read_region(y, x, self.ph, self.pw),
                                             self.thresholds).mean())


def calibrate_category2(
    fractions: Sequence[float],
    n_category1: int,
    seed: int | np.random.Generator | None,
    *,
    p_n: float = CAMELYON_PN,
    bin_width: float = CAMELYON_BIN_WIDTH,
) -> list[int]:
    """Indices of the category-2 patches kept by the calibration (section 2.1.2.3).

    ``⌈n_category1 · p_n⌉`` patches (at most all) are drawn: a non-empty histogram bin
    is picked uniformly, then a patch uniformly in it, without replacement.

    Args:
        fractions: ``p_m`` of every category-2 patch.
        n_category1: number of category-1 patches ``n``.
        seed: generator or seed of the draws.
        p_n: category-2 patches per category-1 patch.
        bin_width: histogram bin width over [0, 1].

    Returns:
        Indices into ``fractions``, in draw order.
    """
    if not 0 < bin_width <= 1:
        raise InvalidInputError(f"bin_width must be in (0, 1], got {bin_width}")
    if p_n < 0:
        raise InvalidInputError(f"p_n must be non-negative, got {p_n}")
    p = np.asarray(fractions, dtype=float)
    rng = numpy_rng(seed)
    n_bins = int(round(1.0 / bin_width))
    bins = np.minimum(np.floor(p / bin_width + 1e-9).astype(int), n_bins - 1)
    pools = {int(b): list(np.flatnonzero(bins == b)) for b in np.unique(bins)}
    want = min(len(p), math.ceil(n_category1 * p_n - 1e-9))
    chosen: list[int] = []
    while len(chosen) < want:
        keys = sorted(pools)
        b = keys[int(rng.integers(len(keys)))]
        pool = pools[b]
        chosen.append(int(pool.pop(int(rng.integers(len(pool))))))
        if not pool:
            del pools[b]
    return chosen


def sample_metastatic_patches(
    slide: np.ndarray | str | Path | Slide,
    tumour_mask: np.ndarray | str | Path | Slide,
    *,
    patch_size: int | Sequence[int] = 512,
    p0: float = CAMELYON_P0,
    p1: float = CAMELYON_P1,
    p_t: float = CAMELYON_PT,
    p_n: float = CAMELYON_PN,
    bin_width: float = CAMELYON_BIN_WIDTH,
    tissue_level: int = CAMELYON_TISSUE_LEVEL,
    rgb_min: float = 50 / 255,
    seed: int | np.random.Generator | None = 0,
) -> PatchSampling:
    """Sample and calibrate the metastatic patches of a tumour slide (section 2.1.2.3).

    Args:
        slide: ``(H, W, 3)`` RGB array, TIFF path or :class:`Slide` (level 0).
        tumour_mask: ``(H, W)`` annotation (non-zero = tumour), array, TIFF or slide.
        patch_size: patch side, or ``(height, width)``.
        p0: minimum ``p_m`` of a metastatic patch.
        p1: upper ``p_m`` of category 1.
        p_t: minimum tissue fraction (coarse level and level 0).
        p_n: category-2 patches drawn per category-1 patch.
        bin_width: histogram bin width of the calibration.
        tissue_level: pyramid level of the tissue mask (downsampling ``2**tissue_level``).
        rgb_min: see :func:`otsu_tissue_thresholds`.
        seed: seed of the calibration draws.

    Returns:
        The :class:`PatchSampling`.
    """
    for name, v in (("p0", p0), ("p1", p1), ("p_t", p_t)):
        _check_fraction(name, v)
    if p0 > p1:
        raise InvalidInputError(f"p0 must not exceed p1, got p0={p0}, p1={p1}")
    img, mask = open_slide(slide), open_slide(tumour_mask)
    if mask.shape != img.shape:
        raise InvalidInputError(
            f"tumour mask shape {mask.shape} differs from slide shape {img.shape}; expected "
            "a level-0 mask of the same size")
    ph, pw = _patch_shape(patch_size, img.shape)
    d = 2 ** int(tissue_level)
    grid = _Grid(img, ph, pw, d, rgb_min)
    coarse_tumour = grid.window_means(_binary(mask.thumbnail(d)))  # 0 ⇔ no tumour pixel
    found: list[Patch] = []
    for i, j in zip(*np.nonzero((grid.coarse_tissue >= p_t) & (coarse_tumour > 0))):
        y, x = int(grid.ys[i]), int(grid.xs[j])
        pm = float(_binary(mask.read_region(y, x, ph, pw)).mean())
        if pm < p0:
            continue
        pt = grid.level0_tissue(img, y, x)
        if pt < p_t:
            continue
        found.append(Patch(y, x, ph, pw, 1 if pm <= p1 else 2, pm, pt))
    cat1 = [p for p in found if p.category == 1]
    cat2 = [p for p in found if p.category == 2]
    keep = calibrate_category2([p.metastatic_fraction for p in cat2], len(cat1), seed,
                               p_n=p_n, bin_width=bin_width)
    n_bins = int(round(1.0 / bin_width))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    hist = np.histogram([p.metastatic_fraction for p in found], bins=edges)[0]
    patches = sorted(cat1 + [cat2[k] for k in keep], key=lambda p: (p.y, p.x))
    return PatchSampling(tuple(patches), len(cat1), len(cat2),
                         tuple(int(v) for v in hist), tuple(float(e) for e in edges))


def sample_normal_patches(
    slide: np.ndarray | str | Path | Slide,
    n: int,
    *,
    patch_size: int | Sequence[int] = 512,
    p_t: float = CAMELYON_PT,
    tissue_level: int = CAMELYON_TISSUE_LEVEL,
    rgb_min: float = 50 / 255,
    seed: int | np.random.Generator | None = 0,
) -> tuple[Patch, ...]:
    """Draw ``n`` normal patches of a normal slide uniformly, without overlap (section 2.1.2.3).

    Grid patches with a coarse tissue fraction ≥ ``p_t`` are visited in a random order
    and accepted when their level-0 tissue fraction is ≥ ``p_t`` too, until ``n`` are
    found (fewer when the slide has fewer).

    Args:
        slide: ``(H, W, 3)`` RGB array, TIFF path or :class:`Slide` (level 0).
        n: number of patches (e.g. from :func:`normal_patch_quota`).
        patch_size: patch side, or ``(height, width)``.
        p_t: minimum tissue fraction.
        tissue_level: pyramid level of the tissue mask.
        rgb_min: see :func:`otsu_tissue_thresholds`.
        seed: seed of the draw.

    Returns:
        The patches (category 0, ``p_m`` = 0), sorted by (y, x).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise InvalidInputError(f"n must be a non-negative int, got {n!r}")
    _check_fraction("p_t", p_t)
    img = open_slide(slide)
    ph, pw = _patch_shape(patch_size, img.shape)
    grid = _Grid(img, ph, pw, 2 ** int(tissue_level), rgb_min)
    cand = np.argwhere(grid.coarse_tissue >= p_t)
    order = numpy_rng(seed).permutation(len(cand))
    out: list[Patch] = []
    for k in order:
        if len(out) == n:
            break
        y, x = int(grid.ys[cand[k, 0]]), int(grid.xs[cand[k, 1]])
        pt = grid.level0_tissue(img, y, x)
        if pt >= p_t:
            out.append(Patch(y, x, ph, pw, 0, 0.0, pt))
    return tuple(sorted(out, key=lambda p: (p.y, p.x)))


def normal_patch_quota(n_metastatic: int, n_normal_slides: int) -> list[int]:
    """Split ``n_m`` normal patches over ``h`` normal slides (``n_m / h`` each).

    The remainder of the division goes one by one to the first slides, so the total
    equals the number of metastatic patches of the set.
    """
    if n_metastatic < 0 or n_normal_slides < 1:
        raise InvalidInputError(
            f"need n_metastatic ≥ 0 and n_normal_slides ≥ 1, got {n_metastatic}, "
            f"{n_normal_slides}")
    q, r = divmod(int(n_metastatic), int(n_normal_slides))
    return [q + (1 if i < r else 0) for i in range(n_normal_slides)]


def extract_patch(
    slide: np.ndarray | str | Path | Slide,
    patch: Patch,
    tumour_mask: np.ndarray | str | Path | Slide | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a patch: ``(h, w, 3)`` float32 RGB in [0, 1] and its ``(h, w)`` bool mask.

    The mask is the tumour annotation (non-zero) of the patch, all false when no
    ``tumour_mask`` is given (normal slides).
    """
    img = open_slide(slide)
    image = _rgb(img.read_region(patch.y, patch.x, patch.height, patch.width))
    if tumour_mask is None:
        mask = np.zeros((patch.height, patch.width), bool)
    else:
        mask = _binary(open_slide(tumour_mask).read_region(patch.y, patch.x, patch.height,
                                                           patch.width))
    return image, mask
