"""Real-world recognition: preprocessing, `predict` and `camera` on generated photos and videos.

No TensorFlow: the scenes are drawn from MNIST test digits with numpy and OpenCV, and the
UCI digits (handwriting that is not MNIST) come with scikit-learn.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
import zlib

import cv2
import numpy as np
import pytest

from conftest import REPO, assert_one_line_error, run_cli
from edgedigits.training import scenes
from firmware_harness import preprocess, recognize
from firmware_harness.runtime import Model


@pytest.fixture(scope="module")
def model(shipped_model):
    return Model(shipped_model)


def _digit_on_paper(digit: np.ndarray, size: int = 200) -> np.ndarray:
    """A clean dark digit on light paper (no noise), for geometric checks."""
    big = cv2.resize(digit, (size // 2, size // 2), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((size, size), 230, np.uint8)
    canvas[size // 4: size // 4 + size // 2, size // 4: size // 4 + size // 2] -= (big.astype(np.float32) * 0.8).astype(np.uint8)
    return canvas


def test_crops_are_in_mnist_form(test_images):
    x, _ = test_images
    (digit,) = preprocess.find_digits(_digit_on_paper(x[0]))
    crop = digit.image.astype(np.float64)
    ys, xs = np.nonzero(crop > 30)
    assert crop.shape == (28, 28) and crop.max() > 200 and crop[0].max() == 0
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) <= 22, "the digit must fit a 20x20 box"
    cy, cx = (crop * np.mgrid[0:28, 0:28]).sum(axis=(1, 2)) / crop.sum()
    assert abs(cy - 13.5) < 1.0 and abs(cx - 13.5) < 1.0, "centre of mass at the centre"


def test_polarity_gray_bgr_bgra_and_white_on_black_agree(model, test_images):
    x, y = test_images
    paper = _digit_on_paper(x[1])
    variants = [paper, cv2.cvtColor(paper, cv2.COLOR_GRAY2BGR), cv2.cvtColor(paper, cv2.COLOR_GRAY2BGRA), 255 - paper]
    assert [recognize.read(model, v).digits for v in variants] == [str(y[1])] * 4


@pytest.mark.parametrize("blank", ["paper", "noise", "gradient", "black"])
def test_no_digit_gives_an_empty_string(model, blank):
    rng = np.random.default_rng(3)
    image = {
        "paper": scenes.paper(480, 640, rng).astype(np.uint8),
        "noise": np.clip(200 + rng.normal(0, 6, (480, 640)), 0, 255).astype(np.uint8),
        "gradient": np.tile(np.linspace(90, 240, 640, dtype=np.float32), (480, 1)).astype(np.uint8),
        "black": np.zeros((120, 160), np.uint8),
    }[blank]
    assert recognize.read(model, image).digits == ""


def test_ruled_lines_and_page_edge_are_ignored(model, test_images):
    x, y = test_images
    rng = np.random.default_rng(5)
    scene = scenes.string_scene([x[i] for i in range(10, 14)], [y[i] for i in range(10, 14)], rng, max_rotation=0)
    gray = cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY)
    for row in range(40, 480, 60):
        gray[row:row + 2] = (gray[row:row + 2] * 0.6).astype(np.uint8)  # notebook lines
    gray[:, :25] = 40  # the dark desk beyond the page's left edge
    assert recognize.read(model, gray).digits == scene.text


def test_lines_read_top_to_bottom_left_to_right(model, test_images):
    x, y = test_images
    rng = np.random.default_rng(7)
    top = scenes.string_scene([x[i] for i in range(20, 23)], [y[i] for i in range(20, 23)], rng, max_rotation=0)
    bottom = scenes.string_scene([x[i] for i in range(23, 27)], [y[i] for i in range(23, 27)], rng, max_rotation=0)
    crop_top = _ink_band(top.image)
    crop_bottom = _ink_band(bottom.image)
    page = np.vstack([crop_top, np.full((40, 640, 3), crop_top[0, 0], np.uint8), crop_bottom])
    reading = recognize.read(model, page)
    assert reading.lines == [0] * len(top.text) + [1] * len(bottom.text)
    first, second = reading.boxes[:len(top.text)], reading.boxes[len(top.text):]
    assert max(y + h for _, y, _, h in first) < min(y for _, y, _, _ in second), "line 0 is above line 1"
    for line in (first, second):
        assert [x for x, *_ in line] == sorted(x for x, *_ in line), "left to right within a line"
    matches = sum(a == b for a, b in zip(reading.digits, top.text + bottom.text))
    assert matches >= len(reading.digits) - 1


def _ink_band(image: np.ndarray) -> np.ndarray:
    """The horizontal band of a scene that holds its row of digits, with some margin."""
    found = preprocess.find_digits(image)
    y0 = max(0, min(d.box[1] for d in found) - 20)
    y1 = min(image.shape[0], max(d.box[1] + d.box[3] for d in found) + 20)
    return image[y0:y1]


def test_broken_digit_is_merged_and_touching_digits_are_split(model):
    broken = np.full((200, 200), 235, np.uint8)
    cv2.line(broken, (60, 40), (140, 40), 30, 10)  # a 5 whose top bar does not touch its body
    cv2.line(broken, (62, 58), (62, 95), 30, 10)
    cv2.ellipse(broken, (100, 125), (42, 38), 0, -120, 150, 30, 10)
    assert len(preprocess.find_digits(broken)) == 1
    flag = np.full((200, 240), 235, np.uint8)
    cv2.line(flag, (62, 58), (62, 95), 30, 10)  # a 5 whose flag is written apart, up and to the right
    cv2.ellipse(flag, (100, 125), (42, 38), 0, -120, 150, 30, 10)
    cv2.line(flag, (120, 62), (200, 28), 30, 12)
    assert recognize.read(model, flag).digits == "5"
    touching = np.full((160, 320), 235, np.uint8)
    cv2.line(touching, (90, 30), (90, 130), 30, 9)  # "1"
    cv2.line(touching, (90, 130), (150, 130), 30, 5)  # a thin connecting stroke
    cv2.circle(touching, (200, 80), 48, 30, 9)  # "0"
    reading = recognize.read(model, touching)
    assert reading.digits == "10", reading.digits


def test_scenes_are_read(model, test_images):
    """A small sample here; benchmarks/recognition.py measures 1000 digits and 300 scenes."""
    x, y = test_images
    sample = scenes.scenes(x, y, 40, seed=21)
    exact = sum(recognize.read(model, s.image).digits == s.text for s in sample)
    assert exact >= 32, f"{exact}/40 scenes read exactly"


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, test_images):
    x, y = test_images
    folder = tmp_path_factory.mktemp("images")
    truth = {}
    for k, s in enumerate(scenes.scenes(x, y, 3, seed=9)):
        path = folder / f"scene{k}.{'png' if k % 2 else 'jpg'}"
        cv2.imwrite(str(path), s.image)
        truth[path.name] = s.text
    cv2.imwrite(str(folder / "blank.png"), np.full((100, 100), 220, np.uint8))
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    (folder / "huge.png").write_bytes(_png_header_only(30000, 30000))
    (folder / "cut.jpg").write_bytes((folder / "scene0.jpg").read_bytes()[:2000])
    return folder, truth


def test_predict_json_one_line_per_image_and_errors_per_file(image_folder, shipped_model):
    folder, truth = image_folder
    started = time.perf_counter()
    result = run_cli("predict", str(folder), "--json", "--model", str(shipped_model))
    assert time.perf_counter() - started < 60
    assert result.returncode == 2, "files that cannot be read make the exit code 2 (bad input) at the end"
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {line["path"].rsplit("/", 1)[-1]: line for line in lines}
    assert set(by_name) == set(truth) | {"blank.png"}
    for name, text in truth.items():
        assert by_name[name]["digits"] == text
        assert len(by_name[name]["confidences"]) == len(text) == len(by_name[name]["boxes"])
        assert all(len(box) == 4 for box in by_name[name]["boxes"])
    assert by_name["blank.png"] == {"path": str(folder / "blank.png"), "digits": "", "lines": [], "line": [],
                                    "confidences": [], "boxes": []}
    errors = sorted(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert [e.split(":")[1].strip().rsplit("/", 1)[-1] for e in errors] == ["cut.jpg", "empty.png", "huge.png", "notes.png"]
    assert "Traceback" not in result.stderr
    assert any("over the 40 MP limit" in e for e in errors)


def test_predict_missing_path_and_model(tmp_path):
    result = run_cli("predict", str(tmp_path / "nope.png"))
    assert result.returncode == 2 and "no such file" in result.stderr
    result = run_cli("predict", str(tmp_path), "--model", str(tmp_path / "m.tflite"))
    assert_one_line_error(result, 2, "model not found")


@pytest.fixture(scope="module")
def video(tmp_path_factory, test_images):
    x, y = test_images
    path = tmp_path_factory.mktemp("video") / "digits.mp4"
    sample = scenes.scenes(x, y, 6, seed=13)
    scenes.write_video(str(path), [s.image for s in sample], fps=10, repeat=5)
    return path, [s.text for s in sample]


def test_camera_reads_a_video_file_headless_with_json(video, shipped_model, tmp_path):
    path, texts = video
    record = tmp_path / "out.mp4"
    result = run_cli("camera", "--source", str(path), "--headless", "--json", "--model", str(shipped_model),
                     "--record", str(record))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert len(frames) == summary["frames"] == 30
    assert [f["frame"] for f in frames] == list(range(30))
    read = [f["digits"] for f in frames[2::5]]
    assert sum(a == b for a, b in zip(read, texts)) >= 5, (read, texts)
    assert set(summary["stage_ms"]) == {"capture", "preprocess", "inference", "draw"}
    assert summary["fps"] > 0 and summary["frame_ms"]["p50"] <= summary["frame_ms"]["p90"]
    capture = cv2.VideoCapture(str(record))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"


def test_camera_max_frames_and_image_folder(image_folder, shipped_model):
    folder, _ = image_folder
    (folder / "../frames").resolve().mkdir(exist_ok=True)
    frames_dir = (folder / "../frames").resolve()
    for name in ("scene0.jpg", "scene1.png", "scene2.jpg"):
        (frames_dir / name).write_bytes((folder / name).read_bytes())
    result = run_cli("camera", "--source", str(frames_dir), "--headless", "--json", "--max-frames", "2",
                     "--model", str(shipped_model))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1])["summary"]["frames"] == 2


@pytest.mark.parametrize("source,fragment", [("9", "camera 9: cannot be opened"), ("nothing.mp4", "no such camera")])
def test_camera_that_cannot_be_opened(source, fragment, tmp_path):
    started = time.perf_counter()
    result = run_cli("camera", "--source", source, "--headless", cwd=tmp_path)
    assert time.perf_counter() - started < 15, "a clear error within 5 s (plus interpreter start-up)"
    assert_one_line_error(result, 2, fragment)


def test_uci_digits_benchmark_reads_other_handwriting_and_pairs_it_with_cnn_deep(tmp_path, shipped_model):
    pytest.importorskip("sklearn")
    for folder in ("cnn_deep", "cnn_deep_seed1"):  # the shipped file, as cnn_deep's seeds 0 and 1
        stand_in = tmp_path / "cache" / "full" / folder / "cnn_deep_int8.tflite"
        stand_in.parent.mkdir(parents=True)
        stand_in.write_bytes(shipped_model.read_bytes())
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "uci_digits.py"), "--limit", "300",
                           "--size", "64", "32", "64", "--cache", str(tmp_path / "cache"),
                           "--results", str(tmp_path / "results")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "results" / "uci_digits.json").read_text())
    rows = result["rows"]
    assert [(r["name"], r["size_px"]) for r in rows] == [
        (name, size) for size in (64, 32) for name in ("edgedigits_int8", "cnn_deep_int8", "cnn_deep_int8_seed1")]
    for shipped in rows[0::3]:
        assert shipped["accuracy"] >= 0.85, shipped  # coarse 8x8 scans by other writers: the zoo reads 86-92 %
        assert shipped["no_digit_or_several"] == 0
        assert shipped["vs_cnn_deep_int8"] == {"only_this_right": 0, "only_cnn_deep_right": 0, "mcnemar_p": 1.0}
    assert result["seed_summary"] == {"cnn_deep_int8": {
        str(r["size_px"]): {"seeds": [0, 1], "mean": r["accuracy"], "std": 0.0, "min": r["accuracy"],
                            "max": r["accuracy"], "n": 2}
        for r in rows[0::3]}}
    table = (tmp_path / "results" / "uci_digits.md").read_text()
    assert "| 64 px | vs cnn_deep | 32 px | vs cnn_deep |" in table
    assert "| **edgedigits_int8** |" in table and "_seed1 |" not in table, "seeds go in the seed table only"
    assert "| cnn_deep_int8 | 0, 1 |" in table
