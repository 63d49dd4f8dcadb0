"""Compression: magnitude pruning, then quantization-aware training that keeps the zeros.

1. `prune`: `prune_low_magnitude` with a polynomial schedule from 0 to the target over
   the first PRUNE_RAMP of the fine-tuning steps, `UpdatePruningStep` each batch, then
   `strip_pruning`. The target is the fraction of zeros over all conv, depthwise and
   dense kernels; tfmot does not prune depthwise kernels, so the other layers are
   pruned harder to make up for them.
2. `quantize`: int8 QAT with `Default8BitPrunePreserveQuantizeScheme`, so the pruned
   weights stay zero (plain `Default8BitQuantizeScheme` when sparsity is 0).
Both stages checkpoint every epoch and resume (see `train.fit_resumable`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedigits.training import data
from firmware_harness.errors import UserError

DEFAULT_SPARSITY = 0.5
MAX_SPARSITY = 0.95
PRUNE_RAMP = 0.6  # fraction of the pruning steps over which sparsity rises to its target
PRUNE_FREQUENCY = 50  # steps between mask updates
SPARSITY_MARGIN = 0.003  # aim this far above the target, so the masks' rounding never lands below it


@dataclass
class StageRecipe:
    """How one fine-tuning stage runs."""

    epochs: int
    lr: float
    batch_size: int = 128
    seed: int = 0
    styles: tuple[str, ...] = ()  # the float recipe's (data.STYLES), so fine-tuning keeps what they taught


def check_sparsity(sparsity: float) -> None:
    if not 0.0 <= sparsity <= MAX_SPARSITY:
        raise UserError(f"--sparsity must be between 0 and {MAX_SPARSITY} (got {sparsity})")


def _prunable_types() -> tuple:
    from edgedigits.training.tf_stack import keras

    return keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense


def _fine_tune(model, splits: data.Splits, recipe: StageRecipe, stage_dir: Path, label: str,
               callbacks: tuple = ()) -> dict:
    """Cosine-decayed Adam fine-tuning with augmentation, resumable, keeping the last epoch's weights."""
    from edgedigits.training import train
    from edgedigits.training.tf_stack import keras

    x, y = data.training_images(splits.x_train, splits.y_train, recipe.styles, recipe.seed)
    steps = math.ceil(len(x) / recipe.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(recipe.lr, decay_steps=recipe.epochs * steps, alpha=0.05)
    train.compile_model(model, schedule)
    train_ds = data.make_dataset(x, y, recipe.batch_size, train=True, seed=recipe.seed + 1, styles=recipe.styles)
    val_ds = data.make_dataset(splits.x_val, splits.y_val, 512, train=False)
    return train.fit_resumable(model, train_ds, val_ds, epochs=recipe.epochs, steps_per_epoch=steps,
                               stage_dir=stage_dir, callbacks=callbacks, label=label)


def prune(model, splits: data.Splits, sparsity: float, recipe: StageRecipe, stage_dir: Path):
    """Prune conv/depthwise/dense kernels to `sparsity` while fine-tuning; return the stripped model."""
    from edgedigits.training.tf_stack import seed_everything, tfmot

    check_sparsity(sparsity)
    seed_everything(recipe.seed)
    steps = math.ceil(len(splits.x_train) / recipe.batch_size) * recipe.epochs
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=_prunable_target(model, sparsity), begin_step=0,
        end_step=max(int(steps * PRUNE_RAMP), 1), frequency=min(PRUNE_FREQUENCY, max(steps // 10, 1)),
    )
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)  # keeps the weights
    _fine_tune(pruned, splits, recipe, stage_dir, "prune", callbacks=(tfmot.sparsity.keras.UpdatePruningStep(),))
    return tfmot.sparsity.keras.strip_pruning(pruned)


def _prunable_target(model, sparsity: float) -> float:
    """Sparsity for the layers tfmot prunes so that all conv/depthwise/dense kernels together reach `sparsity`."""
    from edgedigits.training.tf_stack import keras

    total = prunable = 0
    for layer in model.layers:
        if isinstance(layer, _prunable_types()):
            size = int(layer.weights[0].shape.num_elements())
            total += size
            prunable += 0 if isinstance(layer, keras.layers.DepthwiseConv2D) else size
    target = (sparsity + SPARSITY_MARGIN) * total / prunable if prunable and sparsity else 0.0
    if target > MAX_SPARSITY:
        raise UserError(f"--sparsity {sparsity} would need {target:.0%} zeros in the prunable layers "
                        f"(depthwise kernels are not pruned); choose at most {MAX_SPARSITY * prunable / total:.2f}")
    return target


def quantize(model, splits: data.Splits, recipe: StageRecipe, stage_dir: Path, preserve_sparsity: bool):
    """Int8 quantization-aware fine-tuning; with `preserve_sparsity`, zero weights stay zero."""
    from edgedigits.training.tf_stack import seed_everything, tfmot

    seed_everything(recipe.seed)
    qk = tfmot.quantization.keras
    scheme = (tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme() if preserve_sparsity
              else qk.default_8bit.Default8BitQuantizeScheme())
    with qk.quantize_scope():
        qat = qk.quantize_apply(qk.quantize_annotate_model(model), scheme)
    _pin_input_range(qat)
    _fine_tune(qat, splits, recipe, stage_dir, "qat")
    return qat


def _pin_input_range(qat) -> None:
    """Start the input quantizer at [0, 1] so the int8 input is exactly pixel - 128 (scale 1/255).

    It keeps a running min/max of what it sees; inputs never leave [0, 1], so it stays there.
    """
    # The input quantizer quantize_apply adds: its class is not public API, and Keras renames it
    # quantize_layer_1, _2 ... when a process builds several QAT models.
    layer = next(layer for layer in qat.layers if type(layer).__name__ == "QuantizeLayer")
    for weight in layer.weights:
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
