"""Printed characters and scribbles as the harness sees them: 28x28 crops from `find_digits`.

The digit gate (edgedigits/builds/gate.py) learns from these what is not a digit. Each glyph is drawn as
dark ink on a light page in a font, at a random size, weight, slant and rotation, and then goes
through the harness's own `find_digits`, so a crop is exactly what the digit model would be given.
Fonts: the TrueType fonts matplotlib ships (DejaVu, STIX, Computer Modern) and OpenCV's Hershey
stroke fonts; `HELD_OUT_HERSHEY` and any other system fonts are kept for measuring the gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware_harness.preprocess import find_digits

# Letters and signs that are not digits. Left out: those a printed digit is drawn as in some font or hand
# (O o D Q as 0, I l i j J | as 1, q as 9, / \ ( ) [ ]), which would teach the gate to refuse digits.
# S s Z z G g b are in: printed, they differ from a 5, 2, 6 or 9, which MNIST teaches as handwritten.
NOT_DIGITS = ("ACEFHKLMNPRTUVWXYaBcdefhkmnprtuvwxy"
              "SsZzGgb"
              "+=%#@&*?$<>{}^~"
              "αβγδλμπσφψωΓΔΘΛΞΠΣΦΨΩ")
NOT_DIGIT_LETTERS = "".join(c for c in NOT_DIGITS if c.isascii() and c.isalpha())
DIGITS = "0123456789"
TRAIN_HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN,
                 cv2.FONT_HERSHEY_COMPLEX)
HELD_OUT_HERSHEY = (cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL)
HERSHEY_NAMES = {getattr(cv2, f"FONT_HERSHEY_{n}"): f"Hershey{n.title().replace('_', '')}" for n in (
    "SIMPLEX", "PLAIN", "DUPLEX", "COMPLEX", "TRIPLEX", "COMPLEX_SMALL", "SCRIPT_SIMPLEX", "SCRIPT_COMPLEX")}
COMPUTER_MODERN = ("cmr10", "cmss10", "cmtt10", "cmb10")  # matplotlib's other cm files are symbol fonts
PAGE, INK = 235, 30


@dataclass(frozen=True)
class Font:
    """A TrueType file or a Hershey font number, and whether it has Greek letters."""

    source: str | int
    greek: bool

    @property
    def name(self) -> str:
        return Path(self.source).stem if isinstance(self.source, str) else HERSHEY_NAMES[self.source]


def training_fonts() -> list[Font]:
    """matplotlib's TrueType fonts (the `train` extra installs them) and the training Hershey fonts."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    files = sorted(p for p in folder.glob("*.ttf") if "Display" not in p.stem
                   and (p.stem.startswith(("DejaVuSans", "DejaVuSerif", "STIXGeneral")) or p.stem in COMPUTER_MODERN))
    return ([Font(str(p), greek=not p.stem.startswith("cm")) for p in files]
            + [Font(h, greek=False) for h in TRAIN_HERSHEY])


def draw(text: str, font: Font, rng: np.random.Generator, *, max_stroke: int = 2, low_res: float = 0.3,
         tracking: float = 1.0) -> np.ndarray:
    """A character (or a word) on a page: random size, weight (up to `max_stroke` steps bolder), slant and
    rotation, drawn at a low resolution and enlarged with probability `low_res`; each character `tracking`
    of its advance after the one before (under 1: closer than the font sets them, so that they touch)."""
    size = int(rng.integers(40, 90))
    if isinstance(font.source, int):
        scale = size / 22.0
        thickness = int(rng.integers(1, 4)) * max(1, size // 30)
        advances = [cv2.getTextSize(c, font.source, scale, thickness)[0][0] * tracking for c in text]
        (w, h), base = cv2.getTextSize(text, font.source, scale, thickness)
        page = np.full((h + base + 2 * size, max(w, round(sum(advances))) + 2 * size), PAGE, np.uint8)
        for x, part in _placed(text, advances, tracking):
            cv2.putText(page, part, (size + x, size + h), font.source, scale, INK, thickness, cv2.LINE_AA)
    else:
        from PIL import Image, ImageDraw, ImageFont

        face = ImageFont.truetype(font.source, size)
        stroke = int(rng.integers(0, max_stroke + 1)) * max(1, size // 40)
        left, top, right, bottom = face.getbbox(text, stroke_width=stroke)
        image = Image.new("L", (right - left + 2 * size, bottom - top + 2 * size), PAGE)
        pen = ImageDraw.Draw(image)
        for x, part in _placed(text, [face.getlength(c) * tracking for c in text], tracking):
            pen.text((size - left + x, size - top), part, font=face, fill=INK, stroke_width=stroke, stroke_fill=INK)
        page = np.asarray(image)
    page = _slant(page, rng)
    if rng.random() < low_res:
        h, w = page.shape
        factor = rng.uniform(7, 16) / size
        small = cv2.resize(page, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
        page = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return page


def _placed(text: str, advances: list[float], tracking: float) -> list[tuple[int, str]]:
    """Where each part of `text` is drawn: the whole at 0 as the font sets it, or character by character."""
    if tracking == 1.0:
        return [(0, text)]
    return [(round(sum(advances[:k])), c) for k, c in enumerate(text)]


def _slant(page: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = page.shape
    angle = np.deg2rad(rng.uniform(-12, 12))
    shear = rng.uniform(-0.3, 0.3)
    matrix = np.array([[np.cos(angle), -np.sin(angle) + shear, 0], [np.sin(angle), np.cos(angle), 0]])
    matrix[:, 2] = np.array([w / 2, h / 2]) - matrix[:, :2] @ np.array([w / 2, h / 2])
    return cv2.warpAffine(page, matrix, (w, h), borderValue=PAGE)


def scribble(rng: np.random.Generator) -> np.ndarray:
    """A mark no digit looks like: a zigzag of three to six turns or a round-ish filled blob. (A random
    curve may well be a 1, a 2 or a 7.)"""
    page = np.full((160, 160), PAGE, np.uint8)
    if rng.random() < 0.5:
        turns = int(rng.integers(4, 8))
        points = np.stack([np.linspace(0, rng.uniform(40, 100), turns),
                           np.where(np.arange(turns) % 2, rng.uniform(30, 70), 0)], axis=1)
        points = points @ _rotation(rng.uniform(0, 2 * np.pi))
        cv2.polylines(page, [(points - points.mean(axis=0) + 80).astype(np.int32)], False, INK,
                      int(rng.integers(3, 10)), cv2.LINE_AA)
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))  # round-ish: a sliver is a 1
        points = rng.uniform(20, 35, (len(angles), 1)) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        cv2.fillPoly(page, [(points + 80).astype(np.int32)], INK, cv2.LINE_AA)
    return page


def empty_box(rng: np.random.Generator) -> np.ndarray:
    """A form's empty answer box: a printed rectangle, thin lines, tilted a little. (Found on its
    own, the harness frames it as a thick-stroked ring, which a digit model takes for a 0.)"""
    page = np.full((200, 200), PAGE, np.uint8)
    h = int(rng.integers(40, 130))
    w = int(h * rng.uniform(0.6, 1.4))  # as forms draw them: no narrower (a ring that narrow is a 0's shape)
    cv2.rectangle(page, (100 - w // 2, 100 - h // 2), (100 + w // 2, 100 + h // 2), INK, int(rng.integers(1, 5)),
                  cv2.LINE_AA)
    return cv2.warpAffine(page, cv2.getRotationMatrix2D((100, 100), rng.uniform(-8, 8), 1.0), (200, 200),
                          borderValue=PAGE)


def _rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])


def redrawn(images: np.ndarray, seed: int) -> np.ndarray:
    """MNIST-style crops (white on black) drawn again as dark ink on a page at a random size, some of them
    at low resolution, and found again: digits as the harness sees them in photos, not only as MNIST has them."""
    rng = np.random.default_rng(seed)
    return crops([_page_of(image, rng) for image in images])


def _page_of(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = int(rng.integers(24, 96))
    if rng.random() < 0.3:  # a small or distant digit: a few pixels tall, then enlarged
        low = int(rng.integers(7, 16))
        image = cv2.resize(cv2.resize(image, (low, low), interpolation=cv2.INTER_AREA), (size, size),
                           interpolation=cv2.INTER_CUBIC)
    else:
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    page = np.full((size * 2, size * 2), PAGE, np.uint8)
    page[size // 2:size // 2 + size, size // 2:size // 2 + size] = (PAGE - image.astype(np.float32) / 255 * (PAGE - INK)
                                                                    ).clip(0, 255).astype(np.uint8)
    return page


def crops(pages: list[np.ndarray]) -> np.ndarray:
    """The one digit-sized mark `find_digits` finds on each page (pages where it finds other than one are skipped)."""
    found = [f[0].image for f in map(find_digits, pages) if len(f) == 1]
    return np.stack(found) if found else np.zeros((0, 28, 28), np.uint8)


def rendered(chars: str, fonts: list[Font], n: int, seed: int) -> np.ndarray:
    """`n` crops of characters from `chars` in `fonts` (Greek only in fonts that have it)."""
    rng = np.random.default_rng(seed)
    pages = []
    for _ in range(n):
        font = fonts[rng.integers(len(fonts))]
        usable = chars if font.greek else "".join(c for c in chars if c.isascii())
        pages.append(draw(usable[rng.integers(len(usable))], font, rng))
    return crops(pages)


def joined(chars: str, fonts: list[Font], n: int, seed: int) -> np.ndarray:
    """Crops of two or three characters from `chars` set so close that they touch and `find_digits` takes them
    for one mark (pages where it finds other than one are skipped, so there are fewer than `n`)."""
    rng = np.random.default_rng(seed)
    pages = []
    for _ in range(n):
        font = fonts[rng.integers(len(fonts))]
        text = "".join(rng.choice(list(chars), int(rng.integers(2, 4))))
        pages.append(draw(text, font, rng, tracking=float(rng.uniform(0.55, 0.9))))
    return crops(pages)


def scribbles(n: int, seed: int, mark: Callable[[np.random.Generator], np.ndarray] = scribble) -> np.ndarray:
    """`n` crops of marks drawn by `mark` (`scribble`, `empty_box`)."""
    rng = np.random.default_rng(seed)
    return crops([mark(rng) for _ in range(n)])
