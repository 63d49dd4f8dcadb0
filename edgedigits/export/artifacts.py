"""TFLite conversion and the artifacts a phone app or a firmware build embeds.

The formats are the catalogue in `edgedigits/export/formats.py`; full-integer int8 (int8 or uint8
input/output) is calibrated on training images, or keeps the ranges learned in QAT. After
conversion the file is stripped of strings a device never reads, checked in a real
interpreter against the Keras model, and written as `<name>.tflite`, `<name>.json`
(the card), `labels.txt`, `<name>_model_data.cc/.h` (an aligned C array for TFLM) and
`<name>_android.kt` / `<name>_ios.swift` (app code with the file's own types and quantization) and
`DigitFinder.kt` (the photo's digits found on Android, the same for every model).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedigits.export import app_snippets, mobile_model, names, standard_metadata, tflite_edit, web_model
from edgedigits.training import cards, data
from edgedigits.export.formats import format_named
from firmware_harness import atomic, mcu, native_stderr, tflite_file
from firmware_harness.contract import GATE_LABELS, LABELS, METADATA_NAME, PREPROCESSING
from firmware_harness.device import package_version
from firmware_harness.errors import UserError, WorkError
from firmware_harness.runtime import KERNELS, Model

IO_TYPES = ("int8", "uint8")
INK = "white ink on black, as in MNIST"
LOGITS = "logits (softmax gives probabilities)"
APP_INK = "RGB, dark ink on light paper, as a camera sees it"
APP_SCORES = "probabilities in steps of 1/256"


def convert(model, fmt: str, *, calibration_images: np.ndarray | None = None, io_type: str = "int8",
            quantization_aware: bool = False) -> bytes:
    """Convert a Keras model to TFLite bytes in format `fmt`.

    int8 from a float model is post-training quantization calibrated on `calibration_images`;
    from a QAT model (`quantization_aware`) the ranges learned in training are used.
    """
    spec = format_named(fmt)
    if io_type not in IO_TYPES:
        raise UserError(f"unknown --io '{io_type}'; choose int8 or uint8")
    from edgedigits.training.tf_stack import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if spec.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if spec.weight_type:
        converter.target_spec.supported_types = [getattr(tf, spec.weight_type)]
    if spec.full_integer:
        if not quantization_aware:
            if calibration_images is None:
                raise ValueError("post-training int8 needs calibration images")
            converter.representative_dataset = data.calibration_samples(calibration_images)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8 if io_type == "int8" else tf.uint8
        converter.inference_output_type = converter.inference_input_type
    try:
        with native_stderr.captured():  # the converter prints MLIR diagnostics and quantizer settings
            return bytes(converter.convert())
    except Exception as e:  # the converter raises ConverterError/RuntimeError/ValueError with MLIR text
        raise WorkError(f"TFLite conversion to {fmt} failed: {str(e).strip().splitlines()[0][:300]}") from e


@dataclass
class Verification:
    accuracy: float  # LiteRT's default kernels (XNNPACK) on this machine
    agreement: float | None
    n_eval: int
    ops: list[str]  # builtin ops, as the interpreter names them
    per_kernel: dict[str, float]  # int8: accuracy with each of runtime.KERNELS (and TFLite Micro, added by the
    # caller); float formats: the default kernels only


def verify(content: bytes, fmt: str, keras_logits: np.ndarray | None, x_test: np.ndarray, y_test: np.ndarray
           ) -> Verification:
    """Run the file in a real interpreter on the test set: accuracy, top-1 agreement with Keras (None without
    a Keras model), integer check."""
    model = Model(content)
    predicted = np.argmax(model.predict(x_test), axis=1)
    others = [k for k in KERNELS if k != model.kernels] if fmt == "int8" else []  # int8 answers depend on them
    per_kernel = {kernels: float(np.mean(np.argmax(Model(content, kernels=kernels).predict(x_test), axis=1) == y_test))
                  for kernels in others}
    floats = tflite_file.parse(content).float_activations() if fmt == "int8" else []
    if floats:
        raise WorkError(f"the int8 model still has float activations: {', '.join(floats[:5])}")
    return Verification(
        accuracy=float(np.mean(predicted == y_test)),
        agreement=None if keras_logits is None else float(np.mean(predicted == np.argmax(keras_logits, axis=1))),
        n_eval=len(y_test),
        ops=model.op_names(),
        per_kernel={model.kernels: float(np.mean(predicted == y_test)), **per_kernel},
    )


def tflm_figures(content: bytes, test: tuple[np.ndarray, np.ndarray], check: Verification) -> dict:
    """With the tflite-micro wheel: the TFLM tensor arena for the C header, and TFLM's own kernels' accuracy
    on the whole test set, added to `check.per_kernel`. Without it, nothing (the header goes without an arena)."""
    try:
        version = mcu.tflm_version()
    except UserError:
        return {}
    x_test, y_test = test
    inputs = Model(content).quantize(x_test)
    arena = mcu.arena_bytes(content, inputs[:1])
    answers = mcu.predictions(content, arena + 1024, inputs)
    check.per_kernel["tflite_micro"] = float(np.mean(answers == y_test))
    return {"tensor_arena_bytes": arena, "tflm_version": version}


def describe(content: bytes) -> dict:
    """Size, structure and I/O of a TFLite file, for its card."""
    info = tflite_file.parse(content)
    io = {}
    for key, index in (("input", info.inputs[0]), ("output", info.outputs[0])):
        t = info.tensors[index]
        io[key] = {
            "shape": list(t.shape),
            "dtype": np.dtype(t.dtype).name,
            "scale": t.scales[0] if t.scales else None,
            "zero_point": int(t.zero_points[0]) if t.zero_points else None,
        }
    return {
        "bytes": len(content),
        "gzip_bytes": len(gzip.compress(content, compresslevel=9, mtime=0)),
        "params": info.param_count(),
        "macs": info.mac_count(),
        "weight_sparsity": round(info.weight_sparsity(), 4),
        **io,
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def embed_card(content: bytes, card: dict) -> tuple[bytes, dict]:
    """The file with its card inside (the `edgedigits` metadata entry) and the standard `TFLITE_METADATA`
    (with the label file appended), and the card describing those bytes.

    The entry holds what an app needs to use the file without its JSON: the labels, the input
    contract and quantization, the accuracy on each kernel family and the sha256 of the weights
    (the file's own sha256 cannot be inside it). Metadata does not change what the model computes.
    """
    info = tflite_file.parse(content)
    entry = {
        "name": card.get("name"), "format": card["format"], "io_type": card["io_type"], "labels": LABELS,
        "input": {**card["input"], "pixels": PREPROCESSING["pixels"], "digit": PREPROCESSING["digit"]},
        "output": card["output"],
        "accuracy_per_kernel": card["accuracy_per_kernel"], "n_eval": card["n_eval"],
        "weights_sha256": info.weights_sha256(),
        "made_by": f"edgedigits {package_version('edgedigits') or ''}".strip(),
    }
    carded = tflite_edit.with_metadata(content, METADATA_NAME, json.dumps(entry, separators=(",", ":")).encode())
    embedded = standard_metadata.with_standard_metadata(
        carded, standard_metadata.describe_digits(carded, card.get("name") or "edgedigits", ink=INK, scores=LOGITS))
    return embedded, {**card, **describe(embedded), "weights_sha256": entry["weights_sha256"], "metadata": METADATA_NAME,
                      "standard_metadata": standard_metadata.ENTRY, "bytes_without_metadata": len(content),
                      "standard_metadata_bytes": len(embedded) - len(carded)}


def web_file(content: bytes, name: str, labels: list[str] = LABELS, about: str = standard_metadata.ABOUT) -> bytes:
    """The browser variant (`web_model`) of an int8 file, with its own standard metadata."""
    return standard_metadata.with_standard_metadata(
        web_model.web_variant(content), standard_metadata.describe_digits(content, f"{name}_web", ink=INK,
                                                                          scores=LOGITS, labels=labels, about=about))


def gate_files(content: bytes, name: str) -> tuple[bytes, bytes]:
    """The digit gate and its browser variant, each with its standard metadata (the gate's own labels)."""
    gate = standard_metadata.with_standard_metadata(content, standard_metadata.describe_digits(
        content, name, ink=INK, scores=LOGITS, labels=GATE_LABELS, about=standard_metadata.GATE_ABOUT))
    return gate, web_file(gate, name, GATE_LABELS, standard_metadata.GATE_ABOUT)


def mobile_file(content: bytes, name: str) -> bytes:
    """The app variant (`mobile_model`: RGB in, probabilities out) of an int8 file, with its standard metadata
    and without the `edgedigits` entry, whose input contract is the int8 file's."""
    variant = mobile_model.mobile_variant(tflite_edit.without_metadata(content, METADATA_NAME))
    return standard_metadata.with_standard_metadata(
        variant, standard_metadata.describe_digits(variant, f"{name}_mobile", ink=APP_INK, scores=APP_SCORES))


def c_array(content: bytes, name: str, card: dict) -> tuple[str, str]:
    """(header, source) of the model as a 16-byte-aligned C array, in the style of TFLM's hello_world."""
    ident = names.c_identifier(name)
    guard = f"{ident.upper()}_MODEL_DATA_H_"
    camel = names.camel_identifier(name)
    arena = card.get("tensor_arena_bytes")
    lines = [
        f"// {name}: generated by edgedigits; do not edit. sha256 {card['sha256']}",
        f"// input {card['input']['dtype']} {card['input']['shape']} scale {card['input']['scale']} "
        f"zero_point {card['input']['zero_point']}; output {card['output']['dtype']} {card['output']['shape']} "
        f"scale {card['output']['scale']} zero_point {card['output']['zero_point']}",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <cstddef>",
        "",
        f"extern const unsigned char g_{ident}_model_data[];",
        f"extern const unsigned int g_{ident}_model_data_len;",
    ]
    if arena:
        lines.append(f"// Smallest arena TFLite Micro {card.get('tflm_version', '')} ran this model in; add headroom.")
        lines.append(f"constexpr size_t k{camel}TensorArenaSize = {arena};")
    lines += ["", *mcu.resolver_code(camel, card["ops"]), "", f"#endif  // {guard}", ""]
    header = "\n".join(lines)
    rows = [", ".join(f"0x{b:02x}" for b in content[i:i + 12]) for i in range(0, len(content), 12)]
    source = "\n".join([
        f"// {name}: generated by edgedigits; do not edit.",
        f'#include "{name}_model_data.h"',
        "",
        f"alignas(16) const unsigned char g_{ident}_model_data[] = {{",
        *(f"    {row}," for row in rows),
        "};",
        f"const unsigned int g_{ident}_model_data_len = {len(content)};",
        "",
    ])
    return header, source


def write_artifacts(out_dir: str | Path, name: str, content: bytes, card: dict) -> list[Path]:
    """Write the .tflite, its card, labels.txt, the C array, the app snippets, the Android finder and, for an
    int8 file with int8 ends, its browser variant `<name>_web.tflite` (uint8 ends, batch 1) and its app variant
    `<name>_mobile.tflite` (RGB uint8 in, probabilities out), each atomically."""
    out_dir = atomic.ensure_dir(out_dir)
    header, source = c_array(content, name, card)
    gate = app_snippets.shipped_gate_card()
    web = [atomic.write_bytes(out_dir / f"{name}_web.tflite", web_file(content, name)),
           atomic.write_bytes(out_dir / f"{name}_mobile.tflite", mobile_file(content, name))] \
        if card["format"] == "int8" and card["io_type"] == "int8" else []
    return [
        atomic.write_bytes(out_dir / f"{name}.tflite", content),
        atomic.write_json(out_dir / f"{name}.json", card),
        atomic.write_text(out_dir / "labels.txt", "\n".join(LABELS) + "\n"),
        atomic.write_text(out_dir / f"{name}_model_data.h", header),
        atomic.write_text(out_dir / f"{name}_model_data.cc", source),
        atomic.write_text(out_dir / f"{name}_android.kt", app_snippets.kotlin(name, card, gate)),
        atomic.write_text(out_dir / f"{name}_ios.swift", app_snippets.swift(name, card, gate)),
        atomic.write_text(out_dir / app_snippets.ANDROID_FINDER.name, app_snippets.ANDROID_FINDER.read_text()),
        *web,
    ]


def build_card(content: bytes, fmt: str, io_type: str, verification: Verification, **extra) -> dict:
    """The JSON card for one exported file."""
    return {
        "format": fmt,
        "io_type": io_type if fmt == "int8" else "float32",
        **describe(content),
        "labels": LABELS,
        "preprocessing": PREPROCESSING,
        "tflite_accuracy": verification.accuracy,
        "accuracy_per_kernel": {"machine": platform.machine(), **verification.per_kernel},
        "accuracy_min_over_kernels": min(verification.per_kernel.values()),
        "agreement_with_keras": verification.agreement,
        "n_eval": verification.n_eval,
        "ops": verification.ops,
        **extra,
        **cards.provenance(),
    }
