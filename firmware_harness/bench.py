"""Size, accuracy and latency of `.tflite` digit models: one row per model, one machine per table.

Method (also in the README):
- accuracy: the whole test set, batched (`resize_tensor_input` to 1024 images, one
  invoke per batch); `accuracy_s` is how long that took.
- latency: batch size 1; `runs` timed runs in all, cycling through test images, each timed
  with `time.perf_counter_ns`, split over `instances` fresh interpreters (each after
  `warmup` untimed runs) and pooled: one interpreter's p50 can sit 30-60 % above
  another's for the same file. With several models the rounds interleave them (round k
  times the k-th interpreter of every model), so that drift of the machine's speed
  falls on every model alike and the ratios stay fair.
  * invoke-only: `interpreter.invoke()` alone, the input already in the tensor;
  * end-to-end: from a uint8 28x28 image to the predicted digit: quantize (or scale
    to [0, 1] for float models) + set_tensor + invoke + get_tensor + dequantize + argmax.
  p50/p90/p99/mean in microseconds; images/s = 1e6 / end-to-end mean.
- the reading path: `photos` photo-sized scenes (640x480, a row of five test digits as dark
  ink on uneven paper with sensor noise) read as `predict` reads them: the finder, the model
  and, for a model of the digits, the digit gate; each photo timed, after two untimed, in
  milliseconds: the whole read (`photo_ms`) and the finder's part of it (`finder_ms`); and the
  share of rows read exactly (`photo_exact`). Without OpenCV it is left out, with a warning.
"""

from __future__ import annotations

import gzip
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_harness import mnist
from firmware_harness.device import machine_info
from firmware_harness.errors import NO_OPENCV, UserError
from firmware_harness.runtime import Model

PHOTO_SIZE = (480, 640)  # rows, columns: a phone camera's preview, and the Pi camera's frame in `camera`
PHOTO_DIGITS = 5


@dataclass
class BenchSettings:
    warmup: int = 50
    runs: int = 1000
    instances: int = 5
    threads: int = 1
    backend: str | None = None
    kernels: str = "xnnpack"  # runtime.KERNELS
    photos: int = 20  # photo-sized scenes read through the whole path; 0 leaves it out


def percentiles(samples_ns: np.ndarray, keys=("p50", "p90", "p99")) -> dict:
    us = samples_ns / 1000.0
    out = {k: round(float(np.percentile(us, int(k[1:]))), 2) for k in keys}
    out["mean"] = round(float(us.mean()), 2)
    return out


def distinct_names(paths: list[Path]) -> list[str]:
    """Row names: each file's stem, with as many parent folders as it takes to tell same-named files apart
    (a/edgedigits_int8 and b/edgedigits_int8)."""
    parts = [Path(p).with_suffix("").parts for p in paths]
    depth = 1
    while True:
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names) or depth >= max(len(p) for p in parts):
            return names
        depth += 1


def bench_models(paths: list[Path], test: mnist.DigitData, settings: BenchSettings) -> list[dict]:
    """One table row per model: size, accuracy on the whole test set, single-image latency.

    Latency runs in `settings.instances` rounds; each round times a fresh interpreter of
    every model in turn, so a slow spell of the machine falls on all models alike.
    """
    in_order, models = [], []  # every path's row, in the order given; the models that load
    for path, name in zip(paths, distinct_names(paths)):
        try:
            model = Model(path, backend=settings.backend, threads=settings.threads, name=name, kernels=settings.kernels)
            row = _accuracy_row(model, path, test)
        except UserError as e:  # one model it cannot measure is one row that says why; the others go on
            in_order.append({"model": name, "path": str(path), "error": str(e)})
            continue
        models.append(model)
        in_order.append(row)
    rows = [row for row in in_order if "error" not in row]
    per_instance = max(1, math.ceil(settings.runs / settings.instances))
    samples: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in models]
    for round_ in range(settings.instances):
        for model, timings in zip(models, samples):
            instance = model if round_ == 0 else Model(model.content, backend=model.backend.name,
                                                       threads=settings.threads, name=model.name,
                                                       kernels=settings.kernels)
            timings.append(instance.time_single(test.x_test, settings.warmup, per_instance))
    for row, timings in zip(rows, samples):
        invoke_ns = np.concatenate([t[0] for t in timings])
        e2e = percentiles(np.concatenate([t[1] for t in timings]))
        row.update({
            "invoke_us": percentiles(invoke_ns),
            "e2e_us": {"p50": e2e["p50"], "p90": e2e["p90"], "mean": e2e["mean"]},
            "images_per_s": round(1e6 / e2e["mean"], 1),
            "threads": settings.threads,
            "runs": len(invoke_ns),
            "instances": settings.instances,
            "warmup": settings.warmup,
        })
    if settings.photos and rows:
        try:
            photos, texts = reading_photos(test, settings.photos)
        except ImportError:  # no OpenCV (a 32-bit Pi before apt install python3-opencv): the models still are timed
            print(f"warning: the reading path is not timed: {NO_OPENCV}", file=sys.stderr)
            return in_order
        for row, model in zip(rows, models):
            row.update(time_reading(model, photos, texts))
    return in_order


def reading_photos(test: mnist.DigitData, count: int, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """`count` 640x480 gray photos, each a row of PHOTO_DIGITS test digits (70-100 px tall) as dark ink on
    paper lit unevenly, with sensor noise; and the labels each row spells. Needs OpenCV (ImportError without)."""
    import cv2

    rng = np.random.default_rng(seed)
    height, width = PHOTO_SIZE
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    photos, texts = [], []
    for _ in range(count):
        tilt = rng.uniform(-1, 1, 2)
        paper = 205 + 30 * (tilt[0] * (xx / width - 0.5) + tilt[1] * (yy / height - 0.5))
        ink = np.zeros(PHOTO_SIZE, np.float32)
        side, top = int(rng.integers(70, 100)), int(rng.integers(60, height - 160))
        chosen = rng.choice(len(test.x_test), min(PHOTO_DIGITS, len(test.x_test)), replace=False)
        texts.append("".join(str(int(test.y_test[i])) for i in chosen))
        for k, i in enumerate(chosen):
            left = 40 + k * (width - 80) // PHOTO_DIGITS + int(rng.integers(0, 20))
            ink[top:top + side, left:left + side] = cv2.resize(test.x_test[i], (side, side)) / 255.0
        photo = paper * (1 - 0.8 * ink) + rng.normal(0, 4, PHOTO_SIZE)
        photos.append(np.clip(photo, 0, 255).astype(np.uint8))
    return photos, texts


def time_reading(model: Model, photos: list[np.ndarray], texts: list[str]) -> dict:
    """Milliseconds per photo of the whole reading path (finder, model, and gate for a model of the digits),
    p50 and p90, and the finder's p50, the first two photos untimed (warm-up); and the share of rows read
    exactly."""
    from firmware_harness import recognize
    from firmware_harness.preprocess import find_digits

    gate = recognize.gate_for(model)
    whole, finder, exact = [], [], 0
    for k, photo in enumerate(photos[:2] + photos):
        started = time.perf_counter_ns()
        found = find_digits(photo)
        found_at = time.perf_counter_ns()
        reading = recognize.classify(model, found, gate)
        if k >= 2:
            whole.append(time.perf_counter_ns() - started)
            finder.append(found_at - started)
            exact += reading.digits == texts[k - 2]
    whole_ms, finder_ms = np.array(whole) / 1e6, np.array(finder) / 1e6
    return {"photo_ms": {"p50": round(float(np.percentile(whole_ms, 50)), 2),
                         "p90": round(float(np.percentile(whole_ms, 90)), 2)},
            "finder_ms": {"p50": round(float(np.percentile(finder_ms, 50)), 2)},
            "photos": len(photos), "photo_size": list(PHOTO_SIZE), "gate": gate is not None,
            "photo_exact": round(exact / len(photos), 4)}


def bench_model(path: str | Path, test: mnist.DigitData, settings: BenchSettings) -> dict:
    """The row of one model (`bench_models` of a single path); a model it cannot measure is an error."""
    row = bench_models([Path(path)], test, settings)[0]
    if "error" in row:
        raise UserError(row["error"])
    return row


def _accuracy_row(model: Model, path: Path, test: mnist.DigitData) -> dict:
    started = time.perf_counter()
    predicted = np.argmax(model.predict(test.x_test), axis=1)
    return {
        "model": model.name,
        "path": str(path),
        "backend": model.backend.name,
        "backend_version": model.backend.version,
        "kernels": model.kernels,
        "input_dtype": np.dtype(model.input.dtype).name,
        "bytes": model.size_bytes,
        "gzip_bytes": len(gzip.compress(model.content, compresslevel=9, mtime=0)),
        "params": model.info.param_count(),
        "macs": model.info.mac_count(),
        "accuracy": round(float(np.mean(predicted == test.y_test)), 6),
        "n_eval": int(len(test.y_test)),
        "accuracy_s": round(time.perf_counter() - started, 3),
    }


def device_section(rows: list[dict]) -> dict:
    info = machine_info()
    backends = sorted({f"{r['backend']} {r['backend_version']}" for r in rows if "error" not in r})
    info["backend"] = ", ".join(backends)
    info["dataset"] = rows[0].get("dataset") if rows else None
    return info


def markdown(result: dict) -> str:
    """The device line and the table, as Markdown."""
    d = result["device"]
    lines = [
        f"Machine: {d['cpu']} ({d['arch']}, {d['cores']} cores), {d['os']}, Python {d['python']}, "
        f"numpy {d['numpy']}, backend {d['backend']}",
        "",
        "| model | input | backend | bytes | gzip | params | MACs | accuracy | images | invoke p50 µs | p90 | p99 "
        "| mean | e2e p50 µs | images/s | photo p50 ms | finder ms | rows exact | threads |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | not measured: {r['error'].replace('|', '/')} |" + " |" * 17)
            continue
        inv = r["invoke_us"]
        photo = (f"{r['photo_ms']['p50']:.1f}{'' if r['gate'] else ' (no gate)'} | {r['finder_ms']['p50']:.1f} | "
                 f"{r['photo_exact']:.0%}" if "photo_ms" in r else "– | – | –")
        lines.append(
            f"| {r['model']} | {r['input_dtype']} | {r['backend']} {r['backend_version']}"
            f"{'' if r.get('kernels', 'xnnpack') == 'xnnpack' else ' ' + r['kernels']} | {r['bytes']:,} | "
            f"{r['gzip_bytes']:,} | {r['params']:,} | {r['macs']:,} | {r['accuracy']:.2%} | {r['n_eval']:,} | "
            f"{inv['p50']:.1f} | {inv['p90']:.1f} | {inv['p99']:.1f} | {inv['mean']:.1f} | {r['e2e_us']['p50']:.1f} | "
            f"{r['images_per_s']:,.0f} | {photo} | {r['threads']} |"
        )
    return "\n".join(lines) + "\n"


def run(models: list[Path], test: mnist.DigitData, settings: BenchSettings) -> dict:
    """Benchmark every model in one process on the same data and settings (latency rounds interleaved)."""
    rows = bench_models(models, test, settings)
    for row in rows:
        row["dataset"] = test.name
    return {"device": device_section(rows), "rows": rows}
