"""The line reader's device side (the strip and CTC decoding) and the synthetic lines it learns from (#41)."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_harness import line_reader
from firmware_harness.line_reader import BLANK, COLUMN, INK_HEIGHT, MARGIN, STEPS, STRIP_HEIGHT, STRIP_WIDTH


def _scores(best: list[int], sure: float = 0.9) -> np.ndarray:
    """Log-probabilities whose best class at step t is best[t], with probability `sure`."""
    probs = np.full((STEPS, BLANK + 1), (1 - sure) / BLANK)
    classes = best + [BLANK] * (STEPS - len(best))
    probs[np.arange(STEPS), classes] = sure
    return np.log(probs)


def test_decoding_collapses_repeats_and_drops_blanks():
    read = line_reader.decode(_scores([BLANK, 1, 1, BLANK, 1, 2, 2, 2, BLANK, 0]))
    assert [d.digit for d in read] == [1, 1, 2, 0]
    assert all(abs(d.confidence - 0.9) < 1e-9 for d in read)
    assert [(d.x0, d.x1) for d in read] == [(1 * COLUMN, 3 * COLUMN), (4 * COLUMN, 5 * COLUMN),
                                            (5 * COLUMN, 8 * COLUMN), (9 * COLUMN, 10 * COLUMN)]
    assert line_reader.decode(_scores([])) == []


def test_a_strip_holds_the_line_at_ink_height_and_maps_back_to_the_crop():
    crop = np.full((60, 300), 12, np.uint8)  # a faint background
    crop[10:50, 40:200] = 90  # pale ink, 40 rows tall
    strip = line_reader.to_strip(crop)
    rows, cols = np.nonzero(strip.pixels > 128)
    assert rows.max() - rows.min() + 1 == INK_HEIGHT and cols.min() == MARGIN
    assert strip.pixels.shape == (STRIP_HEIGHT, STRIP_WIDTH) and strip.pixels.max() == 255  # stretched
    assert (strip.x0, strip.y0) == (40, 10) and strip.scale == pytest.approx(INK_HEIGHT / 40)
    read = line_reader.decode(_scores([BLANK, 3]), strip)
    assert read[0].x0 == 40 + round((COLUMN - MARGIN) / strip.scale)


def test_a_long_line_is_scaled_to_the_width_and_an_empty_crop_is_none():
    crop = np.zeros((40, 2000), np.uint8)
    crop[5:35, 0:2000] = 200
    strip = line_reader.to_strip(crop)
    cols = np.nonzero((strip.pixels > 128).any(0))[0]
    assert cols.min() == MARGIN and cols.max() == STRIP_WIDTH - MARGIN - 1
    assert line_reader.to_strip(np.full((40, 100), 77, np.uint8)) is None


def test_synthetic_lines_are_seeded_and_hold_their_digits(test_images):
    from edgedigits.training import lines

    x, y = test_images
    strips, labels = lines.make(x[:200], y[:200], 12, seed=3)
    again, same = lines.make(x[:200], y[:200], 12, seed=3)
    assert np.array_equal(strips, again) and np.array_equal(labels, same)
    lengths = (labels >= 0).sum(1)
    assert lengths.min() >= 1 and lengths.max() <= lines.MAX_DIGITS
    assert all((row[:k] >= 0).all() and (row[k:] == -1).all() for row, k in zip(labels, lengths))
    assert all(s.max() > 128 for s in strips)  # every strip has its line in it
    touching, _ = lines.make(x[:200], y[:200], 4, seed=3, style=lines.STYLES["touching"], lengths=(3, 8))
    assert touching.shape == (4, STRIP_HEIGHT, STRIP_WIDTH)


def test_the_line_model_trains_and_converts_to_full_integer_tflite(tmp_path, test_images):
    pytest.importorskip("tensorflow")
    from edgedigits.export import artifacts
    from edgedigits.training import line_model, lines
    from firmware_harness import tflite_file
    from firmware_harness.runtime import get_backend

    x, y = test_images
    strips, labels = lines.make(x[:300], y[:300], 96, seed=4)
    model = line_model.train(strips, labels, strips[:32], labels[:32], tmp_path / "stage", epochs=1, batch=32)
    assert model.output_shape == (None, STEPS, BLANK + 1)
    content = artifacts.convert(model, "int8", calibration_images=strips)
    info = tflite_file.parse(content)
    assert info.float_activations() == []  # full integer: runs on every kernel family and on microcontrollers
    interpreter = get_backend().interpreter(model_content=content)
    interpreter.allocate_tensors()
    given, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert list(given["shape"]) == [1, STRIP_HEIGHT, STRIP_WIDTH, 1] and given["dtype"] == np.int8
    interpreter.set_tensor(given["index"], (strips[0].astype(np.int16) - 128).astype(np.int8)[None, ..., None])
    interpreter.invoke()
    raw = interpreter.get_tensor(out["index"])[0]
    assert raw.shape == (STEPS, BLANK + 1)
    assert all(0 <= d.digit <= 9 for d in line_reader.decode(raw.astype(np.float32)))
