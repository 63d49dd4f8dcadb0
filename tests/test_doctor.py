"""`edgedigits doctor` says what this environment really has (run in both CI environments)."""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata

import cv2
import numpy as np

from conftest import run_cli


def _lines(result) -> dict[str, tuple[str, str]]:
    out = {}
    for line in result.stdout.splitlines():
        status, rest = line.split(None, 1)
        what, _, detail = rest.partition(": ")
        out[what] = (status, detail)
    return out


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_doctor_matches_this_environment(mnist_path):
    result = run_cli("doctor", "--camera", "7", env={"EDGEDIGITS_DATA": str(mnist_path)})
    lines = _lines(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines["python"][0] == "OK"  # 3.10-3.13
    assert lines["numpy"] == ("OK", np.__version__)
    assert lines["opencv"] == ("OK", cv2.__version__)
    for name in ("tensorflow", "tf-keras", "tensorflow-model-optimization"):
        installed = _version(name)
        assert lines[name] == (("OK", installed) if installed else ("WARN", lines[name][1])), name
        if not installed:
            assert "pip install 'edgedigits[train]'" in lines[name][1]
    for backend, module in (("litert", "ai_edge_litert"), ("tflite-runtime", "tflite_runtime")):
        present = importlib.util.find_spec(module) is not None
        assert (f"backend {backend}" in lines) == present, backend
    if importlib.util.find_spec("tflite_micro") is None and sys.version_info >= (3, 13):
        assert lines["tflite-micro"] == ("WARN", "no wheel for Python 3.13; `mcu` and the C header's arena size "
                                                 "need Python 3.10-3.12")
    assert lines["camera 7"][0] == "WARN" and "cannot be opened" in lines["camera 7"][1]
    assert lines["mnist"][0] == "OK" and str(mnist_path) in lines["mnist"][1]
    status, detail = lines["shipped model"]
    assert status == "OK" and "of 100 test digits right" in detail
    status, detail = lines["digit gate"]
    assert status == "OK" and "of 100 test digits called digits" in detail, detail
    assert "Traceback" not in result.stderr and "oneDNN" not in result.stderr


def test_doctor_without_data_says_what_to_set(tmp_path):
    result = run_cli("doctor", "--camera", "7", env={"EDGEDIGITS_DATA": "", "KERAS_HOME": str(tmp_path)})
    lines = _lines(result)
    assert lines["mnist"][0] == "WARN" and "EDGEDIGITS_DATA" in lines["mnist"][1]
    assert lines["shipped model"][0] == "OK" and "loads and runs" in lines["shipped model"][1]
    assert lines["digit gate"][0] == "OK" and "loads and runs" in lines["digit gate"][1]


def test_doctor_reports_a_damaged_data_file(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"PK\x03\x04broken")
    result = run_cli("doctor", "--camera", "7", env={"EDGEDIGITS_DATA": str(bad)})
    assert result.returncode == 1
    assert _lines(result)["mnist"][0] == "FAIL"


def test_without_opencv_doctor_says_so_and_predict_fails_in_one_line(mnist_path, shipped_model, tmp_path):
    """As on a 32-bit Pi before `apt install python3-opencv`: OpenCV does not import (None in sys.modules)."""
    import subprocess

    def without_cv2(*args):
        code = ("import sys; sys.modules['cv2'] = None; sys.argv = ['edgedigits', *sys.argv[1:]]; "
                "from edgedigits.launch import main; main()")
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "EDGEDIGITS_DATA": str(mnist_path)})

    doctor = without_cv2("doctor", "--camera", "7")
    lines = _lines(doctor)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert lines["opencv"][0] == "WARN" and "python3-opencv" in lines["opencv"][1]
    assert lines["camera 7"][0] == "WARN" and lines["shipped model"][0] == "OK"
    image = tmp_path / "digit.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    predict = without_cv2("predict", str(image))
    assert predict.returncode == 1 and predict.stderr.startswith("error: OpenCV is not installed")
    assert "Traceback" not in predict.stderr and len(predict.stderr.strip().splitlines()) == 1
    bench = without_cv2("bench", str(shipped_model), "--limit", "500", "--runs", "10", "--warmup", "1")
    assert bench.returncode == 0, bench.stderr  # bench needs no OpenCV
    assert "warning: the reading path is not timed: OpenCV is not installed" in bench.stderr  # its photos do
