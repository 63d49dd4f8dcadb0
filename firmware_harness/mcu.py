"""Run a model in the TensorFlow Lite Micro interpreter (the `tflite-micro` wheel).

What a firmware build needs to know before flashing: which ops the model uses and
whether TFLM has them, the smallest tensor arena it runs in, and whether its outputs
match the desktop interpreter's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from firmware_harness import native_stderr
from firmware_harness.errors import UserError
from firmware_harness.runtime import Model

ARENA_LIMIT = 4 << 20
ARENA_STEP = 16  # TFLM aligns allocations to 16 bytes


def _tflm():
    try:
        from tflite_micro import runtime
    except ImportError as e:
        raise UserError("TFLite Micro is not installed; pip install 'edgedigits[mcu]' (the tflite-micro wheel)") from e
    return runtime


def _runs_in(content: bytes, arena: int, sample: np.ndarray) -> bool:
    runtime = _tflm()
    try:
        interp = runtime.Interpreter.from_bytes(content, arena_size=arena)
        interp.set_input(sample, 0)
        interp.invoke()
    except RuntimeError:
        return False
    return True


def missing_ops(content: bytes, sample: np.ndarray) -> list[str]:
    """Ops of the model that this TFLM build cannot resolve (empty if it runs)."""
    with native_stderr.captured(replay_on_error=False) as log:
        runs = _runs_in(content, ARENA_LIMIT, sample)
    return [] if runs else sorted(set(re.findall(r"Didn't find op for builtin opcode '(\w+)'", log.text)))


def arena_bytes(content: bytes, sample: np.ndarray) -> int:
    """The smallest tensor arena (bytes, a multiple of 16) in which TFLM allocates and invokes the model."""
    lacking = missing_ops(content, sample)
    if lacking:
        raise UserError(f"TFLite Micro has no kernel for {', '.join(lacking)}; export an int8 model with builtin ops")
    with native_stderr.captured(replay_on_error=False):  # every failed allocation prints; the search fails on purpose
        if not _runs_in(content, ARENA_LIMIT, sample):
            raise UserError(f"the model does not run in TFLite Micro even with a {ARENA_LIMIT >> 20} MiB arena")
        low, high = 0, ARENA_LIMIT // ARENA_STEP
        while high - low > 1:
            mid = (low + high) // 2
            if _runs_in(content, mid * ARENA_STEP, sample):
                high = mid
            else:
                low = mid
    return high * ARENA_STEP


@dataclass
class McuReport:
    ops: list[str]
    missing_ops: list[str]
    arena_bytes: int
    agreement: float
    n_compared: int
    tflm_version: str
    reference: str  # the desktop backend compared against


def check(model: Model, images: np.ndarray) -> McuReport:
    """Arena, ops and top-1 agreement with `model`'s desktop interpreter on `images` (uint8)."""
    runtime = _tflm()
    from tflite_micro import __version__ as tflm_version

    ops = sorted({d["op_name"] for d in model._interp._get_ops_details()} - {"DELEGATE"})  # noqa: SLF001
    inputs = model.quantize(images)
    lacking = missing_ops(model.content, inputs[:1])
    if lacking:
        return McuReport(ops, lacking, 0, 0.0, 0, tflm_version, model.backend.name)
    arena = arena_bytes(model.content, inputs[:1])
    interp = runtime.Interpreter.from_bytes(model.content, arena_size=arena + 1024)
    micro = np.empty(len(inputs), np.int64)
    for i, x in enumerate(inputs):
        interp.set_input(x[None], 0)
        interp.invoke()
        micro[i] = int(np.argmax(interp.get_output(0)))
    desktop = np.argmax(model.predict(images), axis=1)
    return McuReport(ops, [], arena, float(np.mean(micro == desktop)), len(images), tflm_version, model.backend.name)
