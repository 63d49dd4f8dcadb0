"""The line reader: a fully convolutional model that reads a strip of digits with CTC, and its training.

In: a (STRIP_HEIGHT, STRIP_WIDTH, 1) strip, floats in [0, 1], ink bright (firmware_harness.line_reader.to_strip).
Out: (STEPS, 11) logits, one row per COLUMN pixels of the strip, for the ten digits and CTC's blank (the last).
Convolutions only (Conv -> BatchNorm -> ReLU6, as the digit models), so it converts to full-integer TFLite and runs
on every runtime the harness supports; the width context comes from 1xK depthwise convolutions along the line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgedigits.training.models import conv_bn_relu, ds_block
from edgedigits.training.tf_stack import keras, seed_everything, tf
from edgedigits.training.train import fit_resumable
from firmware_harness import line_reader
from firmware_harness.line_reader import BLANK, STEPS, STRIP_HEIGHT, STRIP_WIDTH

CLASSES = BLANK + 1


def line_reader_model(width: float = 1.0, dropout: float = 0.1) -> keras.Model:
    """Strip in, (STEPS, 11) logits out: height 32 -> 1 and width 256 -> 64 by a strided conv and depthwise-separable
    blocks, then two 1x7 blocks along the line (about 95 strip pixels, four digits, seen per step)."""
    def f(n: int) -> int:
        return max(8, round(n * width))

    inputs = keras.Input((STRIP_HEIGHT, STRIP_WIDTH, 1), name="strip")
    x = conv_bn_relu(inputs, f(16), strides=2, name="b0")  # wide activations at full size cost most of training
    for i, (filters, strides) in enumerate([(32, (2, 2)), (48, (1, 1)), (48, (1, 1)), (64, (2, 1)), (64, (1, 1))],
                                           start=1):
        x = ds_block(x, f(filters), strides, name=f"b{i}")
    x = conv_bn_relu(x, f(96), kernel=(STRIP_HEIGHT // 8, 1), name="collapse", padding="valid")
    for i in range(2):
        x = ds_block(x, f(96), 1, name=f"context{i}", kernel=(1, 7))
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Conv2D(CLASSES, 1, name="logits")(x)
    outputs = keras.layers.Reshape((STEPS, CLASSES), name="steps")(x)
    return keras.Model(inputs, outputs, name="line_reader")


def ctc_loss(labels, logits):
    """Mean CTC loss; `labels` (batch, MAX_DIGITS) padded with -1."""
    labels = tf.cast(labels, tf.int32)
    label_length = tf.reduce_sum(tf.cast(labels >= 0, tf.int32), axis=1)
    logit_length = tf.fill([tf.shape(logits)[0]], STEPS)
    loss = tf.nn.ctc_loss(tf.maximum(labels, 0), logits, label_length, logit_length, logits_time_major=False,
                          blank_index=BLANK)
    return tf.reduce_mean(loss)


def _dataset(x: np.ndarray, y: np.ndarray, batch: int, shuffle: bool, seed: int):
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        data = data.shuffle(min(len(x), 50_000), seed=seed, reshuffle_each_iteration=True).repeat()
    return data.batch(batch).map(lambda a, b: (tf.cast(a, tf.float32)[..., None] / 255.0, b),
                                 num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def read(model: keras.Model, strips: np.ndarray, batch: int = 256) -> list[str]:
    """The digit strings a Keras line model reads in uint8 strips."""
    logits = model.predict(strips.astype(np.float32)[..., None] / 255.0, batch_size=batch, verbose=0)
    return ["".join(str(d.digit) for d in line_reader.decode(z)) for z in logits]


def texts(labels: np.ndarray) -> list[str]:
    """Padded label rows -> digit strings."""
    return ["".join(str(int(v)) for v in row if v >= 0) for row in labels]


def exact(model: keras.Model, strips: np.ndarray, labels: np.ndarray) -> float:
    """Share of strips read exactly right."""
    return float(np.mean([a == b for a, b in zip(read(model, strips), texts(labels))]))


def train(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, stage_dir: Path, *, epochs: int = 10,
          batch: int = 64, lr: float = 2e-3, seed: int = 0, width: float = 1.0) -> keras.Model:
    """A line reader trained on strips `x` (N, H, W) uint8 with padded labels `y`: Adam with cosine decay, the
    best epoch by validation loss kept; a checkpoint per epoch in `stage_dir`, from which a rerun resumes."""
    seed_everything(seed)
    steps = math.ceil(len(x) / batch)
    model = line_reader_model(width)
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * steps, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=ctc_loss)
    fit_resumable(model, _dataset(x, y, batch, True, seed), _dataset(x_val, y_val, 256, False, seed), epochs=epochs,
                  steps_per_epoch=steps, stage_dir=stage_dir, patience=epochs, label="line reader")
    return model
