"""Cell-location encoding by random projections (Xue et al., §3.1 and §4.1).

``L`` observation lines with evenly spread orientations surround an ``h × w``
patch; every cell centroid is projected onto each line, its position on line
``l`` is discretised into a sparse vector ``a_l`` of length ``n = ⌈√(h² + w²)⌉``,
compressed to a dense code ``x_l = D a_l`` (eq. 1) by one Gaussian sensing
matrix ``D (m, n)`` shared by all lines, and the codes of the ``L`` lines are
concatenated. For multi-task learning (§4.1) the cell count ``c`` is appended
as ``β·c``: ``label = {x, βc}`` of length ``L·m + 1``.

Two encodings (``encoding``):

* ``"signed"`` (default, the paper's): "cell centroid locations are projected
  onto these lines, so that signed distances from the straight line denote the
  cell locations" (§3.1). The observation axis ``l`` lies outside the patch,
  tangent to its circumscribed circle; a cell projects onto bin ``b`` of the axis
  and ``a_l[b]`` holds its perpendicular distance ``d`` to the axis (the authors'
  release, ``Encode_projection.m``, stores that value at that bin, with a minus
  sign; we store ``d ≥ 0``, the patch side being positive). So each line alone
  gives one 2-D point per cell — position ``t`` along the axis and distance
  ``d`` from it — and the other lines are redundant copies of it (Fig. 6). Axes
  surround the patch: ``θ_l = 2π·l/L`` (the release's ``Create_OA.m``: "regular
  distributed lines"). A true ``d`` is at least 0 and is small only for cells in
  a corner facing the axis, which is why the 15-px threshold of §4.3 prunes
  noise, not cells (``d < 15`` px for a 260-px patch on 13 % of the lines at
  the very corner, none at the centre).
* ``"count"`` (an alternative kept from the first implementation): ``a_l[b]`` is
  the number of cells whose projection falls in bin ``b``; one line gives a 1-D
  position only, so decoding intersects pairs of lines
  (:mod:`wslbench.cs.decode`). ``θ_l = π·l/L`` (``θ`` and ``θ + π`` would only
  mirror each other).

Conventions (the paper does not fix them):

* **Coordinates.** A centroid is ``(row, col)`` in pixels; the patch is the
  closed box ``[0, h] × [0, w]`` (pixel indices ``0 … h−1`` and sub-pixel
  positions up to the far edge are valid). Its centre is ``c = (h/2, w/2)`` and
  ``R = √(h² + w²)/2`` is the radius of its circumscribed circle.
* **Directions.** Line ``l`` measures along ``u_l = (sin θ_l, cos θ_l)`` in
  ``(row, col)``: ``θ = 0`` runs along the columns (left to right), ``θ = π/2``
  along the rows (top to bottom); its normal is ``v_l = (−cos θ_l, sin θ_l)``.
* **Offset.** The position of centroid ``p`` on line ``l`` is
  ``t = (p − c)·u_l + R``, so ``0 ≤ t ≤ 2R ≤ n``. The observation axis is the
  parallel to ``u_l`` through ``q_l = c − R·u_l + R·v_l``, tangent to the
  circumscribed circle and outside the patch (§4.3: "the random lines are all
  located outside of the image patch"); the orthogonal projection of ``p`` onto
  it is ``q_l + t·u_l`` and its signed distance to it is
  ``d = R − (p − c)·v_l ∈ [0, 2R]``, so ``p = c + (t − R)·u_l + (R − d)·v_l``.
* **Discretisation.** ``bin = min(⌊t⌋, n − 1)``: bin ``b`` covers
  ``[b, b + 1)`` (the far end ``t = n``, reachable only when the diagonal is an
  integer, joins the last bin) and decodes to position ``b + 0.5``, so one line
  locates a cell within half a pixel along the axis. Two cells falling into one
  bin (§3.1: "two or more cells may be projected to the same location"): the
  count encoding adds them up; the signed encoding keeps the larger distance
  (the release keeps the last one written); the other lines still separate them.
  ``bin_size = s`` (default 1 px, the paper's) makes bins ``s`` pixels wide:
  ``n = ⌈√(h² + w²)/s⌉``, ``bin = min(⌊t/s⌋, n − 1)``, decoded at ``(b + 0.5)·s``.
* **Code length.** ``m > n`` is allowed (no compression, e.g. tiny smoke
  patches); the paper's settings have ``m ≪ n`` (``m = 112``, ``n = 368`` for
  260-px patches, §4.3).

>>> codec = ProjectionCodec(height=100, width=100)
>>> y = codec.encode([np.array([[30.0, 40.0]])])    # (1, 27·112 + 1)   # doctest: +SKIP
>>> x, count = codec.split(y)                       # (1, 27, 112), (1,)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from numbers import Real
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.validation import check_int

__all__ = ["ENCODINGS", "LineGeometry", "ProjectionCodec", "MAX_CODE_ENTRIES"]

#: The two encodings of a cell on a line (module docstring).
ENCODINGS = ("signed", "count")

#: Largest ``max(m, L) · n`` a codec accepts (the paper: 112 · 368 ≈ 4·10⁴): far above any
#: real patch, small enough that ``D`` and one patch's sparse code fit in memory (about
#: 64 MiB each in float32), so an absurd size fails at construction instead of exhausting memory.
MAX_CODE_ENTRIES = 2**24


@dataclass(frozen=True)
class LineGeometry:
    """Where the observation axes of a :class:`ProjectionCodec` lie (for Fig. 3 drawings).

    Attributes:
        origins: ``(L, 2)`` ``(row, col)`` of the point at position ``t = 0`` on each axis.
        directions: ``(L, 2)`` unit vectors ``u_l`` along which positions grow.
        length: length of every axis, ``2R = √(h² + w²)``; position ``t`` sits at
            ``origins[l] + t·directions[l]``.
    """

    origins: np.ndarray
    directions: np.ndarray
    length: float


@dataclass(frozen=True)
class ProjectionCodec:
    """Encoding of cell centroids by random projections (Xue et al., §3.1, eq. 1; §4.1).

    Args:
        height: patch height ``h`` in pixels.
        width: patch width ``w`` in pixels.
        n_lines: number of observation lines ``L`` (paper: 27 on ICPR 2012, §4.3).
        code_length: dense code length ``m`` per line (paper: 112).
        count_weight: ``β``, the weight of the count appended to the label (paper: 0.2).
        seed: seed of the sensing matrix ``D``.
        bin_size: width of a position bin in pixels (1 in the paper; see the module docstring).
        encoding: ``"signed"`` (the paper's signed distances, §3.1) or ``"count"`` (cell
            counts per bin, the alternative); see the module docstring.

    Raises:
        ConfigError: a size, count or seed is not a positive integer, ``β`` is not a
            finite positive number, or ``encoding`` is unknown.
    """

    height: int
    width: int
    n_lines: int = 27
    code_length: int = 112
    count_weight: float = 0.2
    seed: int = 0
    bin_size: float = 1.0
    encoding: Literal["signed", "count"] = "signed"

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ConfigError(
                f"unknown encoding {self.encoding!r}; expected one of: {', '.join(ENCODINGS)}"
            )
        check_int("height", self.height, minimum=1)
        check_int("width", self.width, minimum=1)
        check_int("n_lines", self.n_lines, minimum=1)
        check_int("code_length", self.code_length, minimum=1)
        check_int("seed", self.seed, minimum=0)
        beta = self.count_weight
        if (
            isinstance(beta, bool)
            or not isinstance(beta, Real)
            or not math.isfinite(beta)
            or beta <= 0
        ):
            raise ConfigError(f"count_weight (β) must be a finite number > 0, got {beta!r}")
        size = self.bin_size
        if isinstance(size, bool) or not isinstance(size, Real) or not math.isfinite(size) or size <= 0:
            raise ConfigError(f"bin_size must be a finite number of pixels > 0, got {size!r}")
        entries = max(self.code_length, self.n_lines) * self.n
        if entries > MAX_CODE_ENTRIES:
            raise ConfigError(
                f"a {self.height}×{self.width} patch with bin_size {size:g} gives n = {self.n} "
                f"bins per line: the (m, n) sensing matrix or the (L, n) sparse code of one patch "
                f"would hold {entries} entries; expected at most {MAX_CODE_ENTRIES} (use smaller "
                "patches or coarser bins)"
            )

    # ------------------------------------------------------------------------- geometry

    @property
    def n(self) -> int:
        """Sparse vector length ``n = ⌈√(h² + w²) / bin_size⌉`` (§3.1 with 1-px bins)."""
        return math.ceil(math.hypot(self.height, self.width) / self.bin_size - 1e-9)

    @property
    def radius(self) -> float:
        """``R = √(h² + w²)/2``, the offset that makes every position non-negative."""
        return math.hypot(self.height, self.width) / 2

    @property
    def centre(self) -> np.ndarray:
        """Patch centre ``(h/2, w/2)`` as ``(row, col)``."""
        return np.array([self.height / 2, self.width / 2])

    @property
    def angles(self) -> Tensor:
        """Orientations ``θ_l = 2π·l/L`` (signed) or ``π·l/L`` (count), ``(L,)`` float64."""
        turn = 2 * math.pi if self.encoding == "signed" else math.pi
        return torch.arange(self.n_lines, dtype=torch.float64) * (turn / self.n_lines)

    @property
    def directions(self) -> np.ndarray:
        """Unit vectors ``u_l = (sin θ_l, cos θ_l)`` in ``(row, col)``, ``(L, 2)``."""
        theta = self.angles.numpy()
        return np.stack([np.sin(theta), np.cos(theta)], axis=1)

    @property
    def normals(self) -> np.ndarray:
        """Unit normals ``v_l = (−cos θ_l, sin θ_l)`` pointing from the patch to axis ``l``."""
        u = self.directions
        return np.stack([-u[:, 1], u[:, 0]], axis=1)

    def line_geometry(self) -> LineGeometry:
        """Observation axes outside the patch, parallel to ``u_l`` (Fig. 3).

        The axis of line ``l`` starts at ``q_l = c − R·u_l + R·v_l`` with
        ``v_l = (−cos θ_l, sin θ_l)``: it is tangent to the circumscribed circle, so
        it never crosses the patch, and a centroid projects onto it at ``q_l + t·u_l``.
        """
        u, v = self.directions, self.normals
        origins = self.centre - self.radius * u + self.radius * v
        return LineGeometry(origins=origins, directions=u, length=2 * self.radius)

    # ------------------------------------------------------------------------- encoding

    @cached_property
    def _dictionary(self) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        D = torch.randn(self.code_length, self.n, generator=generator, dtype=torch.float32)
        return D / math.sqrt(self.code_length)

    @property
    def dictionary(self) -> Tensor:
        """Sensing matrix ``D (m, n)``, i.i.d. ``N(0, 1/m)`` (§3.2), float32, fixed by ``seed``.

        A fresh copy on every access, so editing it (e.g. as a trainable start for
        ECNNCS) never changes the codec.
        """
        return self._dictionary.clone()

    def _check_points(self, points: np.ndarray, name: str) -> None:
        if points.ndim < 1 or points.shape[-1] != 2:
            raise InvalidInputError(
                f"{name} must have shape (k, 2) of (row, col) pixels, got {tuple(points.shape)}"
            )
        if not np.isfinite(points).all():
            raise InvalidInputError(
                f"{name} contains NaN or infinite coordinates; expected finite (row, col) pixels"
            )
        rows, cols = points[..., 0], points[..., 1]
        outside = (rows < 0) | (rows > self.height) | (cols < 0) | (cols > self.width)
        if outside.any():
            bad = points[outside][0]
            raise InvalidInputError(
                f"{name} has a centroid outside the {self.height}×{self.width} patch: "
                f"(row, col) = ({bad[0]:g}, {bad[1]:g}); expected 0 <= row <= {self.height} "
                f"and 0 <= col <= {self.width}"
            )

    def _project(self, points: np.ndarray) -> np.ndarray:
        return (points - self.centre) @ self.directions.T + self.radius

    def positions(self, centroids: np.ndarray | Tensor) -> Tensor:
        """Continuous positions ``t = (p − c)·u_l + R`` of centroids on every line (Fig. 3).

        Args:
            centroids: ``(..., 2)`` ``(row, col)`` pixels, e.g. ``(k, 2)`` for one patch.

        Returns:
            ``(..., L)`` float64 positions in ``[0, 2R]``.

        Raises:
            InvalidInputError: wrong shape, NaN, or a centroid outside the patch.
        """
        points = _as_numpy(centroids, "centroids")
        self._check_points(points, "centroids")
        return torch.from_numpy(self._project(points))

    def _distance(self, points: np.ndarray) -> np.ndarray:
        return self.radius - (points - self.centre) @ self.normals.T

    def distances(self, centroids: np.ndarray | Tensor) -> Tensor:
        """Signed distances ``d = R − (p − c)·v_l`` of centroids to every axis (§3.1, Fig. 3).

        Args:
            centroids: ``(..., 2)`` ``(row, col)`` pixels.

        Returns:
            ``(..., L)`` float64 distances in ``[0, 2R]`` (positive on the patch's side).

        Raises:
            InvalidInputError: wrong shape, NaN, or a centroid outside the patch.
        """
        points = _as_numpy(centroids, "centroids")
        self._check_points(points, "centroids")
        return torch.from_numpy(self._distance(points))

    def sparse(self, centroids: Sequence[np.ndarray | Tensor]) -> Tensor:
        """Sparse codes ``a_l`` of every line (§3.1): at the bin where a cell projects, its
        signed distance to the axis (``"signed"``) or the number of cells (``"count"``).

        Args:
            centroids: one ``(k_i, 2)`` array of ``(row, col)`` pixels per patch (``k_i``
                may be 0; an empty list ``[]`` also means no cell).

        Returns:
            ``(B, L, n)`` float32; ``a[i, l, b]`` is, over the cells of patch ``i`` whose
            position on line ``l`` falls in bin ``b = min(⌊t/s⌋, n − 1)``, the largest
            distance ``d`` (signed) or their number (count); 0 where no cell falls.

        Raises:
            InvalidInputError: not a sequence, an item of the wrong shape, NaN, or a
                centroid outside the patch.
        """
        items = self._batch(centroids)
        a = torch.zeros(len(items), self.n_lines, self.n, dtype=torch.float32)
        sizes = [len(p) for p in items]
        if sum(sizes) == 0:
            return a
        points = np.concatenate(items)
        bins = np.clip(np.floor(self._project(points) / self.bin_size), 0, self.n - 1).astype(np.int64)
        image = np.repeat(np.arange(len(items)), sizes)[:, None].repeat(self.n_lines, axis=1)
        line = np.broadcast_to(np.arange(self.n_lines), bins.shape)
        flat = torch.from_numpy(((image * self.n_lines + line) * self.n + bins).ravel())
        if self.encoding == "count":
            values = torch.ones(bins.size)
            return a.view(-1).index_add_(0, flat, values).view_as(a)
        values = torch.from_numpy(self._distance(points).ravel()).float()
        return a.view(-1).scatter_reduce_(0, flat, values, "amax").view_as(a)

    def compress(self, a: Tensor, D: Tensor | None = None) -> Tensor:
        """Dense codes ``x_l = D a_l`` for every line (eq. 1), differentiable in ``a`` and ``D``.

        Args:
            a: ``(B, L, n)`` sparse codes.
            D: ``(m, n)`` sensing matrix; defaults to :attr:`dictionary` (moved to ``a``'s
                device and dtype). A given ``D`` is used as is (e.g. a trained one, ECNNCS).

        Returns:
            ``(B, L, m)``.

        Raises:
            InvalidInputError: ``a`` or ``D`` is not a tensor of the expected shape.
        """
        if not isinstance(a, Tensor) or a.ndim != 3 or a.shape[1:] != (self.n_lines, self.n):
            got = tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__
            raise InvalidInputError(
                f"a must be a (B, L={self.n_lines}, n={self.n}) tensor, got {got}"
            )
        if D is None:
            D = self._dictionary.to(device=a.device, dtype=a.dtype)
        elif not isinstance(D, Tensor) or D.shape != (self.code_length, self.n):
            got = tuple(D.shape) if isinstance(D, Tensor) else type(D).__name__
            raise InvalidInputError(
                f"D must be a (m={self.code_length}, n={self.n}) tensor, got {got}"
            )
        return a @ D.T

    def encode(self, centroids: Sequence[np.ndarray | Tensor]) -> Tensor:
        """Training label ``{x, βc}`` (§3.1, §4.1): concatenated line codes, then ``β·count``.

        Args:
            centroids: one ``(k_i, 2)`` array of ``(row, col)`` pixels per patch.

        Returns:
            ``(B, L·m + 1)`` float32; ``[:, :L·m]`` is ``x_1 … x_L`` line after line and
            ``[:, -1]`` is ``β·k_i``.
        """
        a = self.sparse(centroids)
        x = self.compress(a).reshape(len(a), -1)
        count = torch.tensor([[float(len(p))] for p in self._batch(centroids)]).reshape(-1, 1)
        return torch.cat([x, self.count_weight * count], dim=1)

    def split(self, code: Tensor) -> tuple[Tensor, Tensor]:
        """Inverse of the concatenation in :meth:`encode` (views, differentiable).

        Args:
            code: ``(B, L·m + 1)`` label or network output.

        Returns:
            Dense codes per line ``(B, L, m)`` and the count ``c = code[:, -1] / β`` ``(B,)``.

        Raises:
            InvalidInputError: ``code`` is not a ``(B, L·m + 1)`` tensor.
        """
        size = self.n_lines * self.code_length + 1
        if not isinstance(code, Tensor) or code.ndim != 2 or code.shape[1] != size:
            got = tuple(code.shape) if isinstance(code, Tensor) else type(code).__name__
            raise InvalidInputError(
                f"code must be a (B, L·m + 1 = {size}) tensor "
                f"(L={self.n_lines}, m={self.code_length}), got {got}"
            )
        x = code[:, :-1].reshape(len(code), self.n_lines, self.code_length)
        return x, code[:, -1] / self.count_weight

    def _batch(self, centroids: Sequence[np.ndarray | Tensor]) -> list[np.ndarray]:
        if isinstance(centroids, str) or not isinstance(centroids, Sequence | np.ndarray | Tensor):
            raise InvalidInputError(
                "centroids must be a sequence with one (k, 2) array per patch, "
                f"got {type(centroids).__name__}"
            )
        items = []
        for i, item in enumerate(centroids):
            points = _as_numpy(item, f"centroids[{i}]")
            if points.size == 0:
                points = points.reshape(0, 2)
            if points.ndim != 2:
                raise InvalidInputError(
                    f"centroids[{i}] must have shape (k, 2), got {tuple(points.shape)}; "
                    "pass a list with one (k, 2) array per patch"
                )
            self._check_points(points, f"centroids[{i}]")
            items.append(points)
        return items


def _as_numpy(x: object, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    try:
        points = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{name} must be an array of (row, col) floats, got {type(x).__name__} ({exc})"
        ) from exc
    return points
