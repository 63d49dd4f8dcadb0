"""Read image files safely: dimensions from the header first, a pixel budget, one-line errors.

OpenCV decodes a 30000x30000 PNG into 2.7 GB without complaint; reading the size from
the header (PNG, JPEG, GIF, BMP, WebP, PNM, TIFF) lets a file over the budget be refused
before it is decoded. Formats whose header is not understood here are not decoded.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import cv2
import numpy as np

from firmware_harness.errors import UserError

MAX_PIXELS = int(os.environ.get("EDGEDIGITS_MAX_PIXELS", 40_000_000))  # a 40-MP photo; --max-pixels overrides
MAX_FILE_BYTES = 200 << 20


class TooManyPixels(UserError):
    """The image is over the pixel budget (refused before decoding)."""


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm"}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
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
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    return None


def _jpeg_truncated(data: bytes) -> bool:
    """No end-of-image marker after the last scan: cut off (some libjpeg builds decode it half gray)."""
    scan = data.rfind(b"\xff\xda")
    return scan < 0 or data.find(b"\xff\xd9", scan) < 0


def _webp_size(data: bytes) -> tuple[int, int] | None:
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


def _tiff_size(data: bytes) -> tuple[int, int] | None:
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
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the file header, or None if the format is not recognised."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"BM":
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:4] in (b"II*\0", b"MM\0*"):
            return _tiff_size(data)
        match = re.match(rb"P[1-6](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)", data[:512])
        if match:
            return int(match.group(1)), int(match.group(2))
    except struct.error:
        return None
    return None


def decode(data: bytes, label: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes (any OpenCV format) into uint8 gray/BGR/BGRA, within the pixel budget."""
    if not data:
        raise UserError(f"{label}: empty file")
    size = image_size(data)
    if size is None:
        raise UserError(f"{label}: not an image this tool reads (PNG, JPEG, GIF, BMP, WebP, TIFF, PNM)")
    width, height = size
    if width * height > max_pixels:
        raise TooManyPixels(f"{label}: {width}x{height} is {width * height / 1e6:.0f} MP, over the {max_pixels / 1e6:.0f} MP "
                        f"limit; resize it or raise --max-pixels")
    cut_jpeg = data[:2] == b"\xff\xd8" and _jpeg_truncated(data)
    image = None if cut_jpeg else cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise UserError(f"{label}: the image data is corrupt or truncated")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return image


def read(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
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


def image_files(paths: list[Path]) -> list[Path]:
    """Files as given, and the image files (by suffix, sorted) inside any folder given."""
    out = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(path)
    return out
