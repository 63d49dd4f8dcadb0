"""The digit contract every model here keeps: one 28x28 gray image in, ten scores out.

Read by export (the card and the file's `edgedigits` metadata entry), the runtime (labels from
the file), the page (`model.json`) and the models' builders.
"""

from __future__ import annotations

from firmware_harness.errors import UserError

IMAGE_SIDE = 28
NUM_CLASSES = 10
LABELS = [str(d) for d in range(NUM_CLASSES)]
GATE_FILE = "edgedigits_gate_int8.tflite"  # the shipped digit gate: is a 28x28 mark a digit at all?
GATE_LABELS = ["not a digit", "digit"]
GATE_DIGIT = GATE_LABELS.index("digit")
BUNDLE_MARKER = ".edgedigits-bundle.json"  # in a folder `edgedigits bundle` wrote: the files it lists
METADATA_NAME = "edgedigits"  # the .tflite metadata entry holding the model's card (JSON)
PREPROCESSING = {
    "layout": "NHWC, 1x28x28x1 (the batch dimension can be resized)",
    "pixels": "grayscale, white ink (255) on black (0), as in MNIST",
    "digit": "scaled to fit a 20x20 box (aspect kept), placed in 28x28 with its centre of mass at the centre",
    "float_input": "pixel / 255",
    "int8_input": "pixel - 128 (scale 1/255, zero point -128)",
    "uint8_input": "pixel (scale 1/255, zero point 0)",
    "output": "10 logits (dequantize with the output scale and zero point); argmax is the digit",
}


def labels_from(entry: dict | None, classes: int = NUM_CLASSES) -> list[str]:
    """The labels a model's `edgedigits` metadata entry names, or the digits for a file without them.

    A reading is its labels side by side, one character a mark, so a digit model's labels must be ten
    distinct single printable characters; a file that names others is refused (a one-line UserError)."""
    if entry is None or "labels" not in entry:
        return LABELS
    labels = entry["labels"]
    if classes != NUM_CLASSES:  # the gate's two scores: not read as text
        return labels if isinstance(labels, list) else LABELS
    if not (isinstance(labels, list) and len(labels) == NUM_CLASSES and len(set(map(str, labels))) == NUM_CLASSES
            and all(isinstance(x, str) and len(x) == 1 and x.isprintable() and not x.isspace() for x in labels)):
        shown = repr(labels)[:80].encode("unicode_escape").decode("ascii")
        raise UserError(f"its metadata names the labels {shown}: a digit model needs ten distinct single "
                        f"printable characters (0-9 for the digits); export it again")
    return labels
