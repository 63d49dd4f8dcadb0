"""Is the latency benchmark repeatable? Two `bench` runs back to back on the same model.

    python benchmarks/bench_repeat.py [MODEL] [--runs 1000]

Records both runs' invoke p50 and end-to-end p50, their ratio (target: within ±15 % on an
idle machine) and how long the batched accuracy pass over the 10,000 test images took
(target: ≤ 2 s). Results: benchmarks/results/bench_repeat.json and .md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from firmware_harness.runtime import shipped_model
from record import record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", type=Path, default=shipped_model())
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(2):
            out = Path(tmp) / f"run{k}.json"
            subprocess.run(["edgedigits", "bench", str(args.model), "--runs", str(args.runs), "--json", str(out)],
                           check=True, capture_output=True)
            runs.append(json.loads(out.read_text()))
    rows = [r["rows"][0] for r in runs]
    invoke = [r["invoke_us"]["p50"] for r in rows]
    e2e = [r["e2e_us"]["p50"] for r in rows]
    result = {
        "command": f"edgedigits bench {args.model.name} --runs {args.runs}  (twice, back to back)",
        "device": runs[0]["device"],
        "invoke_p50_us": invoke,
        "e2e_p50_us": e2e,
        "invoke_p50_ratio": round(invoke[1] / invoke[0], 3),
        "e2e_p50_ratio": round(e2e[1] / e2e[0], 3),
        "accuracy": rows[0]["accuracy"],
        "accuracy_s": [r["accuracy_s"] for r in rows],
        "within_15_percent": all(0.85 <= x <= 1.15 for x in (invoke[1] / invoke[0], e2e[1] / e2e[0])),
        "accuracy_under_2_s": all(r["accuracy_s"] <= 2.0 for r in rows),
    }
    record("bench_repeat", result, markdown(result))
    return 0



def markdown(result: dict) -> str:
    invoke, e2e = result["invoke_p50_us"], result["e2e_p50_us"]
    return "\n".join([
        f"`{result['command']}` on {result['device']['cpu']}, backend {result['device']['backend']}",
        "",
        "| | run 1 | run 2 | ratio |",
        "|---|---:|---:|---:|",
        f"| invoke p50 (µs) | {invoke[0]:.1f} | {invoke[1]:.1f} | {result['invoke_p50_ratio']:.3f} |",
        f"| end-to-end p50 (µs) | {e2e[0]:.1f} | {e2e[1]:.1f} | {result['e2e_p50_ratio']:.3f} |",
        f"| accuracy pass over 10,000 images (s) | {result['accuracy_s'][0]:.2f} | {result['accuracy_s'][1]:.2f} | |",
    ]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
