"""Train the line reader on synthetic lines made from MNIST's training split, with checkpoints (#41).

    python benchmarks/train_line_reader.py [--lines 80000] [--epochs 6] [--work DIR]

Lines are made in chunks of CHUNK, each from its own seed, and cached in WORK under a hash of the code that makes
them: a second run, or one killed halfway, makes only what is missing, and changed code makes them anew.
Training writes a checkpoint after every epoch and resumes from it. The float model and its card go to
WORK/line_reader.keras and .json; `benchmarks/strings.py` measures it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgedigits.training import data, lines, scenes  # noqa: E402
from firmware_harness import atomic, line_reader, preprocess  # noqa: E402

CHUNK = 5_000
TRAIN_SEED, VAL_SEED = 1_000, 999  # chunk k of the training lines uses TRAIN_SEED + k; strings.py uses others


def code_key() -> str:
    """A short hash of the code that makes a line: a cached chunk made by other code is not used."""
    digest = hashlib.sha256()
    for module in (lines, line_reader, preprocess, scenes):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:10]


def chunks(work: Path, x: np.ndarray, y: np.ndarray, count: int, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """`count` lines in chunks cached as WORK/NAME_SEED_CODEKEY.npz."""
    strips, labels = [], []
    key = code_key()
    for k in range(0, count, CHUNK):
        path = work / f"{name}_{seed + k // CHUNK}_{key}.npz"
        if not path.exists():
            began = time.perf_counter()
            s, l = lines.make(x, y, min(CHUNK, count - k), seed=seed + k // CHUNK)
            np.savez(path.with_suffix(".tmp.npz"), strips=s, labels=l)
            os.replace(path.with_suffix(".tmp.npz"), path)
            print(f"{path.name}: {len(s)} lines in {time.perf_counter() - began:.0f} s", flush=True)
        loaded = np.load(path)
        strips.append(loaded["strips"])
        labels.append(loaded["labels"])
    return np.concatenate(strips), np.concatenate(labels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=80_000)
    parser.add_argument("--val-lines", type=int, default=CHUNK)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".cache" / "line_reader")
    parser.add_argument("--make-only", action="store_true", help="make the lines and stop")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    splits = data.load_splits(None)
    x, y = chunks(args.work, splits.x_train, splits.y_train, args.lines, TRAIN_SEED, "train")
    x_val, y_val = chunks(args.work, splits.x_val, splits.y_val, args.val_lines, VAL_SEED, "val")
    if args.make_only:
        return 0
    from edgedigits.training import line_model

    from edgedigits.training import cards, models

    model = line_model.train(x, y, x_val, y_val, args.work / "train", epochs=args.epochs, width=args.width)
    path = args.work / "line_reader.keras"
    model.save(path)
    card = {"kind": "line-reader-float", "lines": len(x), "epochs": args.epochs, "width": args.width,
            "train_seeds": [TRAIN_SEED, TRAIN_SEED + (len(x) - 1) // CHUNK], "val_lines": len(x_val),
            "val_seed": VAL_SEED,
            "data": splits.describe(), "params": models.count_params(model), "macs": models.count_macs(model),
            "val_exact": round(line_model.exact(model, x_val, y_val), 4), "file": path.name,
            "sha256": cards.sha256_file(path), **cards.provenance()}
    atomic.write_json(path.with_suffix(".json"), card)
    print(f"val exact {card['val_exact']:.2%}; saved {path} and its card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
