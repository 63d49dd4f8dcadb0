"""Accuracy, confusion matrix, per-class precision/recall/F1, a gallery of mistakes, and a paired test of two models.

Metrics are numpy only; a `.tflite` model runs on the device runtime (no TensorFlow),
a `.keras` model through TensorFlow.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np

from firmware_harness.contract import NUM_CLASSES
from firmware_harness.errors import UserError


def metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, the confusion matrix (rows: true) and per-class precision, recall, F1, support."""
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    np.add.at(confusion, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    tp = np.diag(confusion).astype(np.float64)
    predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    return {
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "n_eval": int(len(y_true)),
        "confusion": confusion.tolist(),
        "per_class": [
            {"digit": d, "precision": round(float(precision[d]), 4), "recall": round(float(recall[d]), 4),
             "f1": round(float(f1[d]), 4), "support": int(support[d])}
            for d in range(NUM_CLASSES)
        ],
    }


def paired(y_true: np.ndarray, predicted_a: np.ndarray, predicted_b: np.ndarray) -> dict:
    """Two models on the same images: how many only A reads right, how many only B, and the exact
    two-sided McNemar p-value, the chance of a split at least this uneven if both were equally accurate."""
    right_a, right_b = predicted_a == y_true, predicted_b == y_true
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    n = only_a + only_b
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
    return {"only_a_right": only_a, "only_b_right": only_b, "mcnemar_p": min(1.0, 2 * tail / 2 ** n)}


def predict_file(model_path: Path, images: np.ndarray, backend: str | None = None, kernels: str = "xnnpack") -> np.ndarray:
    """Predicted digits for uint8 images from a `.tflite` (with the given kernels) or `.keras` model file."""
    suffix = model_path.suffix.lower()
    if suffix == ".tflite":
        from firmware_harness.runtime import Model

        return np.argmax(Model(model_path, backend=backend, kernels=kernels).predict(images), axis=1)
    if suffix in (".keras", ".h5"):
        from edgedigits.training import data, train

        model = train.load_keras_model(model_path)
        return np.argmax(model.predict(data.to_model_input(images), batch_size=1024, verbose=0), axis=1)
    raise UserError(f"{model_path}: unknown model type '{suffix}'; pass a .tflite or .keras file")


def write_report(result: dict, images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, out_dir: Path,
                 title: str) -> list[Path]:
    """confusion.png and misclassified.png; none without matplotlib (the train extra)."""
    if importlib.util.find_spec("matplotlib") is None:
        return []
    from edgedigits.training import plots

    wrong = np.flatnonzero(y_true != y_pred)
    return [
        plots.confusion(np.array(result["confusion"]), out_dir / "confusion.png", title=title),
        plots.gallery(images[wrong], y_true[wrong], y_pred[wrong], out_dir / "misclassified.png"),
    ]
