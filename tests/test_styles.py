"""Training ingredients for writers MNIST lacks (`data.STYLES`): each does what it says, and a recipe without
them trains exactly as before."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import assert_one_line_error, run_cli  # noqa: E402
from edgedigits.training import data, font_digits, train  # noqa: E402
from edgedigits.training.tf_stack import tf  # noqa: E402


@pytest.fixture(scope="module")
def mnist_slice(mnist_path):
    with np.load(mnist_path) as d:
        return d["x_train"][:256], d["y_train"][:256]


def _batch(x: np.ndarray, styles: tuple[str, ...], seed: int = 3) -> np.ndarray:
    images = tf.constant(x.astype(np.float32)[..., None] / 255.0)
    return data.random_affine(images, tf.constant([seed, 0], tf.int64), 1.0, styles).numpy()[..., 0]


def test_without_styles_the_transform_is_the_rotation_zoom_and_shift_alone(mnist_slice):
    """Composing styles in must leave the plain transform bit for bit: old runs' keys and results stand."""
    x = mnist_slice[0][:64]
    plain = _batch(x, ())
    n = len(x)
    s_rot, s_zoom, s_shift = tf.unstack(tf.random.experimental.stateless_split(tf.constant([3, 0], tf.int64), 3))
    angle = tf.random.stateless_uniform([n], s_rot, -data.ROTATION_DEG, data.ROTATION_DEG) * (np.pi / 180.0)
    scale = tf.random.stateless_uniform([n], s_zoom, 1.0 - data.ZOOM, 1.0 + data.ZOOM)
    shift = tf.random.stateless_uniform([n, 2], s_shift, -data.SHIFT, data.SHIFT) * [28, 28]
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    ox, oy = 13.5 + shift[:, 0], 13.5 + shift[:, 1]
    transforms = tf.stack([cos, sin, 13.5 - cos * ox - sin * oy, -sin, cos, 13.5 + sin * ox - cos * oy,
                           tf.zeros([n]), tf.zeros([n])], axis=1)
    reference = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.constant(x.astype(np.float32)[..., None] / 255.0), transforms=transforms, output_shape=[28, 28],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT").numpy()[..., 0]
    np.testing.assert_array_equal(plain, reference)


def _extent(image: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(image > 0.2)
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def test_fill_stretches_a_narrow_digit_to_the_box(mnist_slice, monkeypatch):
    monkeypatch.setattr(data, "FILL_SHARE", 1.0)
    monkeypatch.setattr(data, "ROTATION_DEG", 0.0)
    monkeypatch.setattr(data, "ZOOM", 0.0)
    monkeypatch.setattr(data, "SHIFT", 0.0)
    x, y = mnist_slice
    ones = x[y == 1][:16]
    before = [_extent(i / 255.0) for i in ones]
    after = [_extent(i) for i in _batch(ones, ("fill",))]
    assert min(w for w, _ in before) <= 6
    for (w, h), (b, _) in zip(after, before):  # the box filled both ways, a side stretched at most FILL_MAX times
        assert 18 <= h <= 23 and (18 <= w <= 23 if 20 / b <= data.FILL_MAX else w >= data.FILL_MAX * b - 2), (w, h, b)


def test_shear_slants_and_stroke_thickens_or_thins(mnist_slice, monkeypatch):
    x = mnist_slice[0][:128]
    assert not np.array_equal(_batch(x, ("shear",)), _batch(x, ()))
    images = tf.constant(x.astype(np.float32)[..., None] / 255.0)
    monkeypatch.setattr(data, "STROKE_SHARE", 2.0)  # every digit bolder
    bolder = data.random_stroke(images, tf.constant([1, 2], tf.int64)).numpy()
    monkeypatch.setattr(data, "STROKE_SHARE", 0.0)
    same = data.random_stroke(images, tf.constant([1, 2], tf.int64)).numpy()
    assert (bolder.sum(axis=(1, 2, 3)) > images.numpy().sum(axis=(1, 2, 3))).all()
    np.testing.assert_array_equal(same, images.numpy())


def test_flags_add_european_ones_and_crossed_sevens_only(mnist_slice):
    x, y = mnist_slice
    more_x, more_y = data.with_flagged_digits(x, y, seed=0)
    added = more_y[len(y):]
    assert len(added) > 0 and set(added.tolist()) <= {1, 7}
    np.testing.assert_array_equal(more_x[:len(x)], x)
    originals = x[np.isin(y, (1, 7))]
    assert more_x[len(x):].astype(int).sum(axis=(1, 2)).mean() > 1.05 * originals.astype(int).sum(axis=(1, 2)).mean()


def test_the_font_bank_is_what_its_card_says(tmp_path):
    card = json.loads(font_digits.CARD.read_text())
    assert hashlib.sha256(font_digits.BANK.read_bytes()).hexdigest() == card["sha256"]
    assert {f["name"] for f in card["fonts"]} == set(font_digits.TRAIN) | set(font_digits.HELD_OUT)
    assert all(f["licence"] == "SIL Open Font License 1.1" and f["version"] for f in card["fonts"])
    x, y = font_digits.load()
    held_x, held_y = font_digits.load(held_out=True)
    assert x.shape[1:] == (28, 28) and len(x) + len(held_x) == card["crops"]
    assert np.bincount(y, minlength=10).min() > 0.8 * len(y) / 10 and set(held_y.tolist()) == set(range(10))


def test_a_recipe_names_its_styles_and_the_bank_it_used():
    plain, styled = train.Recipe(), train.Recipe(styles=("fill", "fonts"))
    assert "styles" not in plain.described()  # runs keyed before styles existed keep their keys
    assert styled.described()["styles"] == ["fill", "fonts"]
    assert styled.described()["font_digits_sha256"] == font_digits.bank_sha256()
    used = train.font_digits_used()
    assert used["sha256"] == font_digits.bank_sha256() and "@fontsource/caveat 5.3.0" in used["fonts"]
    assert not [f for f in used["fonts"] if f.split()[0].removeprefix("@fontsource/") in font_digits.HELD_OUT]
    with pytest.raises(Exception, match="unknown style 'bold'"):
        train.Recipe(styles=("bold",)).validate()


def test_an_unknown_style_is_a_one_line_error(tmp_path):
    assert_one_line_error(run_cli("export", "--styles", "fill,bold", "--out", str(tmp_path / "x")), 2,
                          "unknown style 'bold'")
    assert not (tmp_path / "x").exists()
