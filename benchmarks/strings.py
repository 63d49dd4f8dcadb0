"""Lines of digits read whole by the line reader, against today's digit-by-digit path (#41).

    python benchmarks/strings.py --keras WORK/line_reader.keras [--lines 1000]

Test lines, each set from its own fixed seed (never one the training used, benchmarks/train_line_reader.py):
- `synthetic`: the training generator's lines (1-10 digits, separators, rules, guilloche) from MNIST's test split;
- `semeion`, `optdigits_32x32`, `hwd1000`: 3-8 real digits of a development set (../shared/data/handwriting/)
  written in a row by the same generator with touching and overlapping digits on paper (the "touching" style).
Each line is read three ways: the float line model, its int8 file in LiteRT (post-training quantization on
training lines) and `DigitReader().read` on the photo (finder + digit model, as predict reads today). Exact =
the whole string right; digit accuracy = 1 - edit distance / length, over all lines. Also the int8 file's size
and its invoke time with 1 thread. Results: strings.json and .md in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from handwriting import DATA, SETS, load
from record import RESULTS, record

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgedigits.training import data, lines  # noqa: E402
from firmware_harness import line_reader  # noqa: E402
from firmware_harness.device import machine_info  # noqa: E402
from firmware_harness.reader import DigitReader  # noqa: E402
from firmware_harness.runtime import get_backend  # noqa: E402

SEEDS = {"synthetic": 7_000, **{name: 7_001 + i for i, name in enumerate(SETS)}}
TOUCHING = lines.STYLES["touching"]
CALIBRATION_LINES, CALIBRATION_SEED = 500, 1


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def scores(read: list[str], truth: list[str]) -> dict:
    errors = sum(edit_distance(r, t) for r, t in zip(read, truth))
    return {"exact": round(float(np.mean([r == t for r, t in zip(read, truth)])), 4),
            "digit_accuracy": round(1 - errors / sum(map(len, truth)), 4)}


class Int8Lines:
    """The int8 line model in the harness's interpreter, one strip at a time."""

    def __init__(self, content: bytes, threads: int = 1):
        backend = get_backend()
        self.interpreter = backend.interpreter(model_content=content, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def scores(self, strip: np.ndarray) -> np.ndarray:
        scale, zero = self.input["quantization"]
        x = np.clip(np.rint(strip.astype(np.float32) / 255.0 / scale + zero), -128, 127).astype(np.int8)
        self.interpreter.set_tensor(self.input["index"], x[None, ..., None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.output["index"])[0].astype(np.float32)
        out_scale, out_zero = self.output["quantization"]
        return (raw - out_zero) * out_scale

    def read(self, strip: np.ndarray) -> str:
        return "".join(str(d.digit) for d in line_reader.decode(self.scores(strip)))

    def invoke_ms(self, strip: np.ndarray, runs: int = 300) -> float:
        for _ in range(20):
            self.scores(strip)
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            self.interpreter.invoke()
            times.append(time.perf_counter() - began)
        return float(np.median(times) * 1000)


def test_lines(splits: data.Splits, count: int) -> dict[str, tuple[list[np.ndarray], list[str]]]:
    """Each set's photos of lines and their digit strings."""
    sources = {"synthetic": (splits.x_test, splits.y_test, lines.DEFAULT_STYLE, (1, lines.MAX_DIGITS))}
    for name in SETS:
        x, y = load(DATA, name)
        sources[name] = (x, y, TOUCHING, (3, 8))
    made = {}
    for name, (x, y, style, lengths) in sources.items():
        photos, truth = [], []
        for photo, digits in lines.photos(x, y, count, SEEDS[name], style, lengths):
            photos.append(photo)
            truth.append("".join(map(str, digits)))
        made[name] = (photos, truth)
    return made


def markdown(result: dict) -> str:
    rows = ["| lines | n | line reader, float | line reader, int8 | digit by digit (today's read) |",
            "|---|---:|---:|---:|---:|"]
    for name, r in result["sets"].items():
        rows.append(f"| {name} | {r['lines']:,} | {r['float']['exact']:.2%} ({r['float']['digit_accuracy']:.2%}) | "
                    f"{r['int8']['exact']:.2%} ({r['int8']['digit_accuracy']:.2%}) | "
                    f"{r['per_digit']['exact']:.2%} ({r['per_digit']['digit_accuracy']:.2%}) |")
    m = result["model"]
    return "\n".join([
        f"Lines read whole (`python benchmarks/strings.py`) on {result['device']['cpu']}: exact strings, digit "
        "accuracy in brackets.", "", *rows, "",
        f"int8 line reader: {m['bytes']:,} B, {m['params']:,} parameters, {m['macs'] / 1e6:.1f} M MACs, invoke p50 "
        f"{m['invoke_ms_p50']:.2f} ms per line (LiteRT, 1 thread); sha256 `{m['sha256'][:12]}…`.",
        *([f"Trained by `{t['command']}`: {t['lines']:,} synthetic lines, {t['epochs']} epochs; exact on "
           f"{t['val_lines']:,} validation lines {t['val_exact']:.2%}."] if (t := m.get("float_card")) else []), ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", type=Path, required=True,
                        help="the float line model (benchmarks/train_line_reader.py)")
    parser.add_argument("--lines", type=int, default=1000, help="lines per set")
    args = parser.parse_args()
    from edgedigits.export import artifacts
    from edgedigits.training import line_model, models
    from edgedigits.training.tf_stack import keras

    model = keras.models.load_model(args.keras, custom_objects={"ctc_loss": line_model.ctc_loss})
    splits = data.load_splits(None)
    # int8 calibrated on training lines (MNIST's training split) from a seed of their own
    calibration = lines.make(splits.x_train, splits.y_train, CALIBRATION_LINES, seed=CALIBRATION_SEED)[0]
    content = artifacts.convert(model, "int8", calibration_images=calibration)
    int8 = Int8Lines(content)
    reader = DigitReader()
    result = {"device": machine_info(), "sets": {}}
    for name, (photos, truth) in test_lines(splits, args.lines).items():
        strips = np.stack([lines.strip(p) for p in photos])
        started = time.perf_counter()
        per_digit = [reader.read(p).digits for p in photos]
        result["sets"][name] = {
            "lines": len(truth), "seed": SEEDS[name],
            "float": scores(line_model.read(model, strips), truth),
            "int8": scores([int8.read(s) for s in strips], truth),
            "per_digit": scores(per_digit, truth),
            "per_digit_ms_per_line": round((time.perf_counter() - started) * 1000 / len(truth), 2),
        }
        print(name, result["sets"][name], flush=True)
    card = args.keras.with_suffix(".json")
    result["model"] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest(),
                       "params": models.count_params(model), "macs": models.count_macs(model),
                       "invoke_ms_p50": round(int8.invoke_ms(strips[0]), 3),
                       "float_card": json.loads(card.read_text()) if card.exists() else None}
    record("strings", result, markdown(result), RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
