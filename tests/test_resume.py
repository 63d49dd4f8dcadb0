"""Kill the tool mid-run and run it again: it continues; writers never leave half-files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from conftest import REPO  # noqa: E402

ARGS = ["--model", "ds_cnn_micro", "--limit", "1500", "--epochs", "5", "--prune-epochs", "3", "--qat-epochs", "3"]


def _start(out: Path, mnist_path: Path) -> subprocess.Popen:
    code = "import sys; from edgedigits.cli import main; sys.exit(main())"
    return subprocess.Popen([sys.executable, "-c", code, "export", *ARGS, "--data", str(mnist_path), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _epochs_done(out: Path, stage: str) -> int:
    for state in out.glob(f"runs/*/checkpoints/{stage}*/state.json"):
        try:
            return json.loads(state.read_text())["epoch"]
        except (OSError, ValueError):
            return 0
    return 0


def _kill_when(process: subprocess.Popen, out: Path, stage: str, epochs: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while _epochs_done(out, stage) < epochs:
        assert process.poll() is None, f"finished before {stage} epoch {epochs}: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"{stage} did not reach epoch {epochs}"
        time.sleep(0.2)
    process.kill()
    process.wait()


def test_kill_during_train_prune_and_qat_then_resume(tmp_path, mnist_path):
    out = tmp_path / "export"
    for stage, label in (("train", "[train]"), ("prune", "[prune]"), ("qat", "[qat]")):
        run = _start(out, mnist_path)
        _kill_when(run, out, stage, 1)
        done_before = _epochs_done(out, stage)
        again = _start(out, mnist_path)
        if stage != "qat":
            _kill_when(again, out, stage, done_before + 1)  # it went on from where it was, then dies again
            continue
        _, stderr = again.communicate(timeout=600)
        assert again.returncode == 0, stderr[-3000:]
        assert f"{label} resuming after epoch {done_before} of 3" in stderr
    history = json.loads(next(out.glob("runs/*/history.json")).read_text())
    assert len(history["loss"]) == 5, "the float model trained 5 epochs in all, across three processes"
    card = json.loads((out / "ds_cnn_micro_int8.json").read_text())
    assert card["tflite_accuracy"] > 0.3 and abs(card["weight_sparsity"] - 0.5) < 0.02


def test_ctrl_c_says_where_it_stopped(tmp_path, mnist_path):
    out = tmp_path / "export"
    run = _start(out, mnist_path)
    deadline = time.monotonic() + 300
    while _epochs_done(out, "train") < 1:
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130
    assert "run the same command again to continue" in stderr and "Traceback" not in stderr


WRITER = """
import sys, time
from firmware_harness import atomic
with atomic.atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "wb") as f:
        f.write(b"x" * 100000)
        f.flush()
        print("writing", flush=True)
        time.sleep(60)
"""


def test_a_killed_writer_leaves_no_file_under_the_final_name(tmp_path):
    target = tmp_path / "model.tflite"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO, env={**os.environ})
    assert writer.stdout.readline().strip() == "writing"
    writer.kill()
    writer.wait()
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()][0].startswith(".model.")  # only the hidden temporary file


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_dropped_in_a_finalizer_still_stops_at_the_next_check(monkeypatch):
    """Python runs a signal handler wherever the main thread is; raised inside a finalizer, its exception is
    printed and dropped. The handler also remembers the Ctrl-C, and epoch and trial boundaries check it."""
    from firmware_harness import errors

    monkeypatch.setattr(errors, "_interrupt_requested", False)

    class Finalized:
        def __del__(self):
            errors.raise_interrupted(signal.SIGINT, None)

    Finalized()  # collected at once: the Interrupted raised in __del__ goes nowhere (Python drops it)
    with pytest.raises(errors.Interrupted):
        errors.check_interrupted()
