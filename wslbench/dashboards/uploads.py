"""Validating and decoding uploaded files, in memory only.

An ipywidgets 8 ``FileUpload.value`` is a tuple of dicts whose ``content`` is a
``memoryview`` (DESIGN §8). :func:`read_upload` turns it into an
:class:`UploadedFile`; :func:`decode_image` and :func:`decode_nifti` check it
against an :class:`UploadPolicy` (size limit, extension, magic bytes, pixel
dimensions, colour) and decode it from the bytes: nothing is written to disk and
the uploaded file name is only ever *shown* (HTML-escaped), never used as a path.
Every refusal raises :class:`~wslbench.errors.DataFormatError` or
:class:`~wslbench.errors.InvalidInputError` with a message that says what was
expected, for the dashboard to show in the page.
"""

from __future__ import annotations

import gzip
import html
import io
import re
import warnings
import zlib
from dataclasses import dataclass

import numpy as np

from wslbench.errors import DataFormatError, InvalidInputError

__all__ = [
    "UploadedFile",
    "UploadPolicy",
    "DecodedVolume",
    "read_upload",
    "sniff",
    "decode_image",
    "decode_nifti",
    "FUNDUS_POLICY",
    "HISTOLOGY_POLICY",
    "MICROSCOPY_POLICY",
    "MRI_POLICY",
]

MiB = 1024 * 1024
#: Control characters (NUL, newlines, escapes...) are never shown as such in a message.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_KIND_NAMES = {"png": "PNG image", "jpeg": "JPEG image", "tiff": "TIFF image",
               "nifti": "NIfTI volume", "gzip": "gzip file (.nii.gz?)"}


@dataclass(frozen=True)
class UploadedFile:
    """One uploaded file: its (display-only) name and its bytes."""

    name: str
    content: bytes

    @property
    def shown_name(self) -> str:
        """The name, control characters replaced by ``?``, shortened and HTML-escaped, for
        messages (it is only ever shown, never used as a path)."""
        name = _CONTROL.sub("?", self.name)
        name = name if len(name) <= 80 else name[:77] + "..."
        return html.escape(name or "(no name)")

    @property
    def suffix(self) -> str:
        """Lower-case extension (``.nii.gz`` kept whole) of the name's last component
        (after the last ``/`` or ``\\``), from the name's text only."""
        low = re.split(r"[/\\]", self.name.lower())[-1]
        if low.endswith(".nii.gz"):
            return ".nii.gz"
        dot = low.rfind(".")
        return low[dot:] if dot > 0 else ""


@dataclass(frozen=True)
class UploadPolicy:
    """What one dashboard accepts.

    Attributes:
        what: what is expected, in words (``"a colour fundus photograph"``).
        kinds: accepted formats (``"png"``, ``"jpeg"``, ``"tiff"``, ``"nifti"``).
        extensions: accepted file name endings (also the FileUpload ``accept``).
        max_bytes: upload size limit.
        min_side, max_side: pixel (or voxel) side limits.
        colour: require a colour (RGB) image rather than a grey one.
        max_decoded_bytes: limit of a decompressed ``.nii.gz`` (gzip-bomb guard).
    """

    what: str
    kinds: tuple[str, ...]
    extensions: tuple[str, ...]
    max_bytes: int
    min_side: int = 32
    max_side: int = 6000
    colour: bool = True
    max_decoded_bytes: int = 256 * MiB

    @property
    def accept(self) -> str:
        return ",".join(self.extensions)


FUNDUS_POLICY = UploadPolicy("a colour fundus photograph (JPEG or PNG)", ("jpeg", "png"),
                             (".jpg", ".jpeg", ".png"), 8 * MiB, min_side=64)
HISTOLOGY_POLICY = UploadPolicy("a colour histology patch (PNG or TIFF)", ("png", "tiff"),
                                (".png", ".tif", ".tiff"), 8 * MiB, min_side=32)
MICROSCOPY_POLICY = UploadPolicy("a microscopy image (PNG or TIFF)", ("png", "tiff"),
                                 (".png", ".tif", ".tiff"), 8 * MiB, min_side=32, colour=False)
MRI_POLICY = UploadPolicy("a 3D gray-matter map in MNI space (NIfTI .nii or .nii.gz)", ("nifti",),
                          (".nii", ".nii.gz"), 9 * MiB, min_side=8, max_side=512, colour=False)


_EXPECTED_VALUE = ("expected a FileUpload value: a tuple of dicts with a 'name' and a bytes "
                   "'content' (ipywidgets 8), or a dict of such dicts by name (ipywidgets 7)")


def read_upload(value: object) -> UploadedFile | None:
    """The first file of a ``FileUpload.value`` (tuple of dicts; ``None`` when empty).

    Raises:
        InvalidInputError: ``value`` is not a FileUpload value (not a tuple/list/dict of
            dicts, no ``content``, or a content that is not bytes).
    """
    if isinstance(value, dict):  # ipywidgets 7 layout: name -> {"content": ...}
        if not all(isinstance(v, dict) for v in value.values()):
            bad = next(type(v).__name__ for v in value.values() if not isinstance(v, dict))
            raise InvalidInputError(f"the upload widget sent a {bad} entry; {_EXPECTED_VALUE}")
        value = tuple({"name": k, **v} for k, v in value.items())
    if value is None or (isinstance(value, tuple | list) and not value):
        return None
    if not isinstance(value, tuple | list):
        raise InvalidInputError(
            f"the upload widget sent a {type(value).__name__}; {_EXPECTED_VALUE}")
    item = value[0]
    if not isinstance(item, dict):
        raise InvalidInputError(
            f"the upload widget sent a {type(item).__name__} item; {_EXPECTED_VALUE}")
    if "content" not in item:
        raise InvalidInputError(
            f"the upload widget sent no file content; {_EXPECTED_VALUE} (please try again)")
    content = item["content"]
    if not isinstance(content, bytes | bytearray | memoryview):
        raise InvalidInputError(
            f"the upload widget sent a 'content' of type {type(content).__name__}; "
            f"{_EXPECTED_VALUE}")
    return UploadedFile(str(item.get("name", "")), bytes(content))


def sniff(content: bytes) -> str | None:
    """The format from the magic bytes: png, jpeg, tiff, nifti, gzip, or ``None``."""
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if content[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if content.startswith(b"\x1f\x8b"):
        return "gzip"
    if len(content) >= 348 and content[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nifti"
    if len(content) >= 540 and content[4:8] in (b"n+2\x00", b"ni2\x00"):
        return "nifti"
    return None


def _check_common(upload: UploadedFile, policy: UploadPolicy) -> None:
    name = upload.shown_name
    if not upload.content:
        raise DataFormatError(f"“{name}” is empty (0 bytes); expected {policy.what}.")
    if len(upload.content) > policy.max_bytes:
        raise InvalidInputError(
            f"“{name}” is {len(upload.content) / MiB:.1f} MB; the limit here is "
            f"{policy.max_bytes / MiB:.0f} MB: expected {policy.what} of at most "
            f"{policy.max_bytes / MiB:.0f} MB."
        )
    if upload.suffix not in policy.extensions:
        raise DataFormatError(
            f"“{name}” has the extension “{html.escape(upload.suffix) or 'none'}”; expected "
            f"{policy.what} ending in {', '.join(policy.extensions)}."
        )


def _wrong_kind(upload: UploadedFile, kind: str | None, policy: UploadPolicy) -> DataFormatError:
    if kind is None:
        return DataFormatError(
            f"“{upload.shown_name}” is not a readable {' / '.join(_KIND_NAMES[k] for k in policy.kinds)}"
            f" (unknown or corrupt content); expected {policy.what}."
        )
    return DataFormatError(
        f"“{upload.shown_name}” is a {_KIND_NAMES.get(kind, kind)}, but this dashboard expects "
        f"{policy.what}; expected one of: "
        f"{', '.join(_KIND_NAMES[k] for k in policy.kinds)}."
    )


def decode_image(upload: UploadedFile, policy: UploadPolicy) -> np.ndarray:
    """Decode an image upload as float32 in [0, 1]: ``(H, W, 3)``, or ``(H, W)`` when
    ``policy.colour`` is false and the image is grey.

    Raises:
        InvalidInputError: too large (bytes or pixels), too small, or grey where colour
            is expected.
        DataFormatError: empty, wrong extension, wrong format (e.g. a NIfTI volume), or
            corrupt / truncated content.
    """
    from PIL import Image, UnidentifiedImageError

    _check_common(upload, policy)
    kind = sniff(upload.content)
    if kind not in policy.kinds:
        raise _wrong_kind(upload, "nifti" if kind == "gzip" else kind, policy)
    name = upload.shown_name
    width, height = _header_size(upload.content, kind)
    if width is not None and height is not None:
        _check_sides(name, width, height, policy)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(upload.content))
        with img:
            width, height = img.size
            _check_sides(name, width, height, policy)
            img.load()
            mode = img.mode
            arr = np.asarray(img.convert("RGB") if mode not in ("L", "I;16", "I", "F") else img)
    except InvalidInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidInputError(
            f"“{name}” claims too many pixels ({html.escape(str(exc))[:120]}); expected "
            f"{policy.what} of at most {policy.max_side}×{policy.max_side} pixels."
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataFormatError(
            f"“{name}” could not be decoded as a {_KIND_NAMES[kind]} (truncated or corrupt: "
            f"{html.escape(str(exc))[:120]}); expected {policy.what}."
        ) from exc
    if min(width, height) < policy.min_side:
        raise InvalidInputError(
            f"“{name}” is only {width}×{height} pixels; expected {policy.what} of at least "
            f"{policy.min_side}×{policy.min_side} pixels."
        )
    if arr.dtype == np.uint8:
        image = arr.astype(np.float32) / 255.0
    else:
        image = arr.astype(np.float32)
        if not np.isfinite(image).all():
            raise DataFormatError(
                f"“{name}” holds {int(np.count_nonzero(~np.isfinite(image)))} NaN or infinite "
                f"pixel value(s); expected {policy.what} with finite values."
            )
        if float(image.min()) < 0:
            raise InvalidInputError(
                f"“{name}” holds negative pixel values (min {float(image.min()):g}); expected "
                f"{policy.what} with intensities >= 0."
            )
        top = float(image.max())
        image = image / top if top > 0 else image
    grey = image.ndim == 2 or float(np.abs(image - image.mean(axis=2, keepdims=True)).max()) < 2 / 255
    if grey and policy.colour:
        raise InvalidInputError(
            f"“{name}” is a grey-level image; expected {policy.what} (three colour channels)."
        )
    if grey and image.ndim == 3:
        image = image[..., 0]
    flat = image.reshape(image.shape[0] * image.shape[1], -1)
    if float((flat.max(axis=0) - flat.min(axis=0)).max()) < 1 / 255:
        raise InvalidInputError(f"“{name}” is a blank (uniform) image; expected {policy.what}.")
    return np.ascontiguousarray(image)


def _header_size(content: bytes, kind: str | None) -> tuple[int | None, int | None]:
    """``(width, height)`` read from a PNG's IHDR chunk (``None`` for other formats): the
    size is checked before Pillow even parses the file."""
    if kind == "png" and len(content) >= 24 and content[12:16] == b"IHDR":
        return int.from_bytes(content[16:20], "big"), int.from_bytes(content[20:24], "big")
    return None, None


def _check_sides(name: str, width: int, height: int, policy: UploadPolicy) -> None:
    if max(width, height) > policy.max_side:
        raise InvalidInputError(
            f"“{name}” is {width}×{height} pixels; the limit is {policy.max_side} pixels per "
            f"side: expected {policy.what} of at most {policy.max_side}×{policy.max_side} "
            "pixels (it is not decoded)."
        )


def _gunzip(upload: UploadedFile, policy: UploadPolicy) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(upload.content, policy.max_decoded_bytes + 1)
    except zlib.error as exc:
        raise DataFormatError(
            f"“{upload.shown_name}” is not a valid gzip file ({exc}); expected {policy.what}."
        ) from exc
    if len(raw) > policy.max_decoded_bytes:
        raise InvalidInputError(
            f"“{upload.shown_name}” unpacks to more than {policy.max_decoded_bytes / MiB:.0f} MB; "
            f"expected {policy.what} of a reasonable size."
        )
    if not inflater.eof:
        raise DataFormatError(
            f"“{upload.shown_name}” is a truncated gzip file; expected {policy.what}."
        )
    return raw


@dataclass(frozen=True)
class DecodedVolume:
    """A decoded NIfTI upload: ``(D, H, W)`` float32 data and its ``(4, 4)`` affine."""

    data: np.ndarray
    affine: np.ndarray


def decode_nifti(upload: UploadedFile, policy: UploadPolicy = MRI_POLICY) -> DecodedVolume:
    """Decode a ``.nii`` / ``.nii.gz`` upload in memory (nibabel ``from_bytes``).

    Raises:
        InvalidInputError: too large, too small or too large a grid.
        DataFormatError: empty, wrong extension, a 2D image (PNG/JPEG/TIFF), corrupt or
            truncated data, not 3D, non-finite values or an unusable affine.
    """
    import nibabel as nib

    from wslbench.data.nifti import validate_affine

    _check_common(upload, policy)
    kind = sniff(upload.content)
    name = upload.shown_name
    if kind in ("png", "jpeg", "tiff"):
        raise DataFormatError(
            f"“{name}” is a 2D {_KIND_NAMES[kind]}; the MRI dashboard expects {policy.what}; "
            "expected a 3D NIfTI volume."
        )
    raw = _gunzip(upload, policy) if kind == "gzip" else upload.content
    if sniff(raw) != "nifti":
        raise DataFormatError(f"“{name}” has no NIfTI header (corrupt?); expected {policy.what}.")
    try:
        header_class = nib.Nifti1Image if raw[344:348] in (b"n+1\x00", b"ni1\x00") else nib.Nifti2Image
        img = header_class.from_bytes(raw)
        shape = img.shape
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] != 1):
            raise InvalidInputError(
                f"“{name}” has shape {tuple(shape)}; expected one 3D volume ({policy.what})."
            )
        if min(shape[:3]) < policy.min_side or max(shape[:3]) > policy.max_side:
            raise InvalidInputError(
                f"“{name}” has a {tuple(shape[:3])} grid; expected sides between "
                f"{policy.min_side} and {policy.max_side} voxels."
            )
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape[:3])
    except InvalidInputError:
        raise
    except (ValueError, OSError, EOFError, gzip.BadGzipFile, nib.filebasedimages.ImageFileError,
            TypeError) as exc:
        raise DataFormatError(
            f"“{name}” could not be read as NIfTI (truncated or corrupt: "
            f"{html.escape(str(exc))[:120]}); expected {policy.what}."
        ) from exc
    if not np.isfinite(data).all():
        raise DataFormatError(f"“{name}” holds NaN or infinite voxels; expected finite values.")
    try:
        affine = validate_affine(img.affine, f"the affine of “{name}”")
    except InvalidInputError as exc:
        raise DataFormatError(f"{exc}.") from exc
    return DecodedVolume(np.ascontiguousarray(data), affine)
