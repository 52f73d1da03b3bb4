"""The real fundus images that scikit-image ships offline (DESIGN §7).

* :func:`load_skimage_retina`: ``skimage.data.retina()``, a 1411×1411 colour fundus
  photograph (CC0), the real-image counterpart of the Kaggle photographs of Quellec
  et al. (2017), section 5.3.1.
* :func:`load_skimage_microaneurysms`: ``skimage.data.microaneurysms()``, a 102×102
  green-channel crop of an HRF image containing microaneurysms (CC0).
* :func:`load_skimage_ihc`: ``skimage.data.immunohistochemistry()``, a 512×512 colour
  image of colonic glands (the real-image counterpart of the GlaS patches of Rony 2020,
  section 2.1.1.3). It is an IHC stain (haematoxylin counterstain + DAB brown), not H&E.

Nothing is downloaded: these images are inside the scikit-image wheel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from wslbench.errors import DataNotFoundError

__all__ = ["load_skimage_retina", "load_skimage_microaneurysms", "load_skimage_ihc", "load_skimage_cell"]


def _load(name: str) -> np.ndarray:
    import skimage.data

    loader: Callable[[], np.ndarray] | None = getattr(skimage.data, name, None)
    if loader is None:
        raise DataNotFoundError(
            f"skimage.data.{name}() does not exist in this scikit-image; expected scikit-image "
            "≥ 0.24, which ships it"
        )
    try:
        return np.asarray(loader())
    except Exception as exc:  # a missing data file surfaces as various errors
        raise DataNotFoundError(
            f"skimage.data.{name}() could not be loaded offline ({exc}); expected the image "
            "bundled in the scikit-image wheel"
        ) from exc


def _to_unit(arr: np.ndarray) -> np.ndarray:
    if np.issubdtype(arr.dtype, np.integer):
        return (arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)).astype(np.float32)
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


def load_skimage_retina() -> np.ndarray:
    """The scikit-image fundus photograph.

    Returns:
        ``(1411, 1411, 3)`` float32 RGB in [0, 1] (8-bit values divided by 255).
    """
    return _to_unit(_load("retina")[..., :3])


def load_skimage_microaneurysms(rgb: bool = False) -> np.ndarray:
    """The scikit-image green-channel crop with microaneurysms.

    Args:
        rgb: if true, return three identical channels (the green channel replicated
            into R, G and B) so that the crop fits 3-channel models; the colour is not
            reconstructed, and lesions stay dark on a brighter background.

    Returns:
        ``(102, 102)`` float32 in [0, 1] (8-bit values divided by 255), or
        ``(102, 102, 3)`` when ``rgb`` is true.
    """
    img = _to_unit(_load("microaneurysms"))
    if img.ndim == 3:  # defensive: a future release might ship it with a channel axis
        img = img[..., 1] if img.shape[-1] >= 3 else img[..., 0]
    return np.repeat(img[..., None], 3, axis=2) if rgb else img


def load_skimage_ihc() -> np.ndarray:
    """The scikit-image immunohistochemistry image of colonic glands.

    Returns:
        ``(512, 512, 3)`` float32 RGB in [0, 1] (8-bit values divided by 255).
    """
    return _to_unit(_load("immunohistochemistry")[..., :3])


def load_skimage_cell() -> np.ndarray:
    """The scikit-image phase-contrast microscopy image of cells (CC0).

    Returns:
        ``(H, W, 3)`` float32 in [0, 1]: the grey image replicated into three channels so
        that it fits the 3-channel cell detectors (no colour is reconstructed).
    """
    img = _to_unit(_load("cell"))
    if img.ndim == 3:
        img = img[..., 0]
    return np.repeat(img[..., None], 3, axis=2)
