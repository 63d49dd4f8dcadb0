"""A line of digits read as a whole: the strip the line model takes, and its CTC output decoded.

The line model (edgedigits/training/line_model.py) reads a STRIP_HEIGHT x STRIP_WIDTH strip of ink-bright
pixels and gives, for every COLUMN pixels of it, scores for the ten digits and a blank (CTC). Touching and
overlapping digits need no cutting: the model sees the whole line. Numpy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from firmware_harness import preprocess

STRIP_HEIGHT, STRIP_WIDTH = 32, 256
INK_HEIGHT = 24  # the line's ink is scaled to this many rows, centred (a line too long is scaled to fit the width)
MARGIN = 4  # blank columns left of the ink
COLUMN = 4  # strip pixels per output step
STEPS = STRIP_WIDTH // COLUMN
BLANK = 10  # CTC's blank: the class after the ten digits
INK_LEVEL = 64  # 0-255 after the contrast stretch: brighter is ink for the line's bounding box


@dataclass(frozen=True)
class Strip:
    """A line's strip and how its columns map back to the crop it came from."""

    pixels: np.ndarray  # (STRIP_HEIGHT, STRIP_WIDTH) uint8, ink bright
    scale: float  # strip pixels per crop pixel
    x0: int  # the crop column drawn at strip column MARGIN
    y0: int  # the crop row of the ink's top


@dataclass(frozen=True)
class ReadDigit:
    """One digit of a line: what it is, how sure the model is, and the crop columns it was read at."""

    digit: int
    confidence: float
    x0: int
    x1: int


def to_strip(ink: np.ndarray) -> Strip | None:
    """An ink-bright uint8 gray crop holding one line -> its strip; None if there is no ink in it.

    The contrast is stretched from the crop's 10th percentile (the background, however much ink there is) to
    its 99.5th, so faint ink reads as strongly as dark ink; the ink's bounding box is scaled to INK_HEIGHT rows.
    """
    counts = preprocess.histogram(ink)
    low, high = preprocess.percentile_u8(counts, 10), preprocess.percentile_u8(counts, 99.5)
    if high - low < 1:
        return None
    stretched = np.clip((ink.astype(np.float32) - low) * (255.0 / (high - low)), 0, 255)
    lit = stretched > INK_LEVEL
    rows, cols = np.nonzero(lit.any(1))[0], np.nonzero(lit.any(0))[0]
    if not len(rows):
        return None
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = stretched[y0:y1, x0:x1]
    h, w = crop.shape
    scale = min(INK_HEIGHT / h, (STRIP_WIDTH - 2 * MARGIN) / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    pixels = np.zeros((STRIP_HEIGHT, STRIP_WIDTH), np.uint8)
    top = (STRIP_HEIGHT - size[1]) // 2
    pixels[top:top + size[1], MARGIN:MARGIN + size[0]] = np.clip(small, 0, 255).astype(np.uint8)
    return Strip(pixels, scale, int(x0), int(y0))


def decode(scores: np.ndarray, strip: Strip | None = None) -> list[ReadDigit]:
    """Greedy CTC decoding of the model's (STEPS, 11) scores (logits or log-probabilities).

    A digit is a run of steps whose best class is that digit; repeats are collapsed and blanks dropped. Its
    confidence is the best probability in its run; its columns are the crop's (the strip's if no strip is given).
    """
    z = scores.astype(np.float64)
    probs = np.exp(z - z.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    best = probs.argmax(1)
    runs: list[list] = []
    previous = BLANK
    for t, k in enumerate(best):
        if k != BLANK and k == previous:
            runs[-1][1] = max(runs[-1][1], probs[t, k])
            runs[-1][3] = t
        elif k != BLANK:
            runs.append([int(k), probs[t, k], t, t])
        previous = k
    scale, x0 = (strip.scale, strip.x0) if strip else (1.0, MARGIN)
    def crop_column(column: int) -> int:
        return int(x0 + (column - MARGIN) / scale)

    return [ReadDigit(k, float(p), crop_column(a * COLUMN), crop_column((b + 1) * COLUMN)) for k, p, a, b in runs]
