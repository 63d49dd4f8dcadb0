"""The digit gate: its training examples, a real (tiny) training run, and the shipped gate's card."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from firmware_harness import contract, tflite_metadata
from firmware_harness.preprocess import find_digits
from firmware_harness.runtime import Model, shipped_model


def test_the_shipped_gate_is_the_file_its_card_describes():
    path = shipped_model(contract.GATE_FILE)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and card["labels"] == contract.GATE_LABELS
    assert card["measured"]["mnist_validation"]["called_digit"] > 0.99
    assert card["measured"]["held_out_fonts_not_digits"]["called_digit"] < 0.1
    assert card["measured"]["empty_boxes"]["called_digit"] < 0.05  # a form's empty box is not a 0
    assert Model(path, probe=False, classes=2).output.shape[-1] == 2


def test_glyphs_are_framed_as_the_harness_frames_digits():
    glyphs = pytest.importorskip("edgedigits.training.glyphs")
    pytest.importorskip("matplotlib")
    letters = glyphs.rendered(glyphs.NOT_DIGITS, glyphs.training_fonts(), 40, seed=0)
    marks = glyphs.scribbles(20, seed=0)
    for crops in (letters, marks):
        assert crops.dtype == np.uint8 and crops.shape[1:] == (28, 28) and len(crops) >= 15
        assert (crops.reshape(len(crops), -1).max(axis=1) > 200).all()  # ink in every crop
    again = glyphs.rendered(glyphs.NOT_DIGITS, glyphs.training_fonts(), 40, seed=0)
    assert np.array_equal(letters, again)  # seeded


def test_letters_set_close_touch_and_are_found_as_one_mark():
    """`joined` sets two or three letters closer than their font does; the pages kept are those where the finder
    takes them for one mark."""
    glyphs = pytest.importorskip("edgedigits.training.glyphs")
    fonts = [glyphs.Font(h, greek=False) for h in glyphs.TRAIN_HERSHEY]
    rng = np.random.default_rng(0)
    apart = [len(find_digits(glyphs.draw("HKM", fonts[0], rng, max_stroke=0, low_res=0))) for _ in range(5)]
    touching = [len(find_digits(glyphs.draw("HKM", fonts[0], rng, max_stroke=0, low_res=0, tracking=0.5)))
                for _ in range(5)]
    assert apart == [3] * 5 and max(touching) < 3
    joined = glyphs.joined(glyphs.NOT_DIGIT_LETTERS, fonts, 60, seed=0)
    assert 20 <= len(joined) <= 60 and joined.shape[1:] == (28, 28)


def test_a_small_gate_trains_converts_and_carries_its_card(tmp_path, mnist_path, monkeypatch):
    pytest.importorskip("tensorflow")
    gate = pytest.importorskip("edgedigits.builds.gate")
    monkeypatch.setenv("EDGEDIGITS_DATA", str(mnist_path))
    assert gate.main(["--out", str(tmp_path), "--epochs", "1", "--limit", "1500"]) == 0
    card = json.loads((tmp_path / "edgedigits_gate_int8.json").read_text())
    assert card["limit"] == 1500 and card["examples"]["digits"] > card["examples"]["not_digits"] > 0
    model = Model(tmp_path / contract.GATE_FILE, classes=2)  # probed in a child, as any new file
    assert model.input.dtype == np.int8 and set(card["measured"]) == {
        "mnist_validation", "held_out_fonts_digits", "held_out_fonts_not_digits", "held_out_fonts_joined_letters",
        "empty_boxes"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "edgedigits_gate_int8.json", "edgedigits_gate_int8.tflite", "edgedigits_gate_int8_web.tflite"]
    assert tflite_metadata.read((tmp_path / contract.GATE_FILE).read_bytes())["files"]["labels.txt"].splitlines() \
        == contract.GATE_LABELS == card["labels"]


def test_the_shipped_gates_browser_variant_is_made_from_it():
    """The page takes the gate's `_web.tflite` as shipped (a device-only install cannot make one)."""
    pytest.importorskip("ai_edge_litert.schema_py_generated", reason="the web variant is made with LiteRT's schema")
    from edgedigits.export import artifacts, standard_metadata

    path = shipped_model(contract.GATE_FILE)
    web = path.with_name(f"{path.stem}_web.tflite").read_bytes()
    assert web == artifacts.web_file(path.read_bytes(), path.stem, contract.GATE_LABELS, standard_metadata.GATE_ABOUT)
