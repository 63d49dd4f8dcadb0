"""Files for apps: the standard TFLITE_METADATA on every shipped .tflite, the app variant (RGB in,
probabilities out) and MediaPipe Tasks' ImageClassifier on it, and `edgedigits package` without TensorFlow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from firmware_harness import contract, tflite_file, tflite_metadata
from firmware_harness.errors import UserError
from firmware_harness.runtime import Model, get_backend

HERE = Path(__file__).resolve().parent
MEDIAPIPE_ENV = "EDGEDIGITS_MEDIAPIPE"  # a Python with mediapipe, in its own venv (.ci/run makes one)
SHIPPED = {"edgedigits_int8": ("GRAYSCALE", contract.LABELS), "edgedigits_int8_web": ("GRAYSCALE", contract.LABELS),
           "edgedigits_int8_mobile": ("RGB", contract.LABELS), "edgedigits_gate_int8": ("GRAYSCALE", contract.GATE_LABELS),
           "edgedigits_gate_int8_web": ("GRAYSCALE", contract.GATE_LABELS)}
PACKAGED = ("{}.tflite", "{}_web.tflite", "{}_mobile.tflite", "{}_model_data.h", "{}_model_data.cc",
            "{}_android.kt", "{}_ios.swift")


def _variant(shipped_model: Path, suffix: str) -> Path:
    return shipped_model.with_name(f"{shipped_model.stem}{suffix}.tflite")


@pytest.mark.parametrize("name", list(SHIPPED))
def test_every_shipped_file_carries_the_standard_metadata_and_its_labels(shipped_model, name):
    path = shipped_model.with_name(f"{name}.tflite")
    color_space, labels = SHIPPED[name]
    meta = tflite_metadata.read(path.read_bytes())
    assert meta["name"] == path.stem and meta["author"] == "edgedigits" and meta["license"] == "Apache-2.0"
    assert meta["inputs"][0]["image"] == {"color_space": color_space, "size": [28, 28]}
    assert "normalization" not in meta["inputs"][0]  # quantized input: the tensor holds its parameters
    assert meta["outputs"][0]["associated_files"] == [{"name": "labels.txt", "type": "TENSOR_AXIS_LABELS"}]
    assert meta["files"]["labels.txt"].splitlines() == labels
    assert sorted(p.stem for p in path.parent.glob("*.tflite")) == sorted(SHIPPED)  # every one


def test_the_metadata_leaves_the_weights_as_they_were(shipped_model):
    card = json.loads(shipped_model.with_suffix(".json").read_text())
    info = tflite_file.parse(shipped_model.read_bytes())
    assert info.weights_sha256() == card["weights_sha256"]
    assert card["standard_metadata"] == "TFLITE_METADATA" and 0 < card["standard_metadata_bytes"] < 2048
    assert card["bytes"] == shipped_model.stat().st_size


def test_a_model_without_the_entry_says_how_to_get_it(shipped_model):
    pytest.importorskip("ai_edge_litert.schema_py_generated", reason="the entry is dropped with LiteRT's schema")
    from edgedigits.export import standard_metadata, tflite_edit

    bare = tflite_edit.without_metadata(shipped_model.read_bytes(), standard_metadata.ENTRY)
    with pytest.raises(UserError, match="no TFLITE_METADATA entry; package it"):
        tflite_metadata.read(bare)


def _paper_rgb(x: np.ndarray) -> np.ndarray:
    """MNIST digits drawn dark on white, as RGB images."""
    return np.repeat((255 - x)[..., None], 3, axis=-1)


def test_the_app_variant_reads_gray_pixels_as_the_int8_model_does(shipped_model, test_images):
    """For gray pixels the graph's own grayscale and inversion give the int8 model's input exactly: the same
    answers, and probabilities within a step of 1/256 of the softmax of the int8 model's logits."""
    x = test_images[0][:2000]
    interpreter = get_backend().interpreter(model_path=str(_variant(shipped_model, "_mobile")))
    interpreter.allocate_tensors()
    (image_in,), (scores,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert image_in["dtype"] == np.uint8 and list(image_in["shape"]) == [1, 28, 28, 3] and scores["dtype"] == np.uint8
    raw = []
    for image in _paper_rgb(x):
        interpreter.set_tensor(image_in["index"], image[None])
        interpreter.invoke()
        raw.append(interpreter.get_tensor(scores["index"])[0].copy())
    scale, zero_point = scores["quantization"]
    probabilities = (np.array(raw, np.float32) - zero_point) * scale
    logits = Model(shipped_model).predict(x)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), logits.argmax(axis=1))
    assert np.abs(probabilities - softmax).max() <= 1.5 / 256


def test_packaging_the_shipped_model_without_tensorflow_remakes_the_shipped_files(shipped_model, tmp_path, mnist_path):
    """The shipped files are what `edgedigits package` makes of the shipped model (the test_export twin shows
    that package writes what export writes); this runs on the TensorFlow-free installs too."""
    pytest.importorskip("ai_edge_litert.schema_py_generated", reason="package rewrites the file with LiteRT's schema")
    pytest.importorskip("tflite_micro", reason="the shipped card has TFLite Micro's figures; without it the card differs")
    out = tmp_path / "pkg"
    done = run_cli("package", str(shipped_model), "--out", str(out), "--data", str(mnist_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TFLITE_METADATA" in done.stdout
    for pattern in PACKAGED[:3]:
        name = pattern.format(shipped_model.stem)
        assert (out / name).read_bytes() == shipped_model.with_name(name).read_bytes(), name
    card = json.loads((out / f"{shipped_model.stem}.json").read_text())
    assert card["trained"]["command"].startswith("edgedigits export") and card["float_accuracy"]


def test_package_refuses_what_it_cannot_package_in_one_line(tmp_path, shipped_model, mnist_path):
    pytest.importorskip("ai_edge_litert.schema_py_generated", reason="package rewrites the file with LiteRT's schema")
    gate = shipped_model.with_name("edgedigits_gate_int8.tflite")
    assert_one_line_error(run_cli("package", str(gate), "--out", str(tmp_path / "a"), "--data", str(mnist_path)),
                          2, "not a digit classifier")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    assert_one_line_error(run_cli("package", str(shipped_model), "--out", str(theirs), "--data", str(mnist_path)),
                          2, "not empty")
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]


def _mediapipe_python() -> str:
    python = os.environ.get(MEDIAPIPE_ENV)
    if not python or not shutil.which(python):
        pytest.skip(f"set {MEDIAPIPE_ENV} to a Python with mediapipe in its own venv (.ci/run makes one)")
    return python


def test_mediapipe_image_classifier_reads_the_app_variant_as_the_int8_model(shipped_model, test_images, tmp_path):
    """The real MediaPipe Tasks ImageClassifier on 1,000 MNIST test digits drawn dark on white as RGB images:
    top-1 equal to the int8 model's answers on at least 99.8 %, and the metadata read by MediaPipe's reader."""
    python = _mediapipe_python()
    x = test_images[0][:1000]
    np.savez(tmp_path / "rgb.npz", x=_paper_rgb(x))
    done = subprocess.run([python, str(HERE / "mediapipe" / "classify.py"), str(_variant(shipped_model, "_mobile")),
                           str(tmp_path / "rgb.npz")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    int8 = Model(shipped_model).predict(x).argmax(axis=1)
    assert np.mean(np.array(result["answers"]) == int8) >= 0.998
    assert result["metadata"] == {"name": "edgedigits_int8_mobile", "color_space": 1, "size": [28, 28],
                                  "labels_file": "labels.txt", "labels_type": 2}
    assert 0 < min(result["scores"]) and max(result["scores"]) <= 1
