"""Real handwriting that is not MNIST: the development sets in ../shared/data/handwriting/, read four ways.

    python benchmarks/handwriting.py [--model M.tflite ...] [--data DIR] [--kernels xnnpack builtin reference]

For each set and model:
- classify: each image framed as MNIST was made (ink bright, the longest side scaled to 20 px with the
  aspect kept, the centre of mass at the centre of 28x28), then `DigitReader.classify`: how well the model
  knows other writers;
- read: the raw image in paper polarity (dark ink on light), no margin, through `DigitReader.read`, as a
  user hands it over: how well the whole path finds the digit and reads it (right = exactly that digit);
- read, margin: the same with a paper margin of half the image's side around it;
- read, in a box: the image as a crop of an answer box, a little paper round it and the box's printed border
  along one, two, three or all four of the crop's edges (in turn), as crops cut from forms hold them.
`read` also counts the images where no digit was found and where more than one was. The sets are for
measuring and choosing, never for training. Results: handwriting.json and .md in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from record import RESULTS, record

from firmware_harness.device import machine_info
from firmware_harness.reader import DigitReader
from firmware_harness.runtime import Model, shipped_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "handwriting"
SETS = ("semeion", "optdigits_32x32", "hwd1000")
PAPER = 255


def load(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The set's images with bright ink on black (as its `ink` field says they come) and its labels."""
    with np.load(folder / f"{name}.npz") as data:
        x, y, ink = data["x"], data["y"], str(data["ink"])
    return (x if ink == "white-on-black" else 255 - x), y.astype(np.int64)


def mnist_frame(image: np.ndarray) -> np.ndarray:
    """A bright-ink digit framed as MNIST was made: longest side 20 px (aspect kept, anti-aliased), its
    centre of mass at the centre of 28x28."""
    ys, xs = np.nonzero(image > 0)
    if len(ys) == 0:
        return np.zeros((28, 28), np.uint8)
    crop = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)
    scale = 20 / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    fitted = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    moments = cv2.moments(fitted)
    cx, cy = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
    shift = np.float32([[1, 0, 13.5 - cx], [0, 1, 13.5 - cy]])
    framed = cv2.warpAffine(fitted, shift, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0)
    return np.clip(np.rint(framed), 0, 255).astype(np.uint8)


BORDERS = ("l", "lt", "ltb", "ltrb")  # the sides of an answer box that a crop holds, image by image in turn
BORDER_INK = 60  # a printed box's gray


def in_a_box(image: np.ndarray, k: int) -> np.ndarray:
    """A paper-polarity image as a crop of an answer box: a little paper round the digit, and the box's
    border along one to four of the crop's edges (BORDERS[k % 4]), a line a 32nd of the side thick."""
    pad = max(1, max(image.shape) // 16)
    crop = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=PAPER)
    t = max(1, max(image.shape) // 32)
    edges = {"l": (slice(None), slice(0, t)), "t": (slice(0, t), slice(None)),
             "b": (slice(-t, None), slice(None)), "r": (slice(None), slice(-t, None))}
    for side in BORDERS[k % len(BORDERS)]:
        crop[edges[side]] = BORDER_INK
    return crop


def framed_as(image: np.ndarray, k: int, framing: str) -> np.ndarray:
    """The image as handed over: "raw", with a "margin" of half its side, or "boxed" (`in_a_box`)."""
    if framing == "margin":
        pad = max(image.shape) // 2
        return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=PAPER)
    return in_a_box(image, k) if framing == "boxed" else image


def read_all(reader: DigitReader, paper: np.ndarray, y: np.ndarray, framing: str) -> dict:
    """`read` of every image (paper polarity), framed as `framing` says (`framed_as`)."""
    right = none = several = 0
    confusions: dict[str, int] = {}
    for k, (image, label) in enumerate(zip(paper, y)):
        digits = reader.read(framed_as(image, k, framing)).digits
        right += digits == str(label)
        none += digits == ""
        several += len(digits) > 1
        if len(digits) == 1 and digits != str(label):
            key = f"{label}->{digits}"
            confusions[key] = confusions.get(key, 0) + 1
    n = len(y)
    return {"accuracy": round(right / n, 4), "no_digit": round(none / n, 4), "several": round(several / n, 4),
            "top_confusions": dict(sorted(confusions.items(), key=lambda kv: -kv[1])[:5])}


def measure(model_path: Path, kernels: str, folder: Path) -> dict:
    reader = DigitReader(Model(model_path, kernels=kernels))
    rows = {}
    for name in SETS:
        bright, y = load(folder, name)
        started = time.perf_counter()
        predicted = reader.classify(np.stack([mnist_frame(im) for im in bright])).argmax(axis=1)
        wrong = predicted != y
        confusions: dict[str, int] = {}
        for t, p in zip(y[wrong], predicted[wrong]):
            confusions[f"{t}->{p}"] = confusions.get(f"{t}->{p}", 0) + 1
        paper = 255 - bright
        rows[name] = {
            "n": int(len(y)), "shape": list(bright.shape[1:]),
            "classify": {"accuracy": round(float(np.mean(~wrong)), 4),
                         "top_confusions": dict(sorted(confusions.items(), key=lambda kv: -kv[1])[:5])},
            "read": read_all(reader, paper, y, "raw"),
            "read_margin": read_all(reader, paper, y, "margin"),
            "read_boxed": read_all(reader, paper, y, "boxed"),
            "seconds": round(time.perf_counter() - started, 1),
        }
    return {"model": model_path.name, "kernels": kernels, "sets": rows}


def markdown(result: dict) -> str:
    lines = [f"`{result['command']}`, {result['date']}; {result['device']['cpu']}. classify: framed as MNIST, "
             "then the model; read: the raw image in paper polarity through `DigitReader.read` (no digit found / "
             "several found in brackets); margin: with paper around it; in a box: a crop of an answer box, its "
             "border along one to four of the crop's edges.", "",
             "| model | kernels | set | images | classify | read | read, margin | read, in a box | "
             "top confusions (classify) |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for run in result["runs"]:
        for name, row in run["sets"].items():
            confusions = ", ".join(f"{k} ({v})" for k, v in row["classify"]["top_confusions"].items())
            reads = " | ".join(f"{r['accuracy']:.2%} ({r['no_digit']:.1%} / {r['several']:.1%})"
                               for r in (row[key] for key in ("read", "read_margin", "read_boxed")))
            lines.append(f"| {run['model']} | {run['kernels']} | `{name}` | {row['n']:,} | "
                         f"{row['classify']['accuracy']:.2%} | {reads} | {confusions} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, nargs="*", help="int8 .tflite files [default: the shipped model]")
    parser.add_argument("--data", type=Path, default=DATA, help=f"the development sets' folder [default: {DATA}]")
    parser.add_argument("--kernels", nargs="*", default=["xnnpack"], help="kernel families [default: xnnpack]")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    models = args.model or [shipped_model()]
    runs = [measure(path, kernels, args.data) for path in models for kernels in args.kernels]
    result = {"command": "python benchmarks/handwriting.py", "date": time.strftime("%Y-%m-%d"),
              "device": machine_info(), "runs": runs}
    record("handwriting", result, markdown(result), args.results)


if __name__ == "__main__":
    main()
