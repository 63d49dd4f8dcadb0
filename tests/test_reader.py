"""`edgedigits.DigitReader`, the Python API: the README's example runs as written, and reads what predict reads."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO, run_cli
from edgedigits import DigitReader
from edgedigits.training import scenes
from firmware_harness.errors import UserError


def test_the_readme_example_runs_as_written(tmp_path, mnist_data):
    block = re.search(r"<!-- tests/test_reader.py runs this block -->\n```python\n(.*?)```",
                      (REPO / "README.md").read_text(encoding="utf-8"), re.S).group(1)
    assert len(block.strip().splitlines()) <= 10
    scene = scenes.scenes(mnist_data.x_test, mnist_data.y_test, 1, seed=5)[0]
    cv2.imwrite(str(tmp_path / "photo.jpg"), scene.image)
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == scene.text


def test_reader_agrees_with_predict_and_classifies_batches(tmp_path, mnist_data):
    found = scenes.scenes(mnist_data.x_test, mnist_data.y_test, 6, seed=9)
    for i, scene in enumerate(found):
        cv2.imwrite(str(tmp_path / f"s{i}.png"), scene.image)
    reader = DigitReader()
    predicted = [json.loads(line) for line in run_cli("predict", str(tmp_path), "--json").stdout.splitlines()]
    for i, scene in enumerate(found):
        from_path, from_array = reader.read(tmp_path / f"s{i}.png"), reader.read(cv2.imread(str(tmp_path / f"s{i}.png")))
        assert from_path.digits == from_array.digits == predicted[i]["digits"]
        assert from_path.boxes == predicted[i]["boxes"]
    probabilities = reader.classify(mnist_data.x_test[:500])
    assert probabilities.shape == (500, 10) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert np.mean(probabilities.argmax(1) == mnist_data.y_test[:500]) > 0.98


def test_reader_errors_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="model not found"):
        DigitReader(tmp_path / "missing.tflite")
    with pytest.raises(UserError, match=r"\(N, 28, 28\)"):
        DigitReader().classify(np.zeros((3, 32, 32), np.uint8))
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(UserError, match="notes.png"):
        DigitReader().read(tmp_path / "notes.png")


def test_the_gate_weighs_confidences_unless_turned_off():
    page = REPO / "tests" / "data" / "letters" / "triplex_AB_12.png"
    gated, alone = DigitReader().read(page), DigitReader(gate=False).read(page)
    assert gated.digits == alone.digits == "4812"  # the model alone reads the letters as digits, surely
    assert all(g <= a for g, a in zip(gated.confidences, alone.confidences))
    assert gated.shown(0.9) == "??12" and alone.shown(0.9) == "4812"


def test_float_and_16_bit_arrays_read_as_their_8_bit_image(mnist_data):
    """Images from scikit-image, PIL or a camera SDK come as floats in 0-1 or 0-255, or 16-bit."""
    scene = scenes.scenes(mnist_data.x_test, mnist_data.y_test, 1, seed=3)[0]
    reader = DigitReader()
    expected = reader.read(scene.image)
    assert len(expected.digits) == len(scene.text)
    as_float = scene.image.astype(np.float32)
    with_nan = as_float / 255
    with_nan[0, 0] = np.nan
    for image in (as_float / 255, as_float, scene.image.astype(np.uint16) * 257, with_nan):
        assert reader.read(image).digits == expected.digits, image.dtype
    for bad, message in ((np.zeros((4, 4, 2), np.uint8), "shape"), (np.full((9, 9), np.nan), "finite"),
                         (np.zeros((9, 9), complex), "type complex")):
        with pytest.raises(UserError, match=message):
            reader.read(bad)


def test_the_package_says_its_version():
    import edgedigits

    assert re.fullmatch(r"\d+\.\d+\.\d+", edgedigits.__version__)
    assert run_cli("--version").stdout == f"edgedigits {edgedigits.__version__}\n"
