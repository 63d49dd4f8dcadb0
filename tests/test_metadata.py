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
        content = tflite_edit.without_metadata(content, "edgedigits")
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


def test_replacing_the_entry_leaves_no_old_buffer_behind(shipped_model, tmp_path):
    once = _rewritten(shipped_model, tmp_path, list("abcdefghij")).read_bytes()
    pytest.importorskip("ai_edge_litert.schema_py_generated")
    from edgedigits.export import tflite_edit

    entry = tflite_file.parse(once).metadata_json("edgedigits")
    assert tflite_edit.with_metadata(once, "edgedigits", json.dumps(entry).encode()) == once
    assert len(tflite_edit.load(once).buffers) == len(tflite_edit.load(shipped_model.read_bytes()).buffers)


def test_the_harness_takes_its_labels_from_the_file(shipped_model, tmp_path, test_images):
    letters = list("abcdefghij")
    relabelled = Model(_rewritten(shipped_model, tmp_path, letters))
    assert relabelled.labels == letters
    x, y = test_images
    reading = recognize.read(relabelled, np.hstack([255 - x[0], 255 - x[1]]))
    assert reading.digits == letters[y[0]] + letters[y[1]]


@pytest.mark.parametrize("labels", [
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],  # read as 'zeroonetwo'
    [""] * 10,
    list("0123456780"),  # not distinct
    ["\x1b]0;owned\x07", *"123456789"],  # a terminal escape
    list("0123"),
])
def test_labels_that_are_not_ten_distinct_characters_are_refused_in_one_line(shipped_model, tmp_path, labels):
    from conftest import assert_one_line_error

    model = _rewritten(shipped_model, tmp_path, labels)
    image = tmp_path / "digit.png"
    cv2.imwrite(str(image), np.full((64, 64), 255, np.uint8))
    for args in (["predict", str(image), "--model", str(model)], ["web", str(tmp_path / "site"), "--model", str(model)]):
        result = run_cli(*args)
        assert_one_line_error(result, 2, "ten distinct single printable characters")
        assert "\x1b" not in result.stderr and "\x07" not in result.stderr


def test_metadata_nested_200000_deep_is_read_as_no_card(shipped_model, tmp_path, test_images):
    """json.loads of it raised RecursionError (a traceback in predict and web); now it is malformed JSON."""
    pytest.importorskip("ai_edge_litert.schema_py_generated", reason="rewriting a file needs LiteRT's schema")
    from edgedigits.export import tflite_edit

    deep = tmp_path / "deep.tflite"
    deep.write_bytes(tflite_edit.with_metadata(shipped_model.read_bytes(), "edgedigits",
                                               b"[" * 200_000 + b"]" * 200_000))
    assert Model(deep).card is None and Model(deep).labels == contract.LABELS
    image = tmp_path / "digit.png"
    cv2.imwrite(str(image), 255 - test_images[0][0])
    result = run_cli("predict", str(image), "--model", str(deep))
    assert result.returncode == 0 and "Traceback" not in result.stderr


def test_control_characters_in_file_names_reach_no_terminal(tmp_path, test_images):
    named = tmp_path / "a\x1b]0;owned\x07\x1b[2J.png"
    cv2.imwrite(str(named), 255 - test_images[0][0])
    missing = tmp_path / "gone\x1b[31m.png"
    result = run_cli("predict", str(named), str(missing))
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\x07" not in stream, stream
    assert "a\\x1b]0;owned\\x07\\x1b[2J.png: " in result.stdout and "gone\\x1b[31m.png" in result.stderr
