"""Run a `.tflite` digit model on whichever TFLite interpreter this device has.

Backends, in the order tried: LiteRT (`ai_edge_litert`), `tflite_runtime`, then
`tensorflow.lite` (desktop fallback only). `Model` validates the file before the
interpreter sees it, quantizes inputs and dequantizes outputs, and predicts batches
with one `invoke` through `resize_tensor_input`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from firmware_harness import contract, native_stderr, tflite_file
from firmware_harness.device import package_version
from firmware_harness.errors import UserError

# name -> (module, attribute path of the Interpreter class, distribution that reports the version)
BACKENDS = {
    "litert": ("ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "Interpreter", "tflite-runtime"),
    "tensorflow": ("tensorflow", "lite.Interpreter", "tensorflow"),
}
# Kernel families an interpreter can run a model with (its op resolver). int8 results depend on
# them: XNNPACK requantizes differently on x86 and ARM, and the reference kernels differ again.
KERNELS = {
    "xnnpack": "AUTO",  # the default: builtin kernels with the XNNPACK delegate
    "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",  # TFLite's optimized kernels (ruy, gemmlowp), no XNNPACK
    "reference": "BUILTIN_REF",  # TFLite's reference kernels: plain loops, the closest to TFLite Micro
}
MAX_MODEL_BYTES = 256 << 20
BUNDLE = Path(__file__).resolve().parent.parent  # a bundle's folder, when this harness is its copy
BUNDLED_GATE = BUNDLE / "gate" / contract.GATE_FILE  # where `edgedigits bundle` puts it
BATCH = 1024  # images per invoke when predicting many
# A model is first loaded and run in a child process with a memory limit: the file declares
# its tensors' shapes, but the interpreter computes them at allocation (a RESIZE to 10000x10000
# declared as 28x28 takes 7.6 GB there), and tflite-runtime 2.14's wrapper segfaults or hangs
# on some malformed files that pass our reader. The shipped model is trusted (its card's sha256).
PROBE_MEMORY_BYTES = 1 << 30  # the child's data limit, at batch 1 and at BATCH
PROBE_READY = b"ready"  # what the probe child prints once its imports are done
PROBE_START_TIMEOUT_S = 120.0  # the child's imports (numpy, the interpreter, TensorFlow): a slow device's, not the file's
PROBE_TIMEOUT_S = 5.0  # loading and running the file once, counted from the child's "ready"
_probed: set[tuple[str, str]] = set()


class Refused(UserError):
    """The interpreter would not load, allocate or run the model."""


@dataclass(frozen=True)
class Backend:
    name: str
    version: str
    interpreter: type

    def resolver(self, kernels: str):
        """The interpreter's OpResolverType member for a KERNELS name."""
        return getattr(sys.modules[self.interpreter.__module__].OpResolverType, KERNELS[kernels])


@cache
def _import_backend(name: str) -> Backend | None:
    module_name, attribute, dist = BACKENDS[name]
    try:
        with native_stderr.captured():  # TensorFlow's C++ start-up banner
            found = importlib.import_module(module_name)
    except ImportError:
        return None
    for part in attribute.split("."):
        found = getattr(found, part)
    return Backend(name, package_version(dist) or "unknown", found)


def get_backend(name: str | None = None) -> Backend:
    """The backend called `name`, or the first one that imports."""
    if name is not None:
        if name not in BACKENDS:
            raise UserError(f"unknown backend '{name}'; choose one of: {', '.join(BACKENDS)}")
        backend = _import_backend(name)
        if backend is None:
            raise UserError(f"backend '{name}' is not installed; pip install {BACKENDS[name][2]}")
        return backend
    for candidate in BACKENDS:
        backend = _import_backend(candidate)
        if backend is not None:
            return backend
    raise UserError("no TFLite interpreter is installed; pip install ai-edge-litert (or tflite-runtime on 32-bit ARM)")


def available_backends() -> list[Backend]:
    """Every backend that imports here, in preference order (imports TensorFlow if installed)."""
    return [b for b in map(_import_backend, BACKENDS) if b is not None]


def read_model_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a model file, with one-line errors for a missing, empty or huge file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path}: empty file; export the model again")
    if size > MAX_MODEL_BYTES:
        raise UserError(f"{path}: {size >> 20} MiB is too large for a digit model (limit {MAX_MODEL_BYTES >> 20} MiB)")
    return path.read_bytes()


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: type
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


class Model:
    """A digit classifier: float images in [0, 1] (or uint8 pixels) in, float logits out."""

    def __init__(self, source: str | os.PathLike | bytes, backend: str | None = None, threads: int | None = None,
                 name: str | None = None, probe: bool = True, label: str | None = None, kernels: str = "xnnpack",
                 classes: int = contract.NUM_CLASSES):
        if isinstance(source, (bytes, bytearray)):
            self.content, self.path = bytes(source), None
        else:
            self.path = Path(source)
            self.content = read_model_bytes(self.path)
        self.label = label = label or (str(self.path) if self.path else "model bytes")
        self.name = name or (self.path.stem if self.path else "model")
        try:
            self.info = tflite_file.parse(self.content)
        except tflite_file.MalformedModel as e:
            raise UserError(f"{label}: {e}; export the model again") from e
        self.classes = classes
        check_digit_model(self.info, label, classes)
        self.card = self.info.metadata_json(contract.METADATA_NAME)  # the file's own card, if it carries one
        try:
            self.labels = contract.labels_from(self.card, classes)
        except UserError as e:
            raise UserError(f"{label}: {e}") from None
        self.backend = get_backend(backend)
        self.threads = threads
        if kernels not in KERNELS:
            raise UserError(f"unknown kernels '{kernels}'; choose one of: {', '.join(KERNELS)}")
        self.kernels = kernels
        if probe and not _trusted(self.content):
            _probe_in_child(self.content, self.backend.name, label, classes)
        try:
            with native_stderr.captured(replay_on_error=False):  # "INFO: Created ... XNNPACK delegate"
                self._interp = self.backend.interpreter(model_content=self.content, num_threads=threads,
                                                        experimental_op_resolver_type=self.backend.resolver(kernels))
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise Refused(f"{label}: the {self.backend.name} interpreter refused it ({_reason(e)})") from e
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self.input = _spec(self._in)
        self.output = _spec(self._out)
        self._batch = self.input.shape[0]
        self._check_output(self._batch)

    @property
    def size_bytes(self) -> int:
        return len(self.content)

    def quantize(self, images: np.ndarray) -> np.ndarray:
        """uint8 pixels (N, 28, 28) or floats in [0, 1] (N, 28, 28[, 1]) -> the input tensor's dtype."""
        x = images[..., None] if images.ndim == 3 else images
        spec = self.input
        if x.dtype == np.uint8:
            if spec.dtype == np.uint8 and spec.quantized and abs(spec.scale * 255 - 1) < 1e-6 and spec.zero_point == 0:
                return x
            if spec.dtype == np.int8 and spec.quantized and abs(spec.scale * 255 - 1) < 1e-6 and spec.zero_point == -128:
                return (x.astype(np.int16) - 128).astype(np.int8)  # exact: q = pixel - 128
            x = x.astype(np.float32) / 255.0
        if not spec.quantized:
            return x.astype(spec.dtype, copy=False)
        info = np.iinfo(spec.dtype)
        return np.clip(np.round(x / spec.scale + spec.zero_point), info.min, info.max).astype(spec.dtype)

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        if not self.output.quantized:
            return raw.astype(np.float32, copy=False)
        return (raw.astype(np.float32) - self.output.zero_point) * self.output.scale

    def allocate(self, n: int) -> None:
        """Make room for a batch of n images (what `predict` does before each batch)."""
        if n != self._batch:
            try:
                self._interp.resize_tensor_input(self._in["index"], [n, *self.input.shape[1:]])
                self._interp.allocate_tensors()
            except (ValueError, RuntimeError) as e:
                raise Refused(f"{self.label}: the {self.backend.name} interpreter cannot allocate it for {n} images "
                              f"({_reason(e)})") from e
            self._batch = n
            self._check_output(n)

    def _check_output(self, n: int) -> None:
        """Refuse a model whose output, as the interpreter computed it, is not n x classes scores (the file
        may say otherwise)."""
        computed = tuple(int(d) for d in self._interp.get_output_details()[0]["shape"])
        if computed != (n, self.classes):
            declared = list(self.info.tensors[self.info.outputs[0]].shape)
            raise UserError(f"{self.label}: the model computes output shape {list(computed)} for {n} image(s), "
                            f"not [{n}, {self.classes}] as it must (its file declares {declared})")

    def op_names(self) -> list[str]:
        """The builtin ops of the model as the interpreter names them (CONV_2D, MEAN, ...), sorted."""
        return sorted({d["op_name"] for d in self._interp._get_ops_details()} - {"DELEGATE"})  # noqa: SLF001

    def invoke_quantized(self, xq: np.ndarray) -> np.ndarray:
        """One invoke on an already-quantized batch; returns the raw output tensor."""
        self.allocate(len(xq))
        try:
            self._interp.set_tensor(self._in["index"], xq)
            self._interp.invoke()
        except (ValueError, RuntimeError) as e:  # a damaged file the interpreter loaded but cannot run
            raise Refused(f"{self.label}: the {self.backend.name} interpreter cannot run it ({_reason(e)})") from e
        return self._interp.get_tensor(self._out["index"])

    def time_single(self, images: np.ndarray, warmup: int, runs: int) -> tuple[np.ndarray, np.ndarray]:
        """Nanoseconds per image at batch 1, cycling through `images` after `warmup` untimed runs: for invoke
        alone (the input already set), and for the whole path from a uint8 image to its digit."""
        interp, in_index, out_index = self._interp, self._in["index"], self._out["index"]
        self.invoke_quantized(self.quantize(images[:1]))  # batch size 1 from here on
        invoke_ns = np.empty(runs, np.int64)
        e2e_ns = np.empty(runs, np.int64)
        clock = time.perf_counter_ns
        for i in range(-warmup, runs):
            image = images[i % len(images)][None]
            t0 = clock()
            x = self.quantize(image)
            interp.set_tensor(in_index, x)
            t1 = clock()
            interp.invoke()
            t2 = clock()
            int(np.argmax(self.dequantize(interp.get_tensor(out_index))))
            t3 = clock()
            if i >= 0:
                invoke_ns[i] = t2 - t1
                e2e_ns[i] = t3 - t0
        return invoke_ns, e2e_ns

    def predict(self, images: np.ndarray, batch: int = BATCH) -> np.ndarray:
        """Float logits (N, 10) for N images; one invoke per `batch` images."""
        if len(images) == 0:
            return np.zeros((0, self.output.shape[-1]), np.float32)
        chunks = [self.dequantize(self.invoke_quantized(self.quantize(images[i:i + batch])))
                  for i in range(0, len(images), batch)]
        return np.concatenate(chunks)


def _trusted(content: bytes) -> bool:
    """The shipped model (the sha256 on its card) needs no trial run."""
    return hashlib.sha256(content).hexdigest() == _shipped_sha256()


def shipped_model(file: str = "edgedigits_int8.tflite") -> Path | None:
    """A model shipped with edgedigits (the int8 digit model by default), if that package is installed
    beside the harness."""
    try:
        from importlib import resources

        path = Path(str(resources.files("edgedigits.pretrained") / file))
    except ImportError:
        return None
    return path if path.is_file() else None


def default_model() -> Path | None:
    """The model a command runs when none is given: the shipped one, else the one a bundle beside this harness
    carries (its models/edgedigits_int8.tflite, or its only model); None if there is none of them."""
    shipped = shipped_model()
    if shipped is not None or not (BUNDLE / contract.BUNDLE_MARKER).is_file():
        return shipped
    carried = sorted((BUNDLE / "models").glob("*.tflite"))
    named = [p for p in carried if p.name == "edgedigits_int8.tflite"]
    return named[0] if named else (carried[0] if len(carried) == 1 else None)


def gate_path() -> Path | None:
    """The digit gate edgedigits/builds/gate.py made: the one shipped in the edgedigits package, else a bundle's
    copy in gate/ beside this harness; None if there is neither."""
    return shipped_model(contract.GATE_FILE) or (BUNDLED_GATE if BUNDLED_GATE.is_file() else None)


def load_gate(backend: str | None = None, threads: int | None = None, kernels: str = "xnnpack") -> Model | None:
    """The digit gate on an interpreter (our own file: no trial run in a child), or None without one."""
    path = gate_path()
    return None if path is None else Model(path, backend=backend, threads=threads, kernels=kernels, probe=False,
                                           classes=len(contract.GATE_LABELS))


@cache
def _shipped_sha256() -> str | None:
    model = shipped_model()
    try:
        return json.loads(model.with_suffix(".json").read_text(encoding="utf-8")).get("sha256") if model else None
    except OSError:
        return None


def _probe_in_child(content: bytes, backend: str, label: str, classes: int) -> None:
    """Load and run the model once in a child process with a memory limit, so that a crash, a hang or
    a model whose computed tensors need gigabytes cannot take this one down."""
    key = (hashlib.sha256(content).hexdigest(), backend)
    if key in _probed:
        return
    command = [sys.executable, "-m", "firmware_harness.probe", backend, str(PROBE_MEMORY_BYTES), str(BATCH), label,
               str(classes)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        process.stdin.write(content)  # the child reads it all before its slow imports
        process.stdin.close()
        process.stdin = None
        if not _said_ready(process, PROBE_START_TIMEOUT_S) and process.poll() is None:
            raise UserError(f"{label}: the {backend} interpreter did not start within {PROBE_START_TIMEOUT_S:.0f} s; "
                            f"run `edgedigits doctor`")
        _, stderr = process.communicate(timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise UserError(f"{label}: the {backend} interpreter takes over {PROBE_TIMEOUT_S:.0f} s to load and run it "
                        f"once; this is not a digit model") from e
    except BrokenPipeError:  # the child died before reading the file
        _, stderr = process.communicate()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    if process.returncode < 0:
        raise UserError(f"{label}: the {backend} interpreter crashes on this file (signal {-process.returncode}), "
                        f"or it needs over {PROBE_MEMORY_BYTES >> 20} MiB to run; it is malformed")
    if process.returncode != 0:
        lines = stderr.decode(errors="replace").strip().splitlines()
        raise UserError(lines[-1].removeprefix("error: ") if lines else f"{label}: the model failed its trial run")
    _probed.add(key)


def _said_ready(process: subprocess.Popen, timeout: float) -> bool:
    """Whether the probe child printed its "ready" line (imports done) within `timeout` seconds."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return bool(ready) and process.stdout.readline().strip() == PROBE_READY


def _reason(error: Exception) -> str:
    """The first line of an interpreter's error, for a one-line message."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _spec(details: dict) -> TensorSpec:
    scale, zero_point = details.get("quantization", (0.0, 0))
    return TensorSpec(tuple(int(d) for d in details["shape"]), details["dtype"], float(scale), int(zero_point))


def check_digit_model(info: tflite_file.TFLiteModel, label: str, classes: int) -> None:
    """Refuse a model that does not take one 28x28 image and give `classes` scores."""
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise UserError(f"{label}: expected one input and one output, found {len(info.inputs)} and {len(info.outputs)}")
    shape_in = info.tensors[info.inputs[0]].shape
    shape_out = info.tensors[info.outputs[0]].shape
    side = contract.IMAGE_SIDE
    if tuple(shape_in[1:3]) != (side, side) or int(np.prod(shape_in[1:])) != side * side:
        raise UserError(f"{label}: input shape {list(shape_in)} is not a {side}x{side} image; this is not a digit model")
    if not shape_out or shape_out[-1] != classes:
        raise UserError(f"{label}: output shape {list(shape_out)} does not give {classes} scores"
                        f"{' (one per digit)' if classes == contract.NUM_CLASSES else ''}")
