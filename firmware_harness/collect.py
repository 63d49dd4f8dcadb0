"""`collect`: every digit found in a camera's frames, a video or a folder of photos, saved as the 28x28 crop the
model saw into OUT/<digit read>/. Move the wrongly read ones to their right folder and OUT is a labelled folder of
your own digits (`edgedigits export --int8 --data OUT`): the loop of a data-acquisition tool, on the device.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2

from firmware_harness import atomic, sources
from firmware_harness.errors import Interrupted, UserError
from firmware_harness.preprocess import TooManyMarks, find_digits
from firmware_harness.recognize import classify
from firmware_harness.runtime import Model

MARKER = ".edgedigits-collect"  # in a folder `collect` wrote: hidden, so the folder still reads as class folders
STATUS_EVERY_S = 2.0


@dataclass
class CollectSettings:
    every: int = 1  # keep the digits of every Nth frame (a camera gives 30 a second)
    max_frames: int | None = None  # frames read, kept or not
    min_confidence: float = 0.0  # marks read with less are not saved
    work_size: int = 1024  # long side frames are searched at


class _Crops:
    """Writes crops as OUT/<digit>/<name>.png, never over a file already there (a crop moved in, say)."""

    def __init__(self, folder: Path):
        self.folder = atomic.claim_folder(folder, MARKER, "edgedigits collect")
        self.saved: Counter[str] = Counter()

    def save(self, digit: str, name: str, crop) -> Path:
        ok, png = cv2.imencode(".png", crop)
        if not ok:
            raise OSError("OpenCV could not encode a crop")
        path, k = atomic.inside(self.folder, f"{digit}/{name}.png"), 1
        while path.exists():
            k += 1
            path = atomic.inside(self.folder, f"{digit}/{name}-{k}.png")
        atomic.ensure_dir(path.parent)
        atomic.write_bytes(path, png.tobytes())
        self.saved[digit] += 1
        return path


def run(model: Model, source: str, out: Path, settings: CollectSettings, gate: Model | None = None) -> dict:
    """Collect until the source ends, `max_frames` or Ctrl-C; returns the crops saved per digit."""
    frames = sources.open_source(source)
    crops = _Crops(out)
    read = 0
    started = last_line = time.monotonic()
    try:
        while settings.max_frames is None or read < settings.max_frames:
            frame = frames.read()
            if frame is None:
                break
            read += 1
            if (read - 1) % settings.every:
                continue
            try:
                found = find_digits(frame, settings.work_size)
            except TooManyMarks as e:
                print(f"warning: frame {read - 1}: {e}", file=sys.stderr)
                continue
            reading = classify(model, found, gate)
            name = Path(frames.current_file).stem if frames.current_file else f"frame{read - 1:06d}"
            for i, (digit, confidence) in enumerate(zip(reading.digits, reading.confidences)):
                if confidence >= settings.min_confidence:
                    crops.save(digit, f"{name}-{i}", reading.crops[i])
            if time.monotonic() - last_line >= STATUS_EVERY_S:
                last_line = time.monotonic()
                print(f"[collect] {read} frames, {sum(crops.saved.values())} crops saved", file=sys.stderr)
    except (KeyboardInterrupt, Interrupted):
        pass  # what was saved stays saved
    finally:
        frames.close()
    if read == 0:
        raise UserError(f"{source}: no frame could be read")
    return {"frames": read, "seconds": round(time.monotonic() - started, 1),
            "saved": {d: crops.saved[d] for d in sorted(crops.saved)}, "folder": str(crops.folder)}
