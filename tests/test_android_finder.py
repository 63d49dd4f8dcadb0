"""The Android finder (edgedigits/export/android/DigitFinder.kt), compiled with kotlinc against Debian's OpenCV Java
bindings (the OpenCV Android SDK's API) and run on the JVM: the digits it finds in phone-like scenes, read by the
shipped model, are the ones Python finds and reads, as the page's are (tests/test_browser.py)."""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO
from edgedigits.export import app_snippets
from edgedigits.training import scenes
from firmware_harness import images, recognize
from firmware_harness.preprocess import Digit, TooManyMarks, find_digits
from firmware_harness.runtime import Model

sys.path.insert(0, str(REPO / "benchmarks"))
import hostile  # noqa: E402

OPENCV_JAR = Path("/usr/share/java/opencv.jar")  # Debian's libopencv-java (.ci/run installs it)
MAIN = Path(__file__).resolve().parent / "android" / "FindDigits.kt"


@pytest.fixture(scope="module")
def finder(tmp_path_factory):
    """A command that runs the compiled finder: image paths on stdin, one line of digits per image out."""
    jni = glob.glob("/usr/lib/jni/libopencv_java*.so")
    if not shutil.which("kotlinc") or not OPENCV_JAR.is_file() or not jni:
        pytest.skip("needs kotlinc and OpenCV's Java bindings (Debian's kotlin and libopencv-java; .ci/run installs them)")
    jar = tmp_path_factory.mktemp("android") / "finder.jar"
    built = subprocess.run(["kotlinc", str(app_snippets.ANDROID_FINDER), str(MAIN), "-cp", str(OPENCV_JAR),
                            "-include-runtime", "-d", str(jar)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    return ["java", f"-Djava.library.path={Path(jni[0]).parent}", "-cp", f"{jar}:{OPENCV_JAR}", "FindDigitsKt"]


def _found(finder: list[str], paths: list[Path]) -> list[str]:
    ran = subprocess.run(finder, input="".join(f"{p}\n" for p in paths), capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, ran.stderr[-3000:]
    lines = ran.stdout.split("\n")[:-1]
    assert len(lines) == len(paths), ran.stdout[-2000:]
    return lines


def _digits(line: str) -> tuple[np.ndarray, list[list[int]], list[int]]:
    """(crops, boxes, line numbers) of one output line."""
    fields = [f.split(",") for f in line.split()]
    crops = np.array([np.frombuffer(bytes.fromhex(f[5]), np.uint8).reshape(28, 28) for f in fields], np.uint8)
    return crops.reshape(-1, 28, 28), [[int(v) for v in f[:4]] for f in fields], [int(f[4]) for f in fields]


def _transparent(digit: np.ndarray) -> np.ndarray:
    """A digit drawn on a canvas with no background: black ink, the ink's alpha (BGRA)."""
    big = cv2.resize(digit, (140, 140), interpolation=cv2.INTER_LINEAR)
    return np.dstack([np.zeros((140, 140, 3), np.uint8), big])


def test_the_android_finder_finds_what_python_finds(finder, shipped_model, test_images, tmp_path):
    """132 photo-like scenes (plain, ruled, squared, on a desk, in form boxes), 20 scans from the dev sets that the
    digit fills, 5 drawings on a transparent canvas: >= 98 % of the digits the same, position by position, and the
    same boxes; blank and ruled paper and a desk give no digits in either."""
    x, y = test_images
    photos = [s.image for s in scenes.scenes(x, y, 100, seed=3)]
    photos += [s.image for on in ("ruled", "squared", "desk", "boxes") for s in scenes.scenes(x, y, 8, seed=4, on=on)]
    handwriting = REPO.parent / "shared" / "data" / "handwriting"
    for name in ("semeion", "optdigits_32x32"):
        if (handwriting / f"{name}.npz").is_file():
            dev = np.load(handwriting / f"{name}.npz")
            photos += [255 - im if str(dev["ink"]) == "white-on-black" else im for im in dev["x"][:10]]  # as scanned
    photos += [_transparent(d) for d in x[:5]]
    rng = np.random.default_rng(3)
    blanks = [scenes.blank_scene(on, rng) for on in ("plain", "ruled", "desk", "desk_only") for _ in range(2)]
    paths = []
    for k, image in enumerate(photos + blanks):
        paths.append(tmp_path / f"{k:03d}.png")
        cv2.imwrite(str(paths[-1]), image)
    model = Model(shipped_model)
    same = total = same_boxes = 0
    found = _found(finder, paths)
    for path, line in zip(paths[:len(photos)], found):
        python = recognize.read(model, images.decode(path.read_bytes(), path.name))
        crops, boxes, lines = _digits(line)
        kotlin = recognize.classify(model, [Digit(c, tuple(b), n) for c, b, n in zip(crops, boxes, lines)])
        same += sum(a == b for a, b in zip(python.digits, kotlin.digits))
        same_boxes += sum(a == b for a, b in zip(python.boxes, kotlin.boxes))
        total += max(len(python.digits), len(kotlin.digits))
    assert total > 500 and same >= 0.98 * total and same_boxes >= 0.98 * total, (same, same_boxes, total)
    assert found[len(photos):] == [""] * len(blanks), found[len(photos):]
    assert all(recognize.read(model, images.decode(p.read_bytes(), p.name)).digits == "" for p in paths[len(photos):])


def test_a_pattern_of_too_many_marks_is_refused_as_python_refuses_it(finder, tmp_path):
    grid = hostile.grid_png(tmp_path)
    with pytest.raises(TooManyMarks) as python:
        find_digits(images.decode(grid.read_bytes(), grid.name))
    (line,) = _found(finder, [grid])
    assert line == f"error: {python.value}"
