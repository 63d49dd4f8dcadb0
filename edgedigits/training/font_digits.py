"""Digits in handwriting fonts, as the harness sees them: a bank of 28x28 crops that training mixes in.

MNIST's writers rarely make a European 1 (a long flag and a foot), a crossed 7 or an open 4; handwriting
fonts do, and `styled` adds the flag, the foot and the bar to any digit image. Each font draws every digit
at random sizes, weights, slants and resolutions (`glyphs.draw`), some 1s and 7s get the strokes `styled`
adds, and each page goes through the harness's own `find_digits`, so a crop is what the model is given.

The fonts are npm's `@fontsource/*` packages (SIL Open Font License 1.1): `benchmarks/font_digits.py`
fetches them and writes the bank, `font_digits.npz`, with its card, `font_digits.json` (fonts, versions,
licence, sha256). Only rendered crops are shipped, never the fonts. `HELD_OUT` fonts are in the bank for
measuring only: `load()` leaves them out unless asked.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edgedigits.training import glyphs
from firmware_harness.preprocess import find_digits, stroke_width

FONTSOURCE_VERSION = "5.3.0"
TRAIN = ("caveat", "indie-flower", "kalam", "patrick-hand", "shadows-into-light", "reenie-beanie", "gochi-hand",
         "nanum-pen-script", "homemade-apple", "just-another-hand", "gloria-hallelujah", "architects-daughter",
         "covered-by-your-grace", "rock-salt", "nothing-you-could-do", "coming-soon")
HELD_OUT = ("la-belle-aurore", "schoolbell", "handlee", "permanent-marker")
BANK = Path(__file__).with_name("font_digits.npz")
CARD = BANK.with_suffix(".json")
STYLED_SHARE = 0.4  # of the 1s and 7s drawn: the share given a flag and foot, or a bar
LOW_RES = 0.1  # of the pages: the share drawn a few pixels tall and enlarged (a small or distant digit)
MAX_STROKE = 5.5  # px at 28x28: MNIST's 99th percentile; bolder crops (loops filled in, blobs) are left out


def font_file(folder: Path, name: str) -> Path:
    """The Latin regular face inside an unpacked @fontsource/<name> package."""
    return folder / name / "package" / "files" / f"{name}-latin-400-normal.woff"


def styled(image: np.ndarray, digit: int, rng: np.random.Generator) -> np.ndarray:
    """A bright-ink digit image with strokes MNIST rarely has: a 1 gets a flag (and sometimes a foot), a 7
    a bar across its stem. Other digits are returned as they are."""
    ink = image > 0.3 * image.max() if image.any() else image > 0
    if digit not in (1, 7) or not ink.any():
        return image
    ys, xs = np.nonzero(ink)
    top, bottom = ys.min(), ys.max()
    height = bottom - top + 1
    width = max(1, round(0.7 * stroke_width(ink.astype(np.uint8) * 255)))  # cv2.line with LINE_AA draws wider
    out = image.copy()
    value = int(image.max())

    def row_centre(y: int) -> int:
        return int(round(xs[ys == y].mean())) if (ys == y).any() else int(round(xs.mean()))

    def line(p: tuple[float, float], q: tuple[float, float]) -> None:
        cv2.line(out, (round(p[0]), round(p[1])), (round(q[0]), round(q[1])), value, width, cv2.LINE_AA)

    if digit == 1:
        x = row_centre(top)
        line((x, top), (x - rng.uniform(0.25, 0.45) * height, top + rng.uniform(0.2, 0.4) * height))
        if rng.random() < 0.5:
            x, half = row_centre(bottom), rng.uniform(0.2, 0.3) * height
            line((x - half, bottom), (x + half, bottom))
    else:
        y = round(top + rng.uniform(0.45, 0.6) * height)
        x, half = row_centre(y), rng.uniform(0.18, 0.28) * height
        line((x - half, y), (x + half, y))
    return out


def render(files: dict[str, Path], per_digit: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`per_digit` pages of each digit in each font, found again: crops (N, 28, 28), labels, font indices
    (into the order of `files`). Pages where `find_digits` finds other than one mark, and crops whose
    strokes are bolder than MNIST's (`MAX_STROKE`), are left out."""
    rng = np.random.default_rng(seed)
    images, labels, fonts = [], [], []
    for index, path in enumerate(files.values()):
        font = glyphs.Font(str(path), greek=False)
        for digit in range(10):
            for _ in range(per_digit):
                page = glyphs.draw(str(digit), font, rng, max_stroke=0, low_res=LOW_RES)
                if rng.random() < STYLED_SHARE:
                    page = 255 - styled(255 - page, digit, rng)
                found = find_digits(page)
                if len(found) == 1 and stroke_width(np.where(found[0].image > 127, 255, 0).astype(np.uint8)) <= MAX_STROKE:
                    images.append(found[0].image)
                    labels.append(digit)
                    fonts.append(index)
    return np.stack(images), np.array(labels, np.uint8), np.array(fonts, np.uint8)


def load(held_out: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The bank's crops and labels: the training fonts, or with `held_out` the fonts kept for measuring."""
    with np.load(BANK) as bank:
        x, y, font = bank["x"], bank["y"], bank["font"]
    names = json.loads(CARD.read_text())["fonts"]
    wanted = [i for i, f in enumerate(names) if (f["name"] in HELD_OUT) == held_out]
    keep = np.isin(font, wanted)
    return x[keep], y[keep]


def bank_sha256() -> str:
    """The bank's sha256, as its card records it: part of a recipe that trains on it."""
    return json.loads(CARD.read_text())["sha256"]
