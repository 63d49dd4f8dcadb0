"""Every registry model builds, reports its size, and learns a little on a real 2k slice."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import run_cli  # noqa: E402
from edgedigits import DEFAULT_MODEL  # noqa: E402
from edgedigits.training import data, models, train
from firmware_harness.errors import UserError  # noqa: E402


@pytest.fixture(scope="module")
def small(mnist_path):
    return data.load_splits(mnist_path, limit=2000)


def test_reference_parameter_counts():
    assert models.create_model("cnn_basic").count_params() == 2_380_938
    assert models.create_model("cnn_deep").count_params() == 887_530
    assert models.create_model("lenet5").count_params() == 61_706


MIXED_BLOCKS = "c16 c32s2 d48 d64s2"  # both kinds of block, so depthwise layers are covered


def test_ds_cnn_width_and_depth_change_size():
    base = models.create_model("ds_cnn", blocks=MIXED_BLOCKS)
    assert models.create_model("ds_cnn", blocks=MIXED_BLOCKS, width=0.5).count_params() < base.count_params() / 2
    assert models.create_model("ds_cnn", blocks=MIXED_BLOCKS, depth=3).count_params() > base.count_params()
    assert models.count_macs(models.create_model("ds_cnn_micro")) < models.count_macs(models.create_model("ds_cnn"))


def test_fast_preset_runs_no_layer_at_full_resolution():
    """Its latency comes from this: at 28x28 a few channels per pixel leave int8 SIMD lanes idle."""
    fast = models.create_model("ds_cnn_fast")
    convs = [layer for layer in fast.layers if type(layer).__name__ == "Conv2D"]
    assert convs and all(layer.output_shape[1] <= 14 for layer in convs)
    assert models.count_macs(fast) < models.count_macs(models.create_model("ds_cnn")) / 2


def test_the_default_model_is_the_shipped_models_architecture(shipped_model):
    """`train` and `export` build DEFAULT_MODEL; the shipped file must be that export, and `models` says so."""
    card = json.loads(shipped_model.with_suffix(".json").read_text())
    assert card["source"]["model"] == DEFAULT_MODEL
    listing = run_cli("models")
    assert listing.returncode == 0, listing.stderr[-2000:]
    marked = [line.split()[0] for line in listing.stdout.splitlines() if "(default" in line]
    assert marked == [DEFAULT_MODEL]


def test_bn_follows_every_conv_in_ds_cnn():
    """Conv/Depthwise -> BatchNorm -> ReLU6, the order QAT folds."""
    model = models.create_model("ds_cnn", blocks=MIXED_BLOCKS)
    layers = model.layers
    assert any(type(layer).__name__ == "DepthwiseConv2D" for layer in layers)
    for i, layer in enumerate(layers):
        if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D"):
            assert type(layers[i + 1]).__name__ == "BatchNormalization"
            assert type(layers[i + 2]).__name__ == "ReLU" and layers[i + 2].max_value == 6.0


def test_unknown_model_is_a_one_line_error():
    with pytest.raises(UserError, match="unknown model 'resnet'.*ds_cnn"):
        models.create_model("resnet")


@pytest.mark.parametrize("name", models.model_names())
def test_model_learns_on_a_small_slice(name, small):
    model = models.create_model(name)
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    assert models.count_macs(model) > 0
    train.compile_model(model, 2e-3)
    before = train.evaluate_keras(model, small.x_val, small.y_val)[0]
    model.fit(data.make_dataset(small.x_train, small.y_train, 64, train=True), steps_per_epoch=64, epochs=1, verbose=0)
    after = train.evaluate_keras(model, small.x_val, small.y_val)[0]
    assert after < before, f"{name}: validation loss did not drop ({before:.3f} -> {after:.3f})"


def test_augmentation_is_seeded_and_keeps_digits_in_frame(small):
    from edgedigits.training.tf_stack import tf

    images = tf.constant(data.to_model_input(small.x_train[:64]))
    a = data.random_affine(images, tf.constant([3, 4], tf.int64)).numpy()
    b = data.random_affine(images, tf.constant([3, 4], tf.int64)).numpy()
    c = data.random_affine(images, tf.constant([5, 6], tf.int64)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    ink_before = images.numpy().sum(axis=(1, 2, 3))
    ink_after = a.sum(axis=(1, 2, 3))
    assert np.all(ink_after > 0.6 * ink_before), "a ±10 % shift/zoom should not push digits out of the frame"


def test_params_mean_one_thing_everywhere(shipped_model):
    """`models`, `train`'s card and `bench` count parameters as the converted file stores them."""
    from firmware_harness import tflite_file

    assert models.count_params(models.create_model("ds_cnn_fast")) == 23_570
    assert tflite_file.parse(shipped_model.read_bytes()).param_count() == 23_570
    assert models.count_params(models.create_model("cnn_deep")) == 887_530  # no batch norm: Keras' count


def test_the_summary_models_prints_is_the_registry_as_built():
    """`edgedigits models` reads model_summary.json (no TensorFlow); after a builder changes,
    `python -m edgedigits.training.models` writes it again."""
    import json

    assert json.loads(models.SUMMARY.read_text()) == models.summary()


def test_augmentation_strength_scales_the_transforms(mnist_data):
    """Strength 0 leaves the digits as they are; each step up moves their pixels further (same seeds)."""
    from edgedigits.training import data
    from edgedigits.training.tf_stack import tf

    images = tf.constant(data.to_model_input(mnist_data.x_train[:256]))
    seed = tf.constant([3, 4], dtype=tf.int64)
    moved = [float(tf.reduce_mean(tf.abs(data.random_affine(images, seed, s) - images))) for s in (0.0, 0.5, 1.0, 1.5)]
    assert moved[0] < 1e-6 and moved[1] < moved[2] < moved[3]
