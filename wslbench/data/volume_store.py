"""Collections of N volumes read a batch at a time: in memory, or lazily from NIfTI files.

Thibeau-Sutre et al. (2020), section 2.1: the ADNI cohort is 1,998 gray-matter maps of
121×145×121 voxels (8.5 MB each as float32, 17 GB in all), and the training of 2.2.3, the
quality check of 2.3.1 and the masks of 2.3 only ever need a batch of them at once. A
:class:`VolumeStore` is what the MRI training, prediction and mask code index instead of
one ``(N, 1, D, H, W)`` tensor:

- ``store.shape`` is ``(N, C, D, H, W)``, ``len(store)`` is ``N``;
- ``store[indices]`` (a list, an int array or tensor, a bool mask of length ``N`` or a
  slice) returns a ``(B, C, D, H, W)`` float32 tensor of those volumes, in that order;
  ``store[i]`` returns ``(C, D, H, W)``, and ``store[i, 0, :, j]`` or ``store[indices, 0]``
  index what was read as a tensor would (one advanced index, on the volume axis);
- ``store.subset(indices)`` is a store of those volumes (nothing is read).

:class:`TensorVolumeStore` wraps a tensor already in memory; :class:`NiftiVolumeStore`
reads one NIfTI file per volume on each access (with an optional small LRU cache), so
resident memory is bounded by the batch, not by the cohort. Every function that accepts a
store also accepts a 5-D tensor (:func:`as_volume_store`). :func:`mean_volume` and
:func:`volume_maxima` stream over a store batch by batch.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from wslbench.data.nifti import load_nifti, validate_affine
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError

__all__ = [
    "VolumeStore",
    "TensorVolumeStore",
    "NiftiVolumeStore",
    "as_volume_store",
    "select_volumes",
    "iter_volume_batches",
    "mean_volume",
    "volume_maxima",
    "nifti_header_grid",
]

IndexLike = int | slice | Sequence[int] | np.ndarray | torch.Tensor


class VolumeStore(ABC):
    """An indexable collection of ``N`` volumes ``(N, C, D, H, W)`` (module docstring).

    Subclasses implement :attr:`shape`, :meth:`_read` and :meth:`subset`.
    """

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int, int, int, int]:
        """``(N, C, D, H, W)``."""

    @abstractmethod
    def _read(self, index: np.ndarray) -> torch.Tensor:
        """The volumes at ``index`` (validated int64 indices in ``[0, N)``), ``(B, C, D, H, W)`` float32."""

    @abstractmethod
    def subset(self, indices: IndexLike) -> VolumeStore:
        """A store of the volumes at ``indices``, in that order (nothing is read)."""

    @property
    def ndim(self) -> int:
        """Always 5, as for the ``(N, C, D, H, W)`` tensor a store stands for."""
        return 5

    @property
    def dtype(self) -> torch.dtype:
        """``torch.float32``: what indexing returns."""
        return torch.float32

    @property
    def device(self) -> torch.device:
        """The CPU: batches are read into CPU tensors (move them to the model's device)."""
        return torch.device("cpu")

    def __len__(self) -> int:
        return self.shape[0]

    def indices(self, key: IndexLike) -> np.ndarray:
        """``key`` as int64 indices in ``[0, N)`` (negative ones count from the end).

        Raises:
            InvalidInputError: a float or non-1-D index, a bool mask of the wrong length,
                or an index out of range.
        """
        n = len(self)
        if isinstance(key, slice):
            return np.arange(n)[key].astype(np.int64)
        if isinstance(key, torch.Tensor):
            key = key.detach().cpu().numpy()
        arr = np.asarray(key)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.ndim != 1:
            raise InvalidInputError(f"volume indices must be 1-D, got shape {arr.shape}")
        if arr.dtype == np.bool_:
            if arr.size != n:
                raise InvalidInputError(
                    f"a bool mask over the volumes must have {n} entries, got {arr.size}")
            return np.flatnonzero(arr).astype(np.int64)
        if arr.size == 0:
            return np.zeros(0, np.int64)
        if not np.issubdtype(arr.dtype, np.integer):
            raise InvalidInputError(f"volume indices must be integers, got dtype {arr.dtype}")
        if arr.min() < -n or arr.max() >= n:
            raise InvalidInputError(
                f"volume index out of range: got {arr.min()} … {arr.max()} for {n} volumes "
                f"(expected -{n} … {n - 1})")
        return np.where(arr < 0, arr + n, arr).astype(np.int64)

    def __getitem__(self, key: IndexLike | tuple) -> torch.Tensor:
        if isinstance(key, tuple):  # volumes first, then the rest on what was read
            if not key:
                raise InvalidInputError("empty index; expected volume indices")
            first, rest = key[0], key[1:]
            if isinstance(first, int | np.integer) and not isinstance(first, bool):
                return self[first][rest]  # one volume: the volume axis is gone, as in a tensor
            return self[first][(slice(None), *rest)]
        if isinstance(key, int | np.integer) and not isinstance(key, bool):
            return self._read(self.indices(int(key)))[0]
        index = self.indices(key)
        if index.size == 0:
            return torch.zeros((0, *self.shape[1:]), dtype=torch.float32)
        return self._read(index)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape})"


class TensorVolumeStore(VolumeStore):
    """A store over a ``(N, C, D, H, W)`` tensor held in memory.

    Args:
        volumes: the tensor (not copied; batches are returned as float32).

    Raises:
        InvalidInputError: not a 5-D tensor.
    """

    def __init__(self, volumes: torch.Tensor) -> None:
        if not isinstance(volumes, torch.Tensor) or volumes.ndim != 5:
            got = tuple(volumes.shape) if isinstance(volumes, torch.Tensor) else type(volumes).__name__
            raise InvalidInputError(f"volumes must be a (N, C, D, H, W) tensor, got {got}")
        self.volumes = volumes

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        return tuple(int(s) for s in self.volumes.shape)  # type: ignore[return-value]

    def _read(self, index: np.ndarray) -> torch.Tensor:
        return self.volumes[torch.from_numpy(index)].to(torch.float32)

    def subset(self, indices: IndexLike) -> TensorVolumeStore:
        return TensorVolumeStore(self.volumes[torch.from_numpy(self.indices(indices))])


def nifti_header_grid(path: str | Path) -> tuple[tuple[int, int, int], np.ndarray]:
    """``(shape, affine)`` of a 3-D NIfTI from its header alone (no voxel is read).

    A 4-D header with a singleton last axis counts as 3-D, as in
    :func:`~wslbench.data.nifti.load_nifti`.

    Raises:
        DataNotFoundError: the file does not exist.
        DataFormatError: not a readable NIfTI header, not 3-D, or a bad affine.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"NIfTI file {path} does not exist; expected a .nii or .nii.gz")
    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
    except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError, OSError,
            EOFError, ValueError, zlib.error) as exc:
        raise DataFormatError(
            f"cannot read {path} as NIfTI: {exc}; expected an uncorrupted .nii/.nii.gz file"
        ) from exc
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DataFormatError(
            f"{path} has shape {shape}; expected a 3D volume (D, H, W) or 4D with a singleton "
            "last axis")
    try:
        affine = validate_affine(img.affine, f"affine of {path}")
    except InvalidInputError as exc:
        raise DataFormatError(str(exc)) from exc
    return shape, affine  # type: ignore[return-value]


class NiftiVolumeStore(VolumeStore):
    """Volumes read from NIfTI files on each access (one file per volume, ``C = 1``).

    Only the headers are read at construction: every file must exist and lie on the same
    grid (shape and affine), so a cohort with maps of differing sizes fails at once with
    the file named, not in the middle of a training. Each access reads the files of the
    requested volumes with :func:`~wslbench.data.nifti.load_nifti` (which checks the voxel
    values); at most ``cache_size`` recently read volumes are kept.

    Args:
        paths: one NIfTI file per volume.
        shape: expected ``(D, H, W)``; ``None`` takes the first file's.
        affine: expected ``(4, 4)`` affine; ``None`` takes the first file's.
        cache_size: most volumes kept in memory between accesses (0: none).
        check_headers: read every header now (off only for a store built from a checked one).
        atol: tolerance (mm) on the affines' entries.

    Raises:
        InvalidInputError: no path, or a negative ``cache_size``.
        DataNotFoundError: a file is missing.
        DataFormatError: a file is not a 3-D NIfTI, or lies on another grid than expected.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        shape: Sequence[int] | None = None,
        affine: np.ndarray | None = None,
        cache_size: int = 0,
        check_headers: bool = True,
        atol: float = 1e-3,
    ) -> None:
        self.paths = tuple(Path(p).expanduser() for p in paths)
        if not self.paths:
            raise InvalidInputError("a NiftiVolumeStore needs at least one file")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise InvalidInputError(f"cache_size must be an int >= 0, got {cache_size!r}")
        self.cache_size = cache_size
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        if shape is None or affine is None:
            first_shape, first_affine = nifti_header_grid(self.paths[0])
            shape = first_shape if shape is None else shape
            affine = first_affine if affine is None else affine
        self.grid_shape: tuple[int, int, int] = tuple(int(s) for s in shape)  # type: ignore[assignment]
        self.affine = validate_affine(affine, "expected affine")
        if len(self.grid_shape) != 3:
            raise InvalidInputError(f"shape must be (D, H, W), got {self.grid_shape}")
        if check_headers:
            for path in self.paths:
                got_shape, got_affine = nifti_header_grid(path)
                self._check_grid(path, got_shape, got_affine, atol)

    def _check_grid(self, path: Path, shape: tuple[int, ...], affine: np.ndarray | None,
                    atol: float = 1e-3) -> None:
        if tuple(shape) != self.grid_shape:
            raise DataFormatError(
                f"{path} has shape {tuple(shape)}; expected {self.grid_shape} like the other "
                f"maps of the cohort (first: {self.paths[0]}): every map must lie on one grid")
        if affine is not None and not np.allclose(affine, self.affine, atol=atol):
            raise DataFormatError(
                f"{path} has affine\n{np.round(affine, 3)}\nexpected\n{np.round(self.affine, 3)}\n"
                f"like the other maps of the cohort (first: {self.paths[0]}): every map must lie "
                "on one grid")

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        return (len(self.paths), 1, *self.grid_shape)  # type: ignore[return-value]

    def _volume(self, i: int) -> np.ndarray:
        hit = self._cache.get(i)
        if hit is not None:
            self._cache.move_to_end(i)
            return hit
        data = load_nifti(self.paths[i]).data
        self._check_grid(self.paths[i], data.shape, None)
        if self.cache_size:
            self._cache[i] = data
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return data

    def _read(self, index: np.ndarray) -> torch.Tensor:
        out = np.empty((index.size, 1, *self.grid_shape), np.float32)
        for row, i in enumerate(index):
            out[row, 0] = self._volume(int(i))
        return torch.from_numpy(out)

    def subset(self, indices: IndexLike) -> NiftiVolumeStore:
        chosen = self.indices(indices)
        if chosen.size == 0:
            raise InvalidInputError("a subset of a NiftiVolumeStore needs at least one volume")
        return NiftiVolumeStore([self.paths[i] for i in chosen], shape=self.grid_shape,
                                affine=self.affine, cache_size=self.cache_size,
                                check_headers=False)


def as_volume_store(volumes: object, name: str = "volumes") -> VolumeStore:
    """``volumes`` as a :class:`VolumeStore`: a store as is, a 5-D tensor wrapped.

    Raises:
        InvalidInputError: anything else (the message names ``name``).
    """
    if isinstance(volumes, VolumeStore):
        return volumes
    if isinstance(volumes, torch.Tensor) and volumes.ndim == 5:
        return TensorVolumeStore(volumes)
    got = tuple(volumes.shape) if isinstance(volumes, torch.Tensor) else type(volumes).__name__
    raise InvalidInputError(
        f"{name} must be a (N, C, D, H, W) tensor or a VolumeStore, got {got}")


def select_volumes(volumes: torch.Tensor | VolumeStore, indices: IndexLike
                   ) -> torch.Tensor | VolumeStore:
    """The volumes at ``indices`` of the same kind: a tensor indexed, a store subset (lazy)."""
    store = as_volume_store(volumes)
    if isinstance(volumes, VolumeStore):
        return volumes.subset(indices)
    return volumes[torch.from_numpy(store.indices(indices))]


def iter_volume_batches(
    volumes: torch.Tensor | VolumeStore, indices: IndexLike | None = None, batch_size: int = 8
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """``(indices, (B, C, D, H, W) float32 volumes)`` batch by batch over ``indices`` (default: all)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
    store = as_volume_store(volumes)
    index = np.arange(len(store)) if indices is None else store.indices(indices)
    for first in range(0, index.size, batch_size):
        part = index[first:first + batch_size]
        yield part, store[part]


def mean_volume(
    volumes: torch.Tensor | VolumeStore, indices: IndexLike | None = None, batch_size: int = 8
) -> torch.Tensor:
    """Voxelwise mean ``(C, D, H, W)`` float32 of the volumes at ``indices``.

    A store is streamed (float64 sums, one batch held at a time); a tensor, already in
    memory, is averaged at once in float32 (``volumes[indices].mean(0)``).

    Raises:
        InvalidInputError: no volume selected.
    """
    if isinstance(volumes, torch.Tensor):
        index = as_volume_store(volumes).indices(slice(None) if indices is None else indices)
        if index.size == 0:
            raise InvalidInputError("mean_volume needs at least one volume; none was selected")
        return volumes[torch.from_numpy(index)].to(torch.float32).mean(0)
    total: torch.Tensor | None = None
    count = 0
    for part, batch in iter_volume_batches(volumes, indices, batch_size):
        for volume in batch:  # in place, one volume at a time: no float64 copy of the batch
            total = volume.to(torch.float64) if total is None else total.add_(volume)
        count += part.size
    if total is None:
        raise InvalidInputError("mean_volume needs at least one volume; none was selected")
    return (total / count).to(torch.float32)


def volume_maxima(volumes: torch.Tensor | VolumeStore, batch_size: int = 8) -> np.ndarray:
    """``(N,)`` float64 maximum of every volume, streamed batch by batch (the quality check of
    section 2.3.1 on a cohort that does not fit in memory)."""
    out = []
    for _, batch in iter_volume_batches(volumes, None, batch_size):
        out.append(batch.reshape(batch.shape[0], -1).amax(dim=1).to(torch.float64).numpy())
    return np.concatenate(out) if out else np.zeros(0)

