"""The zoo's int8 models on handwriting that is not MNIST: scikit-learn's copy of the UCI digits.

    python benchmarks/uci_digits.py [--size 32 64 128] [--seeds 0 1 2] [--limit N] [--cache DIR] [--results DIR]

scikit-learn ships the test half of the UCI "Optical Recognition of Handwritten Digits" set:
1,797 digits from a separate collection (43 writers), stored as 8x8 grids of ink counts
(0-16), so it needs no download. Each digit is drawn as dark ink on a light page (bicubic
upscale to each --size in px, a margin around it), and the real `edgedigits predict --json`
reads the folder once per model and size: the shipped model and every zoo int8 file in the
checkpoint cache (`benchmarks/model_zoo.py` makes them), and the other seeds' files that
`benchmarks/seed_spread.py` made. Drawing at several sizes shows whether a lead depends on
how large the digits are; reading several seeds, whether it depends on one training run.
Scores: the share read as exactly the right digit, against `cnn_deep` int8 the images only
one of the two reads right with the McNemar p-value, and per file the mean over the seeds.
Results: uci_digits.json and .md in benchmarks/results/ (or `--results DIR`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from record import RESULTS, record
from zoo import CACHE, read_folder, seeded, spread, unseeded, vs_cnn_deep, zoo, zoo_folder

from firmware_harness.runtime import shipped_model
from firmware_harness.device import machine_info

PAPER, INK = 235, 35  # page and full-ink gray levels


def draw(counts: np.ndarray, size: int) -> np.ndarray:
    """One 8x8 grid of ink counts (0-16) as a `size` px digit on a page with a quarter-size margin."""
    ink = cv2.resize((counts / 16.0).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    margin = size // 4
    page = np.full((size + 2 * margin, size + 2 * margin), PAPER, np.uint8)
    page[margin:margin + size, margin:margin + size] = np.round(PAPER - (PAPER - INK) * ink).astype(np.uint8)
    return page


def zoo_int8_files(cache: Path, seeds: list[int]) -> dict[str, Path]:
    """The zoo's int8 files that exist in `cache`: post-training int8, and pruned + QAT for the ds_cnn presets.

    Seed 0 is the zoo run's; another seed's (seed_spread.py's runs) is named by `seeded`."""
    found = {}
    for seed in seeds:
        for entry in zoo():
            folder = zoo_folder(cache / "full", entry, seed)
            for name in (f"{entry.model}_int8", f"{entry.model}_pruned_qat_int8"):
                if (folder / f"{name}.tflite").is_file():
                    found[seeded(name, seed)] = folder / f"{name}.tflite"
    return found


def seed_summary(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """Per zoo file read at more than one seed, per size: the seeds and the spread of its accuracy over them."""
    by_file: dict[str, dict[int, dict[int, float]]] = {}
    for row in rows:
        base, seed = unseeded(row["name"])
        by_file.setdefault(base, {}).setdefault(row["size_px"], {})[seed] = row["accuracy"]
    return {base: {str(size): {"seeds": sorted(acc), **spread(list(acc.values()))} for size, acc in at.items()}
            for base, at in by_file.items() if any(len(acc) > 1 for acc in at.values())}


def same_file_as(models: dict[str, Path]) -> dict[str, str]:
    """Each model's first model with a byte-identical file (the shipped file is also a zoo file)."""
    first_with: dict[bytes, str] = {}
    return {model: first_with.setdefault(path.read_bytes(), model) for model, path in models.items()}


def read_at_size(images: np.ndarray, truth: np.ndarray, size: int, models: dict[str, Path],
                 same_as: dict[str, str]) -> list[dict]:
    """Every model's reading of the digits drawn at `size` px: one row per model, paired with cnn_deep int8.

    A file identical to an earlier model's (`same_as`) is not read again."""
    predicted = {}
    with tempfile.TemporaryDirectory(prefix="uci-digits-") as tmp:
        names = [f"uci_{i:04d}.png" for i in range(len(images))]
        for name, counts in zip(names, images):
            cv2.imwrite(str(Path(tmp) / name), draw(counts, size))
        reads: dict[str, dict[str, str]] = {}
        for model, path in models.items():
            if same_as[model] not in reads:
                reads[same_as[model]] = read_folder(Path(tmp), path)
            read = reads[same_as[model]]
            predicted[model] = np.array([int(read[n]) if len(read.get(n, "")) == 1 else -1 for n in names])
            print(f"{size:4d} px {model:32s} {np.mean(predicted[model] == truth):.4f}", file=sys.stderr, flush=True)
    rows = []
    for model, guess in predicted.items():
        row = {"name": model, "size_px": size, "accuracy": round(float(np.mean(guess == truth)), 6),
               "no_digit_or_several": int(np.sum(guess < 0))}
        if "cnn_deep_int8" in predicted and model != "cnn_deep_int8":
            row["vs_cnn_deep_int8"] = vs_cnn_deep(truth, guess, predicted["cnn_deep_int8"])
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs="+", default=[32, 64, 128],
                        help="digit sizes in pixels on the page, one reading of every model each (default 32 64 128)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds whose zoo files to read when cached (default 0 1 2, as seed_spread.py)")
    parser.add_argument("--limit", type=int, help="only the first N digits")
    parser.add_argument("--cache", type=Path, default=CACHE, help="the zoo's cache")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where uci_digits.json/.md go")
    args = parser.parse_args()
    if min(args.size) < 16 or (args.limit is not None and args.limit < 1):
        sys.exit("error: every --size must be at least 16 (px) and --limit at least 1")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("error: the UCI digits come with scikit-learn; pip install scikit-learn")
    shipped = shipped_model()
    if shipped is None:
        sys.exit("error: no shipped model; install edgedigits (pip install -e .) to measure it")
    digits = load_digits()
    images, truth = digits.images[:args.limit], digits.target[:args.limit]
    models = {"edgedigits_int8": shipped, **zoo_int8_files(args.cache, list(dict.fromkeys(args.seeds)))}
    sizes = list(dict.fromkeys(args.size))  # in the order given, each once
    started = time.perf_counter()
    same_as = same_file_as(models)
    rows = [row for size in sizes for row in read_at_size(images, truth, size, models, same_as)]
    result = {
        "command": "python benchmarks/uci_digits.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "device": machine_info(),
        "data": f"UCI optical recognition of handwritten digits (scikit-learn's copy), {len(truth):,} digits "
                f"drawn at {', '.join(map(str, sizes))} px",
        "rows": rows,
        "seed_summary": seed_summary(rows),
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    record("uci_digits", result, markdown(result), args.results)
    return 0


def markdown(r: dict) -> str:
    """One row per seed-0 model, for each size its share read right and its split against cnn_deep int8;
    then, for the files read at several seeds, their mean over the seeds."""
    sizes = list(dict.fromkeys(row["size_px"] for row in r["rows"]))
    by_model: dict[str, dict[int, dict]] = {}
    for row in r["rows"]:
        if unseeded(row["name"])[1] == 0:
            by_model.setdefault(row["name"], {})[row["size_px"]] = row
    lines = [f"`{r['command'].strip()}`, {r['date']}: {r['data']}, each read by `edgedigits predict`; "
             "against cnn_deep int8: digits only this model reads right / only cnn_deep does, McNemar p", "",
             "| model | " + " | ".join(f"{s} px | vs cnn_deep" for s in sizes) + " |",
             "|---|" + "---:|---:|" * len(sizes)]
    for name, at in sorted(by_model.items(), key=lambda item: -np.mean([x["accuracy"] for x in item[1].values()])):
        cells = []
        for size in sizes:
            row = at[size]
            unread = f" ({row['no_digit_or_several']} unread)" if row["no_digit_or_several"] else ""
            c = row.get("vs_cnn_deep_int8")
            paired_cell = f"{c['only_this_right']} / {c['only_cnn_deep_right']}, p {c['mcnemar_p']:.2g}" if c else ""
            cells += [f"{row['accuracy']:.2%}{unread}", paired_cell]
        bold = "**" if name == "edgedigits_int8" else ""
        lines.append(f"| {bold}{name}{bold} | " + " | ".join(cells) + " |")
    return "\n".join(lines + seed_lines(r["seed_summary"], sizes)) + "\n"


def seed_lines(summary: dict[str, dict[str, dict]], sizes: list[int]) -> list[str]:
    """The seed table: per file, per size, the mean over its seeds (min-max) and the mean's gap to cnn_deep's."""
    if not summary:
        return []
    deep = summary.get("cnn_deep_int8", {})
    lines = ["", "Mean over training seeds (min-max); gap: this mean minus cnn_deep int8's mean, in points", "",
             "| file | seeds | " + " | ".join(f"{s} px | gap" for s in sizes) + " |",
             "|---|---|" + "---:|---:|" * len(sizes)]
    for base, at in summary.items():
        cells = []
        for size in map(str, sizes):
            x = at[size]
            gap = f"{100 * (x['mean'] - deep[size]['mean']):+.2f}" if size in deep and base != "cnn_deep_int8" else ""
            cells += [f"{x['mean']:.2%} ({x['min']:.2%}-{x['max']:.2%})", gap]
        seeds = ", ".join(map(str, at[str(sizes[0])]["seeds"]))
        lines.append(f"| {base} | {seeds} | " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
