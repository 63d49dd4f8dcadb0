"""Camera frame or scanned page -> 28x28 MNIST-style digits and their boxes. numpy + OpenCV only.

1. gray, resized to a working scale (long side at most WORK_MAX_SIDE, short side at least
   WORK_MIN_SIDE) so the steps below behave the same for a 32-px crop and a 12-MP photo;
2. polarity: the intensity extreme farther from the median is ink, so dark ink on
   light paper and chalk on a board both work; ink is made bright;
3. uneven light: a white top-hat, the background being a morphological opening wider
   than the strokes (stroke width measured with a distance transform);
4. a page with too little contrast has no digits (no guesses from noise);
5. Otsu threshold, connected components; specks, page edges, dark desk regions and
   ruled lines dropped; the pieces of one broken digit merged; touching digits split;
6. reading order: lines top to bottom, digits left to right;
7. each digit: stroke width brought to MNIST's proportions, scaled to fit 20x20 with
   its aspect kept (anti-aliased), placed in 28x28 with its centre of mass at the centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import bisect

import cv2
import numpy as np

from firmware_harness import contract
from firmware_harness.errors import UserError

WORK_MAX_SIDE = 1024
WORK_MIN_SIDE = 128
MIN_CONTRAST = 40  # 0-255: weaker ink than this over the background is "no digits"
SPECK_FRACTION = 0.15  # components shorter than this fraction of the typical digit height are specks
MNIST_BOX = 20
MNIST_SIZE = contract.IMAGE_SIDE
MNIST_STROKE = 0.14  # MNIST strokes are about 14 % of the digit's long side
NORMALIZE_SIDE = 64  # a digit's mask is brought to at most this size before its strokes are adjusted
SPLIT_ASPECT = 1.5  # a blob wider than this (w / h) may be touching digits
MIN_DIGIT_PX = 8  # shorter than this at the working scale is not a readable digit
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

    Each pixel is compared with its local background (a median over half the frame, at
    1/8 scale: robust to ink covering less than half the window, blind to lighting
    gradients); the ink is on the side of the longer tail of those differences.
    """
    small = cv2.resize(gray, (max(gray.shape[1] // 8, 1), max(gray.shape[0] // 8, 1)), interpolation=cv2.INTER_AREA)
    k = max(3, min(small.shape) // 2) | 1
    background = cv2.medianBlur(small, min(k, 255))
    diff = (small.astype(np.int16) - background.astype(np.int16)).ravel()
    low, high = len(diff) // 100, len(diff) - 1 - len(diff) // 100
    tails = np.partition(diff, [low, high])  # the 1st and 99th percentiles, in one pass
    return 255 - gray if -int(tails[low]) > int(tails[high]) else gray


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
    does not fool the way one global threshold would.
    """
    half = cv2.resize(ink, (max(ink.shape[1] // 2, 1), max(ink.shape[0] // 2, 1)), interpolation=cv2.INTER_AREA)
    block = max(3, min(half.shape) // 2) | 1
    rough = cv2.adaptiveThreshold(half, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, -10)
    width = max(2 * stroke_width(rough), 2.0)
    small = cv2.resize(half, (max(half.shape[1] // 2, 1), max(half.shape[0] // 2, 1)), interpolation=cv2.INTER_AREA)
    k = int(np.clip(3 * width / 4, 3, max(3, min(small.shape) // 2))) | 1
    background = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    background = cv2.resize(background, (ink.shape[1], ink.shape[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.subtract(ink, background)


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
    """Remove notebook rules: horizontal runs longer than a third of the width, where the ink is thin.

    Thin is judged on the ink itself (its vertical extent there is under a pen stroke), so a
    digit stroke that a rule crosses, or where a long bar meets a curve, stays whole.
    """
    height, width = binary.shape
    length = max(15, width // 3)
    if cv2.reduce(binary, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).max() < 255 * length:
        return binary  # no row has enough ink for such a run: skip the openings
    long_runs = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1)))
    if not long_runs.any():
        return binary
    thick = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(3, height // 40))))
    return cv2.subtract(binary, cv2.subtract(long_runs, thick))


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


def _components(flat: np.ndarray, level: int) -> tuple[np.ndarray, list[_Blob], np.ndarray]:
    """Ink components by hysteresis: Otsu's `level` picks the sure ink, and fainter ink (over half
    that level) stays where it is connected to sure ink, so faint joins do not break a digit.

    Returns the label image, the blobs and every component's area (indexed by label). The
    per-component tests are whole-image array operations, so the cost grows with the pixels,
    not with how many components a crafted image holds.
    """
    weak = remove_ruled_lines(cv2.threshold(flat, 0.5 * level, 255, cv2.THRESH_BINARY)[1])
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
        large = area > 0.3 * height * width
        thin = min(w / width, h / height) < 0.08
        if touches and (large or thin) and _along_border(labels, i) > 0.4:
            continue  # the desk or a shadow beyond the page, or a page edge; a digit is neither
        blobs.append(_Blob(x, y, x + w, y + h, [int(i)]))
    return labels, blobs, areas


def _contrasted(blobs: list[_Blob], labels: np.ndarray, flat: np.ndarray, areas: np.ndarray) -> list[_Blob]:
    """Drop blobs much fainter than the strongest one (paper texture, smudges)."""
    if not blobs:
        return blobs
    sums = np.bincount(labels.ravel(), weights=flat.ravel(), minlength=len(areas))
    means = [sums[b.labels[0]] / areas[b.labels[0]] for b in blobs]
    strongest = max(means)
    return [b for b, m in zip(blobs, means) if m >= 0.4 * strongest]


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
    gray = cv2.GaussianBlur(gray, (3, 3), 0)
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
