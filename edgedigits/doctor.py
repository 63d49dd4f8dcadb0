"""`edgedigits doctor`: what this machine has, one line per check, each OK or what to do."""

from __future__ import annotations

import importlib.util
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_harness import contract, mnist, runtime
from firmware_harness.device import opencv_version, package_version
from firmware_harness.errors import NO_OPENCV, UserError

TRAIN_PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "matplotlib")
CHECK_IMAGES = 100
DAMAGED = "; the file is damaged or the runtime is broken: reinstall edgedigits"  # a shipped file reads MNIST badly


@dataclass
class Line:
    status: str  # "ok", "warn" (optional part missing) or "fail"
    what: str
    detail: str

    def __str__(self) -> str:
        return f"{self.status.upper():4s}  {self.what}: {self.detail}"


def check_python() -> Line:
    version = platform.python_version()
    ok = (3, 10) <= sys.version_info[:2] <= (3, 13)
    return Line("ok" if ok else "fail", "python", version if ok else f"{version}; use Python 3.10-3.13")


def check_packages() -> list[Line]:
    opencv = opencv_version()
    lines = [Line("ok", "numpy", np.__version__),
             Line("ok", "opencv", opencv) if opencv else Line("warn", "opencv", NO_OPENCV)]
    for name in TRAIN_PACKAGES:
        version = package_version(name)
        lines.append(Line("ok", name, version) if version else
                     Line("warn", name, "not installed; training and export need: pip install 'edgedigits[train]'"))
    return lines


def check_backends() -> list[Line]:
    found = runtime.available_backends()
    lines = [Line("ok", f"backend {b.name}", b.version) for b in found]
    if not found:
        lines.append(Line("fail", "backend", "no TFLite interpreter; pip install 'edgedigits[litert]' (on 32-bit "
                                             "Raspberry Pi OS, Python 3.10-3.11: 'edgedigits[tflite-system]')"))
    tflm = importlib.util.find_spec("tflite_micro") is not None
    if tflm:
        lines.append(Line("ok", "tflite-micro", package_version("tflite-micro") or "installed"))
    elif sys.version_info[:2] >= (3, 13):
        lines.append(Line("warn", "tflite-micro", f"no wheel for Python {sys.version_info[0]}.{sys.version_info[1]}; "
                                                  "`mcu` and the C header's arena size need Python 3.10-3.12"))
    else:
        lines.append(Line("warn", "tflite-micro", "not installed; `mcu` and the C header's arena size need: "
                                                  "pip install 'edgedigits[mcu]'"))
    return lines


def check_camera(index: int = 0) -> Line:
    if opencv_version() is None:
        return Line("warn", f"camera {index}", "not checked: OpenCV is not installed")
    from firmware_harness import sources

    try:
        source = sources.open_source(str(index))
    except UserError as e:
        reason = str(e).removeprefix(f"camera {index}: ")
        return Line("warn", f"camera {index}", f"{reason}; `camera --source` also takes a video file, a folder or a URL")
    frame = source.read()
    source.close()
    if frame is None:
        return Line("warn", f"camera {index}", "opens but gives no frames")
    return Line("ok", f"camera {index}", f"{frame.shape[1]}x{frame.shape[0]} frames")


def check_data() -> Line:
    try:
        where = mnist.locate(None)
    except UserError as e:
        return Line("fail", "mnist", str(e))
    if where is None:
        return Line("warn", "mnist", f"not found; training downloads it to {mnist.keras_cache()}, or set "
                                     f"{mnist.ENV_VAR}=/path/to/mnist.npz")
    try:
        data = mnist.load(where, splits=("test",))
    except UserError as e:
        return Line("fail", "mnist", str(e))
    return Line("ok", "mnist", f"{where} ({'verified MNIST' if data.is_mnist else data.name}, "
                               f"{len(data.x_test):,} test images)")


def _test_digits() -> mnist.DigitData | None:
    """The MNIST test split, if MNIST is here."""
    where = mnist.locate(None)
    return None if where is None else mnist.load(where, splits=("test",))


def check_model(path: Path | None) -> Line:
    if path is None:
        return Line("fail", "shipped model", "missing from this install; reinstall edgedigits")
    try:
        model = runtime.Model(path)
        test = _test_digits()
        if test is None:
            model.predict(np.zeros((2, 28, 28), np.uint8))
            return Line("ok", "shipped model", f"{path.name} loads and runs ({model.backend.name}); "
                                               "no MNIST here for an accuracy check")
        accuracy = float(np.mean(np.argmax(model.predict(test.x_test[:CHECK_IMAGES]), 1) == test.y_test[:CHECK_IMAGES]))
    except UserError as e:
        return Line("fail", "shipped model", str(e))
    status = "ok" if accuracy >= 0.95 else "fail"
    advice = "" if status == "ok" else DAMAGED
    return Line(status, "shipped model", f"{path.name}: {accuracy:.0%} of {CHECK_IMAGES} test digits right "
                                         f"({model.backend.name}){advice}")


def check_gate() -> Line:
    """The digit gate, which weighs confidences so that `--min-confidence` doubts letters and signs."""
    path = runtime.gate_path()
    if path is None:
        return Line("warn", "digit gate", "missing from this install: confidences are the model's alone; "
                                          "reinstall edgedigits")
    try:
        gate = runtime.load_gate()
        test = _test_digits()
        x = np.zeros((2, 28, 28), np.uint8) if test is None else test.x_test[:CHECK_IMAGES]
        called = float(np.mean(np.argmax(gate.predict(x), 1) == contract.GATE_DIGIT))
    except UserError as e:
        return Line("fail", "digit gate", str(e))
    if test is None:
        return Line("ok", "digit gate", f"{path.name} loads and runs; no MNIST here to check it")
    status = "ok" if called >= 0.95 else "fail"
    advice = "" if status == "ok" else DAMAGED
    return Line(status, "digit gate", f"{path.name}: {called:.0%} of {CHECK_IMAGES} test digits called digits{advice}")


def run(model: Path | None, camera_index: int = 0) -> list[Line]:
    return [check_python(), *check_packages(), *check_backends(), check_camera(camera_index), check_data(),
            check_model(model), check_gate()]
