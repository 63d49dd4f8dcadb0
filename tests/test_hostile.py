"""Crafted inputs that are valid files, careless paths and settings: a one-line error or a result, never a
traceback, and no user file touched. The bounded time and memory of each crafted file are in test_fuzz.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO, assert_one_line_error, run_cli

sys.path.insert(0, str(REPO / "benchmarks"))
import hostile  # noqa: E402

from firmware_harness import atomic  # noqa: E402


@pytest.fixture(scope="module")
def digits_png(tmp_path_factory) -> Path:
    image = np.full((100, 200), 255, np.uint8)
    cv2.putText(image, "12", (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2.5, 0, 6)
    path = tmp_path_factory.mktemp("digits") / "12.png"
    cv2.imwrite(str(path), image)
    return path


@pytest.mark.parametrize("build,fragment", [
    (hostile.grid_png, "digit-sized marks, more than the 1,000"),
    (hostile.deep_png, "at 8 bytes a pixel decodes to 320 MB, over the 160 MB limit"),
])
def test_predict_refuses_crafted_images_and_reads_the_rest(tmp_path, digits_png, build, fragment):
    bad = build(tmp_path)
    result = run_cli("predict", str(bad), str(digits_png), module="firmware_harness.__main__")
    assert_one_line_error(result, 2, str(bad), fragment)
    assert result.stdout.startswith(f"{digits_png}: 12  ("), "the other file is still read"


@pytest.mark.parametrize("build,fragment", [
    (hostile.batch_bomb, "1024 MiB"),  # the interpreter's own refusal, or a MemoryError, under the probe's limit
    (hostile.SEMANTIC["shape_bomb"][1], "1024 MiB"),
    (hostile.SEMANTIC["lying_output"][1], "computes output shape [1, 100] for 1 image(s), not [1, 10]"),
])
def test_models_whose_computed_shapes_differ_from_the_file_are_refused(tmp_path, digits_png, build, fragment):
    model = build(tmp_path)
    result = run_cli("predict", str(digits_png), "--model", str(model))
    assert_one_line_error(result, 2, str(model), fragment)


@pytest.mark.parametrize("build,fragment", [
    (hostile.npz_negative_shape, "declares shape (-1, 28, 28), with a negative dimension"),
    (hostile.npz_empty_axis, "x_test has shape (10, 28, 28, 0), expected (N, 28, 28) images"),
    (lambda folder: hostile.idx_overflow(folder).parent, "the header declares 17,592,186,044,416 MiB"),
])
def test_header_bombs_in_test_data_are_refused_from_the_header(tmp_path, build, fragment):
    result = run_cli("bench", "--data", str(build(tmp_path)), "--runs", "5", "--warmup", "0")
    assert_one_line_error(result, 2, fragment)


def test_pixel_budget_from_the_environment(digits_png):
    assert run_cli("predict", str(digits_png), env={"EDGEDIGITS_MAX_PIXELS": "40MP"}).returncode == 0
    tiny = run_cli("predict", str(digits_png), env={"EDGEDIGITS_MAX_PIXELS": "100"})
    assert_one_line_error(tiny, 2, "200x100 is 20,000 pixels, over the 100 pixels limit")
    assert_one_line_error(run_cli("predict", str(digits_png), env={"EDGEDIGITS_MAX_PIXELS": "lots"}), 2,
                          "EDGEDIGITS_MAX_PIXELS='lots' is not a pixel count")


def test_a_file_name_that_is_not_utf8_is_printed_escaped(tmp_path, digits_png):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff.png"))
    odd.write_bytes(digits_png.read_bytes())
    result = subprocess.run([sys.executable, "-m", "firmware_harness", "predict", str(odd), str(digits_png)],
                            capture_output=True, env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode("utf-8").splitlines()
    assert [line.split("  (")[0] for line in lines] == [f"{tmp_path}/bad\\udcff.png: 12", f"{digits_png}: 12"]


def test_a_path_starting_with_a_dash_after_double_dash(tmp_path, digits_png):
    (tmp_path / "-12.png").write_bytes(digits_png.read_bytes())
    result = run_cli("predict", "--", "-12.png", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("-12.png: 12  ("), result.stderr


def test_a_bad_file_in_a_camera_folder_is_skipped(tmp_path, digits_png):
    for name in ("a.png", "c.png"):
        (tmp_path / name).write_bytes(digits_png.read_bytes())
    (tmp_path / "b.png").write_bytes(b"")
    result = run_cli("camera", "--source", str(tmp_path), "--headless", "--json")
    assert result.returncode == 0, result.stderr
    frames = [line for line in result.stdout.splitlines() if '"frame"' in line]
    assert [f'"file": "{tmp_path / n}"' in f for n, f in zip(("a.png", "c.png"), frames)] == [True, True]
    assert f"warning: skipped {tmp_path / 'b.png'}: empty file" in result.stderr


def test_a_temporary_file_left_by_a_killed_writer_is_removed_next_time(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f".out.{dead.pid}.abcd1234.tmp.mp4"
    orphan.write_bytes(b"half a video")
    live = tmp_path / f".out.{os.getpid()}.abcd1234.tmp.mp4"  # a writer still running
    live.write_bytes(b"being written")
    mine = tmp_path / ".out.notes.tmp.mp4"  # a user's file that only looks alike
    mine.write_bytes(b"keep")
    atomic.write_bytes(tmp_path / "out.mp4", b"video")
    assert not orphan.exists() and live.exists() and mine.read_bytes() == b"keep"


def test_a_second_process_is_refused_a_locked_run_folder(tmp_path):
    code = "from firmware_harness import atomic\nwith atomic.folder_lock({!r}): print('held', flush=True)\n"
    with atomic.folder_lock(tmp_path):
        with atomic.folder_lock(tmp_path):  # re-entrant in the process that holds it
            pass
        refused = subprocess.run([sys.executable, "-c", code.format(str(tmp_path))], capture_output=True, text=True)
        assert refused.returncode == 1 and f"{tmp_path.resolve()} is in use by pid {os.getpid()}" in refused.stderr
    freed = subprocess.run([sys.executable, "-c", code.format(str(tmp_path))], capture_output=True, text=True)
    assert freed.stdout == "held\n"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bundle_leaves_a_users_files_alone(tmp_path, mnist_path, shipped_model):
    foreign = tmp_path / "mine"
    (foreign / "firmware_harness").mkdir(parents=True)
    (foreign / "firmware_harness" / "NOTES.txt").write_text("my notes")
    before = _tree(foreign)
    result = run_cli("bundle", str(shipped_model), "--out", str(foreign), "--data", str(mnist_path))
    assert_one_line_error(result, 2, "already holds files and is not an edgedigits bundle")
    assert _tree(foreign) == before

    out = tmp_path / "pi"
    assert run_cli("bundle", str(shipped_model), "--out", str(out), "--data", str(mnist_path)).returncode == 0
    (out / "firmware_harness" / "NOTES.txt").write_text("my notes")
    (out / "results").mkdir()
    (out / "results" / "bench.json").write_text("{}")
    other = tmp_path / "other.tflite"
    other.write_bytes(shipped_model.read_bytes())
    users = {name: content for name, content in _tree(out).items()
             if name in ("firmware_harness/NOTES.txt", "results/bench.json")}
    assert run_cli("bundle", str(other), "--out", str(out), "--data", str(mnist_path)).returncode == 0
    assert sorted(p.name for p in (out / "models").iterdir()) == ["other.tflite"], "the earlier bundle's model is gone"
    assert {name: _tree(out)[name] for name in users} == users


def test_bundle_refuses_links_and_same_named_models(tmp_path, mnist_path, shipped_model):
    out, elsewhere = tmp_path / "pi", tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run_cli("bundle", str(shipped_model), "--out", str(out), "--data", str(mnist_path)).returncode == 0
    for p in (out / "models").iterdir():
        p.unlink()
    (out / "models").rmdir()
    (out / "models").symlink_to(elsewhere)
    result = run_cli("bundle", str(shipped_model), "--out", str(out), "--data", str(mnist_path))
    assert_one_line_error(result, 2, "models is a symbolic link")
    assert list(elsewhere.iterdir()) == []
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "m.tflite").write_bytes(shipped_model.read_bytes())
    result = run_cli("bundle", str(tmp_path / "a" / "m.tflite"), str(tmp_path / "b" / "m.tflite"), "--out",
                     str(tmp_path / "two"), "--data", str(mnist_path))
    assert_one_line_error(result, 2, "two models are named m.tflite")


def test_run_sh_leaves_no_half_made_environment_when_the_install_fails(tmp_path, mnist_path, shipped_model):
    out = tmp_path / "pi"
    assert run_cli("bundle", str(shipped_model), "--out", str(out), "--data", str(mnist_path)).returncode == 0
    for name in ("requirements-64bit.txt", "requirements-32bit.txt"):
        (out / name).write_text("edgedigits-no-such-package==0\n")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    (out / ".venv" / "bin").mkdir(parents=True)  # an install cut short (power lost): no marker, so made again
    for _ in range(2):  # and again: the failed attempt left nothing that the next one trips on
        run = subprocess.run([str(out / "run.sh")], capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 1 and "error: pip install -r requirements-" in run.stderr, run.stderr[-2000:]
        assert not (out / ".venv").exists()
    assert "Traceback" not in run.stderr
    readme = (out / "README.md").read_text()  # and it says how to run predict and camera there
    assert "firmware_harness predict" in readme and "firmware_harness camera" in readme


def test_outputs_to_a_device_or_a_pipe_are_written_in_place(tmp_path, mnist_path, shipped_model):
    """`--json /dev/null` (as root) must not replace the device node; `--json /dev/fd/N` (a shell's `>(jq .)`)
    must reach the pipe."""
    devnull = os.stat("/dev/null")
    args = ["bench", str(shipped_model), "--data", str(mnist_path), "--limit", "50", "--runs", "5", "--warmup", "1"]
    result = run_cli(*args, "--json", "/dev/null")
    assert result.returncode == 0, result.stderr[-2000:]
    after = os.stat("/dev/null")
    assert (after.st_mode, after.st_rdev, after.st_ino) == (devnull.st_mode, devnull.st_rdev, devnull.st_ino)
    read, write = os.pipe()
    code = "import sys; from edgedigits.launch import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", code, *args, "--json", f"/dev/fd/{write}"], pass_fds=(write,),
                          capture_output=True, text=True, timeout=300)
    os.close(write)
    with os.fdopen(read) as pipe:
        assert done.returncode == 0 and '"rows"' in pipe.read(), done.stderr[-2000:]
    full = run_cli(*args, "--json", "/dev/full")  # a device that is always full: ENOSPC
    assert_one_line_error(full, 2, "cannot write /dev/full", "No space left")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs: a disk that fills up (root only, as CI runs)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tiny_disk, tmp_path, digits_png, mnist_path,
                                                                shipped_model):
    (tiny_disk / "filler").write_bytes(b"\0" * 200_000)
    result = run_cli("web", str(tiny_disk / "site"))
    assert_one_line_error(result, 2, "cannot write", "No space left on device")
    assert not list(tiny_disk.rglob("*.tmp*")), "no temporary file is left"
    result = run_cli("bundle", "--out", str(tiny_disk / "bundle"), "--data", str(mnist_path))
    assert_one_line_error(result, 2, "No space left on device")


def test_web_refuses_to_write_through_a_link_planted_in_its_folder(tmp_path):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    assert run_cli("web", str(site)).returncode == 0
    elsewhere.mkdir()
    for old in (site / "vendor").iterdir():
        old.unlink()
    (site / "vendor").rmdir()
    (site / "vendor").symlink_to(elsewhere)
    assert_one_line_error(run_cli("web", str(site)), 2, "symbolic link")
    assert not list(elsewhere.iterdir()), "nothing written through the link"


@pytest.mark.parametrize("name", ['../inj"\n#error INJECTED', "a/b", "/abs", "x.tflite", "", "é"])
def test_an_artifact_name_is_a_name_not_a_path(tmp_path, mnist_path, name):
    result = run_cli("export", "--name", name, "--data", str(mnist_path), "--out", str(tmp_path / "out"),
                     "--limit", "100")
    assert_one_line_error(result, 2, "is not a plain name")
    assert "\n#error" not in result.stderr.split("error:", 1)[1].strip()  # echoed escaped, on one line
    assert list(tmp_path.iterdir()) == []


def test_the_bundle_readme_quotes_the_model_name(tmp_path, mnist_path, shipped_model):
    odd = tmp_path / "m$(touch pwned)`touch pwned2`.tflite"
    odd.write_bytes(shipped_model.read_bytes())
    assert run_cli("bundle", str(odd), "--out", str(tmp_path / "b"), "--data", str(mnist_path)).returncode == 0
    readme = (tmp_path / "b" / "README.md").read_text()
    line = next(li for li in readme.splitlines() if "predict photo.jpg" in li).strip()
    subprocess.run(["bash", "-c", line.replace(".venv/bin/python -m firmware_harness", "echo", 1)], cwd=tmp_path,
                   capture_output=True, check=True)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_worker_processes_are_capped_by_the_work_and_the_cores(tmp_path, digits_png, monkeypatch):
    """`predict --jobs 24` on 130 files (3 chunks of 64): no more workers than chunks or cores."""
    import multiprocessing

    from firmware_harness import read_files
    from firmware_harness.reader import DigitReader

    started = []
    real = multiprocessing.get_context

    class Counting:
        def __init__(self, method):
            self.context = real(method)

        def Pool(self, processes, **kwargs):  # noqa: N802 - multiprocessing's name
            started.append(processes)
            return self.context.Pool(processes, **kwargs)

    monkeypatch.setattr(read_files.multiprocessing, "get_context", Counting)
    files = [digits_png] * 130
    readings = list(read_files.read_files(DigitReader(), files, jobs=24))
    assert len(readings) == 130 and all(r.reading.digits == "12" for r in readings)
    assert started == ([min(3, os.cpu_count()) - 1] if min(3, os.cpu_count()) > 1 else [])


def test_camera_frames_are_held_to_the_pixel_budget(tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(3):
        writer.write(np.full((240, 320, 3), 255, np.uint8))
    writer.release()
    result = run_cli("camera", "--source", str(video), "--headless", env={"EDGEDIGITS_MAX_PIXELS": "50000"})
    assert_one_line_error(result, 2, "frames of 320x240 are 76,800 pixels, over the 50,000-pixel limit")


def test_a_stream_that_never_answers_ends_in_one_line_without_an_abort():
    """The stuck opener thread is inside FFmpeg when the process ends: exiting normally aborted it (SIGABRT)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []
    accepting = threading.Thread(target=lambda: [held.append(listener.accept()) for _ in range(4)], daemon=True)
    accepting.start()
    try:
        for _ in range(2):
            result = run_cli("camera", "--source", f"http://127.0.0.1:{listener.getsockname()[1]}/", "--headless",
                             "--max-frames", "1", timeout=60)
            assert_one_line_error(result, 2, "no answer within 5 s")
    finally:
        listener.close()
        for connection, _ in held:
            connection.close()


def test_output_that_cannot_be_written_is_one_line(tmp_path, digits_png):
    """`predict --json > out` on a full disk: stdout itself fails (here it is /dev/full)."""
    code = "import sys; from edgedigits.launch import main; sys.exit(main())"
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-c", code, "predict", "--json", str(digits_png)], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "cannot write the output: No space left on device" in done.stderr


def test_a_float_tiff_with_a_nan_pixel_is_read_quietly(tmp_path, digits_png):
    image = cv2.imread(str(digits_png), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    image[0, 0] = np.nan
    path = tmp_path / "float.tiff"
    assert cv2.imwrite(str(path), image)
    result = run_cli("predict", str(path))
    assert result.returncode == 0 and result.stdout.startswith(f"{path}: 12  ("), result.stdout + result.stderr
    assert result.stderr == "", result.stderr
