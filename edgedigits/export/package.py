"""Package a `.tflite` digit model you already have, as `export` packages the ones it makes: no TensorFlow.

Takes a classifier of 28x28x1 digits into 10 scores (full-integer int8, with int8 or uint8 ends, or float32),
verifies it on MNIST's test set on every kernel family (and TFLite Micro with the `mcu` extra), and writes
what `export` writes: the file with its card and `TFLITE_METADATA` inside, the card, labels.txt, the C
array and header (ops and arena), the app snippets and, for int8 ends, the web and app variants. A card
beside the model (`<name>.json`, for the same weights) keeps what it says about training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedigits.export import artifacts, standard_metadata, tflite_edit
from firmware_harness import atomic, bounded_json, tflite_file
from firmware_harness.contract import METADATA_NAME
from firmware_harness.errors import UserError
from firmware_harness.runtime import read_model_bytes

MARKER = ".edgedigits-package"
KINDS = {np.int8: ("int8", "int8"), np.uint8: ("int8", "uint8"), np.float32: ("float32", "float32")}
RECOMPUTED_PROVENANCE = ("command", "created", "versions")


def _kind(info: tflite_file.TFLiteModel, path: Path) -> tuple[str, str]:
    """(format, io type) of a digit classifier; a one-line error for any other model."""
    image, scores = info.tensors[info.inputs[0]], info.tensors[info.outputs[0]]
    if len(info.inputs) != 1 or len(info.outputs) != 1 or list(image.shape[1:]) != [28, 28, 1] \
            or list(scores.shape[1:]) != [10] or image.dtype is not scores.dtype or image.dtype not in KINDS:
        raise UserError(f"{path} is not a digit classifier edgedigits can package (one 28x28x1 int8, uint8 or float32 "
                        f"input, 10 scores out; it has {list(image.shape)} -> {list(scores.shape)})")
    return KINDS[image.dtype]


def package(model_path: Path, out_dir: Path, test: tuple[np.ndarray, np.ndarray], name: str | None = None
            ) -> tuple[dict, list[Path]]:
    """Verify `model_path` on `test` (images, labels) and write its artifacts into `out_dir`: (card, files)."""
    content = read_model_bytes(model_path)
    info = tflite_file.parse(content)
    fmt, io_type = _kind(info, model_path)
    name = name or model_path.stem
    bare = tflite_edit.without_metadata(content, METADATA_NAME, standard_metadata.ENTRY)
    check = artifacts.verify(bare, fmt, None, *test)
    extra = artifacts.tflm_figures(bare, test, check) if fmt == "int8" else {}
    measured = artifacts.build_card(bare, fmt, io_type, check, name=name, **extra)
    if measured["agreement_with_keras"] is None:  # no Keras model here: an earlier card's figure stands
        del measured["agreement_with_keras"]
    card = {**_earlier_card(model_path, info), **measured}
    embedded, card = artifacts.embed_card(bare, card)
    folder = atomic.claim_folder(out_dir, MARKER, "edgedigits package")
    return card, artifacts.write_artifacts(folder, name, embedded, card)


def _earlier_card(model_path: Path, info: tflite_file.TFLiteModel) -> dict:
    """The card beside the model if it describes these weights, its provenance kept as `trained`; else {}."""
    beside = model_path.with_suffix(".json")
    try:
        card = bounded_json.loads(beside.read_bytes())  # a file we may not have written
    except (OSError, ValueError):
        return {}
    if not isinstance(card, dict) or card.get("weights_sha256") not in (None, info.weights_sha256()):
        return {}
    trained = {k: card.pop(k) for k in RECOMPUTED_PROVENANCE if k in card}
    return {**card, "trained": card.get("trained", trained)}


def summary(card: dict) -> str:
    """One line per kernel family, as `export` prints after verifying."""
    kernels = ", ".join(f"{k} {v:.2%}" for k, v in card["accuracy_per_kernel"].items() if k != "machine")
    return (f"{card['name']}: {card['bytes']:,} bytes ({card['standard_metadata_bytes']:,} of them TFLITE_METADATA "
            f"and labels); accuracy on {card['n_eval']:,} test images by kernel: {kernels}")
