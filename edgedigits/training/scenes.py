"""Synthetic camera scenes from MNIST digits, for tests and benchmarks (numpy + OpenCV, no TensorFlow).

Dark ink on paper-like backgrounds with texture, lighting gradients, blur, sensor
noise and JPEG artefacts; single digits in frames of any size, or strings of digits
rotated as a whole. Every scene comes from a seeded generator.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

from firmware_harness import orientation as exif


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # uint8 BGR
    text: str  # the digits left to right


def paper(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A float32 paper background in [0, 255]: base tone, soft texture and a lighting gradient."""
    base = rng.uniform(150, 235)
    texture = cv2.resize(rng.normal(0, 1, (max(height // 16, 2), max(width // 16, 2))).astype(np.float32),
                         (width, height), interpolation=cv2.INTER_CUBIC) * rng.uniform(2, 8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    light = 1.0 - rng.uniform(0.0, 0.45) * ramp  # up to 45 % darker on one side
    return np.clip((base + texture) * light, 0, 255)


def digit_alpha(digit: np.ndarray, height: int) -> np.ndarray:
    """The MNIST digit's ink (0-1), cropped to its bounding box and scaled to `height` pixels."""
    ys, xs = np.nonzero(digit > 20)
    crop = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32) / 255.0
    width = max(1, round(crop.shape[1] * height / crop.shape[0]))
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def photographed(gray: np.ndarray, rng: np.random.Generator, blur: float, noise: float) -> np.ndarray:
    """Camera effects on a float gray image -> uint8 BGR: blur, noise, a colour cast, JPEG."""
    if blur > 0:
        gray = cv2.GaussianBlur(gray, (0, 0), blur)
    gray = gray + rng.normal(0, noise, gray.shape).astype(np.float32)
    cast = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    bgr = np.clip(gray[..., None] * cast, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR) if ok else bgr


def single_digit(digit: np.ndarray, frame: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """One MNIST digit as dark ink on paper; the digit's height is `fraction` of the square frame."""
    canvas = paper(frame, frame, rng)
    alpha = digit_alpha(digit, max(4, round(frame * fraction)))
    h, w = alpha.shape
    if w > frame:
        alpha = cv2.resize(alpha, (frame, max(1, round(h * frame / w))))
        h, w = alpha.shape
    y = int(rng.integers(0, frame - h + 1))
    x = int(rng.integers(0, frame - w + 1))
    ink = rng.uniform(10, 70)
    region = canvas[y:y + h, x:x + w]
    canvas[y:y + h, x:x + w] = region * (1 - alpha) + ink * alpha
    return photographed(canvas, rng, blur=rng.uniform(0, 0.8) * frame / 256, noise=rng.uniform(1, 6))


PAPERS = ("plain", "ruled", "squared", "boxes", "desk")  # what a row of digits is written on; the catalogue


def string_scene(digits: list[np.ndarray], labels: list[int], rng: np.random.Generator,
                 size: tuple[int, int] = (480, 640), max_rotation: float = 8.0, on: str = "plain") -> Scene:
    """A row of digits written on paper, rotated up to ±max_rotation degrees, with uneven light.

    `on` (one of PAPERS): plain paper; notebook paper ruled under the row with a margin line;
    squared paper; a form with a box around each digit (which the digit may touch); or a
    plain sheet photographed on a darker desk, in perspective.
    """
    height, width = size
    digit_h = int(rng.integers(55, 110))
    alphas = [digit_alpha(d, int(digit_h * rng.uniform(0.85, 1.1))) for d in digits]
    gaps = [int(digit_h * rng.uniform(0.15, 0.5)) for _ in alphas]
    row_w = sum(a.shape[1] for a in alphas) + sum(gaps[:-1])
    row_h = max(a.shape[0] for a in alphas) + digit_h // 3
    if row_w > 0.85 * width:  # scale the row down to fit the frame, in one step
        factor = 0.8 * width / row_w
        alphas = [cv2.resize(a, (max(1, int(a.shape[1] * factor)), max(1, int(a.shape[0] * factor)))) for a in alphas]
        gaps = [max(2, int(g * factor)) for g in gaps]
        row_w = sum(a.shape[1] for a in alphas) + sum(gaps[:-1])
        row_h = max(a.shape[0] for a in alphas) + digit_h // 3
    angle = rng.uniform(-max_rotation, max_rotation)
    lift = int(abs(np.sin(np.radians(angle))) * row_w / 2) + row_h // 2 + 4  # keeps the rotated row in frame
    layer = np.zeros((height, width), np.float32)
    x = int(rng.integers(0, width - row_w + 1))
    y_base = int(rng.integers(lift, max(lift + 1, height - lift)))
    boxes = []
    for alpha, gap in zip(alphas, gaps):
        h, w = alpha.shape
        y = int(np.clip(y_base - h // 2 + rng.integers(-digit_h // 10, digit_h // 10 + 1), 0, height - h))
        layer[y:y + h, x:x + w] = np.maximum(layer[y:y + h, x:x + w], alpha)
        boxes.append((x, y, w, h))
        x += w + gap
    rotation = cv2.getRotationMatrix2D((x - row_w / 2 - gaps[-1], y_base), angle, 1.0)  # about the row's centre
    layer = cv2.warpAffine(layer, rotation, (width, height), flags=cv2.INTER_LINEAR)
    canvas = paper(height, width, rng)
    ink = rng.uniform(10, 70)
    if on != "plain":
        canvas = _printed(canvas, on, rng, boxes, digit_h, y_base, rotation)
    canvas = canvas * (1 - layer) + ink * layer
    if on == "desk":
        canvas = on_desk(canvas, rng)
    image = photographed(canvas, rng, blur=rng.uniform(0, 1.5), noise=rng.uniform(1, 8))
    return Scene(image, "".join(str(int(label)) for label in labels))


def _printed(canvas: np.ndarray, on: str, rng: np.random.Generator, boxes: list, digit_h: int, y_base: int,
             rotation: np.ndarray) -> np.ndarray:
    """The paper's printed lines under the row (turned with it): rules and a margin, squares, or form boxes."""
    height, width = canvas.shape
    lines = np.zeros((height, width), np.float32)
    if on == "ruled":
        spacing = digit_h * rng.uniform(1.1, 1.6)
        first = y_base + digit_h * rng.uniform(0.3, 0.6)  # under the row, through the digits' feet
        for y in np.arange(first % spacing, height, spacing):
            cv2.line(lines, (-width, int(y)), (2 * width, int(y)), 1.0, int(rng.integers(1, 4)))
        lines *= rng.uniform(0.25, 0.5)  # blue rules
        left = min(b[0] for b in boxes)
        if left > 0.08 * width:  # a red margin line left of the row
            margin = np.zeros_like(lines)
            x = int(left * rng.uniform(0.3, 0.8))
            cv2.line(margin, (x, -height), (x, 2 * height), 1.0, int(rng.integers(2, 4)))
            lines = np.maximum(lines, margin * rng.uniform(0.35, 0.6))
    elif on == "squared":
        spacing = digit_h * rng.uniform(0.45, 0.65)
        offset = rng.uniform(0, spacing, 2)
        for y in np.arange(offset[0], height, spacing):
            cv2.line(lines, (-width, int(y)), (2 * width, int(y)), 1.0, 1)
        for x in np.arange(offset[1], width, spacing):
            cv2.line(lines, (int(x), -height), (int(x), 2 * height), 1.0, 1)
        lines *= rng.uniform(0.15, 0.35)
    elif on == "boxes":
        for x, y, w, h in boxes:
            pad = int(digit_h * rng.uniform(-0.02, 0.15))  # below zero the digit runs into its box
            cv2.rectangle(lines, (x - pad, y - pad), (x + w + pad, y + h + pad), 1.0, int(rng.integers(1, 4)))
        lines *= rng.uniform(0.5, 0.85)
    lines = cv2.warpAffine(lines, rotation, (width, height), flags=cv2.INTER_LINEAR)
    return canvas * (1 - lines)


def on_desk(sheet: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A float gray sheet photographed lying on a darker desk: 50-85 % of the frame, in perspective, shaded."""
    height, width = sheet.shape
    desk = _desk(height, width, rng)
    scale = rng.uniform(0.5, 0.85)
    cx, cy = width * rng.uniform(0.4, 0.6), height * rng.uniform(0.4, 0.6)
    corners = np.float32([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [width * scale / 2, height * scale / 2] + [cx, cy]
    corners += rng.uniform(-0.06, 0.06, (4, 2)).astype(np.float32) * [width, height]
    source = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    warp = cv2.getPerspectiveTransform(source, corners.astype(np.float32))
    seen = cv2.warpPerspective(sheet, warp, (width, height), flags=cv2.INTER_AREA)
    inside = cv2.warpPerspective(np.ones_like(sheet), warp, (width, height), flags=cv2.INTER_LINEAR)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    shade = 1 - rng.uniform(0, 0.35) * np.clip(np.cos(angle) * (xx / width - 0.5) + np.sin(angle) * (yy / height - 0.5)
                                              + 0.5, 0, 1)  # a hand or a phone's shadow from one side
    return (seen * inside + desk * (1 - inside)) * shade


def _desk(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A float gray desk top, darker than paper, with grain along it."""
    grain = rng.normal(0, 1, (max(height // 40, 2), max(width // 4, 2))).astype(np.float32)
    return rng.uniform(25, 120) + cv2.resize(grain, (width, height), interpolation=cv2.INTER_CUBIC) * rng.uniform(3, 15)


def blank_scene(on: str, rng: np.random.Generator, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A digit-free photo (uint8 BGR): the paper of `on` (PAPERS, plus "desk_only", "texture" and "text") as it
    would be photographed with nothing written on it; "text" is a printed line of letters."""
    height, width = size
    canvas = paper(height, width, rng)
    digit_h = int(rng.integers(55, 110))
    if on in ("ruled", "squared", "boxes"):
        x0 = int(rng.integers(0, width // 2))
        boxes = [(x0 + k * int(1.4 * digit_h), height // 2 - digit_h // 2, digit_h * 3 // 4, digit_h) for k in range(3)]
        rotation = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-8, 8), 1.0)
        canvas = _printed(canvas, on, rng, boxes, digit_h, height // 2, rotation)
    elif on == "desk":
        canvas = on_desk(canvas, rng)
    elif on == "desk_only":
        canvas = _desk(height, width, rng)
    elif on == "texture":
        grain = cv2.resize(rng.normal(0, 1, (height // 3, width // 3)).astype(np.float32), (width, height))
        canvas = canvas + grain * rng.uniform(8, 25)
    elif on == "text":
        words = "".join(rng.choice(list(LETTERS), 12))
        layer = np.zeros((height, width), np.uint8)
        cv2.putText(layer, words, (int(width * 0.05), height // 2), cv2.FONT_HERSHEY_SIMPLEX, width / 560, 255,
                    max(2, width // 240), cv2.LINE_AA)
        alpha = layer.astype(np.float32) / 255
        canvas = canvas * (1 - alpha) + rng.uniform(10, 70) * alpha
    elif on != "plain":
        raise ValueError(f"unknown paper {on!r}; one of {PAPERS + BLANK_ONLY}")
    return photographed(canvas, rng, blur=rng.uniform(0, 1.5), noise=rng.uniform(1, 8))


LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
BLANK_ONLY = ("desk_only", "texture", "text")  # digit-free photos that are not a paper of PAPERS


def scenes(x: np.ndarray, y: np.ndarray, count: int, seed: int = 0, min_digits: int = 3, max_digits: int = 6,
           size: tuple[int, int] = (480, 640), on: str = "plain") -> list[Scene]:
    """`count` string scenes of min..max digits drawn from the images `x` with labels `y`, written `on` a paper."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        picks = rng.choice(len(x), size=int(rng.integers(min_digits, max_digits + 1)), replace=False)
        out.append(string_scene([x[i] for i in picks], [y[i] for i in picks], rng, size=size, on=on))
    return out


def write_video(path: str, frames: list[np.ndarray], fps: float = 30.0, repeat: int = 1) -> None:
    """Write BGR frames (each shown `repeat` times) to an .mp4 with OpenCV's mp4v codec."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    try:
        for frame in frames:
            for _ in range(repeat):
                writer.write(frame)
    finally:
        writer.release()


def phone_jpeg(upright: np.ndarray, orientation: int = 6, quality: int = 90) -> bytes:
    """A JPEG stored as a phone stores it: the pixels turned so that the EXIF Orientation tag (6: the
    camera held upright, stored sideways) turns them back to `upright` when shown."""
    stored = exif.upright(upright, {6: 8, 8: 6}.get(orientation, orientation))  # the other tags undo themselves
    ok, jpeg = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)  # Orientation, SHORT, one value
    tiff = b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0)
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\0\0" + tiff
    data = jpeg.tobytes()
    return data[:2] + app1 + data[2:]
