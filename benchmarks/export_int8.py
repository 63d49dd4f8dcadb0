"""Time `edgedigits export --int8` from nothing and record what it made.

    python benchmarks/export_int8.py [--model ds_cnn_fast] [--out DIR] [--ship] [-- extra export options]

Runs the real command in a fresh output folder (no checkpoint to reuse), then measures the
file it wrote with the device harness (LiteRT, the full MNIST test set) and writes
benchmarks/results/export_<model>.json and .md. The training stage is `edgedigits train`'s
default recipe, so its figures are the float model's. `--ship` copies the model and its
card into edgedigits/pretrained/ (the model every command runs by default).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgedigits import DEFAULT_MODEL
from edgedigits.export.pipeline import ExportPlan
from firmware_harness import bench, mnist, tflite_file
from firmware_harness.device import machine_info
from record import record

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {  # issue targets: accuracy on the MNIST test set, file size
    DEFAULT_MODEL: {"min_accuracy": 0.995, "max_bytes": 32 * 1024, "min_sparsity": 0.5},
    "ds_cnn_micro": {"min_accuracy": 0.990, "max_bytes": 12 * 1024},  # TFLM stores zeros: no size gain from pruning
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, help="output folder (default: a new temporary folder)")
    parser.add_argument("--ship", action="store_true", help="copy the result into edgedigits/pretrained/")
    parser.add_argument("extra", nargs="*", help="more `edgedigits export` options, after --")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix=f"export-{args.model}-"))
    if out.exists() and any(out.iterdir()):
        sys.exit(f"error: {out} is not empty; the benchmark measures an export from nothing")
    command = ["edgedigits", "export", "--int8", "--model", args.model, "--out", str(out), *args.extra]
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started

    name = ExportPlan(model=args.model).artifact_name()  # the file `export --int8` names by default
    model_path = out / f"{name}.tflite"
    card = json.loads(model_path.with_suffix(".json").read_text())
    test = mnist.load(mnist.locate(None), splits=("test",))
    row = bench.bench_model(model_path, test, bench.BenchSettings(runs=500, warmup=50))
    info = tflite_file.parse(model_path.read_bytes())
    float_card = card["source"]["float_card"]
    result = {
        "command": " ".join(command),
        "wall_time_s": round(wall, 1),
        "stage_times_s": card["source"]["timings"],
        "device": machine_info(),
        "model": args.model,
        "file": name + ".tflite",
        "bytes": card["bytes"],
        "gzip_bytes": card["gzip_bytes"],
        "weight_sparsity": round(info.weight_sparsity(), 4),
        "input_dtype": card["input"]["dtype"],
        "output_dtype": card["output"]["dtype"],
        "float_test_accuracy": float_card["test_accuracy"],
        "float_train_wall_time_s": float_card.get("wall_time_s"),
        "float_epochs_run": float_card.get("epochs_run"),
        "pruned_float_accuracy": card["pruned_float_accuracy"],
        "int8_accuracy_litert": row["accuracy"],
        "int8_accuracy_in_card": card["tflite_accuracy"],
        "n_eval": row["n_eval"],
        "tensor_arena_bytes": card.get("tensor_arena_bytes"),
        "sha256": card["sha256"],
        "invoke_us_p50": row["invoke_us"]["p50"],
        "targets": TARGETS.get(args.model, {}),
    }
    targets = result["targets"]
    if targets:
        meets = result["meets_targets"] = {
            "accuracy": result["int8_accuracy_litert"] >= targets["min_accuracy"],
            "size": result["bytes"] <= targets["max_bytes"],
            "within_0.10pp_of_float": result["int8_accuracy_litert"] >= result["float_test_accuracy"] - 0.001,
            "within_0.10pp_of_pruned_float": result["int8_accuracy_litert"] >= result["pruned_float_accuracy"] - 0.001,
            "time_under_20_min": wall <= 20 * 60,
        }
        if "min_sparsity" in targets:
            meets["sparsity"] = result["weight_sparsity"] >= targets["min_sparsity"]
    record(f"export_{args.model}", result, markdown(result))
    if args.ship:
        for suffix in (".tflite", ".json"):
            shutil.copyfile(model_path.with_suffix(suffix), ROOT / "edgedigits" / "pretrained" / f"edgedigits_int8{suffix}")
        print("shipped to edgedigits/pretrained/")
    return 0


def markdown(r: dict) -> str:
    d = r["device"]
    lines = [
        f"`{r['command']}` on {d['cpu']} ({d['cores']} cores), {d['os']}, Python {d['python']}",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| wall time, from nothing | {r['wall_time_s'] / 60:.1f} min |",
        *(f"| … {stage.removesuffix('_s')} | {seconds:.0f} s |" for stage, seconds in r["stage_times_s"].items()),
        f"| float model, test accuracy | {r['float_test_accuracy']:.2%} |",
        f"| after pruning (float), test accuracy | {r['pruned_float_accuracy']:.2%} |",
        f"| int8 `.tflite` in LiteRT, test accuracy ({r['n_eval']:,} images) | {r['int8_accuracy_litert']:.2%} |",
        f"| file size (gzip) | {r['bytes']:,} B ({r['gzip_bytes']:,} B) |",
        f"| conv/dense weights that are zero | {r['weight_sparsity']:.1%} |",
        f"| input / output | {r['input_dtype']} / {r['output_dtype']} |",
        f"| TFLite Micro tensor arena | {r['tensor_arena_bytes']:,} B |" if r["tensor_arena_bytes"] else None,
        f"| invoke p50 (LiteRT, 1 thread) | {r['invoke_us_p50']:.1f} µs |",
    ]
    if "meets_targets" in r:
        lines += ["", "Targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in r["meets_targets"].items())]
    return "\n".join(line for line in lines if line is not None) + "\n"


if __name__ == "__main__":
    sys.exit(main())
