"""How well `edgedigits predict` reads digits in photo-like images.

    python benchmarks/recognition.py [--model M] [--singles 3000] [--scenes 300] [--phone 100] [--blank 100]
                                     [--seed 0] [--results DIR]

Draws MNIST *test* digits (never trained on) as dark ink on paper: single digits in
square frames of 32-512 px, the digit 40-90 % of the frame; and 640x480 scenes of 3-6
digits in a row, rotated up to ±8°, with uneven light, blur, noise and JPEG artefacts.
Phone-like scenes (JPEG): `--phone` rows on each paper of `scenes.PAPERS` (ruled notebook
paper with a margin line, squared paper, form boxes, a sheet on a desk) and as many plain
rows stored sideways with EXIF Orientation 6, as phones store portrait photos. Digit-free
photos: `--blank` of each kind (blank, ruled and squared paper, empty form boxes, a blank
sheet on a desk, the desk alone, paper grain, printed letters), read with
`--min-confidence 0.5`: every digit shown there is a false one.
Writes the images, runs the real `edgedigits predict --json` over the folders, and scores:
single-digit accuracy, whole-string exact match and per-digit accuracy of the scenes, next
to the model's own accuracy on the same digits as clean MNIST images.
Results: recognition.json and .md in benchmarks/results/ (or `--results DIR`).
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edgedigits.training import scenes
from firmware_harness import mnist
from firmware_harness.device import machine_info
from firmware_harness.runtime import Model, shipped_model
from record import RESULTS, record
from zoo import read_folder

TARGETS = {"single_accuracy": 0.985, "scene_exact": 0.90, "scene_per_digit": 0.98}
MAX_FALSE_PER_100 = 1.0  # digits shown (confidence >= 0.5) per 100 digit-free photos, for each kind
BLANKS = scenes.PAPERS + scenes.BLANK_ONLY
PORTRAIT = "portrait"  # plain rows stored sideways with EXIF Orientation 6


def write_images(folder: Path, x: np.ndarray, y: np.ndarray, singles: int, scene_count: int, seed: int) -> dict:
    """Write the images; return {file name: true digit string}."""
    rng = np.random.default_rng(seed)
    truth = {}
    for k, i in enumerate(rng.choice(len(x), singles, replace=False)):
        frame, fraction = int(rng.integers(32, 513)), float(rng.uniform(0.4, 0.9))
        name = f"single_{k:04d}.png"
        cv2.imwrite(str(folder / name), scenes.single_digit(x[i], frame, fraction, rng))
        truth[name] = str(int(y[i]))
    for k, scene in enumerate(scenes.scenes(x, y, scene_count, seed=seed + 1)):
        name = f"scene_{k:04d}.png"
        cv2.imwrite(str(folder / name), scene.image)
        truth[name] = scene.text
    return truth


def write_phone_images(folder: Path, x: np.ndarray, y: np.ndarray, count: int, seed: int) -> dict:
    """Rows on each paper and sideways portraits, as JPEG; {file name: true digits}."""
    truth = {}
    for p, on in enumerate(scenes.PAPERS):
        for k, scene in enumerate(scenes.scenes(x, y, count, seed=seed + 10 + p, on=on)):
            name = f"phone_{on}_{k:04d}.jpg"
            cv2.imwrite(str(folder / name), scene.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            truth[name] = scene.text
    for k, scene in enumerate(scenes.scenes(x, y, count, seed=seed + 20)):
        name = f"phone_{PORTRAIT}_{k:04d}.jpg"
        (folder / name).write_bytes(scenes.phone_jpeg(scene.image, 6))
        truth[name] = scene.text
    return truth


def write_blank_images(folder: Path, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed + 30)
    for on in BLANKS:
        for k in range(count):
            cv2.imwrite(str(folder / f"blank_{on}_{k:04d}.jpg"), scenes.blank_scene(on, rng))


def phone_score(truth: dict, read: dict) -> dict:
    """Whole-row exact match for each paper and for the sideways portraits."""
    return {on: round(float(np.mean([read.get(n) == t for n, t in truth.items() if n.startswith(f"phone_{on}_")])), 4)
            for on in (*scenes.PAPERS, PORTRAIT)}


def blank_score(read: dict, count: int) -> dict:
    """Digits shown (confidence >= 0.5, not '?') per 100 digit-free photos of each kind (by the whole kind in
    the name: `blank_desk_0001` is a desk's, `blank_desk_only_0001` the desk alone's)."""
    return {on: round(100 * sum(sum(c != "?" for c in digits) for n, digits in read.items()
                                if n.rsplit("_", 1)[0] == f"blank_{on}") / count, 2) for on in BLANKS}


def score(truth: dict, read: dict) -> dict:
    singles = [n for n in truth if n.startswith("single")]
    scene_names = [n for n in truth if n.startswith("scene")]
    matched = sum(sum(b.size for b in difflib.SequenceMatcher(None, truth[n], read.get(n, "")).get_matching_blocks())
                  for n in scene_names)
    return {
        "single_accuracy": sum(read.get(n) == truth[n] for n in singles) / len(singles),
        "single_accuracy_by_thousand": [round(sum(read.get(n) == truth[n] for n in singles[k:k + 1000]) / len(singles[k:k + 1000]), 4)
                                        for k in range(0, len(singles), 1000)],
        "singles": len(singles),
        "single_no_digit": sum(read.get(n) == "" for n in singles),
        "single_several_digits": sum(len(read.get(n, "")) > 1 for n in singles),
        "scene_exact": sum(read.get(n) == truth[n] for n in scene_names) / len(scene_names),
        "scene_per_digit": matched / sum(len(truth[n]) for n in scene_names),
        "scenes": len(scene_names),
        "scene_wrong_count": sum(len(read.get(n, "")) != len(truth[n]) for n in scene_names),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=shipped_model())
    parser.add_argument("--singles", type=int, default=3000, help="enough that the figure is within ~0.25 points")
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--phone", type=int, default=100, help="phone-like rows on each paper, and sideways")
    parser.add_argument("--blank", type=int, default=100, help="digit-free photos of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder for recognition.json/.md; give another to measure a model without replacing them")
    args = parser.parse_args()
    test = mnist.load(mnist.locate(None), splits=("test",))
    with tempfile.TemporaryDirectory(prefix="recognition-") as tmp:
        folder, phone, blank = Path(tmp) / "mnist", Path(tmp) / "phone", Path(tmp) / "blank"
        for f in (folder, phone, blank):
            f.mkdir()
        truth = write_images(folder, test.x_test, test.y_test, args.singles, args.scenes, args.seed)
        phone_truth = write_phone_images(phone, test.x_test, test.y_test, args.phone, args.seed)
        write_blank_images(blank, args.blank, args.seed)
        started = time.perf_counter()
        read = read_folder(folder, args.model)
        seconds = time.perf_counter() - started
        phone_read = read_folder(phone, args.model)
        blank_read = read_folder(blank, args.model, min_confidence=0.5)
    model_alone = float(np.mean(np.argmax(Model(args.model).predict(test.x_test), axis=1) == test.y_test))
    result = {
        "command": "python benchmarks/recognition.py " + " ".join(sys.argv[1:]),
        "model": str(args.model.name),
        "seed": args.seed,
        "device": machine_info(),
        **score(truth, read),
        "phone_exact": phone_score(phone_truth, phone_read),
        "phone_rows": args.phone,
        "false_digits_per_100": blank_score(blank_read, args.blank),
        "blanks": args.blank,
        "model_alone_mnist_test_accuracy": model_alone,
        "predict_seconds": round(seconds, 1),
        "targets": TARGETS,
    }
    result["meets_targets"] = {**{k: result[k] >= v for k, v in TARGETS.items()},
                               **{f"false_digits_{on}": v <= MAX_FALSE_PER_100
                                  for on, v in result["false_digits_per_100"].items()}}
    record("recognition", result, markdown(result), args.results)
    return 0


def markdown(r: dict) -> str:
    return "\n".join([
        f"`{r['command']}` — model `{r['model']}`, seed {r['seed']}, {r['device']['cpu']}",
        "",
        "| what | measured | target |",
        "|---|---:|---:|",
        f"| single digits, 32-512 px frames, digit 40-90 % ({r['singles']}) | {r['single_accuracy']:.2%} | ≥ 98.5 % |",
        f"| … each thousand of them | {' · '.join(f'{a:.1%}' for a in r['single_accuracy_by_thousand'])} | |",
        f"| … of which no digit found / several found | {r['single_no_digit']} / {r['single_several_digits']} | |",
        f"| 640×480 scenes of 3-6 digits, whole string exact ({r['scenes']}) | {r['scene_exact']:.2%} | ≥ 90 % |",
        f"| … per digit | {r['scene_per_digit']:.2%} | ≥ 98 % |",
        f"| … scenes with a wrong digit count | {r['scene_wrong_count']} | |",
        f"| the model alone on the 10,000 clean MNIST test digits | {r['model_alone_mnist_test_accuracy']:.2%} | |",
        f"| `edgedigits predict` wall time for all {r['singles'] + r['scenes']} images | {r['predict_seconds']} s | |",
        "",
        f"Phone-like rows of 3-6 digits ({r['phone_rows']} JPEGs each), whole row exact:",
        "",
        "| " + " | ".join(r["phone_exact"]) + " |",
        "|" + "---:|" * len(r["phone_exact"]),
        "| " + " | ".join(f"{v:.0%}" for v in r["phone_exact"].values()) + " |",
        "",
        f"Digit-free photos ({r['blanks']} of each kind): digits shown with `--min-confidence 0.5` per 100 photos "
        f"(target ≤ {MAX_FALSE_PER_100:g}). `text` is a line of twelve random letters, O, l and I among them, in "
        f"OpenCV's own face, which the digit gate learned letters from; printed words in faces it never saw are "
        f"measured by `benchmarks/digit_gate.py`:",
        "",
        "| " + " | ".join(r["false_digits_per_100"]) + " |",
        "|" + "---:|" * len(r["false_digits_per_100"]),
        "| " + " | ".join(f"{v:g}" for v in r["false_digits_per_100"].values()) + " |",
    ]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
