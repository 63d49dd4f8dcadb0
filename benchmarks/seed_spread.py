"""How far a zoo model's accuracy moves with the training seed: its recipe and chain, run per seed.

    python benchmarks/seed_spread.py [--models ds_cnn ds_cnn_fast cnn_deep] [--seeds 0 1 2] [--quick]

The zoo table (model_zoo.py) trains each model once, so two rows a few test images apart may
differ by the seed alone. This runs each model's zoo recipe and export chain once per seed
(seed 0 is the zoo's own run, taken from its cache) and records the float model's test
accuracy (Keras) and the accuracy of its post-training int8 file and, for the ds_cnn
presets, of its pruned + QAT int8 file, as the export verified them in the device harness
(the artifacts' cards).
Results: benchmarks/results/seed_spread.json and seed_spread.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from record import RESULTS, record
from zoo import CACHE, export_once, spread, zoo, zoo_folder, zoo_plan

KEYS = {"float": "float (Keras)", "int8": "int8 post-training", "pruned_qat_int8": "int8 pruned+QAT"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["ds_cnn", "ds_cnn_fast", "cnn_deep"],
                        choices=[e.model for e in zoo()], help="zoo models to repeat")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds")
    parser.add_argument("--quick", action="store_true", help="2,000-image slices, 1 epoch: a smoke test")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the results go")
    args = parser.parse_args()

    from edgedigits.training import data

    started = time.perf_counter()
    splits = data.load_splits(None, limit=2000 if args.quick else None)
    cache = args.cache / ("quick" if args.quick else "full")
    runs, trained = [], []
    for entry in (e for e in zoo() if e.model in args.models):
        for seed in args.seeds:
            plan, out = zoo_plan(entry, args.quick, seed), zoo_folder(cache, entry, seed)
            if export_once(plan, splits, out):
                trained.append(f"{entry.model} seed {seed}")
            files = {"int8": plan.artifact_name("int8")}
            if plan.int8:
                files["pruned_qat_int8"] = plan.artifact_name()
            cards = {key: json.loads((out / f"{name}.json").read_text()) for key, name in files.items()}
            run = {"model": entry.model, "seed": seed, "float": cards["int8"]["float_accuracy"]}
            run.update({key: card["tflite_accuracy"] for key, card in cards.items()})
            print(json.dumps(run), file=sys.stderr, flush=True)
            runs.append(run)
    result = {"command": " ".join(["python benchmarks/seed_spread.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d"), "data": splits.describe(), "seeds": args.seeds,
              "runs": runs, "summary": summary(runs), "trained_this_run": trained,
              "wall_time_s": round(time.perf_counter() - started, 1)}
    result["vs_cnn_deep_int8"] = mean_differences(result["summary"])
    record("seed_spread_quick" if args.quick else "seed_spread", result, markdown(result), args.results)
    return 0


def summary(runs: list[dict]) -> dict:
    """Per model and file: the spread of its accuracy over the seeds."""
    out: dict[str, dict] = {}
    for model in dict.fromkeys(r["model"] for r in runs):
        for key in KEYS:
            values = [r[key] for r in runs if r["model"] == model and key in r]
            if values:
                out.setdefault(model, {})[key] = spread(values)
    return out


def mean_differences(summary: dict) -> dict:
    """Each compressed model's mean pruned + QAT int8 accuracy minus cnn_deep int8's mean, in points."""
    deep = summary.get("cnn_deep", {}).get("int8")
    if deep is None:
        return {}
    return {model: round(100 * (files["pruned_qat_int8"]["mean"] - deep["mean"]), 3)
            for model, files in summary.items() if "pruned_qat_int8" in files}


def markdown(result: dict) -> str:
    seeds = result["seeds"]
    lines = [f"`{result['command']}`, {result['date']}: MNIST test accuracy of the zoo recipe and chain, "
             f"one training run per seed; wall time {result['wall_time_s'] / 60:.0f} min, "
             + (f"exporting {', '.join(result['trained_this_run'])} in this run (finished stages reused), the rest "
                "from the checkpoint cache" if result["trained_this_run"] else "every run from the checkpoint cache"), "",
             "| model | file | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | std | range |",
             "|---|---|" + "---:|" * (len(seeds) + 3)]
    for model, files in result["summary"].items():
        for key, s in files.items():
            by_seed = {r["seed"]: r[key] for r in result["runs"] if r["model"] == model and key in r}
            cells = " | ".join(f"{by_seed[seed]:.2%}" if seed in by_seed else "" for seed in seeds)
            std = f"{100 * s['std']:.2f}" if s["std"] is not None else ""
            lines.append(f"| {model} | {KEYS[key]} | {cells} | {s['mean']:.2%} | {std} | "
                         f"{100 * (s['max'] - s['min']):.2f} |")
    lines += ["", "std and range in percentage points."]
    for model, diff in result["vs_cnn_deep_int8"].items():
        lines.append(f"{model} pruned+QAT int8 against cnn_deep int8, mean over seeds: {diff:+.2f} points.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
