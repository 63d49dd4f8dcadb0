"""Camera frame or scanned page -> 28x28 MNIST-style digits and their boxes. numpy + OpenCV only.

1. gray, resized to a working scale (long side at most WORK_MAX_SIDE, short side at least
   WORK_MIN_SIDE) so the steps below behave the same for a 32-px crop and a 12-MP photo;
2. polarity: the thinner side is ink (or, where both sides are as wide, the one with the
   stronger thin strokes), so dark ink on paper, chalk on a board and a digit filling its
   scan all work; ink is made bright;
3. uneven light: a white top-hat, the background being a morphological opening wider
   than the strokes (stroke width measured with a distance transform);
4. a page with too little contrast has no digits (no guesses from noise);
5. Otsu threshold, connected components; straight rules and margins (tilted too) removed;
   specks, marks fainter than the grain around them, page edges, the desk and textures
   dropped, a digit that fills the image kept; the pieces of one broken digit merged;
   touching digits split;
6. reading order: lines top to bottom, digits left to right;
7. each digit: stroke width brought to MNIST's proportions, scaled to fit 20x20 with
   its aspect kept (anti-aliased), placed in 28x28 with its centre of mass at the centre.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import bisect

import cv2
import numpy as np

from firmware_harness import contract
from firmware_harness.errors import UserError

WORK_MAX_SIDE = 1024
WORK_MIN_SIDE = 128
POLARITY_MARGIN = 0.25  # log2 of the dark/light width ratio below which the two sides are as wide
LIGHT_INK_MARGIN = 1.5  # where the sides are as wide, light strokes this much stronger than dark ones are the ink
MAX_TILT = 12.0  # degrees: rules and margins tilted up to this much are found as lines
FULL_LINE = 0.8  # a straight line across this much of the image is printed where it is thinner than PRINTED of a pen
PRINTED = 0.4
SHEET_BORDER = 0.5  # a sheet on a desk: the darker side of the photo holds at least this much of the frame's border,
SHEET_AREA = 0.2  # the sheet (its largest light region) at least this much of the frame,
SHEET_SOLID = 0.9  # it fills this much of its convex hull (a sheet is convex),
SHEET_ALONE = 0.25  # and the other light regions are smaller than this fraction of it (not a 0's hole in a scan)
SHEET_SHADE = 1 / 8  # light from dark by each side's tone within this much of the frame (a shadow's slope is wider)
EDGE_CUT = 0.1  # marks touching the frame's edge and smaller than this fraction of its short side are dropped,
SLIVER = 0.25  # and so are those up to twice that long that are thinner than this fraction of their length
BOX_SIDE = 0.8  # a form box: straight lines along all four sides of its rectangle, each this much of the side
BOX_LINE = 0.12  # ... whose lines are no thicker than this fraction of its short side
HAIRLINE = 0.1  # strokes thinner than this fraction of a frame-sized mark's short side are a texture's
MIN_SNR = 4.0  # a stroke's mean over the mean of the unlit pixels around it (plus NOISE_FLOOR), at least
NOISE_FLOOR = 4.0  # 0-255: the paper's own grain, below which the unlit pixels are taken as this
MIN_CONTRAST = 24  # 0-255: weaker ink than this over the background is "no digits"; a fainter mark is grain
SPECK_FRACTION = 0.15  # components shorter than this fraction of the typical digit height are specks
MNIST_BOX = 20
MNIST_SIZE = contract.IMAGE_SIDE
MNIST_STROKE = 0.14  # MNIST strokes are about 14 % of the digit's long side
NORMALIZE_SIDE = 64  # a digit's mask is brought to at most this size before its strokes are adjusted
SPLIT_ASPECT = 1.5  # a blob wider than this (w / h) may be touching digits
MIN_DIGIT_PX = 12  # shorter than this at the working scale is not a readable digit (MNIST draws them 20 px tall)
MAX_MARKS = 1000  # digit-sized marks one image is read for; more is not a page of digits but a pattern


class TooManyMarks(UserError):
    """The image holds more digit-sized marks than MAX_MARKS: refused, in bounded time."""


@dataclass(frozen=True)
class Digit:
    """One found digit: `image` is 28x28 uint8, white ink on black; `box` is (x, y, w, h) in the input."""

    image: np.ndarray
    box: tuple[int, int, int, int]
    line: int


def histogram(image: np.ndarray) -> np.ndarray:
    """Pixel counts of a uint8 image, 256 bins."""
    return cv2.calcHist([image], [0], None, [256], [0, 256]).ravel().astype(np.float64)


def percentile_u8(counts: np.ndarray, q: float) -> int:
    """The q-th percentile, from a histogram."""
    cumulative = counts.cumsum()
    return int(np.searchsorted(cumulative, q / 100.0 * cumulative[-1]))


def otsu_level(counts: np.ndarray) -> int:
    """Otsu's threshold from a histogram: the level that maximises the between-class variance."""
    levels = np.arange(256, dtype=np.float64)
    weight = counts.cumsum()
    mean = (counts * levels).cumsum()
    total, total_mean = weight[-1], mean[-1]
    background, foreground = weight, total - weight
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * background - mean * total) ** 2 / (background * foreground)
    return int(np.nanargmax(np.where(foreground > 0, between, np.nan)[:-1])) if total else 0


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any uint8 gray, BGR or BGRA image -> gray (alpha composited on white)."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[2] == 4:  # 255 - (255 - gray) * alpha, in uint8: no float copy of a photo
        ink = cv2.multiply(cv2.bitwise_not(cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)), cv2.extractChannel(image, 3),
                           scale=1 / 255)
        return cv2.bitwise_not(ink)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    raise ValueError(f"expected a gray, BGR or BGRA image, got shape {image.shape}")


def _working_scale(shape: tuple[int, int], max_side: int) -> float:
    long_side, short_side = max(shape), min(shape)
    if long_side > max_side:
        return max_side / long_side
    if short_side < WORK_MIN_SIDE:
        return min(WORK_MIN_SIDE / short_side, max_side / long_side)
    return 1.0


def bright_ink(gray: np.ndarray) -> np.ndarray:
    """Invert if the ink is darker than the background, so ink is always the bright part.

    Ink is the thinner side, however much of the frame it covers (a digit that fills a 16x16
    scan is a third ink): with the light evened out (each pixel over a wide local mean),
    Otsu's threshold splits the image and the side whose parts are narrower is the ink. Where
    the two are as wide (a sheet on a desk: Otsu splits sheet from desk), the ink is the side
    with the stronger strokes narrower than a sixteenth of the frame (black vs white top-hat); paper's
    way (dark ink) unless the light strokes are LIGHT_INK_MARGIN times stronger, so that the grain of a
    blank sheet and of the desk round it does not turn the sheet into ink.
    """
    half = cv2.resize(gray, (max(gray.shape[1] // 2, 1), max(gray.shape[0] // 2, 1)), interpolation=cv2.INTER_AREA)
    dark, light = _widths(half)
    if dark > 0 and light > 0 and abs(np.log2(dark / light)) >= POLARITY_MARGIN:
        return 255 - gray if dark < light else gray
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(3, min(half.shape) // 16) | 1,) * 2)
    strokes = [cv2.morphologyEx(half, op, kernel).ravel() for op in (cv2.MORPH_BLACKHAT, cv2.MORPH_TOPHAT)]
    top = len(strokes[0]) - 1 - len(strokes[0]) // 200
    dark_strokes, light_strokes = (int(np.partition(v, top)[top]) for v in strokes)  # the 99.5th percentiles
    return gray if light_strokes > LIGHT_INK_MARGIN * dark_strokes else 255 - gray


def _widths(gray: np.ndarray) -> tuple[float, float]:
    """Typical widths of the dark and of the light parts, split by Otsu once the light is evened out (given the
    image at half size: the ratio of the two is what counts)."""
    small = cv2.resize(gray, (max(gray.shape[1] // 4, 1), max(gray.shape[0] // 4, 1)), interpolation=cv2.INTER_AREA)
    mean = cv2.GaussianBlur(small.astype(np.float32), (0, 0), max(1.0, min(small.shape) / 8))
    mean = cv2.resize(mean, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)
    even = cv2.normalize(gray.astype(np.float32) / (mean + 1), None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    dark = cv2.threshold(even, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)[1]
    return stroke_width(dark), stroke_width(cv2.bitwise_not(dark))


def stroke_width(binary: np.ndarray) -> float:
    """Typical stroke width (px) of the white parts of a 0/255 image."""
    if not binary.any():
        return 0.0
    inside = cv2.distanceTransform(binary, cv2.DIST_L2, 3)
    inside = inside[inside > 0]
    k = int(0.9 * (len(inside) - 1))
    return 2.0 * float(np.partition(inside, k)[k])  # the 90th percentile of the distance to the edge


def flatten_light(ink: np.ndarray) -> np.ndarray:
    """Subtract the background (an opening wider than the strokes), computed at 1/4 scale.

    The stroke width comes from a local (adaptive) threshold, which a lighting gradient
    does not fool the way one global threshold would; without the large regions along the
    frame's edge (the desk round a sheet) when anything else is left, so that the desk is
    wider than the opening and goes with the background.
    """
    half = cv2.resize(ink, (max(ink.shape[1] // 2, 1), max(ink.shape[0] // 2, 1)), interpolation=cv2.INTER_AREA)
    block = max(3, min(half.shape) // 2) | 1
    rough = cv2.adaptiveThreshold(half, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, -10)
    width = max(2 * stroke_width(_without_edge_regions(rough)), 2.0)
    small = cv2.resize(half, (max(half.shape[1] // 2, 1), max(half.shape[0] // 2, 1)), interpolation=cv2.INTER_AREA)
    k = int(np.clip(3 * width / 4, 3, max(3, min(small.shape) // 2))) | 1
    background = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    background = cv2.resize(background, (ink.shape[1], ink.shape[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.subtract(ink, background)


def on_the_sheet(gray: np.ndarray) -> np.ndarray:
    """A photo of a sheet lying on a darker desk, with the desk painted over in the sheet's own tone; any other
    image as it is.

    When the dark side (Otsu's, at a quarter of the size) holds most of the frame's border, the light is split
    from the dark again by each pixel's side whose tone near it is closer, so that a shadow across the sheet
    does not cut its shaded part off; the sheet is found in that split (`_sheet`), else in Otsu's. Its convex
    hull, shrunk by two pixels at that scale, is what is read: the desk's grain, the wedges between the sheet's
    edges and the frame's, and the sheet's own edges are never taken for ink.
    """
    height, width = gray.shape
    small = cv2.resize(gray, (max(width // 4, 1), max(height // 4, 1)), interpolation=cv2.INTER_AREA)
    light = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
    border = np.concatenate([light[0], light[-1], light[:, 0], light[:, -1]])
    if min(small.shape) < 8 or np.mean(border == 0) < SHEET_BORDER or not light.any():
        return gray
    reach = max(small.shape) * SHEET_SHADE  # how far a side's tone is carried: well within a shadow's slope
    sheet_tone, desk_tone = _local_tone(small, light > 0, reach), _local_tone(small, light == 0, reach)
    shaded = np.where(np.isfinite(sheet_tone) & np.isfinite(desk_tone),
                      2 * small.astype(np.float32) > sheet_tone + desk_tone, light > 0).astype(np.uint8) * 255
    inside = _sheet(small, shaded)
    if inside is None:
        inside = _sheet(small, light)
    if inside is None:
        return gray
    tone = _local_tone(small, inside > 0, max(small.shape) / 4)  # the sheet's shading carried on past its edge
    tone = np.where(np.isfinite(tone), tone, float(np.median(small[inside > 0])))
    inside = cv2.resize(inside, (width, height), interpolation=cv2.INTER_NEAREST)
    tone = cv2.resize(tone, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.where(inside > 0, gray, np.clip(tone, 0, 255).astype(np.uint8))


def _sheet(small: np.ndarray, light: np.ndarray) -> np.ndarray | None:
    """The sheet's convex hull shrunk by two pixels (0/1), given a photo at a quarter of the size and its light
    side (0/255): the largest light region, when it is SHEET_AREA of the frame, SHEET_SOLID of its hull, little
    else is light and its edge is a step of MIN_CONTRAST; else None."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(light, connectivity=8)
    if count < 2:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    area = int(stats[i, cv2.CC_STAT_AREA])
    outline = cv2.findContours((labels == i).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    hull = cv2.convexHull(np.vstack(outline))
    others = cv2.countNonZero(light) - area
    if area < SHEET_AREA * small.size or area < SHEET_SOLID * cv2.contourArea(hull) or others > SHEET_ALONE * area:
        return None
    filled = cv2.fillConvexPoly(np.zeros_like(small), hull, 1)
    inside = cv2.erode(filled, np.ones((5, 5), np.uint8))
    beyond, within = cv2.dilate(filled, np.ones((5, 5), np.uint8)) - filled, filled - inside
    if not inside.any() or not beyond.any() or np.median(small[within > 0]) - np.median(small[beyond > 0]) < MIN_CONTRAST:
        return None  # no edge: the light falling off across one sheet, not a sheet's edge on a desk
    return inside


def _local_tone(image: np.ndarray, where: np.ndarray, sigma: float) -> np.ndarray:
    """The mean of `image` over the pixels `where` is true, weighted by a Gaussian of `sigma` around each pixel
    (float32; inf where none is near)."""
    weight = cv2.GaussianBlur(where.astype(np.float32), (0, 0), sigma)
    total = cv2.GaussianBlur(np.where(where, image, 0).astype(np.float32), (0, 0), sigma)
    return np.where(weight > 1e-6, total / np.maximum(weight, 1e-6), np.inf).astype(np.float32)


def _without_edge_regions(binary: np.ndarray) -> np.ndarray:
    """The 0/255 image without its regions along the frame's edge (components that run along 40 % of a side,
    cover over 5 % of the frame and a quarter of their box), unless nothing would be left (a digit that fills
    the frame)."""
    count, labels, stats, _ = _label(binary)
    height, width = binary.shape
    x, y, w, h, area = (stats[:, k] for k in range(5))
    edge = (((x == 0) | (y == 0) | (x + w == width) | (y + h == height)) & (area > 0.05 * height * width)
            & (area > 0.25 * w * h))  # regions, not the rules of a page
    edge[0] = False
    for i in np.flatnonzero(edge):
        edge[i] = _along_border(labels, i) > 0.4  # along the edge, not a digit touching it
    if not edge.any() or edge[1:].all():
        return binary
    return np.where(edge[labels], 0, binary).astype(np.uint8)


@dataclass
class _Blob:
    x0: int
    y0: int
    x1: int  # exclusive
    y1: int
    labels: list[int]

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    @property
    def h(self) -> int:
        return self.y1 - self.y0

    def merged(self, other: _Blob) -> _Blob:
        return _Blob(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1),
                     self.labels + other.labels)


def remove_ruled_lines(binary: np.ndarray) -> np.ndarray:
    """Remove notebook rules, margin lines and squares: straight lines across a third of the image or more,
    level or tilted up to MAX_TILT degrees (a page held askew), where the ink is thin.

    Thin is judged on the ink itself (its extent across the line there is under a pen stroke), so a
    digit stroke that a rule crosses, or where a long bar meets a curve, stays whole.
    """
    pen: list[float] = []

    def stroke() -> float:  # the ink's typical stroke, measured once, and only if there is a line
        if not pen:
            pen.append(stroke_width(binary))
        return pen[0]

    across = _level_lines(binary, stroke)
    down = _level_lines(np.ascontiguousarray(binary.T), stroke)  # margins and the squares' columns, turned
    if across is None and down is None:
        return binary
    if down is not None:
        down = np.ascontiguousarray(down.T)
        across = down if across is None else cv2.bitwise_or(across, down)
    return cv2.subtract(binary, across)


def remove_form_boxes(binary: np.ndarray) -> np.ndarray:
    """Remove the frames of form boxes drawn round digits: marks whose smallest rectangle (turned up to MAX_TILT)
    has a straight line along each of its four sides, and that hold ink (a digit touching the frame, or a mark
    inside it). The lines go, and so do the thin straight lines across the box (two boxes side by side share one);
    the digit stays, less the pixels it shares with the lines. A 0 drawn square holds nothing and stays.
    """
    count, labels, stats, _ = _label(binary)
    x, y, w, h, area = (stats[:, k] for k in range(5))
    hollow = (w >= MIN_DIGIT_PX) & (h >= MIN_DIGIT_PX) & (area < 0.75 * w * h)
    hollow[0] = False
    candidates = np.flatnonzero(hollow)
    if not 0 < len(candidates) <= MAX_MARKS or int((w[candidates] * h[candidates]).sum()) > 4 * binary.size:
        return binary  # no box; or more frames, or frames piled more deeply, than a form has: a pattern, left be
    lines = np.zeros_like(binary)
    for i in candidates.tolist():
        window = labels[y[i]:y[i] + h[i], x[i]:x[i] + w[i]] == i
        if not _framed(window):
            continue
        frame = _box_frame(window.view(np.uint8) * 255, binary[y[i]:y[i] + h[i], x[i]:x[i] + w[i]])
        if frame is not None:
            lines[y[i]:y[i] + h[i], x[i]:x[i] + w[i]] |= frame
    return cv2.subtract(binary, lines) if lines.any() else binary


def _framed(window: np.ndarray) -> bool:
    """Whether a mark (bool, its bounding box) has ink near all four sides of its box along half of each: what a
    frame has, turned or not, and most digits (a 7's foot, a 1's ends) do not; the cheap test before the levelling."""
    return min(_side_cover(window, max(2, int(0.15 * min(window.shape))))) >= 0.5


def _side_cover(ink: np.ndarray, band: int) -> tuple[float, ...]:
    """The share of the top, bottom, left and right side of an image that has ink within `band` of that side."""
    return (ink[:band].any(axis=0).mean(), ink[-band:].any(axis=0).mean(),
            ink[:, :band].any(axis=1).mean(), ink[:, -band:].any(axis=1).mean())


def _box_frame(mask: np.ndarray, ink: np.ndarray) -> np.ndarray | None:
    """The frame's pixels (0/255, the mask's size) if the 0/255 `mask` of one mark is form boxes holding ink
    (`ink`: all the ink in the same window), else None.

    Levelled by its smallest rectangle, the frame is the mark's straight runs: across, a third of the rectangle
    long (boxes side by side, of unequal heights, are one mark); down, half its height. They must cover BOX_SIDE
    of each of the four edges, in lines thinner than BOX_LINE of the box. The runs no thicker than twice those
    lines go (where two boxes meet, too): not a digit's bar, stem or side, nor where a stroke crosses a line.
    """
    (cx, cy), (rw, rh), angle = cv2.minAreaRect(cv2.findNonZero(mask))
    while angle > 45:  # OpenCV gives (-90, 0] or [0, 90) by version: the turn that levels the rectangle
        angle, rw, rh = angle - 90, rh, rw
    while angle < -45:
        angle, rw, rh = angle + 90, rh, rw
    if abs(angle) > MAX_TILT or min(rw, rh) < MIN_DIGIT_PX:
        return None
    pad = max(mask.shape) // 4 + 2
    size = (mask.shape[1] + 2 * pad, mask.shape[0] + 2 * pad)
    turn = cv2.getRotationMatrix2D((cx + pad, cy + pad), angle, 1.0)
    level, held = (cv2.warpAffine(cv2.copyMakeBorder(m, pad, pad, pad, pad, cv2.BORDER_CONSTANT), turn, size,
                                  flags=cv2.INTER_NEAREST) for m in (mask, ink))
    x0, y0 = max(int(round(cx + pad - rw / 2)), 0), max(int(round(cy + pad - rh / 2)), 0)
    x1, y1 = x0 + int(round(rw)), y0 + int(round(rh))
    box = np.ascontiguousarray(level[y0:y1, x0:x1])
    height, width = box.shape
    band = max(2, int(0.15 * min(height, width)))
    across, down = _open(box, max(3, width // 3), 1), _open(box, 1, max(3, height // 2))
    counts = np.concatenate([(across[:band] > 0).sum(axis=0), (across[-band:] > 0).sum(axis=0),
                             (down[:, :band] > 0).sum(axis=1), (down[:, -band:] > 0).sum(axis=1)])
    line = int(np.median(counts[counts > 0])) if counts.any() else 1  # the lines' thickness
    if line > BOX_LINE * min(height, width):
        return None  # a digit's own strokes (a 0 drawn square), not a printed box's lines
    if min(_side_cover(across, band)[:2] + _side_cover(down, band)[2:]) < BOX_SIDE:
        return None
    thick = 2 * line + 2  # a printed line is thinner than this everywhere; where a stroke crosses it, it is not
    frame = cv2.bitwise_or(cv2.subtract(across, _open(box, 1, thick)), cv2.subtract(down, _open(box, thick, 1)))
    inner = cv2.subtract(held[y0:y1, x0:x1], frame)[band:-band, band:-band]
    if cv2.countNonZero(inner) < 0.02 * inner.size:
        return None  # an empty box, or a 0 drawn square
    lines = np.zeros_like(level)
    lines[y0:y1, x0:x1] = frame
    back = cv2.warpAffine(lines, cv2.invertAffineTransform(turn), size, flags=cv2.INTER_LINEAR)
    back = cv2.dilate(cv2.threshold(back, 0, 255, cv2.THRESH_BINARY)[1], np.ones((3, 3), np.uint8))
    return cv2.bitwise_and(back[pad:-pad, pad:-pad], mask)


def _level_lines(binary: np.ndarray, stroke: Callable[[], float]) -> np.ndarray | None:
    """The pixels of the thin straight lines running across a 0/255 image (tilted up to MAX_TILT), or None. Thin
    is under a 40th of the image's height; for a line across FULL_LINE of the image (a rule, or a box's border
    that a crop cut), also under PRINTED of the ink's typical `stroke()`: no digit's stroke runs that far that
    thin."""
    height, width = binary.shape
    length = max(15, width // 3)
    if cv2.countNonZero(binary) < length:
        return None
    tilt_rad = np.radians(MAX_TILT)
    quarter = cv2.resize(binary, (max(width // 4, 1), max(height // 4, 1)), interpolation=cv2.INTER_AREA)
    quarter = cv2.threshold(quarter, 0, 255, cv2.THRESH_BINARY)[1]  # the slope, found at a quarter of the size
    found = cv2.HoughLines(quarter, 1, np.pi / 720, length // 4, min_theta=np.pi / 2 - tilt_rad,
                           max_theta=np.pi / 2 + tilt_rad)
    if found is None:
        return None  # no straight line that long: skip the openings
    tilt = np.degrees(float(found[0, 0, 1])) - 90.0  # the strongest line's slope, in degrees
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), tilt, 1.0)
    level = binary if tilt == 0 else cv2.warpAffine(binary, turn, (width, height), flags=cv2.INTER_NEAREST)
    long_runs = _open(level, length, 1)
    if not long_runs.any():
        return None
    rule = max(3, height // 40)
    lines = cv2.subtract(long_runs, _open(level, 1, rule))
    pen = stroke()
    if int(PRINTED * pen) > rule:
        full = _open(long_runs, int(FULL_LINE * width), 1)
        if full.any():
            lines = cv2.bitwise_or(lines, cv2.subtract(full, _open(level, 1, int(PRINTED * pen))))
    if tilt != 0:  # back to the image's own slope: every pixel the line touches, a pixel wider for the roundings
        back = cv2.warpAffine(lines, cv2.getRotationMatrix2D((width / 2, height / 2), -tilt, 1.0), (width, height),
                              flags=cv2.INTER_LINEAR)
        lines = cv2.dilate(cv2.threshold(back, 0, 255, cv2.THRESH_BINARY)[1], np.ones((3, 3), np.uint8))
    return lines


def _open(binary: np.ndarray, width: int, height: int) -> np.ndarray:
    """The opening of a 0/255 image by a width x height rectangle, each side made odd: OpenCV anchors an even
    rectangle off its centre, and the opening then keeps a run one pixel to the side of where it is."""
    return cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (width | 1, height | 1)))


def _label(binary: np.ndarray):
    """connectedComponentsWithStats, 3x faster with 16-bit labels where they provably fit.

    Every component has at least one pixel, so fewer ink pixels than 65535 means the labels
    fit (OpenCV 4.10 corrupts its heap instead of failing when they do not).
    """
    wide = cv2.countNonZero(binary) >= 65535
    return cv2.connectedComponentsWithStatsWithAlgorithm(binary, 8, cv2.CV_32S if wide else cv2.CV_16U,
                                                         cv2.CCL_BOLELLI)


def _along_border(labels: np.ndarray, i: int) -> float:
    """The largest fraction of one side of the frame that component `i` runs along."""
    sides = (labels[0, :], labels[-1, :], labels[:, 0], labels[:, -1])
    return max(float(np.mean(side == i)) for side in sides)


def _digit_like(labels: np.ndarray, stats: np.ndarray, i: int, shape: tuple[int, int]) -> bool:
    """Whether ink that runs along the frame's edge is what a digit filling the frame is (a form box's crop,
    a 16x16 scan, a canvas drawn edge to edge) and not a page edge (a strip along the side), the desk or a
    texture (strokes hair-thin for a mark that size), a shadow (solid) or a frame round other marks."""
    x, y, w, h, area = (int(v) for v in stats[i])
    if min(w / shape[1], h / shape[0]) < 0.08 or area > 0.85 * w * h:
        return False
    if area <= 0.3 * shape[0] * shape[1]:
        return True
    window = labels[y:y + h, x:x + w]
    mask = cv2.copyMakeBorder((window == i).astype(np.uint8) * 255, 1, 1, 1, 1, cv2.BORDER_CONSTANT)
    if stroke_width(mask) < HAIRLINE * min(w, h):
        return False
    paper = cv2.connectedComponents(cv2.bitwise_not(mask), connectivity=4)[1]
    holes = ((paper > 0) & (paper != paper[0, 0]))[1:-1, 1:-1]  # what the mark encloses
    inside = np.bincount(window[holes].ravel(), minlength=len(stats))
    inside[[0, i]] = 0
    return not (inside >= max(12, 0.02 * area)).any()  # a frame around other marks: the desk round a sheet


def _components(flat: np.ndarray, level: int) -> tuple[np.ndarray, list[_Blob], np.ndarray]:
    """Ink components by hysteresis: Otsu's `level` picks the sure ink, and fainter ink (over half
    that level) stays where it is connected to sure ink, so faint joins do not break a digit.

    Form boxes, then rules and margins, are taken out first (boxes first: a box's border along the frame's
    edges would otherwise lose its sides as rules and leave its corners); where there were boxes, the level
    is found again without them (a pale digit in a dark box is then ink, not a smudge beside the box).
    Returns the label image, the blobs and every component's area (indexed by label). The per-component
    tests are whole-image array operations, so the cost grows with the pixels, not with how many components
    a crafted image holds.
    """
    lit = cv2.threshold(flat, 0.5 * level, 255, cv2.THRESH_BINARY)[1]
    unboxed = remove_form_boxes(lit)
    weak = remove_ruled_lines(unboxed)
    boxes = cv2.subtract(lit, unboxed)
    if boxes.any():  # a box's lines are not ink: the ink's level is found without them, and the ink at that level
        flat = np.where(cv2.dilate(boxes, np.ones((3, 3), np.uint8)) > 0, 0, flat).astype(np.uint8)
        level = otsu_level(histogram(flat))
        weak = remove_ruled_lines(remove_form_boxes(cv2.threshold(flat, 0.5 * level, 255, cv2.THRESH_BINARY)[1]))
    count, labels, stats, _ = _label(weak)
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    height, width = flat.shape
    min_area = max(12, int(2e-5 * height * width))
    has_sure_ink = np.zeros(count, bool)
    has_sure_ink[labels[flat > level]] = True
    has_sure_ink[0] = False  # the background
    blobs = []
    for i in np.flatnonzero((areas >= min_area) & has_sure_ink):
        x, y, w, h, area = (int(v) for v in stats[i])
        touches = x == 0 or y == 0 or x + w == width or y + h == height
        long_side, cut = max(w, h), EDGE_CUT * min(height, width)
        if touches and (long_side < cut or long_side < 2 * cut and min(w, h) < SLIVER * long_side):
            continue  # small or a sliver, cut by the frame's edge: grain, or a digit (or a 4's stem) out of the picture
        if touches and _along_border(labels, i) > 0.4 and not _digit_like(labels, stats, i, flat.shape):
            continue  # a page edge, the desk or a shadow beyond the page, a texture
        blobs.append(_Blob(x, y, x + w, y + h, [int(i)]))
    return labels, blobs, areas


def _contrasted(blobs: list[_Blob], labels: np.ndarray, flat: np.ndarray, areas: np.ndarray) -> list[_Blob]:
    """Drop blobs much fainter than the strongest one (smudges) or than the paper around them (a texture:
    wood grain, rough paper, sensor noise): a stroke stands MIN_SNR times above the mean of the unlit pixels
    within a blob's size of it, and its mean at least MIN_CONTRAST above the background."""
    if not blobs:
        return blobs
    sums = np.bincount(labels.ravel(), weights=flat.ravel(), minlength=len(areas))
    means = np.array([sums[b.labels[0]] / areas[b.labels[0]] for b in blobs])
    unlit = (labels == 0).view(np.uint8)
    level = cv2.integral(cv2.bitwise_and(flat, flat, mask=unlit), sdepth=cv2.CV_64F)
    count = cv2.integral(unlit, sdepth=cv2.CV_64F)
    box = np.array([(b.x0, b.y0, b.x1, b.y1) for b in blobs])
    height, width = flat.shape
    x0, y0 = np.maximum(box[:, 0] - (box[:, 2] - box[:, 0]), 0), np.maximum(box[:, 1] - (box[:, 3] - box[:, 1]), 0)
    x1, y1 = np.minimum(2 * box[:, 2] - box[:, 0], width), np.minimum(2 * box[:, 3] - box[:, 1], height)

    def window(table: np.ndarray) -> np.ndarray:
        return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]

    around = window(level) / np.maximum(window(count), 1)
    keep = (means >= 0.4 * means.max()) & (means >= MIN_SNR * (around + NOISE_FLOOR)) & (means >= MIN_CONTRAST)
    return [b for b, k in zip(blobs, keep) if k]


def _typical_height(blobs: list[_Blob], areas: np.ndarray) -> float:
    """Median height of the blobs with at least a tenth of the largest one's ink: digits, not specks."""
    if not blobs:
        return 0.0
    ink = [sum(areas[i] for i in b.labels) for b in blobs]
    enough = 0.1 * max(ink)
    return float(np.median([b.h for b, a in zip(blobs, ink) if a >= enough]))


def _merge_pieces(blobs: list[_Blob], typical: float) -> list[_Blob]:
    """Merge the pieces of one broken digit (a 5, 4 or 7 written in two strokes) into one blob.

    Repeatedly merges the first pair (in list order) that `_one_digit_matrix` accepts. The pair test
    runs on arrays, one row per merge, so n marks cost O(n^2) array work, not n^3 Python calls.
    """
    n = len(blobs)
    if n < 2:
        return blobs
    box = np.array([(b.x0, b.y0, b.x1, b.y1) for b in blobs], np.float64)
    alive = np.ones(n, bool)
    pairs = _one_digit_matrix(box, box, typical)
    np.fill_diagonal(pairs, False)
    later = np.triu(pairs, 1).any(axis=1)  # row i has a partner j > i
    while later.any():
        i = int(np.argmax(later))
        j = i + 1 + int(np.argmax(pairs[i, i + 1:]))
        touched = pairs[:, i] | pairs[:, j]
        blobs[i] = blobs[i].merged(blobs[j])
        box[i] = (blobs[i].x0, blobs[i].y0, blobs[i].x1, blobs[i].y1)
        alive[j] = False
        pairs[j, :] = pairs[:, j] = False
        row = _one_digit_matrix(box[i:i + 1], box, typical)[0] & alive
        row[i] = False
        pairs[i, :] = pairs[:, i] = row
        for r in np.flatnonzero(touched | row).tolist() + [i, j]:
            later[r] = bool(pairs[r, r + 1:].any())
    return [b for b, keep in zip(blobs, alive) if keep]


def _one_digit_matrix(a: np.ndarray, b: np.ndarray, typical: float) -> np.ndarray:
    """Whether two blobs are pieces of one digit, for every pair of boxes (x0, y0, x1, y1): rows of
    `a` against rows of `b`.

    Together no taller than a digit of this image, and either stacked (columns overlapping by
    half the narrower one, a small vertical gap, no wider than tall) or one is the other's top
    stroke written apart: a 5's flag or a 7's bar, flat, under half the body's height, ending in
    the body's upper half, at most a tenth of its height away from it on either axis, and the
    two together no wider than 1.6 times their height (a neighbour digit makes it wider).
    """
    ax0, ay0, ax1, ay1 = (a[:, k:k + 1] for k in range(4))
    bx0, by0, bx1, by1 = (b[None, :, k] for k in range(4))
    aw, ah, bw, bh = ax1 - ax0, ay1 - ay0, bx1 - bx0, by1 - by0
    jw = np.maximum(ax1, bx1) - np.minimum(ax0, bx0)
    jh = np.maximum(ay1, by1) - np.minimum(ay0, by0)
    short_enough = jh <= 1.8 * np.maximum(np.maximum(ah, bh), typical)
    overlap = np.minimum(ax1, bx1) - np.maximum(ax0, bx0)
    gap = np.maximum(ay0, by0) - np.minimum(ay1, by1)
    stacked = (overlap >= 0.5 * np.minimum(aw, bw)) & (gap <= 0.5 * np.maximum(ah, bh)) & (jw <= 1.2 * jh)

    def top_stroke(x0, y0, x1, y1, w, h, bx0, by0, bx1, bh):  # the first box is the bar, the second the body
        near = 0.1 * bh
        return ((w >= h) & (h <= 0.5 * bh) & (by0 - near <= y1) & (y1 <= by0 + 0.5 * bh)
                & (x0 <= bx1 + near) & (x1 >= bx0 - near) & (jw <= 1.6 * jh))

    return short_enough & (stacked | top_stroke(ax0, ay0, ax1, ay1, aw, ah, bx0, by0, bx1, bh)
                           | top_stroke(bx0, by0, bx1, by1, bw, bh, ax0, ay0, ax1, ah))


def _is_line(blob: _Blob, typical: float) -> bool:
    """Ruled lines and margins: long, thin, and much longer than a digit."""
    return (blob.w > 5 * blob.h and blob.w > 2 * typical) or (blob.h > 12 * blob.w and blob.h > 2 * typical)


def _mask(labels: np.ndarray, blob: _Blob) -> np.ndarray:
    window = labels[blob.y0:blob.y1, blob.x0:blob.x1]
    inside = window == blob.labels[0] if len(blob.labels) == 1 else np.isin(window, blob.labels)
    return inside.astype(np.uint8) * 255


def _split_touching(mask: np.ndarray) -> list[tuple[int, int]]:
    """Column ranges of the digits in a blob: several if it is touching digits, else the whole blob.

    A cut is made only where the ink is thin (a junction, not a stroke along the cut) and
    only if every part is digit-sized: most of the blob's height and not a sliver. A wide
    0 or a 2 with a long tail stays whole.
    """
    h, w = mask.shape
    n = int(round(w / (0.75 * h))) if w > SPLIT_ASPECT * h else 1
    if n < 2:
        return [(0, w)]
    ink = (mask > 0).sum(axis=0)
    typical_column = np.median(ink[ink > 0])
    cuts, step = [0], w / n
    for k in range(1, n):
        lo = int(k * step - 0.25 * step)
        hi = max(int(k * step + 0.25 * step), lo + 1)
        cut = lo + int(np.argmin(ink[lo:hi]))
        if ink[cut] > 0.5 * typical_column:
            return [(0, w)]
        cuts.append(cut)
    cuts.append(w)
    parts = list(zip(cuts, cuts[1:]))
    for a, b in parts:
        rows = np.flatnonzero(mask[:, a:b].any(axis=1))
        if b - a < 0.3 * h or len(rows) == 0 or rows[-1] - rows[0] + 1 < 0.65 * h:
            return [(0, w)]
    return parts


def to_mnist(mask: np.ndarray) -> np.ndarray:
    """A 0/255 digit mask of any size -> 28x28 uint8 in MNIST form."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return np.zeros((MNIST_SIZE, MNIST_SIZE), np.uint8)
    mask = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    if max(mask.shape) > NORMALIZE_SIDE:  # stroke work at a bounded scale: same result, a fraction of the cost
        scale = NORMALIZE_SIDE / max(mask.shape)
        size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
        mask = cv2.threshold(cv2.resize(mask, size, interpolation=cv2.INTER_AREA), 127, 255, cv2.THRESH_BINARY)[1]
        if not mask.any():
            return np.zeros((MNIST_SIZE, MNIST_SIZE), np.uint8)
    long_side = max(mask.shape)
    pad = max(2, long_side // 8)
    mask = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    width, target = stroke_width(mask), MNIST_STROKE * long_side
    if width < 0.7 * target or width > 1.6 * target:  # thin pen or fat marker: towards MNIST's pen
        radius = int(round(abs(target - width) / 2))
        if radius:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
            adjusted = cv2.dilate(mask, kernel) if width < target else cv2.erode(mask, kernel)
            if adjusted.any():
                mask = adjusted
    ys, xs = np.nonzero(mask)
    mask = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = mask.shape
    scale = MNIST_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    fitted = cv2.resize(mask, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    moments = cv2.moments(fitted)
    if moments["m00"] == 0:
        return np.zeros((MNIST_SIZE, MNIST_SIZE), np.uint8)
    cx, cy = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
    shift = np.float32([[1, 0, MNIST_SIZE / 2 - 0.5 - cx], [0, 1, MNIST_SIZE / 2 - 0.5 - cy]])
    return cv2.warpAffine(fitted, shift, (MNIST_SIZE, MNIST_SIZE), flags=cv2.INTER_LINEAR, borderValue=0)


def find_digits(image: np.ndarray, max_side: int = WORK_MAX_SIDE) -> list[Digit]:
    """All digits in a gray/BGR/BGRA uint8 image, in reading order.

    `max_side` bounds the working resolution: a live camera loop may trade a little of
    it for speed (digits should stay over ~25 px tall at that scale).
    """
    gray = to_gray(image)
    scale = _working_scale(gray.shape, max_side)
    if scale != 1.0:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    gray = cv2.GaussianBlur(on_the_sheet(gray), (3, 3), 0)
    flat = flatten_light(bright_ink(gray))
    counts = histogram(flat)
    if percentile_u8(counts, 99.5) < MIN_CONTRAST:
        return []
    labels, blobs, areas = _components(flat, otsu_level(counts))
    blobs = _contrasted(blobs, labels, flat, areas)
    if not blobs:
        return []
    typical = _typical_height(blobs, areas)
    blobs = [b for b in blobs if b.h >= SPECK_FRACTION * typical]
    if len(blobs) > MAX_MARKS:
        raise TooManyMarks(f"{len(blobs):,} digit-sized marks, more than the {MAX_MARKS:,} one image is read for; "
                           f"crop the image to the digits")
    blobs = _merge_pieces(blobs, typical)
    typical = _typical_height(blobs, areas)
    blobs = [b for b in blobs if not _is_line(b, typical) and b.h >= max(0.4 * typical, MIN_DIGIT_PX)]
    found = []
    for blob in blobs:
        mask = _mask(labels, blob)
        for a, b in _split_touching(mask):
            part = mask[:, a:b]
            if part.any():
                found.append((blob.x0 + a, blob.y0, b - a, blob.h, part))
    return _reading_order(found, scale)


@dataclass
class _Line:
    """Digits of one text line, with the running figures the line test needs."""

    items: list
    center_sum: float
    heights: list[int]  # sorted

    def add(self, item: tuple) -> None:
        self.items.append(item)
        self.center_sum += item[1] + item[3] / 2
        bisect.insort(self.heights, item[3])

    def median_height(self) -> float:
        k = len(self.heights)
        return (self.heights[(k - 1) // 2] + self.heights[k // 2]) / 2


def _reading_order(found: list, scale: float) -> list[Digit]:
    """Group into lines by vertical position, lines top to bottom, digits left to right."""
    lines: list[_Line] = []
    for item in sorted(found, key=lambda f: f[1] + f[3] / 2):
        cy = item[1] + item[3] / 2
        for line in lines:
            if abs(cy - line.center_sum / len(line.items)) < 0.5 * max(line.median_height(), item[3]):
                line.add(item)
                break
        else:
            lines.append(_Line([], 0.0, []))
            lines[-1].add(item)
    digits = []
    for number, line in enumerate(lines):
        for x, y, w, h, mask in sorted(line.items, key=lambda f: f[0]):
            box = tuple(int(round(v / scale)) for v in (x, y, w, h))
            digits.append(Digit(to_mnist(mask), box, number))
    return digits
