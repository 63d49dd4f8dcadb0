"""Fine-tuning on your own digits, measured as a user would (#42): `edgedigits export --int8 --data DIR` on the
earlier writers of a development set, then `edgedigits predict` on its later writers.

    python benchmarks/own_digits.py [--sets semeion optdigits_32x32] [--train-fraction 0.5] [--data DIR]

For each set, its first `--train-fraction` of images (in the set's own order, which keeps each writer's digits
together: the earlier writers) are written as paper-polarity PNGs into class folders 0-9, the rest (the later
writers, never seen in fine-tuning) into a folder of their own. `export --int8 --data DIR` runs as a user runs it,
timed; then `predict --json` reads every later writer's image with the shipped model and with the fine-tuned one
(right = exactly that digit). MNIST's test accuracy before and after comes from the new model's card. The
development sets are measured and chosen with, never shipped in a model: this fine-tunes a throwaway model.
Results: own_digits.json and .md in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from handwriting import DATA, load
from record import RESULTS, record

from firmware_harness.device import machine_info
from firmware_harness.runtime import shipped_model

SETS = ("semeion", "optdigits_32x32")  # hwd1000 reads 99.9 % before fine-tuning: nothing to learn


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, by_class: bool) -> list[tuple[Path, int]]:
    """PNG files, dark ink on light paper as a scan is: root/<label>/i.png, or root/i.png."""
    written = []
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / str(label) if by_class else root
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:05d}.png"
        cv2.imwrite(str(path), 255 - image)
        written.append((path, int(label)))
    return written


def read_accuracy(model: Path, files: list[tuple[Path, int]], folder: Path) -> float:
    """`edgedigits predict --json` over a folder: the share read as exactly their digit."""
    run = subprocess.run(["edgedigits", "predict", str(folder), "--json", "--model", str(model), "--jobs", "2"],
                         capture_output=True, text=True, check=True)
    digits = {json.loads(line)["path"]: json.loads(line)["digits"] for line in run.stdout.splitlines()}
    return round(float(np.mean([digits.get(str(path)) == str(label) for path, label in files])), 4)


def measure(name: str, data: Path, fraction: float, work: Path) -> dict:
    bright, y = load(data, name)
    cut = int(round(fraction * len(y)))
    train = write_folder(work / name / "mine", bright[:cut], y[:cut], by_class=True)
    later = write_folder(work / name / "later", bright[cut:], y[cut:], by_class=False)
    out = work / name / "export"
    started = time.perf_counter()
    subprocess.run(["edgedigits", "export", "--int8", "--data", str(work / name / "mine"), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    minutes = (time.perf_counter() - started) / 60
    card = json.loads((out / "edgedigits_int8.json").read_text())
    own = card["own_digits"]
    return {
        "set": name, "train_images": len(train), "later_images": len(later), "export_minutes": round(minutes, 1),
        "later_read": {"shipped": read_accuracy(shipped_model(), later, work / name / "later"),
                       "fine_tuned": read_accuracy(out / "edgedigits_int8.tflite", later, work / name / "later")},
        "own_validation": own["own_validation"], "mnist_test": own["mnist_test"],
        "validation_files": own["validation_files"], "bytes": card["bytes"],
        "accuracy_per_kernel_on_validation": card["accuracy_per_kernel"],
    }


def markdown(result: dict) -> str:
    lines = [f"`{result['command']}`, {result['date']}; {result['device']['cpu']}. Fine-tuned with "
             f"`edgedigits export --int8 --data DIR` on the first {result['train_fraction']:.0%} of each set (earlier "
             "writers); *later writers* are the rest, read with `edgedigits predict` (exactly their digit). MNIST: "
             "its test set, shipped model -> fine-tuned.", "",
             "| set | fine-tuned on | export | later writers | shipped model | fine-tuned | MNIST test |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        mnist = row["mnist_test"]
        lines.append(f"| `{row['set']}` | {row['train_images']:,} | {row['export_minutes']:.1f} min | "
                     f"{row['later_images']:,} | {row['later_read']['shipped']:.2%} | "
                     f"{row['later_read']['fine_tuned']:.2%} | {mnist['before']:.2%} -> {mnist['after']:.2%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="*", default=list(SETS), help=f"development sets [default: {' '.join(SETS)}]")
    parser.add_argument("--train-fraction", type=float, default=0.5, help="share of each set fine-tuned on")
    parser.add_argument("--data", type=Path, default=DATA, help=f"the development sets' folder [default: {DATA}]")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="own-digits-") as work:
        rows = []
        for name in args.sets:
            print(f"[own_digits] {name}: fine-tuning on the earlier writers", file=sys.stderr, flush=True)
            rows.append(measure(name, args.data, args.train_fraction, Path(work)))
    result = {"command": "python benchmarks/own_digits.py", "date": time.strftime("%Y-%m-%d"),
              "device": machine_info(), "train_fraction": args.train_fraction, "rows": rows}
    record("own_digits", result, markdown(result), args.results)


if __name__ == "__main__":
    main()
