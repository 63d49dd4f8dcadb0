"""What a user sees for each bad input: runs every case through the real CLI, writes the README table.

    python benchmarks/bad_inputs.py

Each case builds its bad input in a temporary folder, runs the command, and records the
exit code and the one line on stderr. Results: benchmarks/results/bad_inputs.json and .md.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np

from firmware_harness import mnist
from firmware_harness.runtime import shipped_model
from record import record


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def cases(tmp: Path, data: Path) -> list[tuple[str, list[str], dict]]:
    """(what was wrong, edgedigits arguments, extra environment) for every case."""
    model = shipped_model()
    test = mnist.load(data, splits=("train", "test"))
    (tmp / "truncated.npz").write_bytes(data.read_bytes()[:2_000_000])
    np.savez(tmp / "labels.npz", x_train=test.x_train[:6000], y_train=test.y_train[:6000] + 10,
             x_test=test.x_test[:10], y_test=test.y_test[:10])
    np.savez(tmp / "shapes.npz", x_train=test.x_train[:6000, :20], y_train=test.y_train[:6000],
             x_test=test.x_test[:10], y_test=test.y_test[:10])
    flipped = dict(np.load(data))
    flipped["x_test"] = flipped["x_test"].copy()
    flipped["x_test"][0, 0, 0] ^= 1
    (tmp / "flipped").mkdir()
    np.savez(tmp / "flipped" / "mnist.npz", **flipped)
    (tmp / "emptydir").mkdir()
    (tmp / "not_a_model.tflite").write_bytes(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    (tmp / "half.tflite").write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "notes.png").write_text("not an image")
    (tmp / "huge.png").write_bytes(_png_header(30000, 30000))
    good = cv2.imencode(".jpg", np.full((64, 64, 3), 200, np.uint8))[1].tobytes()
    (tmp / "cut.jpg").write_bytes(good[: len(good) // 3])
    (tmp / "model.keras").write_bytes(b"PK\x03\x04" + bytes(100))
    (tmp / "a_file").write_text("x")
    fast = ["--limit", "500", "--epochs", "1"]
    offline = {"EDGEDIGITS_DATA": "", "KERAS_HOME": str(tmp / "keras")}
    return [
        ("data file missing", ["train", "--data", str(tmp / "nope.npz")], {}),
        ("data file truncated", ["train", "--data", str(tmp / "truncated.npz")], {}),
        ("labels out of range", ["train", "--data", str(tmp / "labels.npz")], {}),
        ("images of the wrong shape", ["train", "--data", str(tmp / "shapes.npz")], {}),
        ("MNIST copy with one flipped bit", ["train", "--data", str(tmp / "flipped" / "mnist.npz")], {}),
        ("folder without IDX files", ["train", "--data", str(tmp / "emptydir")], {}),
        ("no MNIST anywhere, offline", ["train", *fast], offline),
        ("unknown model name", ["export", "--model", "resnet"], {}),
        ("sparsity outside [0, 0.95]", ["export", "--sparsity", "0.99"], {}),
        ("corrupt starting checkpoint", ["export", "--from", str(tmp / "model.keras"), *fast], {}),
        ("output folder cannot be created", ["export", "--out", str(tmp / "a_file" / "out"), *fast], {}),
        ("model file missing", ["bench", str(tmp / "missing.tflite")], {}),
        ("a PNG named .tflite", ["bench", str(tmp / "not_a_model.tflite")], {}),
        ("model file cut in half", ["bench", str(tmp / "half.tflite")], {}),
        ("unknown backend", ["bench", "--backend", "tpu"], {}),
        ("no test data anywhere", ["bench"], offline),
        ("empty image file", ["predict", str(tmp / "empty.png")], {}),
        ("text file named .png", ["predict", str(tmp / "notes.png")], {}),
        ("truncated JPEG", ["predict", str(tmp / "cut.jpg")], {}),
        ("30000x30000 PNG (header only)", ["predict", str(tmp / "huge.png")], {}),
        ("camera index that does not exist", ["camera", "--source", "9", "--headless"], {}),
        ("video file missing", ["camera", "--source", str(tmp / "nope.mp4"), "--headless"], {}),
    ]


def main() -> int:
    data = mnist.locate(None)
    if data is None:
        sys.exit(f"error: set {mnist.ENV_VAR}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for what, args, env in cases(Path(tmp), data):
            done = subprocess.run(["edgedigits", *args], capture_output=True, text=True, timeout=300,
                                  env={**os.environ, **env}, cwd=tmp)
            lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
            tail = done.stderr.strip().splitlines()
            shown = lines[-1] if lines else (tail[-1] if tail else "")
            rows.append({"input": what, "command": "edgedigits " + " ".join(a.replace(tmp, "…") for a in args),
                         "exit": done.returncode, "stderr": shown.replace(tmp, "…"),
                         "traceback": "Traceback" in done.stderr})
    record("bad_inputs", rows, markdown(rows))
    return 0 if not any(r["traceback"] for r in rows) else 1



def markdown(rows: list[dict]) -> str:
    table = ["| bad input | exit | what the user sees |", "|---|---:|---|"]
    table += [f"| {r['input']} | {r['exit']} | `{r['stderr']}` |" for r in rows]
    return "\n".join(table) + "\n"


if __name__ == "__main__":
    shutil.which("edgedigits") or sys.exit("error: install edgedigits first")
    sys.exit(main())
