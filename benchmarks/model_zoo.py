"""The model zoo x format table: every registry model, every TFLite format, measured in one run.

    python benchmarks/model_zoo.py [--quick] [--cache DIR] [--models NAME ...]

For each registry model: train with its recipe below (or reuse the cached checkpoint),
export fp32, fp16, dynamic-range and post-training int8, and for the ds_cnn presets the
pruned + QAT int8 of `edgedigits export --int8`. Adds the shipped model (`edgedigits_int8`),
a row built with the TensorFlow Model Optimization QAT tutorial's recipe (`tfmot_tutorial`)
and classical scikit-learn baselines. Every .tflite file is measured by the device harness
in ONE process (same machine state, so the ratios are fair), int8 files also in TFLite
Micro. `--quick` runs the same code on 2,000-image slices with one epoch (a CI smoke test).
Results in benchmarks/results/: results.json, results.md, pareto.png, and the shipped
model's confusion matrix.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
from record import RESULTS, record
from zoo import CACHE, export_once, vs_cnn_deep, zoo, zoo_folder, zoo_plan

from edgedigits.export.formats import FORMATS

# The machine drifts between a fast and a slow state within a run, so each file's latency pools
# 50 runs from each of 50 rounds (a fresh interpreter of every file per round) spread over the run.
LATENCY_ROUNDS = 50


COMPARED = {  # results.json key -> the row the ratios are computed for
    "comparisons": "edgedigits_int8",
    "comparisons_ds_cnn": "ds_cnn_pruned_qat_int8",  # the full-resolution layout, shipped until 2026-11-22
}


def tfmot_tutorial(splits, out: Path) -> Path:
    """The TF-MOT QAT tutorial: Conv2D(12, 3) -> MaxPool -> Flatten -> Dense(10), 1 epoch, QAT on 1000 images."""
    from edgedigits.training import data
    from edgedigits.export import artifacts
    from edgedigits.training.tf_stack import keras, seed_everything, tfmot
    from firmware_harness import atomic

    path = out / "tfmot_tutorial.tflite"
    if path.exists():
        return path
    keras.backend.clear_session()  # layer names (and so the file's tensor names) restart at conv2d, not conv2d_24
    seed_everything(0)  # deterministic ops too, else the file depends on whether zoo training ran first
    model = keras.Sequential([
        keras.layers.InputLayer(input_shape=(28, 28, 1)),
        keras.layers.Conv2D(12, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x = data.to_model_input(splits.x_train)
    model.fit(x, splits.y_train, epochs=1, validation_split=0.1, verbose=0)
    qat = tfmot.quantization.keras.quantize_model(model)
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    qat.fit(x[:1000], splits.y_train[:1000], batch_size=500, epochs=1, validation_split=0.1, verbose=0)
    return atomic.write_bytes(path, artifacts.convert(qat, "int8", quantization_aware=True))


def classical(splits, quick: bool) -> list[dict]:
    """k-NN, random forest and SVM (scikit-learn) on the same split; size = pickled model."""
    try:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.svm import SVC
    except ImportError:
        print("scikit-learn not installed: no classical baselines (pip install scikit-learn)", file=sys.stderr)
        return []
    x_train = splits.x_train.reshape(len(splits.x_train), -1).astype(np.float32) / 255
    x_test = splits.x_test.reshape(len(splits.x_test), -1).astype(np.float32) / 255
    subset = 2000 if quick else 10000
    rows = []
    for name, estimator, train_n in (
        ("knn", KNeighborsClassifier(n_neighbors=3), len(x_train)),
        ("random_forest", RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=-1), len(x_train)),
        ("svm_rbf", SVC(kernel="rbf", C=5, gamma="scale"), min(subset, len(x_train))),
    ):
        started = time.perf_counter()
        estimator.fit(x_train[:train_n], splits.y_train[:train_n])
        fit_s = time.perf_counter() - started
        accuracy = float(np.mean(estimator.predict(x_test) == splits.y_test))
        single = []
        for i in range(50):
            t = time.perf_counter_ns()
            estimator.predict(x_test[i:i + 1])
            single.append((time.perf_counter_ns() - t) / 1000)
        rows.append({"name": name, "format": "scikit-learn", "accuracy": accuracy, "n_eval": len(x_test),
                     "bytes": len(pickle.dumps(estimator)), "trained_on": train_n, "fit_s": round(fit_s, 1),
                     "predict_us_p50": round(float(np.median(single)), 1)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000-image slices, 1 epoch: a smoke test")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the results go")
    parser.add_argument("--models", nargs="+", metavar="NAME",
                        help="only these registry models (CI's smoke test runs two) [default: every one]")
    args = parser.parse_args()
    entries = zoo()
    if args.models:
        unknown = sorted(set(args.models) - {e.model for e in entries})
        if unknown:
            parser.error(f"not in the registry: {', '.join(unknown)}; the registry has "
                         f"{', '.join(e.model for e in entries)}")
        entries = tuple(e for e in entries if e.model in args.models)

    from edgedigits.training import data, plots
    from edgedigits import evaluate as evaluate_mod
    from firmware_harness import atomic, bench, mcu, mnist
    from firmware_harness.runtime import Model, shipped_model

    started = time.perf_counter()
    limit = 2000 if args.quick else None
    cache = atomic.ensure_dir(args.cache / ("quick" if args.quick else "full"))
    splits = data.load_splits(None, limit=limit)
    suffix = "_quick" if args.quick else ""
    files, trained, train_s, failed = export_entries(entries, splits, cache, args.quick, args.results, suffix)
    try:
        files["tfmot_tutorial"] = ("int8 QAT", tfmot_tutorial(splits, cache))
    except Exception as e:  # noqa: BLE001 - one row failing is recorded; the run goes on
        failed.append(_failure("tfmot_tutorial", e))
    shipped_path = shipped_model()
    files["edgedigits_int8"] = ("int8 pruned+QAT (shipped)", shipped_path)

    test = mnist.DigitData(splits.x_test, splits.y_test, source=splits.source, is_mnist=splits.is_mnist)
    settings = (bench.BenchSettings(runs=200, warmup=20) if args.quick else
                bench.BenchSettings(runs=LATENCY_ROUNDS * 50, warmup=50, instances=LATENCY_ROUNDS))
    rows = bench.bench_models([path for _, path in files.values()], test, settings)
    for row, (name, (fmt, path)) in zip(rows, files.items()):
        row.update(name=name, format=fmt)
        if fmt.startswith("int8"):
            model = Model(path)
            row["tflm_arena_bytes"] = mcu.arena_bytes(model.content, model.quantize(test.x_test[:1]))
        print(f"{name:32s} {row['accuracy']:.4f} {row['bytes']:>9,} B {row['invoke_us']['p50']:>8.1f} us",
              file=sys.stderr, flush=True)
    result = {"device": bench.device_section(rows), "rows": rows, "classical": classical(splits, args.quick),
              "quick": args.quick, "command": "python benchmarks/model_zoo.py" + (" --quick" if args.quick else "")
              + (" --models " + " ".join(args.models) if args.models else ""),
              "date": time.strftime("%Y-%m-%d"), "data": splits.describe()}
    predicted = {name: evaluate_mod.predict_file(path, test.x_test) for name, (_, path) in files.items()
                 if name in {*COMPARED.values(), "cnn_deep_int8"}}
    for key, subject in COMPARED.items():
        if {subject, "cnn_deep_int8", "tfmot_tutorial"} <= files.keys():
            result[key] = comparisons(rows, subject, predicted, test.y_test)
    result["failed"] = failed
    result["trained_this_run"] = trained
    result["models"] = [e.model for e in entries]
    result["train_wall_time_s"] = train_s
    shipped_bytes = shipped_path.read_bytes()  # the zoo's chain of the default model reproduces it bit for bit, or not
    result["same_file_as_shipped"] = [name for name, (_, path) in files.items()
                                      if name != "edgedigits_int8" and path.read_bytes() == shipped_bytes]
    result["wall_time_s"] = round(time.perf_counter() - started, 1)
    record(f"results{suffix}", result, markdown(result), args.results)
    plots.pareto(rows, args.results / f"pareto{suffix}.png", {name: f.colour for name, f in FORMATS.items()},
                 highlight="edgedigits_int8")
    report = evaluate_mod.metrics(test.y_test, predicted["edgedigits_int8"])
    plots.confusion(np.array(report["confusion"]), args.results / f"confusion_edgedigits_int8{suffix}.png",
                    title=f"edgedigits_int8: {report['accuracy']:.2%} on {report['n_eval']:,} test images")
    return 0


def export_entries(entries, splits, cache: Path, quick: bool, results: Path, suffix: str):
    """Export every zoo entry (or reuse its cached files). A model whose chain fails is recorded in
    `failed` with its error, and the others still run: one bad row must not end a run of an hour.

    Returns (files: row name -> (format, file), models trained in this run, each model's training
    wall time from its card, failures)."""
    from edgedigits.export import pipeline
    from firmware_harness import atomic

    files: dict[str, tuple[str, Path]] = {}
    trained, train_s, failed = [], {}, []
    for entry in entries:
        plan, out = zoo_plan(entry, quick), zoo_folder(cache, entry)
        try:
            if export_once(plan, splits, out):
                trained.append(entry.model)
            run_dir = pipeline.run_folder(plan, splits, out)
            train_s[entry.model] = json.loads((run_dir / "card.json").read_text())["wall_time_s"]
            atomic.write_bytes(results / f"curves_{entry.model}{suffix}.png", (run_dir / "curves.png").read_bytes())
        except Exception as e:  # noqa: BLE001 - one row failing is recorded; the run goes on
            failed.append(_failure(entry.model, e))
            continue
        for fmt in FORMATS:  # the export formats' catalogue
            files[f"{entry.model}_{fmt}"] = (fmt, out / f"{plan.artifact_name(fmt)}.tflite")
        if entry.compressed:
            files[f"{entry.model}_pruned_qat_int8"] = ("int8 pruned+QAT", out / f"{plan.artifact_name()}.tflite")
    return files, trained, train_s, failed


def _failure(name: str, error: Exception) -> dict:
    message = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    print(f"== {name} FAILED, recorded, the run goes on: {message}", file=sys.stderr, flush=True)
    return {"model": name, "error": message}


def comparisons(rows: list[dict], subject: str, predicted: dict[str, np.ndarray], y_test: np.ndarray) -> dict:
    """The issue's ratios for row `subject`: against cnn_deep int8 and against the TF-MOT tutorial row.

    Against cnn_deep the accuracy gap comes with the images only one of the two reads right and the
    McNemar p-value of that split (`predicted`: each compared row's digits for `y_test`).
    """
    by_name = {r["name"]: r for r in rows}
    row, deep, tutorial = by_name.get(subject), by_name.get("cnn_deep_int8"), by_name.get("tfmot_tutorial")
    out = {}
    if row is None:
        return out
    if deep:
        out["vs_cnn_deep_int8"] = {
            "size_ratio": round(deep["bytes"] / row["bytes"], 2),
            "invoke_p50_ratio": round(deep["invoke_us"]["p50"] / row["invoke_us"]["p50"], 2),
            "accuracy_difference_pp": round(100 * (row["accuracy"] - deep["accuracy"]), 2),
            **vs_cnn_deep(y_test, predicted[subject], predicted["cnn_deep_int8"]),
        }
    if tutorial:
        out["vs_tfmot_tutorial"] = {
            "accuracy_difference_pp": round(100 * (row["accuracy"] - tutorial["accuracy"]), 2),
            "invoke_p50_ratio": round(row["invoke_us"]["p50"] / tutorial["invoke_us"]["p50"], 2),
        }
    return out


def trained_phrase(trained: list[str], run: int) -> str:
    """Which float models this run trained, for the results header (`run`: how many models it ran)."""
    if not trained:
        return "every float model from the checkpoint cache; "
    if len(trained) == run:
        return "every float model trained in this run (an empty checkpoint cache); "
    return f"training {', '.join(trained)} in this run (the rest from the checkpoint cache); "


def markdown(r: dict) -> str:
    d = r["device"]
    lines = [
        f"`{r['command']}`, {r['date']}, on {d['cpu']} ({d['arch']}, {d['cores']} cores), {d['os']}, "
        f"Python {d['python']}, numpy {d['numpy']}, {d['backend']}, 1 thread; accuracy on {r['rows'][0]['n_eval']:,} "
        f"MNIST test images; wall time {r['wall_time_s'] / 60:.0f} min, "
        + trained_phrase(r["trained_this_run"], len(r.get("models") or zoo())) +
        f"training the float models took {sum(r['train_wall_time_s'].values()) / 60:.0f} min in all (their cards)",
        "",
        "| model | format | accuracy | bytes | gzip | params | MACs | invoke p50 µs | p90 | e2e p50 µs | TFLM arena |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(r["rows"], key=lambda x: -x["accuracy"]):
        arena = f"{row['tflm_arena_bytes']:,}" if row.get("tflm_arena_bytes") else ""
        bold = "**" if row["name"] == "edgedigits_int8" else ""
        lines.append(f"| {bold}{row['name']}{bold} | {row['format']} | {row['accuracy']:.2%} | {row['bytes']:,} | "
                     f"{row['gzip_bytes']:,} | {row['params']:,} | {row['macs']:,} | {row['invoke_us']['p50']:.1f} | "
                     f"{row['invoke_us']['p90']:.1f} | {row['e2e_us']['p50']:.1f} | {arena} |")
    if r["classical"]:
        lines += ["", "| classical baseline | accuracy | pickled bytes | trained on | predict p50 µs (1 image) |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {c['name']} | {c['accuracy']:.2%} | {c['bytes']:,} | {c['trained_on']:,} images | "
                  f"{c['predict_us_p50']:.0f} |" for c in r["classical"]]
    if r.get("failed"):
        lines += ["", "Rows that failed in this run (recorded; the run went on):", ""]
        lines += [f"- {f['model']}: {f['error']}" for f in r["failed"]]
    if r["same_file_as_shipped"]:
        lines += ["", f"The shipped model is byte-identical to {', '.join(r['same_file_as_shipped'])} "
                      "(the same `edgedigits export --int8` chain, run again)."]
    lines.append("")
    for key, subject in COMPARED.items():
        comp = r.get(key, {})
        if "vs_cnn_deep_int8" in comp:
            c = comp["vs_cnn_deep_int8"]
            lines += [f"{subject} against cnn_deep int8: {c['size_ratio']}× smaller file, {c['invoke_p50_ratio']}× "
                      f"lower invoke p50, accuracy {c['accuracy_difference_pp']:+.2f} points ({c['only_this_right']} "
                      f"test images only {subject} reads right, {c['only_cnn_deep_right']} only cnn_deep; "
                      f"exact McNemar p = {c['mcnemar_p']:.2g})."]
        if "vs_tfmot_tutorial" in comp:
            c = comp["vs_tfmot_tutorial"]
            lines += [f"{subject} against the TF-MOT tutorial recipe: accuracy {c['accuracy_difference_pp']:+.2f} "
                      f"points, invoke p50 {c['invoke_p50_ratio']}× its p50."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
