"""Fine-tuning on your own digits: the shipped model's float checkpoint as the start, a gentler recipe, and the
before/after figures on your validation images and on MNIST's test set.

`train` and `export` with `--data DIR` (a labelled folder) fine-tune the default model from
FLOAT_CHECKPOINT, which is the float model the shipped int8 model was exported from; any other
model trains from fresh weights on the same mix.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgedigits import DEFAULT_MODEL
from edgedigits.training.data import Splits
from firmware_harness.runtime import Model, shipped_model

FLOAT_CHECKPOINT = "edgedigits_float.keras"  # in edgedigits/pretrained, beside edgedigits_int8.tflite
EPOCHS = 10  # a start that already reads digits needs a fraction of the 30 epochs from fresh weights
LR = 1e-3  # a third of training's peak: the start's features are kept, not relearned


def recipe_overrides(model: str) -> dict:
    """The fine-tuning recipe's changes for `model`: start from the shipped float checkpoint if it is that model
    (none for another model: it trains as from MNIST alone, on the mix)."""
    start = shipped_model(FLOAT_CHECKPOINT) if model == DEFAULT_MODEL else None
    if start is None:
        why = "no float checkpoint of it is shipped" if model != DEFAULT_MODEL else f"{FLOAT_CHECKPOINT} is missing"
        print(f"note: {model} trains from fresh weights on your digits and MNIST ({why})", file=sys.stderr)
        return {}
    return {"start": str(start), "lr": LR}


def accuracies(model: bytes | str | Path, splits: Splits) -> dict:
    """A .tflite model's accuracy on your validation images and on MNIST's test set (XNNPACK kernels)."""
    runtime = Model(model)
    own = splits.own
    return {
        "own_validation": float(np.mean(np.argmax(runtime.predict(splits.x_val), axis=1) == splits.y_val)),
        "mnist_test": float(np.mean(np.argmax(runtime.predict(own.x_mnist_test), axis=1) == own.y_mnist_test)),
    }


def before_after(content: bytes, splits: Splits) -> dict:
    """Your validation images and MNIST's test set, read by the shipped int8 model and by the new one."""
    shipped = shipped_model()
    before = accuracies(shipped, splits) if shipped is not None else {}
    after = accuracies(content, splits)
    return {
        "validation_files": len(splits.own.val_files),
        **{name: {"before": before.get(name), "after": value} for name, value in after.items()},
    }


def summary(figures: dict) -> str:
    """`your digits 89.3 % -> 97.6 % (84 validation images); MNIST test 99.49 % -> 99.31 %`."""
    def change(name: str) -> str:
        before, after = figures[name]["before"], figures[name]["after"]
        return f"{before:.2%} -> {after:.2%}" if before is not None else f"{after:.2%}"

    return (f"your digits {change('own_validation')} ({figures['validation_files']} validation images, shipped "
            f"model -> this one); MNIST test {change('mnist_test')}")
