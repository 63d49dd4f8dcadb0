"""Capture loop: frames in, digits read, overlay out.

Sources (firmware_harness/sources.py): a webcam index (`0`), a video file, a folder of images,
a stream URL (`rtsp://…`, `http://…`) or the Raspberry Pi Camera Module (`picamera`). Per frame:
capture -> find digits -> one batched inference -> overlay (boxes, digits, confidences, FPS and
the read-out smoothed over the last k frames).
A window when OpenCV has a GUI and a display exists (q quits), headless otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter, deque
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware_harness import annotate, atomic, sources
from firmware_harness.errors import Interrupted, UserError
from firmware_harness.preprocess import TooManyMarks, find_digits
from firmware_harness.recognize import Reading, classify
from firmware_harness.runtime import Model

STAGES = ("capture", "preprocess", "inference", "draw")
STATUS_EVERY_S = 1.0  # headless without --json: a status line this often (every frame from an image folder)


def window_available() -> bool:
    """True if OpenCV was built with a GUI and a display is there (opencv-python-headless has none)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow("edgedigits", cv2.WINDOW_AUTOSIZE)
    except cv2.error:
        return False
    return True


def draw(frame: np.ndarray, reading: Reading, fps: float, stable: str) -> np.ndarray:
    """Boxes with digit and confidence (orange under 0.9), the smoothed read-out and the FPS, on a copy of the
    frame."""
    canvas = annotate.boxes_drawn(frame, reading, min_confidence=0.9)
    cv2.putText(canvas, f"{stable or '-'}   {fps:.0f} fps", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 0, 0), 2)
    return canvas


@dataclass
class LoopSettings:
    headless: bool = False
    max_frames: int | None = None
    record: Path | None = None
    json_lines: bool = False
    smooth: int = 5
    work_size: int = 480  # long side frames are processed at: speed for a little resolution


def run(model: Model, source: str, settings: LoopSettings, gate: Model | None = None) -> dict:
    """Run the loop until the stream ends, --max-frames, q or Ctrl-C; return the summary.

    A recording is written to a temporary file and renamed when the loop ends cleanly.
    """
    frames = sources.open_source(source)
    show = not settings.headless and window_available()
    recent: deque[str] = deque(maxlen=max(1, settings.smooth))
    stage_ns: dict[str, list[int]] = {stage: [] for stage in STAGES}
    frame_ns: list[int] = []
    writer = None
    last_line_at = -STATUS_EVERY_S
    started = time.perf_counter()
    clock = time.perf_counter_ns
    with ExitStack() as cleanup:
        cleanup.callback(frames.close)
        if show:
            cleanup.callback(cv2.destroyAllWindows)
        try:
            while settings.max_frames is None or len(frame_ns) < settings.max_frames:
                t0 = clock()
                frame = frames.read()
                if frame is None:
                    break
                t1 = clock()
                try:
                    found = find_digits(frame, settings.work_size)
                except TooManyMarks as e:
                    print(f"warning: frame {len(frame_ns)}: {e}", file=sys.stderr)
                    found = []
                t2 = clock()
                reading = classify(model, found, gate)
                t3 = clock()
                recent.append(reading.digits)
                stable = Counter(recent).most_common(1)[0][0]
                elapsed = time.perf_counter() - started
                overlay = draw(frame, reading, len(frame_ns) / elapsed if elapsed else 0.0, stable)
                t4 = clock()
                for stage, ns in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    stage_ns[stage].append(ns)
                frame_ns.append(t4 - t0)
                if settings.record is not None:
                    if writer is None:
                        writer = _open_writer(cleanup.enter_context(atomic.atomic_path(settings.record)), overlay,
                                              frames.fps)
                        cleanup.callback(writer.release)  # runs before the rename
                    writer.write(overlay)
                if settings.json_lines:
                    origin = {"file": str(frames.current_file)} if frames.current_file else {}
                    print(json.dumps({"frame": len(frame_ns) - 1, **origin, **reading.as_json(), "stable": stable}),
                          flush=True)
                elif not show and (frames.current_file or elapsed - last_line_at >= STATUS_EVERY_S):
                    last_line_at = elapsed
                    origin = f"  {frames.current_file}" if frames.current_file else ""
                    print(f"{elapsed:6.1f} s  frame {len(frame_ns) - 1}  {reading.as_text()}  read-out {stable or '-'}  "
                          f"{len(frame_ns) / elapsed if elapsed else 0.0:.0f} fps{origin}", flush=True)
                if show:
                    cv2.imshow("edgedigits", overlay)
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        break
        except (KeyboardInterrupt, Interrupted):
            pass  # stop cleanly: the summary and the recording are still written
    return summary(frame_ns, stage_ns, time.perf_counter() - started)


def _open_writer(path: Path, frame: np.ndarray, fps: float) -> cv2.VideoWriter:
    height, width = frame.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise UserError(f"cannot write video {path}; choose another --record path")
    return writer


def summary(frame_ns: list[int], stage_ns: dict[str, list[int]], wall_s: float) -> dict:
    """Frames, FPS over the wall time, p50/p90 frame time and the mean time of each stage (ms)."""
    if not frame_ns:
        return {"frames": 0, "fps": 0.0, "frame_ms": {"p50": None, "p90": None}, "stage_ms": dict.fromkeys(STAGES)}
    ms = np.array(frame_ns) / 1e6
    return {
        "frames": len(frame_ns),
        "fps": round(len(frame_ns) / wall_s, 1) if wall_s else 0.0,
        "frame_ms": {"p50": round(float(np.percentile(ms, 50)), 3), "p90": round(float(np.percentile(ms, 90)), 3)},
        "stage_ms": {stage: round(float(np.mean(values)) / 1e6, 3) for stage, values in stage_ns.items()},
    }
