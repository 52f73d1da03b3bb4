"""A folder of unlabelled images, read lazily (the unlabelled pool of semi-supervised DR).

Arora, Gaudio & Satpathy (section 4.1) use the Messidor Extension, "an additional set
of 690 unlabeled images", as their unlabelled data. Such a set is just a folder of
photographs: :func:`load_unlabelled_folder` lists every image file under it
(recursively, extensions :data:`UNLABELLED_SUFFIXES` in any letter case, hidden files
and folders skipped, sorted by relative path) and :class:`UnlabelledImageFolder` reads
image ``i`` only when asked, with the Pillow reader of the DR loaders
(:func:`~wslbench.data.dr_loaders.load_fundus_image`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wslbench.data._files import _check_root
from wslbench.data.dr_loaders import load_fundus_image
from wslbench.errors import DataNotFoundError, InvalidInputError

__all__ = ["UNLABELLED_SUFFIXES", "UnlabelledImageFolder", "load_unlabelled_folder"]

#: Image file extensions listed by :func:`load_unlabelled_folder` (compared lower-cased).
UNLABELLED_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class UnlabelledImageFolder:
    """The image files of a folder, loaded on access.

    Attributes:
        root: the folder.
        paths: the image files, sorted by path relative to ``root``.
    """

    root: Path
    paths: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.load_image(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.load_image(i) for i in range(len(self.paths)))

    @property
    def names(self) -> tuple[str, ...]:
        """Paths relative to ``root`` (POSIX separators), in the order of ``paths``."""
        return tuple(p.relative_to(self.root).as_posix() for p in self.paths)

    def load_image(self, index: int) -> np.ndarray:
        """Read image ``index`` as ``(H, W, 3)`` float32 RGB in [0, 1].

        Raises:
            InvalidInputError: ``index`` is out of range.
            DataNotFoundError: the file has disappeared since listing.
            DataFormatError: the file is not a readable image.
        """
        if isinstance(index, bool) or not isinstance(index, int | np.integer) \
                or not -len(self.paths) <= index < len(self.paths):
            raise InvalidInputError(
                f"index must be an int in [-{len(self.paths)}, {len(self.paths)}), got {index!r}"
            )
        return load_fundus_image(self.paths[index])


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def load_unlabelled_folder(root: str | Path, *, recursive: bool = True) -> UnlabelledImageFolder:
    """List the images of a folder of unlabelled photographs (e.g. Messidor Extension).

    Args:
        root: the folder.
        recursive: also list images in sub-folders (default).

    Returns:
        An :class:`UnlabelledImageFolder`; nothing is read until an image is accessed.

    Raises:
        DataNotFoundError: ``root`` does not exist or holds no image file.
    """
    root = _check_root(root, "unlabelled image")
    found = root.rglob("*") if recursive else root.iterdir()
    paths = sorted(
        (p for p in found
         if p.is_file() and p.suffix.lower() in UNLABELLED_SUFFIXES and not _hidden(p, root)),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not paths:
        raise DataNotFoundError(
            f"no image file in {root}{' or its sub-folders' if recursive else ''}; expected "
            f"files with extension {', '.join(UNLABELLED_SUFFIXES)}"
        )
    return UnlabelledImageFolder(root=root, paths=tuple(paths))
