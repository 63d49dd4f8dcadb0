"""`edgedigits bundle`: the folder a user copies to a Raspberry Pi, and its run.sh."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from conftest import REPO, assert_one_line_error, run_cli


def test_bundle_runs_its_own_harness_copy(tmp_path, mnist_path, shipped_model):
    out = tmp_path / "pi"
    result = run_cli("bundle", str(shipped_model), "--out", str(out), "--data", str(mnist_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "models" / shipped_model.name).read_bytes() == shipped_model.read_bytes()
    assert (out / "models" / "edgedigits_int8.json").is_file()
    test = np.load(out / "data" / "mnist_test.npz")
    assert test["x_test"].shape == (10000, 28, 28) and test["y_test"].shape == (10000,)
    assert "ai-edge-litert" in (out / "requirements-64bit.txt").read_text()
    assert "tflite-runtime" in (out / "requirements-32bit.txt").read_text()
    assert os.access(out / "run.sh", os.X_OK)
    assert subprocess.run(["bash", "-n", str(out / "run.sh")]).returncode == 0

    # run.sh skips the install when .venv is marked installed: point it at this interpreter and run it for real.
    # A wrapper, not a symlink: a symlinked venv python outside its venv loses the venv's site-packages.
    python = out / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (out / ".venv" / ".edgedigits-installed").touch()
    env = {**os.environ, "PYTHONPATH": ""}
    run = subprocess.run([str(out / "run.sh"), "--runs", "50", "--warmup", "5"], capture_output=True, text=True,
                         env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    bench = json.loads((out / "results" / "bench.json").read_text())
    assert bench["rows"][0]["n_eval"] == 10000 and bench["rows"][0]["accuracy"] > 0.99
    located = subprocess.run([str(python), "-c",
                              "import firmware_harness; print(firmware_harness.__file__)"],
                             capture_output=True, text=True, cwd=out, env=env)
    assert located.stdout.strip().startswith(str(out)), "the bundle must run its own copy of the harness"

    # The device has no edgedigits package: the bundle's predict weighs confidences by the gate in gate/.
    blocker = tmp_path / "no_edgedigits"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['edgedigits'] = None\n")
    page = REPO / "tests" / "data" / "letters" / "triplex_AB_12.png"
    read = subprocess.run([str(python), "-m", "firmware_harness", "predict", str(page), "--model",
                           f"models/{shipped_model.name}", "--min-confidence", "0.9"], capture_output=True, text=True,
                          cwd=out, env={**env, "PYTHONPATH": str(blocker)}, timeout=120)
    assert read.returncode == 0 and read.stdout.startswith(f"{page}: ??12  ("), read.stdout + read.stderr
    carried = subprocess.run([str(python), "-m", "firmware_harness", "predict", str(page), "--min-confidence", "0.9"],
                             capture_output=True, text=True, cwd=out, env={**env, "PYTHONPATH": str(blocker)},
                             timeout=120)
    assert carried.returncode == 0 and carried.stdout == read.stdout, "without --model: the model the bundle carries"


def test_bundle_missing_model(tmp_path, mnist_path):
    result = run_cli("bundle", str(tmp_path / "no.tflite"), "--out", str(tmp_path / "b"), "--data", str(mnist_path))
    assert_one_line_error(result, 2, "model not found")
