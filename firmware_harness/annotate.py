"""`predict --annotate DIR`: each image with the boxes found and the digits read drawn on it, the first thing
to look at when a digit is missed or a mark is read that is not one."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from firmware_harness import atomic
from firmware_harness.recognize import Reading

MARKER = ".edgedigits-annotate"  # in a folder `predict --annotate` wrote
SURE = (0, 200, 0)  # BGR: read with at least the confidence asked for
UNSURE = (0, 140, 255)  # shown as '?'


def boxes_drawn(image: np.ndarray, reading: Reading, min_confidence: float = 0.0) -> np.ndarray:
    """A BGR copy of the image with each box, its digit (or '?' under `min_confidence`) and confidence."""
    canvas = image if image.ndim == 3 and image.shape[2] == 3 else cv2.cvtColor(
        image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_BGRA2BGR)
    canvas = canvas.copy()
    scale = max(0.5, min(canvas.shape[:2]) / 600)  # text and lines grow with the picture
    thickness = max(1, round(2 * scale))
    for (x, y, w, h), digit, confidence in zip(reading.boxes, reading.shown(min_confidence), reading.confidences):
        color = SURE if digit != "?" else UNSURE
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, thickness)
        cv2.putText(canvas, f"{digit} {confidence:.2f}", (x, max(int(14 * scale), y - thickness - 2)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, color, thickness)
    return canvas


class Annotator:
    """Writes `<name>.png` per image read into a folder of its own (new, empty, or one it wrote before)."""

    def __init__(self, folder: Path, min_confidence: float):
        self.folder = atomic.claim_folder(folder, MARKER, "edgedigits predict --annotate")
        self.min_confidence = min_confidence
        self.used: set[str] = set()

    def write(self, path: Path, image: np.ndarray, reading: Reading) -> Path:
        """The annotated copy of `path`'s image; a second image of the same name gets `-2`, `-3`, ..."""
        name, k = f"{path.stem}.png", 1
        while name in self.used:
            k += 1
            name = f"{path.stem}-{k}.png"
        self.used.add(name)
        ok, png = cv2.imencode(".png", boxes_drawn(image, reading, self.min_confidence))
        if not ok:
            raise OSError(f"OpenCV could not encode the annotated {path.name}")
        return atomic.write_bytes(atomic.inside(self.folder, name), png.tobytes())
