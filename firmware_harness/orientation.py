"""EXIF orientation: turn a decoded image the way its file says it is to be shown, as browsers do.

Phones store most portrait photos sideways with an Orientation tag (6: turn 90° clockwise) and
every browser and photo viewer shows them upright; OpenCV's IMREAD_UNCHANGED ignores the tag.
The tag is read from the TIFF structure of the file's EXIF block: a JPEG's APP1 segment, a
PNG's eXIf chunk, a WebP's EXIF chunk, or a TIFF file's own first directory.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

ORIENTATION_TAG = 0x0112
EXIF_HEADER = b"Exif\0\0"
MAX_SEGMENTS = 64  # JPEG segments looked through before the image data: the EXIF block comes first


def _tiff_orientation(tiff: bytes) -> int:
    """The Orientation tag of a TIFF structure's first directory; 1 (as stored) if absent or unreadable."""
    if tiff[:2] not in (b"II", b"MM") or len(tiff) < 8:
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    if ifd + 2 > len(tiff):
        return 1
    count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
    for k in range(min(count, (len(tiff) - ifd - 2) // 12)):
        tag, kind, values, value = struct.unpack(order + "HHIH", tiff[ifd + 2 + 12 * k: ifd + 12 + 12 * k])
        if tag == ORIENTATION_TAG:
            return value if kind == 3 and values == 1 and 1 <= value <= 8 else 1
    return 1


def _jpeg_exif(data: bytes) -> bytes:
    pos = 2
    for _ in range(MAX_SEGMENTS):
        if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] in (0xDA, 0xD9):
            return b""
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if data[pos + 1] == 0xE1 and data[pos + 4:pos + 10] == EXIF_HEADER:
            return data[pos + 10:pos + 2 + length]
        pos += 2 + length
    return b""


def _chunk(data: bytes, pos: int, name: bytes, png: bool) -> bytes:
    """The payload of the first chunk called `name`: PNG chunks are length, name, payload, CRC; RIFF chunks
    name, little-endian length, payload, a pad byte after an odd length."""
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8]) if png else struct.unpack("<4sI", data[pos:pos + 8])[::-1]
        if kind == name:
            return data[pos + 8:pos + 8 + length]
        if kind == b"IDAT":  # the image data: a PNG's eXIf comes before it
            return b""
        pos += 8 + length + (4 if png else length & 1)
    return b""


def exif_orientation(data: bytes) -> int:
    """The EXIF Orientation (1-8) of an encoded image; 1 when the file has none."""
    try:
        if data[:2] == b"\xff\xd8":
            return _tiff_orientation(_jpeg_exif(data))
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return _tiff_orientation(_chunk(data, 8, b"eXIf", png=True))
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            exif = _chunk(data, 12, b"EXIF", png=False)
            return _tiff_orientation(exif[len(EXIF_HEADER):] if exif.startswith(EXIF_HEADER) else exif)
        if data[:4] in (b"II*\0", b"MM\0*"):
            return _tiff_orientation(data)
    except struct.error:
        return 1
    return 1


def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """The image as its Orientation tag says it is shown (TIFF 6.0 / EXIF 2.3: where row 0 and column 0 go)."""
    if orientation == 2:
        return cv2.flip(image, 1)
    if orientation == 3:
        return cv2.rotate(image, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(image, 0)
    if orientation == 5:
        return cv2.transpose(image)
    if orientation == 6:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(image), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image
