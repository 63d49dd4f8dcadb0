"""A self-describing .tflite: the `edgedigits` metadata entry in the shipped file, labels read from it,
and a plain file without it still read."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import run_cli
from firmware_harness import contract, recognize, tflite_file
from firmware_harness.runtime import Model


def test_the_shipped_file_carries_its_card(shipped_model):
    info = tflite_file.parse(shipped_model.read_bytes())
    entry = info.metadata_json(contract.METADATA_NAME)
    card = json.loads(shipped_model.with_suffix(".json").read_text())
    assert entry["labels"] == contract.LABELS
    assert entry["accuracy_per_kernel"] == card["accuracy_per_kernel"]
    assert entry["input"] == {**card["input"], "pixels": contract.PREPROCESSING["pixels"],
                              "digit": contract.PREPROCESSING["digit"]}
    assert entry["weights_sha256"] == card["weights_sha256"] == info.weights_sha256()


def _rewritten(shipped_model, tmp_path, labels: list[str] | None):
    """The shipped file with its entry dropped (labels None) or holding other labels."""
    pytest.importorskip("ai_edge_litert.schema_py_generated", reason="rewriting a file needs LiteRT's schema")
    from edgedigits.export import tflite_edit

    content = shipped_model.read_bytes()
    if labels is None:
        model = tflite_edit.load(content)
        model.metadata = [m for m in model.metadata if m.name not in (b"edgedigits", "edgedigits")]
        content = tflite_edit.pack(model)
    else:
        entry = {**tflite_file.parse(content).metadata_json("edgedigits"), "labels": labels}
        content = tflite_edit.with_metadata(content, "edgedigits", json.dumps(entry).encode())
    path = tmp_path / "rewritten.tflite"
    path.write_bytes(content)
    return path


def test_a_file_without_the_entry_is_read_as_before(shipped_model, tmp_path, test_images):
    plain = _rewritten(shipped_model, tmp_path, None)
    info = tflite_file.parse(plain.read_bytes())
    assert contract.METADATA_NAME not in info.metadata
    assert info.weights_sha256() == tflite_file.parse(shipped_model.read_bytes()).weights_sha256()
    model = Model(plain)
    assert model.card is None and model.labels == contract.LABELS
    x = test_images[0][:500]
    np.testing.assert_array_equal(model.predict(x), Model(shipped_model).predict(x))
    image = tmp_path / "digit.png"
    cv2.imwrite(str(image), 255 - test_images[0][0])
    result = run_cli("predict", str(image), "--model", str(plain))
    assert result.returncode == 0 and f"digit.png: {test_images[1][0]} " in result.stdout, result.stderr


def test_the_harness_takes_its_labels_from_the_file(shipped_model, tmp_path, test_images):
    letters = list("abcdefghij")
    relabelled = Model(_rewritten(shipped_model, tmp_path, letters))
    assert relabelled.labels == letters
    x, y = test_images
    reading = recognize.read(relabelled, np.hstack([255 - x[0], 255 - x[1]]))
    assert reading.digits == letters[y[0]] + letters[y[1]]
