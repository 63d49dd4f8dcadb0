"""Read image files safely: dimensions from the header first, a decoded-size budget, one-line errors.

OpenCV decodes a 30000x30000 PNG into 2.7 GB without complaint; reading the size, bit
depth and channels from the header (PNG, JPEG, GIF, BMP, WebP, PNM, TIFF) lets a file over
the budget be refused before it is decoded. The budget is in pixels (`--max-pixels`,
$EDGEDIGITS_MAX_PIXELS) and in decoded bytes, BYTES_PER_BUDGET_PIXEL per budgeted pixel:
a 40-MP 8-bit RGBA photo fits, a 40-MP 16-bit RGBA PNG (320 MB decoded) does not.
Formats whose header is not understood here are not decoded.
"""

from __future__ import annotations

import os
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from firmware_harness import native_stderr, orientation
from firmware_harness.errors import UserError

MAX_PIXELS = 40_000_000  # a 40-MP photo; $EDGEDIGITS_MAX_PIXELS or --max-pixels overrides
PIXELS_ENV_VAR = "EDGEDIGITS_MAX_PIXELS"
BYTES_PER_BUDGET_PIXEL = 4  # decoded bytes allowed per pixel of the budget: 8-bit BGRA
MAX_FILE_BYTES = 200 << 20
MAX_JPEG_SCANS = 100  # each scan of a progressive JPEG is decoded over the whole image: time, not pixels
JPEG_SCAN = b"\xff\xda"  # the start-of-scan marker


def pixel_budget() -> int:
    """The pixel budget: $EDGEDIGITS_MAX_PIXELS (a whole number, or millions with an MP suffix) or MAX_PIXELS."""
    value = os.environ.get(PIXELS_ENV_VAR, "").strip()
    if not value:
        return MAX_PIXELS
    match = re.fullmatch(r"(\d+)\s*(MP)?", value, re.IGNORECASE)
    if not match or int(match.group(1)) < 1:
        raise UserError(f"{PIXELS_ENV_VAR}={value!r} is not a pixel count; set it to a whole number such as "
                        f"40000000, or 40MP")
    return int(match.group(1)) * (1_000_000 if match.group(2) else 1)


class TooManyPixels(UserError):
    """The image is over the pixel budget (refused before decoding)."""


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm"}


def _jpeg_size(data: bytes) -> tuple[int, int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            precision, height, width, components = struct.unpack(">BHHB", data[pos + 4:pos + 10])
            return width, height, (2 if precision > 8 else 1) * (1 if components == 1 else 3)
        pos += 2 + length
    return None


def _jpeg_truncated(data: bytes) -> bool:
    """No end-of-image marker after the last scan: cut off (some libjpeg builds decode it half gray)."""
    scan = data.rfind(b"\xff\xda")
    return scan < 0 or data.find(b"\xff\xd9", scan) < 0


def _webp_size(data: bytes) -> tuple[int, int] | None:  # decoded as BGR or BGRA
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _tiff_size(data: bytes) -> tuple[int, int, int] | None:
    """Width, height and bytes per pixel (bits per sample x samples per pixel, TIFF's defaults 1 and 1)."""
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        return None
    count = struct.unpack(order + "H", data[ifd:ifd + 2])[0]
    found = {}
    for k in range(count):
        entry = data[ifd + 2 + 12 * k: ifd + 14 + 12 * k]
        if len(entry) < 12:
            return None
        tag, kind, values = struct.unpack(order + "HHI", entry[:8])
        if tag in (256, 257, 277) or (tag == 258 and values * (2 if kind == 3 else 4) <= 4):  # inline values
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
        elif tag == 258:  # one bits-per-sample value per sample, stored elsewhere: the first stands for all
            offset = struct.unpack(order + "I", entry[8:12])[0]
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), data[offset:offset + (2 if kind == 3 else 4)])[0]
    if 256 not in found or 257 not in found:
        return None
    return found[256], found[257], -(-found.get(258, 1) // 8) * max(found.get(277, 1), 1)


def image_size(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, decoded bytes per pixel) read from the file header, or None if not recognised.

    Bytes per pixel are what OpenCV's IMREAD_UNCHANGED makes of the file (palette and gray +
    alpha PNGs come out as BGRA, 16-bit samples stay 16-bit); where the header leaves it open,
    the largest it can be.
    """
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            width, height, depth, color = struct.unpack(">IIBB", data[16:26])
            return width, height, (2 if depth == 16 else 1) * {0: 1, 2: 3}.get(color, 4)
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return (*struct.unpack("<HH", data[6:10]), 4)
        if data[:2] == b"BM":
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height), 4
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            size = _webp_size(data)
            return None if size is None else (*size, 4)
        if data[:4] in (b"II*\0", b"MM\0*"):
            return _tiff_size(data)
        match = re.match(rb"P([1-6])(?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)", data[:512])
        if match:
            return int(match.group(2)), int(match.group(3)), 2 * (3 if match.group(1) in b"36" else 1)
    except struct.error:
        return None
    return None


def decode(data: bytes, label: str, max_pixels: int | None = None) -> np.ndarray:
    """Decode image bytes (any OpenCV format) into uint8 gray/BGR/BGRA, within the pixel and byte budget, turned
    as its EXIF orientation says (as a browser shows it)."""
    max_pixels = pixel_budget() if max_pixels is None else max_pixels
    if not data:
        raise UserError(f"{label}: empty file")
    size = image_size(data)
    if size is None:
        raise UserError(f"{label}: not an image this tool reads (PNG, JPEG, GIF, BMP, WebP, TIFF, PNM)")
    width, height, per_pixel = size
    if width * height > max_pixels:
        raise TooManyPixels(f"{label}: {width}x{height} is {_pixels(width * height)}, over the {_pixels(max_pixels)} "
                            f"limit; resize it or raise --max-pixels")
    decoded, max_bytes = width * height * per_pixel, BYTES_PER_BUDGET_PIXEL * max_pixels
    if decoded > max_bytes:
        raise TooManyPixels(f"{label}: {width}x{height} at {per_pixel} bytes a pixel decodes to {decoded / 1e6:.0f} MB, "
                            f"over the {max_bytes / 1e6:.0f} MB limit; save it as 8-bit or smaller, or raise --max-pixels")
    scans = data.count(JPEG_SCAN) if data[:2] == b"\xff\xd8" else 0  # in the coded data FF is followed by 00
    if scans > MAX_JPEG_SCANS:
        raise UserError(f"{label}: a JPEG of {scans:,} scans (a progressive photo has about 10), over the "
                        f"{MAX_JPEG_SCANS} this tool decodes; save it again as a baseline JPEG or a PNG")
    cut_jpeg = data[:2] == b"\xff\xd8" and _jpeg_truncated(data)
    image, complaint = None, ""
    if not cut_jpeg:
        with native_stderr.captured(replay_on_error=False) as decoder:  # libjpeg and libpng print to fd 2
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        complaint = decoder.text.strip().splitlines()[0] if decoder.text.strip() else ""
    if image is None or image.size == 0:
        raise UserError(f"{label}: the image data is corrupt or truncated" + (f" ({complaint})" if complaint else ""))
    if complaint:
        print(f"warning: {label}: {complaint}; the digits read may be wrong", file=sys.stderr)
    return orientation.upright(as_uint8(image, label), orientation.exif_orientation(data))


def as_uint8(image: np.ndarray, label: str = "image") -> np.ndarray:
    """A gray, BGR or BGRA image array of any pixel type as uint8: uint16 keeps its top byte, floats in 0-1
    or 0-255 are scaled to 0-255 (others and other integers are stretched from their range), bool is 0/255;
    pixels that are NaN or infinite become the median of the rest. Anything else is a one-line error."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)) or image.size == 0:
        raise UserError(f"{label}: shape {image.shape} is not an image; give (H, W) gray, (H, W, 3) BGR or "
                        f"(H, W, 4) BGRA")
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.right_shift(image, 8).astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)):
        raise UserError(f"{label}: pixels of type {image.dtype} are not an image; give uint8, uint16 or floats "
                        f"in 0-1 or 0-255")
    image = image.astype(np.float32)
    finite = np.isfinite(image)
    if not finite.all():
        if not finite.any():
            raise UserError(f"{label}: no pixel has a finite value")
        image[~finite] = np.median(image[finite])
    low, high = float(image.min()), float(image.max())
    if low >= 0 and high <= 1:
        image *= 255
    elif low < 0 or high > 255:
        image = (image - low) * (255 / (high - low) if high > low else 0)
    return np.rint(image).astype(np.uint8)


def _pixels(count: int) -> str:
    return f"{count / 1e6:.0f} MP" if count >= 1_000_000 else f"{count:,} pixels"


def read(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file; every problem is a one-line UserError naming the file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path}: {size >> 20} MiB is too large for an image of digits (limit {MAX_FILE_BYTES >> 20} MiB)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from e
    return decode(data, str(path), max_pixels)


@dataclass
class FileList:
    """The image files found in the paths given, and what was passed over in the folders among them."""

    files: list[Path] = field(default_factory=list)
    not_images: list[Path] = field(default_factory=list)  # files in a folder whose suffix is no image's
    subfolders: list[Path] = field(default_factory=list)  # folders inside a folder, not read without recursive

    def skipped(self) -> str:
        """What was passed over, in one line for stderr ('' if nothing)."""
        parts = []
        if self.not_images:
            names = ", ".join(p.name for p in self.not_images[:3]) + (", ..." if len(self.not_images) > 3 else "")
            what = "1 file that is not an image" if len(self.not_images) == 1 else \
                f"{len(self.not_images)} files that are not images"
            parts.append(f"{what} ({names})")
        if self.subfolders:
            parts.append(f"{len(self.subfolders)} subfolder{'s' * (len(self.subfolders) > 1)} (--recursive reads them)")
        return "skipped " + " and ".join(parts) if parts else ""


def image_files(paths: list[Path], recursive: bool = False) -> FileList:
    """Files as given, and the image files (by suffix, sorted) inside any folder given (and in its
    subfolders, with `recursive`; symlinked folders are not followed, so a loop cannot trap the walk)."""
    found = FileList()
    for path in paths:
        if path.is_dir():
            _folder(path, recursive, found)
        else:
            found.files.append(path)
    return found


def _folder(folder: Path, recursive: bool, found: FileList) -> None:
    entries = sorted(folder.iterdir())
    for entry in entries:
        if entry.is_file():
            (found.files if entry.suffix.lower() in IMAGE_SUFFIXES else found.not_images).append(entry)
    for entry in entries:
        if entry.is_dir():
            if recursive and not entry.is_symlink():
                _folder(entry, recursive, found)
            elif not recursive:
                found.subfolders.append(entry)
