"""Model registry: tf_keras Functional models, 28x28x1 floats in [0, 1] in, 10 logits out.

Register a builder with `@register(zoo_epochs=..., compressed=...)` (the model zoo reads those);
build with `create_model(name, **kwargs)`. Adding a model is adding a builder here
(then `python -m edgedigits.training.models` refreshes model_summary.json; a test says when it is stale).
Conv/DepthwiseConv -> BatchNormalization -> ReLU6 stays in that order everywhere so
quantization-aware training can fold batch norm into the convolution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgedigits import MODEL_SUMMARY
from edgedigits.training.tf_stack import keras
from firmware_harness.contract import IMAGE_SIDE, NUM_CLASSES
from firmware_harness.errors import UserError

INPUT_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 1)
BN_MOMENTUM = 0.9  # batch-norm statistics settle in tens of steps (Keras' 0.99 needs hundreds)


@dataclass(frozen=True)
class Entry:
    """A registered model: its builder and how the model zoo (benchmarks/model_zoo.py) trains it."""

    builder: Callable[..., keras.Model]
    zoo_epochs: int  # float training epochs in the zoo
    compressed: bool  # the zoo also runs `export --int8`'s prune + QAT chain on it


_REGISTRY: dict[str, Entry] = {}


def register(zoo_epochs: int, compressed: bool = False) -> Callable:
    """Add a model builder to the registry under its function name, with its zoo settings."""

    def add(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        _REGISTRY[builder.__name__] = Entry(builder, zoo_epochs, compressed)
        return builder

    return add


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def entries() -> dict[str, Entry]:
    """Every registered model in the order registered (the zoo's order)."""
    return dict(_REGISTRY)


def create_model(name: str, **kwargs) -> keras.Model:
    """Build the registered model `name`; unknown names get a one-line error listing the choices."""
    if name not in _REGISTRY:
        raise UserError(f"unknown model '{name}'; choose one of: {', '.join(model_names())}")
    model = _REGISTRY[name].builder(**kwargs)
    model._name = name  # noqa: SLF001 - keras has no public setter; the name goes into cards and files
    return model


SUMMARY = Path(__file__).parents[1] / MODEL_SUMMARY  # edgedigits/: what `edgedigits models` prints, without TensorFlow


def summary() -> list[dict]:
    """Every registered model in the order registered, as built with its defaults: name, parameters, MACs and
    zoo settings (model_summary.json, which `edgedigits models` and the model zoo read without TensorFlow)."""
    rows = []
    for name, entry in _REGISTRY.items():
        model = create_model(name)
        rows.append({"name": name, "params": count_params(model), "macs": count_macs(model),
                     "zoo_epochs": entry.zoo_epochs, "compressed": entry.compressed})
    return rows


def count_params(model: keras.Model) -> int:
    """Parameters as the converted file stores them: conv, depthwise and dense kernels plus one bias per
    output channel, batch norm folded into it. The count `bench`, the cards and `tflite_file` give;
    Keras' own count adds batch norm's four vectors (ds_cnn_fast: 23,954 against 23,570)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
            kernel = layer.weights[0].shape
            channels = kernel[-1] * (kernel[-2] if isinstance(layer, keras.layers.DepthwiseConv2D) else 1)
            total += int(kernel.num_elements()) + int(channels)
    return total


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one inference: convolutions and dense layers (BN folds away)."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
            out = layer.output_shape
            kernel = layer.weights[0].shape  # Conv: (kh, kw, in, out); Depthwise: (kh, kw, in, mult); Dense: (in, out)
            positions = out[1] * out[2] if len(out) == 4 else 1
            macs += positions * int(kernel.num_elements())
    return int(macs)


def conv_bn_relu(x, filters: int, kernel: int | tuple[int, int] = 3, strides: int = 1, name: str = "",
                 padding: str = "same"):
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x)


def ds_block(x, filters: int, strides: int | tuple[int, int], name: str, kernel: int | tuple[int, int] = 3):
    """Depthwise KxK -> BN -> ReLU6 -> pointwise 1x1 -> BN -> ReLU6. Unequal strides (the line reader's (2, 1))
    are a max-pool after the depthwise step: TensorFlow's depthwise convolution takes equal strides only."""
    pair = (strides, strides) if isinstance(strides, int) else tuple(strides)
    square = pair if pair[0] == pair[1] else (1, 1)
    x = keras.layers.DepthwiseConv2D(kernel, strides=square, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    if square != pair:
        x = keras.layers.MaxPooling2D(pair, name=f"{name}_pool")(x)
    return conv_bn_relu(x, filters, kernel=1, name=f"{name}_pw")


DS_CNN_BLOCKS = "c12 c16 c24s2 c24 c24s2 c32"  # at <= 32 channels a 3x3 conv beat DS blocks of the same file size


def _parse_block(token: str) -> tuple[str, int, int]:
    """'c32s2' -> ('c', 32, 2): c = 3x3 conv, d = depthwise-separable block, sN = stride N."""
    kind, rest = token[0], token[1:]
    filters, _, stride = rest.partition("s")
    if kind not in "cd" or not filters.isdigit() or (stride and not stride.isdigit()):
        raise UserError(f"bad ds_cnn block '{token}'; use c<filters>[s<stride>] or d<filters>[s<stride>]")
    return kind, int(filters), int(stride or 1)


@register(zoo_epochs=30, compressed=True)
def ds_cnn(width: float = 1.0, depth: int = 1, blocks: str = DS_CNN_BLOCKS, dropout: float = 0.1,
           classes: int = NUM_CLASSES) -> keras.Model:
    """Depthwise-separable CNN described by `blocks`, then global average pooling and a dense layer.

    `blocks` lists layers left to right: `c32s2` is a 3x3 conv with 32 filters and stride 2,
    `d64` a depthwise-separable block (3x3 depthwise + 1x1 pointwise) with 64 filters.
    `width` multiplies every filter count; `depth` repeats every `d` block (the repeats at stride 1).
    `classes` is the number of logits (the digit gate has two).
    """
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = inputs
    for i, token in enumerate(blocks.split()):
        kind, filters, stride = _parse_block(token)
        filters = max(8, round(filters * width))
        if kind == "c":
            x = conv_bn_relu(x, filters, strides=stride, name=f"b{i}")
        else:
            for r in range(depth):
                x = ds_block(x, filters, strides=stride if r == 0 else 1, name=f"b{i}_{r}")
    # keepdims + Flatten converts to MEAN(keep_dims) + RESHAPE: the same numbers, but tflite-runtime 2.14
    # has a fast int8 path only for a MEAN that keeps the pooled axes (68 -> 56 us there; LiteRT the same)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = keras.layers.Flatten(name="pooled")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs)


DS_CNN_PRESETS = {  # the ds_cnn presets' arguments; `edgedigits tune` starts every study from them
    "ds_cnn_fast": {"blocks": "c8s2 c16 c16s2 c24 c32 c32", "dropout": 0.1},
    "ds_cnn_micro": {"blocks": "c8 c8 c12s2 c12 c16s2 c16", "dropout": 0.0},
}


@register(zoo_epochs=30, compressed=True)
def ds_cnn_fast() -> keras.Model:
    """The low-latency preset: the first conv has stride 2, so no layer runs at 28x28, where
    a few channels per pixel keep the int8 kernels' SIMD lanes idle; a third of the default's MACs."""
    return ds_cnn(**DS_CNN_PRESETS["ds_cnn_fast"])


@register(zoo_epochs=30, compressed=True)
def ds_cnn_micro() -> keras.Model:
    """The microcontroller preset (under 12 KB in int8): few channels, each costs ~12 bytes of
    quantization data besides its weights; no dropout, a model this small underfits."""
    return ds_cnn(**DS_CNN_PRESETS["ds_cnn_micro"])


def _dense_head(x, units: int, dropout: float = 0.0):
    """Flatten -> Dense(units, ReLU) [-> Dropout] -> 10 logits: the tutorials' classifier head."""
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(units, activation="relu")(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    return keras.layers.Dense(NUM_CLASSES, name="logits")(x)


@register(zoo_epochs=20)
def mlp(hidden: tuple[int, ...] = (512, 512), dropout: float = 0.2) -> keras.Model:
    """Two hidden ReLU layers on the flattened image (the Keras mnist_mlp baseline)."""
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = keras.layers.Flatten()(inputs)
    for units in hidden:
        x = keras.layers.Dense(units, activation="relu")(x)
        x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, name="logits")(x))


@register(zoo_epochs=20)
def lenet5() -> keras.Model:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: 61,706 parameters."""
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = keras.layers.Conv2D(6, 5, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 5, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(120, activation="relu")(x)
    x = keras.layers.Dense(84, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, name="logits")(x))


@register(zoo_epochs=12)
def cnn_basic() -> keras.Model:
    """The Keras tutorial CNN: Conv32-Conv64-Pool-Drop-Dense256-Drop-Dense10, 2,380,938 parameters."""
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Dropout(0.25)(x)
    return keras.Model(inputs, _dense_head(x, 256, dropout=0.5))


@register(zoo_epochs=12)
def cnn_bn() -> keras.Model:
    """The tutorial's Conv-BN-Pool x2 + Dense128 model."""
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = inputs
    for i, filters in enumerate((32, 64)):
        x = conv_bn_relu(x, filters, name=f"c{i}")
        x = keras.layers.MaxPooling2D()(x)
    return keras.Model(inputs, _dense_head(x, 128))


@register(zoo_epochs=15)
def cnn_deep() -> keras.Model:
    """The slide deck's CNN: Conv32x2 5x5 / Conv64x2 3x3 (same), Dense256: 887,530 parameters."""
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = inputs
    for filters, kernel in ((32, 5), (64, 3)):
        x = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Dropout(0.25)(x)
    return keras.Model(inputs, _dense_head(x, 256, dropout=0.5))


if __name__ == "__main__":  # python -m edgedigits.training.models: write model_summary.json after changing a builder
    import json

    SUMMARY.write_text(json.dumps(summary(), indent=2) + "\n")
    print(f"wrote {SUMMARY}")
