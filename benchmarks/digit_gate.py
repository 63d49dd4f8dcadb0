"""What the digit gate does to `--min-confidence`: letters let through, digits kept, and its cost.

    python benchmarks/digit_gate.py [--threshold 0.9] [--n 3000]

Each set is read by the shipped digit model, its confidences taken alone and weighed by the shipped
gate (`firmware_harness/recognize.py`), and the share at or above the threshold is counted:
- printed letters and signs (`glyphs.NOT_DIGITS`) and printed digits, in the fonts the gate never saw
  (`gate.held_out_fonts()`: OpenCV's held-out Hershey fonts and the system's Liberation fonts);
- the MNIST test set, which neither model was trained or tuned on, with the accuracy of what is kept;
- scikit-learn's UCI digits (other writers, drawn at 64 px as `uci_digits.py` does);
- the development sets of real handwriting (../shared/data/handwriting/, where they are), framed as
  MNIST was made (`handwriting.py`'s classify); every other crop is framed by `find_digits` as in
  `edgedigits predict`. And whole printed words and numbers
in the held-out fonts, read as `edgedigits predict --min-confidence 0.5` reads them (the gate and the
word rule together): the digits shown per 100 words of 3-10 letters (any letter, O, l and I included),
and the share of the digits of 3-8 digit numbers shown. Also the gate's invoke time at batch 1 beside
the digit model's. Results: benchmarks/results/digit_gate.json and .md.
"""

from __future__ import annotations

import argparse
import sys

import handwriting
import numpy as np
from record import record
from uci_digits import draw

from edgedigits.training import data, glyphs, scenes
from edgedigits.builds import gate
from firmware_harness import contract
from firmware_harness.device import machine_info
from firmware_harness.preprocess import find_digits
from firmware_harness.recognize import read, softmax
from firmware_harness.runtime import KERNELS, Model, load_gate, shipped_model

SEED = 1000  # not the gate's own measuring seeds (11-13)
SHOWN = 0.5  # the words are read with this --min-confidence


def uci_crops() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    uci = load_digits()
    found = [(find_digits(draw(counts, 64)), label) for counts, label in zip(uci.images, uci.target)]
    return (np.stack([f[0].image for f, _ in found if len(f) == 1]),
            np.array([label for f, label in found if len(f) == 1]))


def words(digit_model: Model, gate_model: Model, fonts: list, n: int, seed: int) -> dict:
    """Digits shown (confidence >= SHOWN) per 100 printed words of letters, and the share of printed numbers'
    digits shown, each drawn on a page in `fonts` and read whole."""
    rng = np.random.default_rng(seed)
    shown, drawn = {"letters": 0, "digits": 0}, {"letters": 0, "digits": 0}
    for k in range(n):
        for kind, chars, lengths in (("letters", scenes.LETTERS, (3, 11)), ("digits", glyphs.DIGITS, (3, 9))):
            text = "".join(rng.choice(list(chars), int(rng.integers(*lengths))))
            reading = read(digit_model, glyphs.draw(text, fonts[k % len(fonts)], rng, max_stroke=1), gate_model)
            shown[kind] += sum(c >= SHOWN for c in reading.confidences)
            drawn[kind] += len(text)
    return {"words": n, "digits_shown_per_100_words": round(100 * shown["letters"] / n, 2),
            "number_digits_shown": round(shown["digits"] / drawn["digits"], 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--n", type=int, default=3000, help="printed glyphs of each kind")
    parser.add_argument("--words", type=int, default=1000, help="printed words, and as many numbers")
    args = parser.parse_args()
    pairs = {kernels: (Model(shipped_model(), kernels=kernels), load_gate(kernels=kernels)) for kernels in KERNELS}
    digit_model, gate_model = pairs["xnnpack"]
    fonts = gate.held_out_fonts()
    splits = data.load_splits()
    uci_x, uci_y = uci_crops()
    sets = {  # name: (crops, true digits or None for marks that are not digits)
        "letters and signs, held-out fonts": (glyphs.rendered(glyphs.NOT_DIGITS, fonts, args.n, SEED), None),
        "digits, held-out fonts": (glyphs.rendered(glyphs.DIGITS, fonts, args.n, SEED + 1), None),
        "MNIST test": (splits.x_test, splits.y_test),
        "UCI digits at 64 px": (uci_x, uci_y),
    }
    for name in handwriting.SETS if (handwriting.DATA / f"{handwriting.SETS[0]}.npz").exists() else ():
        x, y = handwriting.load(handwriting.DATA, name)
        sets[f"{name} (development set)"] = (np.stack([handwriting.mnist_frame(image) for image in x]), y)
    rows = []
    for name, (x, truth) in sets.items():
        probabilities = softmax(digit_model.predict(x))
        alone = probabilities.max(axis=1)
        weighed = alone * softmax(gate_model.predict(x))[:, contract.GATE_DIGIT]
        row = {"set": name, "n": len(x),
               "at_threshold_alone": round(float(np.mean(alone >= args.threshold)), 4),
               "at_threshold_with_gate": round(float(np.mean(weighed >= args.threshold)), 4)}
        if truth is not None:
            right = probabilities.argmax(axis=1) == truth
            row["accuracy_kept_alone"] = round(float(right[alone >= args.threshold].mean()), 4)
            row["accuracy_kept_with_gate"] = round(float(right[weighed >= args.threshold].mean()), 4)
        row["with_gate_by_kernels"] = {  # the same share on each kernel family of this machine's runtime
            kernels: round(float(np.mean(softmax(d.predict(x)).max(axis=1) * softmax(g.predict(x))[:, contract.GATE_DIGIT]
                                         >= args.threshold)), 4) for kernels, (d, g) in pairs.items()}
        rows.append(row)
        print(row, flush=True)
    printed = words(digit_model, gate_model, fonts, args.words, SEED + 2)
    print(printed, flush=True)
    timing = {name: round(float(np.median(m.time_single(splits.x_val, warmup=200, runs=3000)[0])) / 1000, 2)
              for name, m in (("digit_model", digit_model), ("gate", gate_model))}
    result = {"threshold": args.threshold, "rows": rows, "printed_words": printed, "invoke_p50_us": timing,
              "fonts": [f.name for f in fonts], "device": machine_info()}
    record("digit_gate", result, markdown(result))
    return 0


def markdown(result: dict) -> str:
    t = result["threshold"]
    lines = [f"`python benchmarks/digit_gate.py`: the share of each set read with a confidence of at least {t}, "
             f"by the shipped digit model alone and weighed by the shipped digit gate (XNNPACK, and LiteRT's "
             f"builtin and reference kernels); on {result['device']['cpu']}.",
             "", "| set | n | alone | with the gate | with the gate, builtin / reference kernels "
             "| accuracy of those kept, alone | with the gate |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        accuracy = (f"{r['accuracy_kept_alone']:.2%} | {r['accuracy_kept_with_gate']:.2%}"
                    if "accuracy_kept_alone" in r else "- | -")
        others = " / ".join(f"{r['with_gate_by_kernels'][k]:.2%}" for k in ("builtin", "reference"))
        lines.append(f"| {r['set']} | {r['n']:,} | {r['at_threshold_alone']:.2%} | {r['at_threshold_with_gate']:.2%} "
                     f"| {others} | {accuracy} |")
    timing, printed = result["invoke_p50_us"], result["printed_words"]
    lines += ["", f"Printed words in the held-out fonts, read whole with `--min-confidence {SHOWN}` (the gate and the "
              f"word rule): {printed['digits_shown_per_100_words']:g} digits shown per 100 words of 3-10 letters "
              f"({printed['words']:,} words); {printed['number_digits_shown']:.2%} of the digits of as many "
              f"3-8 digit numbers shown.","", "For letters and signs, lower is better: they are what `--min-confidence` should turn into '?'. "
              "For digits, higher is better.",
              f"Invoke p50 at batch 1: digit model {timing['digit_model']} µs, gate {timing['gate']} µs "
              f"(once per mark found).",
              f"Held-out fonts: {', '.join(result['fonts'])}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
