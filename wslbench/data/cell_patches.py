"""Patches for cell detection: training sub-samples with rotations, tiling for inference.

Xue et al., 4.3: the CNN sees square sub-samples of size ``s`` (260 px for ICPR 2012,
200 px for AMIDA13) cut without overlap from the large training images, each followed by
its three 90° rotations (×4 data augmentation: 35 images of 2084 px give 35 · 8² · 4 =
8,960 training images). At test time a whole image is tiled, each tile is decoded, and
the detections are merged back into image coordinates.

Conventions (shared with :mod:`wslbench.data.synthetic_cells` and
:mod:`wslbench.data.cell_loaders`):

* arrays have their spatial axes last: ``(H, W)`` or ``(C, H, W)``; a batch of patches
  is ``(M, C, s, s)`` (or ``(M, s, s)``);
* centroids are ``(k, 2)`` float64 ``(row, col)`` arrays; pixel ``(i, j)`` has its centre
  at ``(i, j)``;
* **border rule**: a cell belongs to a patch when the pixel holding its centroid does:
  with top-left corner ``(r0, c0)``, when the centroid lies in ``[r0 − ½, r0 + s − ½) ×
  [c0 − ½, c0 + s − ½)`` (half-open), even if part of the cell is cut off. With
  non-overlapping patches every cell inside the tiled area belongs to exactly one patch;
  patch-frame coordinates lie in the pixel footprint ``[−½, s − ½]`` (closed, since a
  rotation turns the open end into the closed one);
* rotations are ``np.rot90(patch, k, axes=(-2, -1))`` (``k`` counter-clockwise quarter
  turns); one quarter turn of an ``(H, W)`` array maps ``(row, col)`` to
  ``(W − 1 − col, row)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wslbench.errors import InvalidInputError
from wslbench.validation import check_int

__all__ = [
    "CellPatches",
    "patch_origins",
    "crop_centroids",
    "rotate_centroids",
    "rotate_patch",
    "extract_cell_patches",
    "tile_origins",
    "tile_image",
    "merge_tile_detections",
]


@dataclass(frozen=True)
class CellPatches:
    """Training sub-samples with the centroids that fall inside them (Xue et al., 4.3).

    Attributes:
        images: ``(M, C, s, s)`` (or ``(M, s, s)``) patches, the dtype of the input.
        centroids: per patch, ``(k, 2)`` float64 ``(row, col)`` in the patch frame
            (after the rotation).
        origins: ``(M, 2)`` int64 ``(row, col)`` of the patch's top-left corner in its
            source image (before the rotation).
        rotations: ``(M,)`` int64 number of counter-clockwise quarter turns (0 to 3).
        sources: ``(M,)`` int64 index of the source image.
    """

    images: np.ndarray
    centroids: list[np.ndarray]
    origins: np.ndarray
    rotations: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def counts(self) -> np.ndarray:
        """``(M,)`` int64 number of cells per patch (the count label c of 4.1)."""
        return np.array([len(c) for c in self.centroids], np.int64)


def _spatial(image: np.ndarray, name: str = "image") -> np.ndarray:
    try:
        arr = np.asarray(image)
    except ValueError as exc:  # ragged nested lists
        raise InvalidInputError(
            f"{name} must be an (H, W) or (C, H, W) array, got a ragged "
            f"{type(image).__name__}") from exc
    if arr.ndim not in (2, 3):
        raise InvalidInputError(
            f"{name} must be (H, W) or (C, H, W) with the spatial axes last, got shape "
            f"{arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InvalidInputError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise InvalidInputError(
            f"{name} holds {int(np.count_nonzero(~np.isfinite(arr)))} NaN or infinite "
            "value(s); expected finite pixel values")
    return arr


def _sequence(value: object, name: str) -> None:
    if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
        raise InvalidInputError(
            f"{name} must be a sequence (one entry per image or tile), got "
            f"{type(value).__name__}")


def _centroids(centroids: object, name: str = "centroids") -> np.ndarray:
    try:
        arr = np.asarray(centroids, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # strings, ragged lists
        raise InvalidInputError(
            f"{name} must be a numeric (k, 2) array of (row, col), got a "
            f"{type(centroids).__name__} that does not convert to one ({exc})") from exc
    if arr.size == 0:
        return np.zeros((0, 2))
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.all(np.isfinite(arr)):
        raise InvalidInputError(
            f"{name} must be a finite (k, 2) array of (row, col), got shape {arr.shape}")
    return arr


def patch_origins(height: int, width: int, *, size: int, stride: int | None = None
                  ) -> np.ndarray:
    """Top-left corners of the whole ``size × size`` patches of an image (4.3).

    Args:
        height: image height (px).
        width: image width (px).
        size: patch side ``s`` (px).
        stride: step between patches (default ``size``: no overlap); the remainder at the
            bottom and right that cannot hold a whole patch is left out.

    Returns:
        ``(M, 2)`` int64 ``(row, col)`` corners in row-major order (``M = 0`` when the
        image is smaller than a patch).
    """
    height, width = check_int("height", height, error=InvalidInputError), check_int("width", width, error=InvalidInputError)
    size = check_int("size", size, error=InvalidInputError)
    stride = size if stride is None else check_int("stride", stride, error=InvalidInputError)
    rows = np.arange(0, height - size + 1, stride)
    cols = np.arange(0, width - size + 1, stride)
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2).astype(np.int64)


def crop_centroids(centroids: np.ndarray, origin: Sequence[int] | np.ndarray, *, size: int
                   ) -> np.ndarray:
    """Centroids inside the patch at ``origin``, in the patch frame (border rule above).

    Args:
        centroids: ``(k, 2)`` ``(row, col)`` in the image frame.
        origin: ``(row, col)`` of the patch's top-left corner.
        size: patch side (px).

    Returns:
        ``(j, 2)`` float64 centroids ``c − origin`` with ``−½ ≤ c − origin < size − ½``.
    """
    pts = _centroids(centroids) - np.asarray(origin, np.float64)[None, :]
    size = check_int("size", size, error=InvalidInputError)
    keep = np.all((pts >= -0.5) & (pts < size - 0.5), axis=1)
    return pts[keep]


def rotate_centroids(centroids: np.ndarray, *, k: int, height: int, width: int) -> np.ndarray:
    """Where ``(row, col)`` points go under ``np.rot90(a, k, axes=(-2, -1))``.

    Args:
        centroids: ``(n, 2)`` ``(row, col)`` in the frame of an ``(height, width)`` array.
        k: counter-clockwise quarter turns (any int; taken modulo 4).
        height: array height before the rotation.
        width: array width before the rotation.

    Returns:
        ``(n, 2)`` float64 ``(row, col)`` in the rotated array's frame.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidInputError(f"k must be an int, got {k!r}")
    pts = _centroids(centroids).copy()
    h, w = check_int("height", height, error=InvalidInputError), check_int("width", width, error=InvalidInputError)
    for _ in range(int(k) % 4):  # one quarter turn: (r, c) -> (W - 1 - c, r)
        pts = np.column_stack([(w - 1) - pts[:, 1], pts[:, 0]])
        h, w = w, h
    return pts


def rotate_patch(image: np.ndarray, centroids: np.ndarray, *, k: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rotate an image and its centroids consistently by ``k`` quarter turns (4.3).

    Args:
        image: ``(H, W)`` or ``(C, H, W)``.
        centroids: ``(n, 2)`` ``(row, col)``.
        k: counter-clockwise quarter turns.

    Returns:
        The rotated image (a copy) and centroids.
    """
    arr = _spatial(image)
    pts = rotate_centroids(centroids, k=k, height=arr.shape[-2], width=arr.shape[-1])
    return np.ascontiguousarray(np.rot90(arr, int(k) % 4, axes=(-2, -1))), pts


def extract_cell_patches(
    images: Sequence[np.ndarray] | np.ndarray,
    centroids: Sequence[np.ndarray],
    *,
    size: int,
    stride: int | None = None,
    rotations: bool = True,
) -> CellPatches:
    """Training sub-samples of every image with their centroids (Xue et al., 4.3).

    Patch ``(image i, origin o)`` is followed by its rotations ``k = 1, 2, 3`` when
    ``rotations`` is true (the paper's ×4 augmentation), so ``len = 4 · Σ_i M_i``.

    Args:
        images: ``(N, C, H, W)`` array or a sequence of ``(C, H, W)`` / ``(H, W)`` arrays
            (sizes may differ; channel counts must agree).
        centroids: per image, ``(k_i, 2)`` ``(row, col)``.
        size: patch side ``s`` (px).
        stride: step between patches (default ``size``: non-overlapping).
        rotations: add the three extra 90° rotations of each patch.

    Returns:
        :class:`CellPatches` (raises :class:`~wslbench.errors.InvalidInputError` when no
        image holds a whole patch).
    """
    size = check_int("size", size, error=InvalidInputError)
    _sequence(images, "images")
    _sequence(centroids, "centroids")
    if len(images) != len(centroids):
        raise InvalidInputError(
            f"got {len(images)} images but {len(centroids)} centroid arrays; expected one "
            "(k, 2) array per image")
    patches, pts_out, origins, turns, sources = [], [], [], [], []
    for i, (image, cents) in enumerate(zip(images, centroids)):
        arr = _spatial(image, f"images[{i}]")
        pts = _centroids(cents, f"centroids[{i}]")
        for r0, c0 in patch_origins(arr.shape[-2], arr.shape[-1], size=size, stride=stride):
            patch = arr[..., r0:r0 + size, c0:c0 + size]
            inside = crop_centroids(pts, (r0, c0), size=size)
            for k in range(4 if rotations else 1):
                img_k, pts_k = rotate_patch(patch, inside, k=k)
                patches.append(img_k)
                pts_out.append(pts_k)
                origins.append((r0, c0))
                turns.append(k)
                sources.append(i)
    if not patches:
        raise InvalidInputError(
            f"no image holds a whole {size} × {size} patch; expected images of at least "
            f"{size} × {size} px (use a smaller size or larger images)")
    shapes = {p.shape[:-2] for p in patches}
    if len(shapes) > 1:
        raise InvalidInputError(
            f"images have different channel layouts {sorted(shapes)}; expected the same C")
    return CellPatches(
        images=np.stack(patches), centroids=pts_out,
        origins=np.array(origins, np.int64).reshape(-1, 2),
        rotations=np.array(turns, np.int64), sources=np.array(sources, np.int64),
    )


def _axis_starts(length: int, size: int, step: int) -> np.ndarray:
    starts = list(range(0, length - size + 1, step))
    if starts[-1] != length - size:
        starts.append(length - size)
    return np.array(starts, np.int64)


def tile_origins(height: int, width: int, *, size: int, overlap: int = 0) -> np.ndarray:
    """Top-left corners of tiles covering a whole image for inference.

    Tiles step by ``size − overlap``; the last row and column of tiles are flush with the
    bottom and right borders (so they may overlap their neighbours more).

    Args:
        height: image height (≥ ``size``).
        width: image width (≥ ``size``).
        size: tile side (px).
        overlap: minimum overlap between neighbouring tiles (px), in ``[0, size)``.

    Returns:
        ``(T, 2)`` int64 ``(row, col)`` corners in row-major order.
    """
    height, width = check_int("height", height, error=InvalidInputError), check_int("width", width, error=InvalidInputError)
    size = check_int("size", size, error=InvalidInputError)
    if isinstance(overlap, bool) or not isinstance(overlap, int | np.integer) \
            or not 0 <= overlap < size:
        raise InvalidInputError(f"overlap must be an int in [0, {size}), got {overlap!r}")
    if height < size or width < size:
        raise InvalidInputError(
            f"image {height} × {width} is smaller than the {size} px tile; expected an image "
            f"of at least {size} × {size} px (pad it or use a smaller tile)")
    rows = _axis_starts(height, size, size - int(overlap))
    cols = _axis_starts(width, size, size - int(overlap))
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)


def tile_image(image: np.ndarray, *, size: int, overlap: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Cut a whole image into covering tiles (see :func:`tile_origins`).

    Args:
        image: ``(H, W)`` or ``(C, H, W)``.
        size: tile side (px).
        overlap: minimum overlap between neighbouring tiles (px).

    Returns:
        Tiles ``(T, C, size, size)`` (or ``(T, size, size)``) and their ``(T, 2)`` origins.
    """
    arr = _spatial(image)
    origins = tile_origins(arr.shape[-2], arr.shape[-1], size=size, overlap=overlap)
    tiles = np.stack([arr[..., r:r + size, c:c + size] for r, c in origins])
    return tiles, origins


def merge_tile_detections(
    detections: Sequence[np.ndarray],
    origins: np.ndarray,
    *,
    min_distance: float,
    scores: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-tile detections into image coordinates, de-duplicating overlaps.

    Detections are shifted by their tile's origin, then kept greedily by decreasing
    score (ties: tile order, then order within the tile): a detection closer than
    ``min_distance`` to one already kept is a duplicate and dropped (a distance-based
    non-maximum suppression; use the matching radius ρ of 4.2).

    Args:
        detections: per tile, ``(k_t, 2)`` ``(row, col)`` in the tile frame.
        origins: ``(T, 2)`` tile corners (from :func:`tile_image`).
        min_distance: duplicate distance (px, > 0).
        scores: per tile, ``(k_t,)`` confidences (default: all 1).

    Returns:
        ``(k, 2)`` float64 ``(row, col)`` detections in the image frame and their
        ``(k,)`` float64 scores, sorted by decreasing score.
    """
    _sequence(detections, "detections")
    origins = np.asarray(origins)
    if origins.ndim != 2 or origins.shape[1] != 2 or len(origins) != len(detections):
        raise InvalidInputError(
            f"origins must be ({len(detections)}, 2), one corner per tile, got shape "
            f"{origins.shape}")
    if isinstance(min_distance, bool) or not isinstance(min_distance, int | float | np.number) \
            or not (np.isfinite(min_distance) and min_distance > 0):
        raise InvalidInputError(f"min_distance must be a positive number, got {min_distance!r}")
    if scores is not None and len(scores) != len(detections):
        raise InvalidInputError(
            f"got {len(scores)} score arrays for {len(detections)} tiles; expected one each")
    pts_all, sc_all = [], []
    for t, det in enumerate(detections):
        pts = _centroids(det, f"detections[{t}]")
        sc = np.ones(len(pts)) if scores is None else np.asarray(scores[t], np.float64)
        if sc.shape != (len(pts),) or not np.all(np.isfinite(sc)):
            raise InvalidInputError(
                f"scores[{t}] must be {len(pts)} finite values, got shape {sc.shape}")
        pts_all.append(pts + origins[t][None, :].astype(np.float64))
        sc_all.append(sc)
    pts = np.concatenate(pts_all) if pts_all else np.zeros((0, 2))
    sc = np.concatenate(sc_all) if sc_all else np.zeros(0)
    order = np.argsort(-sc, kind="stable")
    kept: list[int] = []
    for i in order:
        if not kept or np.min(np.hypot(*(pts[kept] - pts[i]).T)) >= min_distance:
            kept.append(int(i))
    return pts[kept].reshape(-1, 2), sc[kept]
