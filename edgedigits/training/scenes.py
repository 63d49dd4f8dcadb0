"""Synthetic camera scenes from MNIST digits, for tests and benchmarks (numpy + OpenCV, no TensorFlow).

Dark ink on paper-like backgrounds with texture, lighting gradients, blur, sensor
noise and JPEG artefacts; single digits in frames of any size, or strings of digits
rotated as a whole. Every scene comes from a seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


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


def _digit_alpha(digit: np.ndarray, height: int) -> np.ndarray:
    """The MNIST digit's ink (0-1), cropped to its bounding box and scaled to `height` pixels."""
    ys, xs = np.nonzero(digit > 20)
    crop = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32) / 255.0
    width = max(1, round(crop.shape[1] * height / crop.shape[0]))
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _finish(gray: np.ndarray, rng: np.random.Generator, blur: float, noise: float) -> np.ndarray:
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
    alpha = _digit_alpha(digit, max(4, round(frame * fraction)))
    h, w = alpha.shape
    if w > frame:
        alpha = cv2.resize(alpha, (frame, max(1, round(h * frame / w))))
        h, w = alpha.shape
    y = int(rng.integers(0, frame - h + 1))
    x = int(rng.integers(0, frame - w + 1))
    ink = rng.uniform(10, 70)
    region = canvas[y:y + h, x:x + w]
    canvas[y:y + h, x:x + w] = region * (1 - alpha) + ink * alpha
    return _finish(canvas, rng, blur=rng.uniform(0, 0.8) * frame / 256, noise=rng.uniform(1, 6))


def string_scene(digits: list[np.ndarray], labels: list[int], rng: np.random.Generator,
                 size: tuple[int, int] = (480, 640), max_rotation: float = 8.0) -> Scene:
    """A row of digits written on paper, rotated up to ±max_rotation degrees, with uneven light."""
    height, width = size
    digit_h = int(rng.integers(55, 110))
    alphas = [_digit_alpha(d, int(digit_h * rng.uniform(0.85, 1.1))) for d in digits]
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
    for alpha, gap in zip(alphas, gaps):
        h, w = alpha.shape
        y = int(np.clip(y_base - h // 2 + rng.integers(-digit_h // 10, digit_h // 10 + 1), 0, height - h))
        layer[y:y + h, x:x + w] = np.maximum(layer[y:y + h, x:x + w], alpha)
        x += w + gap
    rotation = cv2.getRotationMatrix2D((x - row_w / 2 - gaps[-1], y_base), angle, 1.0)  # about the row's centre
    layer = cv2.warpAffine(layer, rotation, (width, height), flags=cv2.INTER_LINEAR)
    canvas = paper(height, width, rng)
    ink = rng.uniform(10, 70)
    canvas = canvas * (1 - layer) + ink * layer
    image = _finish(canvas, rng, blur=rng.uniform(0, 1.5), noise=rng.uniform(1, 8))
    return Scene(image, "".join(str(int(label)) for label in labels))


def scenes(x: np.ndarray, y: np.ndarray, count: int, seed: int = 0, min_digits: int = 3, max_digits: int = 6,
           size: tuple[int, int] = (480, 640)) -> list[Scene]:
    """`count` string scenes of min..max digits drawn from the images `x` with labels `y`."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        picks = rng.choice(len(x), size=int(rng.integers(min_digits, max_digits + 1)), replace=False)
        out.append(string_scene([x[i] for i in picks], [y[i] for i in picks], rng, size=size))
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
