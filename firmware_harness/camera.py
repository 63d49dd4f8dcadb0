"""Capture loop: frames in, digits read, overlay out.

Sources: a webcam index (`0`), a video file, a folder of images, a stream URL
(`rtsp://…`, `http://…`) or the Raspberry Pi Camera Module (`picamera`, through
picamera2). Per frame: capture -> find digits -> one batched inference -> overlay
(boxes, digits, confidences, FPS and the read-out smoothed over the last k frames).
A window when OpenCV has a GUI and a display exists (q quits), headless otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter, deque
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware_harness import atomic, images
from firmware_harness.errors import Interrupted, UserError
from firmware_harness.preprocess import TooManyMarks, find_digits
from firmware_harness.recognize import Reading, classify
from firmware_harness.runtime import Model

# FFmpeg prints a line per damaged packet straight to stderr ("partial file"); the loop says
# what matters in one line of its own. Read by OpenCV when it first opens a video.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
OPEN_TIMEOUT_S = 5.0
READ_RETRIES = 5
STAGES = ("capture", "preprocess", "inference", "draw")
STATUS_EVERY_S = 1.0  # headless without --json: a status line this often (every frame from an image folder)


class FrameSource:
    """Frames from one source; `read()` returns None when the stream has ended or keeps failing."""

    def __init__(self, source: str):
        self.source = source
        self._files: list[Path] | None = None
        self._next_file = 0
        self.current_file: Path | None = None  # the image a frame from a folder came from
        self._capture = None
        self._picamera = None
        self.fps = 30.0
        if source == "picamera":
            self._open_picamera()
        elif source.isdigit():
            self._capture = _open_with_timeout(lambda: cv2.VideoCapture(int(source)), f"camera {source}")
        elif "://" in source:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(OPEN_TIMEOUT_S * 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
            self._capture = _open_with_timeout(lambda: cv2.VideoCapture(source, cv2.CAP_FFMPEG, params), source)
        elif Path(source).is_dir():
            self._files = images.image_files([Path(source)])
            if not self._files:
                raise UserError(f"{source}: no image files in this folder")
        elif Path(source).is_file():
            self._capture = _open_with_timeout(lambda: cv2.VideoCapture(source), source)
        else:
            raise UserError(f"{source}: no such camera index, file or folder")
        if self._capture is not None:
            self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 30.0

    def _open_picamera(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as e:
            raise UserError("picamera2 is not installed; on Raspberry Pi OS: sudo apt install python3-picamera2") from e
        self._picamera = Picamera2()
        self._picamera.configure(self._picamera.create_video_configuration(main={"size": (640, 480), "format": "BGR888"}))
        self._picamera.start()

    def read(self) -> np.ndarray | None:
        if self._files is not None:
            return self._read_file()
        if self._picamera is not None:
            return self._picamera.capture_array()
        return self._read_capture()

    def _read_file(self) -> np.ndarray | None:
        """The next image of the folder that reads; one that does not is skipped with a one-line warning."""
        while self._next_file < len(self._files):
            path = self._files[self._next_file]
            self._next_file += 1
            try:
                frame = images.read(path)
            except UserError as e:
                print(f"warning: skipped {e}", file=sys.stderr)
                continue
            self.current_file = path
            return frame
        return None

    def _read_capture(self) -> np.ndarray | None:
        for attempt in range(READ_RETRIES):
            ok, frame = self._capture.read()
            if ok and frame is not None:
                return frame
            total = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
            if total > 0 and self._capture.get(cv2.CAP_PROP_POS_FRAMES) >= total - 1:
                return None  # the end of a video file
            if attempt + 1 < READ_RETRIES:
                time.sleep(0.05 * (attempt + 1))
        print(f"warning: {self.source}: no frame after {READ_RETRIES} tries; stopping", file=sys.stderr)
        return None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
        if self._picamera is not None:
            self._picamera.stop()


def _quiet_opencv() -> None:
    """OpenCV warns on stderr when a device or file fails to open; we say it in one line instead."""
    if hasattr(cv2, "utils") and hasattr(cv2.utils, "logging"):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(2)  # 2 = errors only, on OpenCV builds without cv2.utils.logging


def _open_with_timeout(opener, label: str):
    """Open a cv2.VideoCapture in a thread; a clear error if it fails or takes over OPEN_TIMEOUT_S."""
    _quiet_opencv()
    result: list = []
    thread = threading.Thread(target=lambda: result.append(opener()), daemon=True)
    thread.start()
    thread.join(OPEN_TIMEOUT_S)
    if not result:
        raise UserError(f"{label}: no answer within {OPEN_TIMEOUT_S:.0f} s; check the device or address")
    capture = result[0]
    if not capture.isOpened():
        raise UserError(f"{label}: cannot be opened (no such camera, or not a video OpenCV can read)")
    return capture


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
    """Boxes with digit and confidence, the smoothed read-out and the FPS, on a copy of the frame."""
    canvas = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    canvas = canvas.copy()
    for (x, y, w, h), digit, confidence in zip(reading.boxes, reading.digits, reading.confidences):
        color = (0, 200, 0) if confidence >= 0.9 else (0, 165, 255)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, 2)
        cv2.putText(canvas, f"{digit} {confidence:.2f}", (x, max(12, y - 5)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1)
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


def run(model: Model, source: str, settings: LoopSettings) -> dict:
    """Run the loop until the stream ends, --max-frames, q or Ctrl-C; return the summary.

    A recording is written to a temporary file and renamed when the loop ends cleanly.
    """
    frames = FrameSource(source)
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
                reading = classify(model, found)
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
