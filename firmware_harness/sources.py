"""Where the camera loop's frames come from: one small class per kind of source, picked from SOURCES.

`open_source(spec)` opens the first kind that accepts the `--source` text; the loop, `doctor` and the
`--source` help use nothing else. Adding a kind of source is adding a class to SOURCES
(docs/architecture.md). OpenCV is imported when a source opens, so the help needs none.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from firmware_harness.errors import UserError

# FFmpeg prints a line per damaged packet straight to stderr ("partial file"); the loop says
# what matters in one line of its own. Read by OpenCV when it first opens a video.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
OPEN_TIMEOUT_S = 5.0
READ_RETRIES = 5


class Source:
    """Frames from one source: `read()` gives a BGR frame, or None when the stream has ended or keeps failing."""

    help: ClassVar[str]  # how `--source` names it, for the help text
    fps: float = 30.0
    current_file: Path | None = None  # the image the last frame came from (image folders)

    @classmethod
    def accepts(cls, spec: str) -> bool:
        raise NotImplementedError

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file."""


class PiCamera(Source):
    """The Raspberry Pi Camera Module, through picamera2 (Debian's python3-picamera2)."""

    help = "'picamera' (Raspberry Pi Camera Module via picamera2)"

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return spec == "picamera"

    def __init__(self, spec: str):
        try:
            from picamera2 import Picamera2
        except ImportError as e:
            raise UserError("picamera2 is not installed; on Raspberry Pi OS: sudo apt install python3-picamera2") from e
        self._camera = Picamera2()
        self._camera.configure(self._camera.create_video_configuration(main={"size": (640, 480), "format": "BGR888"}))
        self._camera.start()

    def read(self) -> np.ndarray | None:
        return self._camera.capture_array()

    def close(self) -> None:
        self._camera.stop()


class _Capture(Source):
    """What OpenCV's VideoCapture opens: read with retries, the end of a file told from a failing device."""

    def __init__(self, spec: str, opener):
        import cv2

        from firmware_harness import images

        self.spec = spec
        self._capture = _open_with_timeout(opener, self.label(spec))
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 30.0
        self._budget = images.pixel_budget()  # frames are held to the budget images are (--max-pixels)
        width, height = (int(self._capture.get(p)) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > self._budget:
            self._capture.release()
            raise UserError(f"{self.label(spec)}: frames of {width}x{height} are {width * height:,} pixels, over the "
                            f"{self._budget:,}-pixel limit; record at a smaller size or raise ${images.PIXELS_ENV_VAR}")

    @staticmethod
    def label(spec: str) -> str:
        return spec

    def read(self) -> np.ndarray | None:
        import cv2

        for attempt in range(READ_RETRIES):
            ok, frame = self._capture.read()
            if ok and frame is not None:
                if frame.shape[0] * frame.shape[1] > self._budget:  # larger than its container said
                    raise UserError(f"{self.spec}: a frame of {frame.shape[1]}x{frame.shape[0]} is over the "
                                    f"{self._budget:,}-pixel limit")
                return frame
            total = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
            if total > 0 and self._capture.get(cv2.CAP_PROP_POS_FRAMES) >= total - 1:
                return None  # the end of a video file
            if attempt + 1 < READ_RETRIES:
                time.sleep(0.05 * (attempt + 1))
        print(f"warning: {self.spec}: no frame after {READ_RETRIES} tries; stopping", file=sys.stderr)
        return None

    def close(self) -> None:
        self._capture.release()


class Webcam(_Capture):
    help = "webcam index"

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return spec.isdigit()

    @staticmethod
    def label(spec: str) -> str:
        return f"camera {spec}"

    def __init__(self, spec: str):
        import cv2

        super().__init__(spec, lambda: cv2.VideoCapture(int(spec)))


class Stream(_Capture):
    help = "stream URL"

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return "://" in spec

    def __init__(self, spec: str):
        import cv2

        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(OPEN_TIMEOUT_S * 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
        super().__init__(spec, lambda: cv2.VideoCapture(spec, cv2.CAP_FFMPEG, params))


class ImageFolder(Source):
    help = "image folder"

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return Path(spec).is_dir()

    def __init__(self, spec: str):
        from firmware_harness import images

        self._files = images.image_files([Path(spec)]).files
        if not self._files:
            raise UserError(f"{spec}: no image files in this folder")
        self._next = 0

    def read(self) -> np.ndarray | None:
        """The next image that reads; one that does not is skipped with a one-line warning."""
        from firmware_harness import images

        while self._next < len(self._files):
            path = self._files[self._next]
            self._next += 1
            try:
                frame = images.read(path)
            except UserError as e:
                print(f"warning: skipped {e}", file=sys.stderr)
                continue
            self.current_file = path
            return frame
        return None


class VideoFile(_Capture):
    help = "video file"

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return Path(spec).is_file()

    def __init__(self, spec: str):
        import cv2

        super().__init__(spec, lambda: cv2.VideoCapture(spec))


SOURCES: list[type[Source]] = [PiCamera, Webcam, Stream, ImageFolder, VideoFile]  # the first that accepts opens


def open_source(spec: str) -> Source:
    """Open `--source`: the first kind in SOURCES that accepts it."""
    for kind in SOURCES:
        if kind.accepts(spec):
            return kind(spec)
    raise UserError(f"{spec}: no such camera index, file or folder")


def help_text() -> str:
    """The kinds of source, for `camera --source --help`."""
    return ", ".join(kind.help for kind in SOURCES)


def _quiet_opencv() -> None:
    """OpenCV warns on stderr when a device or file fails to open; we say it in one line instead."""
    import cv2

    if hasattr(cv2, "utils") and hasattr(cv2.utils, "logging"):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(2)  # 2 = errors only, on OpenCV builds without cv2.utils.logging


stuck: list[threading.Thread] = []  # openers still inside OpenCV: the process must end without finalizers


def exit_now_if_stuck(code: int) -> None:
    """End the process at once if an opener is still inside native code: a normal exit would destroy its
    C++ thread while it runs, and abort ('terminate called without an active exception')."""
    if any(thread.is_alive() for thread in stuck):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _open_with_timeout(opener, label: str):
    """Open a cv2.VideoCapture in a thread; a clear error if it fails or takes over OPEN_TIMEOUT_S."""
    _quiet_opencv()
    result: list = []
    thread = threading.Thread(target=lambda: result.append(opener()), daemon=True)
    thread.start()
    thread.join(OPEN_TIMEOUT_S)
    if not result:
        stuck.append(thread)
        raise UserError(f"{label}: no answer within {OPEN_TIMEOUT_S:.0f} s; check the device or address")
    capture = result[0]
    if not capture.isOpened():
        raise UserError(f"{label}: cannot be opened (no such camera, or not a video OpenCV can read)")
    return capture
