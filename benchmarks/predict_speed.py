"""How fast `edgedigits predict` answers: cold start on one image, and a folder on 1 and N worker processes.

    python benchmarks/predict_speed.py [--runs 15] [--images 10000] [--jobs 2]

Cold start: wall time of the whole command, process start to answer, on one photo-like
image, --runs times (median and spread), with the imports it made. Folder: the first
--images MNIST test digits written as 56x56 PNG files (dark ink on white), read with
--jobs 1 and --jobs N, each twice, interleaved; the speed-up is the ratio of the medians.
Results: benchmarks/results/predict_speed.json and .md, with the runtime stack it ran on
(whether TensorFlow was installed: a LiteRT-only install is what a Raspberry Pi has).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from edgedigits.training import scenes
from firmware_harness import mnist
from firmware_harness.device import machine_info
from record import record


def _wall(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed: {done.stderr[-500:]}")
    return elapsed


def _modules(image: Path) -> list[str]:
    """Heavy modules one `edgedigits predict` imports (python -X importtime)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import sys; from edgedigits.launch import main; sys.exit(main())", "predict", str(image)],
                          capture_output=True, text=True)
    top = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    return sorted(top & {"tensorflow", "starlette", "uvicorn", "matplotlib", "rich", "keras", "tf_keras"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    test = mnist.load(mnist.locate(None), splits=("test",))
    with tempfile.TemporaryDirectory(prefix="predict-speed-") as tmp:
        folder = Path(tmp)
        photo = folder / "one.png"
        cv2.imwrite(str(photo), scenes.scenes(test.x_test, test.y_test, 1, seed=1)[0].image)
        _wall(["edgedigits", "predict", str(photo)])  # warm the file cache
        cold = [_wall(["edgedigits", "predict", str(photo)]) for _ in range(args.runs)]
        digits = folder / "digits"
        digits.mkdir()
        for i in range(args.images):
            cv2.imwrite(str(digits / f"{i:05d}.png"), cv2.resize(255 - test.x_test[i], (56, 56)))
        folder_s: dict[int, list[float]] = {1: [], args.jobs: []}
        for _ in range(2):
            for jobs in folder_s:
                folder_s[jobs].append(_wall(["edgedigits", "predict", str(digits), "--jobs", str(jobs)]))
        imported = _modules(photo)
    one, many = statistics.median(folder_s[1]), statistics.median(folder_s[args.jobs])
    result = {
        "command": "python benchmarks/predict_speed.py " + " ".join(sys.argv[1:]),
        "device": machine_info(),
        "tensorflow_installed": importlib.util.find_spec("tensorflow") is not None,
        "cold_start_s": {"runs": args.runs, "median": round(statistics.median(cold), 3),
                         "min": round(min(cold), 3), "max": round(max(cold), 3)},
        "heavy_imports": imported,
        "folder": {"images": args.images, "jobs": args.jobs, "seconds": {str(k): v for k, v in folder_s.items()},
                   "images_per_s": {str(k): round(args.images / statistics.median(v), 1) for k, v in folder_s.items()},
                   "speedup": round(one / many, 2)},
        "targets": {"cold_start_median_s": 0.25, "speedup": 1.7},
    }
    record("predict_speed", result, markdown(result))
    return 0



def markdown(result: dict) -> str:
    c, f = result["cold_start_s"], result["folder"]
    one, many = (statistics.median(f["seconds"][str(jobs)]) for jobs in (1, f["jobs"]))
    return "\n".join([
        f"`{result['command']}` on {result['device']['cpu']} ({result['device']['cores']} cores), Python "
        f"{result['device']['python']}, TensorFlow installed: {result['tensorflow_installed']}", "",
        "| what | median | spread | target |", "|---|---:|---:|---:|",
        f"| `edgedigits predict one.png`, process start to answer ({c['runs']} runs) | {c['median']:.3f} s | "
        f"{c['min']:.3f}-{c['max']:.3f} s | ≤ 0.25 s |",
        f"| {f['images']:,} digit PNGs, `--jobs 1` | {one:.2f} s ({f['images_per_s']['1']:,.0f}/s) | | |",
        f"| {f['images']:,} digit PNGs, `--jobs {f['jobs']}` | {many:.2f} s "
        f"({f['images_per_s'][str(f['jobs'])]:,.0f}/s) | | |",
        f"| speed-up | {f['speedup']:.2f}× | | ≥ 1.7× |",
        "", f"Heavy modules `predict` imported: {', '.join(result['heavy_imports']) or 'none'}.",
    ]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
