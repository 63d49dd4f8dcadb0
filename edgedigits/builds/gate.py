"""The digit gate: is a 28x28 mark a digit at all?

The digit model must name one of ten digits for whatever it is given, and it names most printed
letters with a confidence of 0.9 or more. The gate is a second small int8 model with two scores,
not a digit / digit, that the harness multiplies into each confidence (firmware_harness/recognize.py),
so that `predict --min-confidence 0.9` turns letters and signs into '?'. It learns digits from the
MNIST training split (also drawn again on pages at other sizes and resolutions) and from digits
printed in fonts, and non-digits from printed letters (alone and touching), signs, scribbles and empty form boxes
(edgedigits/training/glyphs.py), every one as `find_digits` frames it. It is measured on the validation split and on fonts it never saw.

    python -m edgedigits.builds.gate [--out edgedigits/pretrained] [--epochs 16] [--seed 0] [--limit N]
"""

from __future__ import annotations

import argparse
import glob
import platform
import sys
from pathlib import Path

import numpy as np

from edgedigits.training import cards, data, glyphs, models
from edgedigits.export import artifacts, tflite_edit
from firmware_harness import atomic, contract
from firmware_harness.device import opencv_version, package_version
from firmware_harness.errors import UserError
from firmware_harness.recognize import softmax
from firmware_harness.runtime import Model

BLOCKS = "c8s2 c16 c16s2 c24 c32 c32"  # ds_cnn_fast's layers: smaller ones let a third of the letters through
PRINTED = {"digits": 16_000, "others": 24_000, "joined": 8_000, "scribbles": 4_000,
           "empty_boxes": 2_000}  # for the full training split (55,000)
HELD_OUT = 2_000  # glyphs of each kind in the fonts kept for measuring
SYSTEM_FONTS = "/usr/share/fonts/truetype/liberation/*.ttf"  # also held out, where the system has them
LR = 3e-3
DIGIT_WEIGHT = 2.0  # a digit the gate doubts costs twice a letter it lets through: digits are what users read


def examples(splits: data.Splits, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training crops and labels (contract.GATE_LABELS' order); the printed ones in proportion to the
    training split."""
    fonts = glyphs.training_fonts()
    n = {kind: max(10, count * len(splits.x_train) // 55_000) for kind, count in PRINTED.items()}
    digits = [splits.x_train, glyphs.redrawn(splits.x_train, seed), glyphs.rendered(glyphs.DIGITS, fonts, n["digits"], seed + 1)]
    others = [glyphs.rendered(glyphs.NOT_DIGITS, fonts, n["others"], seed + 2), glyphs.scribbles(n["scribbles"], seed + 3),
              glyphs.joined(glyphs.NOT_DIGIT_LETTERS, fonts, n["joined"], seed + 4),
              glyphs.scribbles(n["empty_boxes"], seed + 5, glyphs.empty_box)]
    x = np.concatenate(others + digits)
    n_others = sum(len(o) for o in others)
    y = np.full(len(x), contract.GATE_DIGIT, np.int32)
    y[:n_others] = 1 - contract.GATE_DIGIT
    return x, y


def held_out_fonts() -> list[glyphs.Font]:
    return ([glyphs.Font(h, greek=False) for h in glyphs.HELD_OUT_HERSHEY]
            + [glyphs.Font(p, greek=False) for p in sorted(glob.glob(SYSTEM_FONTS))])


def fit(x: np.ndarray, y: np.ndarray, epochs: int, seed: int):
    """The float gate, trained with the digit models' augmentation; each kind weighed by its count, digits
    DIGIT_WEIGHT times more."""
    from edgedigits.training.tf_stack import keras, seed_everything

    seed_everything(seed)
    model = models.ds_cnn(blocks=BLOCKS, dropout=0.0, classes=len(contract.GATE_LABELS))
    steps = len(x) // 128
    schedule = keras.optimizers.schedules.CosineDecay(LR, decay_steps=epochs * steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    counts = np.bincount(y, minlength=2)
    weights = {k: len(y) / (2 * counts[k]) * (DIGIT_WEIGHT if k == contract.GATE_DIGIT else 1) for k in range(2)}
    model.fit(data.make_dataset(x, y, 128, train=True, seed=seed), steps_per_epoch=steps, epochs=epochs,
              class_weight=weights, verbose=2)
    return model


def measure(gate: Model, splits: data.Splits, seed: int) -> dict:
    """The share of each set the gate calls a digit (probability >= 0.5)."""
    fonts = held_out_fonts()
    sets = {"mnist_validation": splits.x_val,
            "held_out_fonts_digits": glyphs.rendered(glyphs.DIGITS, fonts, HELD_OUT, seed + 11),
            "held_out_fonts_not_digits": glyphs.rendered(glyphs.NOT_DIGITS, fonts, HELD_OUT, seed + 12),
            "held_out_fonts_joined_letters": glyphs.joined(glyphs.NOT_DIGIT_LETTERS, fonts, HELD_OUT, seed + 13),
            "empty_boxes": glyphs.scribbles(HELD_OUT, seed + 14, glyphs.empty_box)}
    return {name: {"n": len(x), "called_digit": round(float(np.mean(
        softmax(gate.predict(x))[:, contract.GATE_DIGIT] >= 0.5)), 4)} for name, x in sets.items()}


def make(out: Path, epochs: int, seed: int, limit: int | None = None) -> list[Path]:
    """Train, convert to int8, measure and write the gate, its card and its browser variant (for the page,
    which a device-only install cannot make) into `out` (`limit`: only the first N training images)."""
    splits = data.load_splits(limit=limit)
    print(f"[gate] drawing the examples (seed {seed})", flush=True)
    x, y = examples(splits, seed)
    print(f"[gate] {int((y == contract.GATE_DIGIT).sum()):,} digits, {int((y != contract.GATE_DIGIT).sum()):,} "
          f"others; training {epochs} epochs", flush=True)
    model = fit(x, y, epochs, seed)
    calibration = x[np.random.default_rng(seed).choice(len(x), 1000, replace=False)]
    content, web = artifacts.gate_files(tflite_edit.strip(artifacts.convert(model, "int8", calibration_images=calibration)),
                                        Path(contract.GATE_FILE).stem)
    gate = Model(content, probe=False, classes=len(contract.GATE_LABELS), name="gate")
    measured = measure(gate, splits, seed)
    card = {"name": Path(contract.GATE_FILE).stem, "labels": contract.GATE_LABELS, "blocks": BLOCKS,
            "epochs": epochs, "seed": seed, "limit": limit, "examples": {"digits": int((y == contract.GATE_DIGIT).sum()),
                                                        "not_digits": int((y != contract.GATE_DIGIT).sum())},
            "training_fonts": [f.name for f in glyphs.training_fonts()],
            "fonts_from": {"matplotlib": package_version("matplotlib"), "opencv": opencv_version()},
            "held_out_fonts": [f.name for f in held_out_fonts()],
            "measured_on": f"{platform.machine()} {gate.backend.name} xnnpack",
            "measured": measured, **artifacts.describe(content), **cards.provenance()}
    path = out / contract.GATE_FILE
    written = [atomic.write_bytes(path, content), atomic.write_json(path.with_suffix(".json"), card),
               atomic.write_bytes(path.with_name(f"{path.stem}_web.tflite"), web)]
    for name, m in measured.items():
        print(f"[gate] {name}: {m['called_digit']:.2%} of {m['n']:,} called digits", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "pretrained")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N training images (smoke runs)")
    args = parser.parse_args(argv)
    try:
        for path in make(args.out, args.epochs, args.seed, args.limit):
            print(f"wrote {path}")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
