"""Synthetic lines of handwritten digits for the line reader: what a check amount, a zip code or a meter looks like.

A line is 1-10 digits (MNIST's training split, or any ink-bright digit images), each scaled, slanted and set on a
drifting baseline, with gaps from wide to overlapping and strokes joined by ligatures; marks that are not digits
(`. , - / = $`, a dash after the amount), underlines and ruled lines, guilloche or textured paper, uneven light,
blur and JPEG. It is drawn as dark ink on paper, then goes through the harness's own ink and strip steps
(`firmware_harness.line_reader.to_strip`), so the model learns from what the device gives it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from edgedigits.training import scenes
from firmware_harness import line_reader, preprocess

MAX_DIGITS = 10
OVERLAP = 0.22  # of the digit height: the most that touching digits' ink boxes overlap (more is not legible)
SEPARATORS = (".", ",", "-", "/", "=")  # between digits; "$" goes before the amount, a dash after it


@dataclass(frozen=True)
class Style:
    """How a line is written and photographed: the ranges its random draws come from."""

    gap: tuple[float, float] = (-0.1, 0.45)  # between the digits' ink, of the digit height; below zero they overlap
    touching: float = 0.35  # share of gaps drawn as touching or overlapping (by up to OVERLAP), whatever the range
    ligature: float = 0.25  # share of gaps joined by a stroke
    separator: float = 0.12  # share of gaps holding a mark that is not a digit
    dollar: float = 0.1
    trailing: float = 0.2  # a dash, "=" or "/-" after the amount
    underline: float = 0.2
    ruled: float = 0.25  # printed rules through or under the digits
    guilloche: float = 0.2  # a check's security pattern
    slant: float = 0.45  # shear, |dx/dy| at most
    faint: float = 0.2  # share of lines in pale ink


STYLES = {  # the catalogue: "default" trains the line reader; "touching" is digits alone, half of them touching
    "default": Style(),
    "touching": Style(touching=0.5, ligature=0.15, separator=0.0, dollar=0.0, trailing=0.0, underline=0.0, ruled=0.0,
                      guilloche=0.0, faint=0.1),
}
DEFAULT_STYLE = STYLES["default"]


def _slanted(alpha: np.ndarray, shear: float) -> np.ndarray:
    h, w = alpha.shape
    pad = int(np.ceil(abs(shear) * h))
    matrix = np.float32([[1, -shear, pad if shear > 0 else 0], [0, 1, 0]])
    return cv2.warpAffine(alpha, matrix, (w + pad, h), flags=cv2.INTER_LINEAR)


def _ink_columns(alpha: np.ndarray) -> np.ndarray:
    """The alpha without the empty columns either side of its ink (a slant pads one side)."""
    cols = np.nonzero(alpha.max(0) > 0.1)[0]
    return alpha[:, cols[0]:cols[-1] + 1] if len(cols) else alpha


def _stroke(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thinner or bolder strokes, now and then."""
    roll = rng.random()
    if roll < 0.1 and alpha.shape[0] >= 32:
        return cv2.erode(alpha, np.ones((2, 2), np.uint8))
    if roll < 0.45:
        return cv2.dilate(alpha, np.ones((2 + int(rng.integers(0, 2)),) * 2, np.uint8))
    return alpha


def _mark(kind: str, height: int, thickness: int, rng: np.random.Generator) -> np.ndarray:
    """A mark that is not a digit, as alpha, drawn in a box as tall as the digits and half again below them."""
    w = max(3, int(height * rng.uniform(0.25, 0.5)))
    canvas = np.zeros((height + height // 2, w if kind in ".," else max(w, int(height * rng.uniform(0.35, 0.8)))),
                      np.float32)
    ch, cw = canvas.shape
    if kind == ".":
        cv2.circle(canvas, (cw // 2, height - thickness), max(1, thickness), 1.0, -1)
    elif kind == ",":
        cv2.line(canvas, (cw // 2, height - thickness), (cw // 2 - thickness, height + height // 4), 1.0, thickness)
    elif kind == "-":
        y = int(height * rng.uniform(0.45, 0.65))
        cv2.line(canvas, (0, y), (cw - 1, y + int(rng.integers(-2, 3))), 1.0, thickness)
    elif kind == "=":
        y = int(height * rng.uniform(0.4, 0.5))
        gap = max(thickness + 2, height // 5)
        cv2.line(canvas, (0, y), (cw - 1, y), 1.0, thickness)
        cv2.line(canvas, (0, y + gap), (cw - 1, y + gap), 1.0, thickness)
    elif kind == "/":
        cv2.line(canvas, (cw - 1, 0), (0, height - 1), 1.0, thickness)
    elif kind == "$":
        letter = np.zeros(canvas.shape, np.uint8)
        cv2.putText(letter, "S", (0, height - 2), cv2.FONT_HERSHEY_SIMPLEX, height / 30, 255, thickness, cv2.LINE_AA)
        canvas = letter.astype(np.float32) / 255
        cv2.line(canvas, (cw // 2, 0), (cw // 2, height + 2), 1.0, max(1, thickness - 1))
    return canvas


def _guilloche(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Fine interlaced waves, the security print of a check, as a darkening 0-1."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    pattern = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(2, 5))):
        period, amp, phase = rng.uniform(6, 20), rng.uniform(2, height / 3), rng.uniform(0, 2 * np.pi)
        wave = np.sin(xx / rng.uniform(8, 40) + phase) * amp
        pattern = np.maximum(pattern, (np.cos((yy + wave) * 2 * np.pi / period) > 0.85).astype(np.float32))
    return pattern * rng.uniform(0.06, 0.25)


def render(digits: list[np.ndarray], rng: np.random.Generator, style: Style = DEFAULT_STYLE) -> np.ndarray:
    """The digits written in a row as dark ink on paper, a float gray image with a margin round the line."""
    height = int(rng.integers(24, 56))
    thickness = max(1, int(round(height * rng.uniform(0.06, 0.12))))
    shear = rng.uniform(-style.slant, style.slant) if rng.random() < 0.7 else 0.0
    width_factor = rng.uniform(0.8, 1.2)
    pieces: list[tuple[np.ndarray, int, int]] = []  # alpha, x, y
    x, baseline = 0, 0.0
    if rng.random() < style.dollar:
        mark = _mark("$", height, thickness, rng)
        pieces.append((mark, x, -height // 8))
        x += mark.shape[1] + int(height * rng.uniform(0.05, 0.3))
    previous_right = None
    joints: list[tuple[tuple[int, int], tuple[int, int]]] = []  # ligatures, from one digit's foot to the next
    for i, digit in enumerate(digits):
        h = max(8, int(height * rng.uniform(0.85, 1.15)))
        alpha = scenes.digit_alpha(digit, h)
        alpha = cv2.resize(alpha, (max(2, int(alpha.shape[1] * width_factor * rng.uniform(0.9, 1.1))), h))
        alpha = _ink_columns(_stroke(_slanted(alpha, shear + rng.uniform(-0.08, 0.08)), rng))
        baseline = float(np.clip(baseline + rng.normal(0, 0.05 * height), -0.2 * height, 0.2 * height))
        if i:
            if rng.random() < style.separator:
                mark = _mark(str(rng.choice(SEPARATORS)), height, thickness, rng)
                x += int(height * rng.uniform(0.0, 0.15))
                pieces.append((mark, x, int(baseline)))
                x += mark.shape[1] + int(height * rng.uniform(0.0, 0.15))
            elif rng.random() < style.touching:
                x -= int(height * rng.uniform(0.0, OVERLAP))
            else:
                x += int(height * rng.uniform(*style.gap))
        y = int(baseline + height - h)
        pieces.append((alpha, max(x, 0), y))
        if previous_right is not None and rng.random() < style.ligature:
            joints.append((previous_right, (max(x, 0) + alpha.shape[1] // 4, y + int(h * rng.uniform(0.3, 0.9)))))
        previous_right = (max(x, 0) + int(alpha.shape[1] * 0.85), y + int(h * rng.uniform(0.5, 0.95)))
        x = max(x, 0) + alpha.shape[1]
    if rng.random() < style.trailing:
        kind = str(rng.choice(["-", "=", "/"]))
        mark = _mark(kind, height, thickness, rng)
        x += int(height * rng.uniform(0.05, 0.3))
        pieces.append((mark, x, int(baseline)))
        x += mark.shape[1]
    top = min(p[2] for p in pieces)
    bottom = max(p[2] + p[0].shape[0] for p in pieces)
    margin_y, margin_x = int(height * rng.uniform(0.3, 0.8)), int(height * rng.uniform(0.2, 0.8))
    canvas_h, canvas_w = bottom - top + 2 * margin_y, x + 2 * margin_x + 2
    layer = np.zeros((canvas_h, canvas_w), np.float32)
    for alpha, px, py in pieces:
        y0, x0 = py - top + margin_y, px + margin_x
        h, w = alpha.shape
        h, w = min(h, canvas_h - y0), min(w, canvas_w - x0)
        if h > 0 and w > 0:
            layer[y0:y0 + h, x0:x0 + w] = np.maximum(layer[y0:y0 + h, x0:x0 + w], alpha[:h, :w])
    for (ax, ay), (bx, by) in joints:
        cv2.line(layer, (ax + margin_x, ay - top + margin_y), (bx + margin_x, by - top + margin_y), 1.0, thickness)
    if rng.random() < style.underline:
        y = min(canvas_h - 1, int(margin_y + bottom - top + rng.uniform(0, 0.3) * margin_y))
        cv2.line(layer, (int(margin_x * rng.uniform(0, 0.8)), y), (canvas_w - int(margin_x * rng.uniform(0, 0.8)),
                 y + int(rng.integers(-3, 4))), 1.0, thickness)
    paper = scenes.paper(canvas_h, canvas_w, rng)
    printed = np.zeros_like(layer)
    if rng.random() < style.ruled:
        y = int(margin_y + (bottom - top) * rng.uniform(0.5, 1.1))
        for k in range(-2, 3):
            yy = y + int(k * height * rng.uniform(1.2, 1.6))
            if 0 <= yy < canvas_h:
                cv2.line(printed, (0, yy), (canvas_w, yy + int(rng.integers(-2, 3))), 1.0, int(rng.integers(1, 3)))
        printed *= rng.uniform(0.2, 0.5)
    if rng.random() < style.guilloche:
        printed = np.maximum(printed, _guilloche(canvas_h, canvas_w, rng))
    paper = paper * (1 - printed)
    ink = rng.uniform(90, 170) if rng.random() < style.faint else rng.uniform(5, 80)
    ink = min(ink, float(paper.mean()) - 30)
    return paper * (1 - layer) + ink * layer


def strip(gray: np.ndarray) -> np.ndarray:
    """A photo of a line (gray, dark ink; floats are clipped to 0-255) as the harness gives it to the line model:
    ink bright, light evened out, stretched into its strip."""
    image = np.clip(gray, 0, 255).astype(np.uint8)
    found = line_reader.to_strip(preprocess.flatten_light(preprocess.bright_ink(image)))
    if found is None:
        return np.zeros((line_reader.STRIP_HEIGHT, line_reader.STRIP_WIDTH), np.uint8)
    return found.pixels


def photos(x: np.ndarray, y: np.ndarray, count: int, seed: int, style: Style = DEFAULT_STYLE,
           lengths: tuple[int, int] = (1, MAX_DIGITS)) -> Iterator[tuple[np.ndarray, list[int]]]:
    """`count` photos of lines (uint8 gray, dark ink) written with digit images `x` (ink bright, any size) labelled
    `y`, and each line's digits."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        k = int(rng.integers(lengths[0], lengths[1] + 1))
        pick = rng.integers(0, len(x), k)
        photo = scenes.photographed(render([x[i] for i in pick], rng, style), rng, blur=rng.uniform(0, 1.2),
                                    noise=rng.uniform(1, 6))
        yield cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), [int(v) for v in y[pick]]


def make(x: np.ndarray, y: np.ndarray, count: int, seed: int, style: Style = DEFAULT_STYLE,
         lengths: tuple[int, int] = (1, MAX_DIGITS)) -> tuple[np.ndarray, np.ndarray]:
    """`count` strips of `photos`: (count, H, W) uint8 and (count, MAX_DIGITS) int32 labels padded with -1."""
    strips = np.zeros((count, line_reader.STRIP_HEIGHT, line_reader.STRIP_WIDTH), np.uint8)
    labels = np.full((count, MAX_DIGITS), -1, np.int32)
    for n, (photo, digits) in enumerate(photos(x, y, count, seed, style, lengths)):
        strips[n] = strip(photo)
        labels[n, :len(digits)] = digits
    return strips, labels
