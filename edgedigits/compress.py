"""Compression: magnitude pruning, then quantization-aware training that keeps the zeros.

1. `prune`: `prune_low_magnitude` with a polynomial schedule from 0 to the target over
   the first PRUNE_RAMP of the fine-tuning steps, `UpdatePruningStep` each batch, then
   `strip_pruning`. The target is the fraction of zeros over all conv, depthwise and
   dense kernels; tfmot does not prune depthwise kernels, so the other layers are
   pruned harder to make up for them.
2. `quantize`: int8 QAT with `Default8BitPrunePreserveQuantizeScheme`, so the pruned
   weights stay zero (plain `Default8BitQuantizeScheme` when sparsity is 0).
Both stages can learn from the dense float model as a teacher (knowledge distillation:
part of the loss is matching its softened outputs), which recovers much of what pruning
and quantization cost. Both checkpoint every epoch and resume (`train.fit_resumable`).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedigits import data
from firmware_harness.errors import UserError

DEFAULT_SPARSITY = 0.5
MAX_SPARSITY = 0.95
PRUNE_RAMP = 0.6  # fraction of the pruning steps over which sparsity rises to its target
PRUNE_FREQUENCY = 50  # steps between mask updates
DISTILL_TEMPERATURE = 2.0
DISTILL_WEIGHT = 0.5  # share of the loss that is matching the teacher's softened outputs


@dataclass
class StageRecipe:
    """How one fine-tuning stage runs."""

    epochs: int
    lr: float
    batch_size: int = 128
    seed: int = 0


def check_sparsity(sparsity: float) -> None:
    if not 0.0 <= sparsity <= MAX_SPARSITY:
        raise UserError(f"--sparsity must be between 0 and {MAX_SPARSITY} (got {sparsity})")


def _prunable_types() -> tuple:
    from edgedigits._tf import keras

    return keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense


def frozen_copy(model):
    """An independent, untrainable copy of a model, to teach while the original is pruned in place."""
    from edgedigits._tf import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    copy = keras.Model(clone.inputs, clone.outputs, name=f"{model.name}_teacher")
    copy.trainable = False
    return copy


def _with_teacher(student, teacher):
    """A training-only model whose output is the student's logits beside the frozen teacher's."""
    from edgedigits._tf import keras

    teacher.trainable = False
    inputs = keras.Input(student.input_shape[1:], name="image")
    both = keras.layers.Concatenate(name="student_teacher")([student(inputs), teacher(inputs, training=False)])
    return keras.Model(inputs, both, name="distillation")


def _distillation_loss(y_true, both):
    """(1 - w) * cross-entropy with the labels + w * T^2 * KL(teacher || student) at temperature T."""
    from edgedigits._tf import keras, tf

    student, teacher = both[:, :10], both[:, 10:]
    hard = keras.losses.sparse_categorical_crossentropy(y_true, student, from_logits=True)
    t = DISTILL_TEMPERATURE
    soft = keras.losses.kl_divergence(tf.nn.softmax(teacher / t), tf.nn.softmax(student / t)) * t * t
    return (1 - DISTILL_WEIGHT) * hard + DISTILL_WEIGHT * soft


def _student_accuracy(y_true, both):
    from edgedigits._tf import keras

    return keras.metrics.sparse_categorical_accuracy(y_true, both[:, :10])


def _fine_tune(model, splits: data.Splits, recipe: StageRecipe, stage_dir: Path, label: str,
               callbacks: tuple = (), teacher=None) -> dict:
    """Cosine-decayed Adam fine-tuning with augmentation, resumable, keeping the last epoch's weights."""
    from edgedigits import train
    from edgedigits._tf import keras

    steps = math.ceil(len(splits.x_train) / recipe.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(recipe.lr, decay_steps=recipe.epochs * steps, alpha=0.05)
    if teacher is None:
        train.compile_model(model, schedule)
    else:
        model = _with_teacher(model, teacher)
        accuracy = keras.metrics.MeanMetricWrapper(_student_accuracy, name="accuracy")
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=_distillation_loss, metrics=[accuracy])
    train_ds = data.make_dataset(splits.x_train, splits.y_train, recipe.batch_size, train=True, seed=recipe.seed + 1)
    val_ds = data.make_dataset(splits.x_val, splits.y_val, 512, train=False)
    return train.fit_resumable(model, train_ds, val_ds, epochs=recipe.epochs, steps_per_epoch=steps,
                               stage_dir=stage_dir, callbacks=callbacks, label=label)


def prune(model, splits: data.Splits, sparsity: float, recipe: StageRecipe, stage_dir: Path, teacher=None):
    """Prune conv/depthwise/dense kernels to `sparsity` while fine-tuning; return the stripped model."""
    from edgedigits._tf import seed_everything, tfmot

    check_sparsity(sparsity)
    seed_everything(recipe.seed)
    steps = math.ceil(len(splits.x_train) / recipe.batch_size) * recipe.epochs
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=_prunable_target(model, sparsity), begin_step=0,
        end_step=max(int(steps * PRUNE_RAMP), 1), frequency=min(PRUNE_FREQUENCY, max(steps // 10, 1)),
    )
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)  # keeps the weights
    print(f"[prune] to {sparsity:.0%} sparsity over {recipe.epochs} epochs", file=sys.stderr)
    _fine_tune(pruned, splits, recipe, stage_dir, "prune", callbacks=(tfmot.sparsity.keras.UpdatePruningStep(),),
               teacher=teacher)
    return tfmot.sparsity.keras.strip_pruning(pruned)


def _prunable_target(model, sparsity: float) -> float:
    """Sparsity for the layers tfmot prunes so that all conv/depthwise/dense kernels together reach `sparsity`."""
    from edgedigits._tf import keras

    total = prunable = 0
    for layer in model.layers:
        if isinstance(layer, _prunable_types()):
            size = int(layer.weights[0].shape.num_elements())
            total += size
            prunable += 0 if isinstance(layer, keras.layers.DepthwiseConv2D) else size
    target = sparsity * total / prunable if prunable else 0.0
    if target > MAX_SPARSITY:
        raise UserError(f"--sparsity {sparsity} would need {target:.0%} zeros in the prunable layers "
                        f"(depthwise kernels are not pruned); choose at most {MAX_SPARSITY * prunable / total:.2f}")
    return target


def quantize(model, splits: data.Splits, recipe: StageRecipe, stage_dir: Path, preserve_sparsity: bool,
             teacher=None):
    """Int8 quantization-aware fine-tuning; with `preserve_sparsity`, zero weights stay zero."""
    from edgedigits._tf import seed_everything, tfmot

    seed_everything(recipe.seed)
    qk = tfmot.quantization.keras
    scheme = (tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme() if preserve_sparsity
              else qk.default_8bit.Default8BitQuantizeScheme())
    with qk.quantize_scope():
        qat = qk.quantize_apply(qk.quantize_annotate_model(model), scheme)
    _pin_input_range(qat)
    print(f"[qat] int8 quantization-aware training over {recipe.epochs} epochs"
          f"{' (sparsity preserved)' if preserve_sparsity else ''}", file=sys.stderr)
    _fine_tune(qat, splits, recipe, stage_dir, "qat", teacher=teacher)
    return qat


def _pin_input_range(qat) -> None:
    """Start the input quantizer at [0, 1] so the int8 input is exactly pixel - 128 (scale 1/255).

    It keeps a running min/max of what it sees; inputs never leave [0, 1], so it stays there.
    """
    for weight in qat.get_layer("quantize_layer").weights:  # the input quantizer quantize_apply adds
        if weight.name.endswith("_min:0"):
            weight.assign(0.0)
        elif weight.name.endswith("_max:0"):
            weight.assign(1.0)


def sparsity_report(model) -> list[dict]:
    """Per prunable layer: kernel size, zeros and sparsity (works on float, pruned-stripped and QAT models)."""
    rows = []
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # QAT wraps layers in QuantizeWrapper
        if not isinstance(inner, _prunable_types()):
            continue
        kernel = next((w for w in layer.weights if "kernel" in w.name and "quantize" not in w.name), None)
        if kernel is None:
            continue
        values = kernel.numpy()
        zeros = int(np.count_nonzero(values == 0))
        rows.append({"layer": inner.name, "weights": int(values.size), "zeros": zeros,
                     "sparsity": round(zeros / values.size, 4)})
    return rows


def overall_sparsity(rows: list[dict]) -> float:
    total = sum(r["weights"] for r in rows)
    return sum(r["zeros"] for r in rows) / total if total else 0.0
