"""Frames per second of the capture loop on a 640x480 video with up to six digits, headless.

    python benchmarks/camera_fps.py [--model M] [--scenes 40] [--repeat 15]

Writes a video of generated scenes (3-6 MNIST test digits each, every scene held for
--repeat frames), runs the real `edgedigits camera --source video.mp4 --headless --json`,
and records its summary (frames/s, p50/p90 frame time, mean time per stage) and how
often the smoothed read-out equals the scene's digits. Results:
benchmarks/results/camera_fps.json and .md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from edgedigits.training import scenes
from firmware_harness import mnist
from firmware_harness.runtime import shipped_model
from firmware_harness.device import machine_info
from record import record

TARGETS = {"fps": 150.0, "frame_ms_p50": 5.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=shipped_model())
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    test = mnist.load(mnist.locate(None), splits=("test",))
    sample = scenes.scenes(test.x_test, test.y_test, args.scenes, seed=31, min_digits=3, max_digits=6)
    with tempfile.TemporaryDirectory(prefix="camera-") as tmp:
        video = Path(tmp) / "digits.mp4"
        scenes.write_video(str(video), [s.image for s in sample], fps=30, repeat=args.repeat)
        command = ["edgedigits", "camera", "--source", str(video), "--headless", "--json", "--model", str(args.model)]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: camera failed ({done.returncode}): {done.stderr[-500:]}")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    truth = [s.text for s in sample for _ in range(args.repeat)]
    settled = [f["stable"] == t for f, t in zip(frames, truth) if f["frame"] % args.repeat >= args.repeat // 2]
    result = {
        "command": " ".join(["edgedigits", "camera", "--source", "digits.mp4", "--headless", "--json"]),
        "video": {"frames": len(truth), "size": "640x480", "digits_per_frame": "3-6", "scenes": args.scenes},
        "device": machine_info(),
        "model": args.model.name,
        **summary,
        "stable_readout_correct": round(sum(settled) / max(len(settled), 1), 4),
        "targets": TARGETS,
        "meets_targets": {"fps": summary["fps"] >= TARGETS["fps"],
                          "frame_ms_p50": summary["frame_ms"]["p50"] <= TARGETS["frame_ms_p50"]},
    }
    record("camera_fps", result, markdown(result))
    return 0


def markdown(r: dict) -> str:
    stages = " · ".join(f"{k} {v:.2f}" for k, v in r["stage_ms"].items())
    return "\n".join([
        f"`{r['command']}` — {r['video']['frames']} frames of 640×480 with 3-6 digits, model `{r['model']}`, "
        f"{r['device']['cpu']} ({r['device']['cores']} cores)",
        "",
        "| figure | measured | target |",
        "|---|---:|---:|",
        f"| frames per second | {r['fps']:.0f} | ≥ 150 |",
        f"| frame time p50 / p90 | {r['frame_ms']['p50']:.2f} / {r['frame_ms']['p90']:.2f} ms | p50 ≤ 5 ms |",
        f"| mean per stage (ms) | {stages} | |",
        f"| smoothed read-out correct (second half of each scene) | {r['stable_readout_correct']:.1%} | |",
    ]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
