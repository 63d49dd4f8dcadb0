"""Run a model in the TensorFlow Lite Micro interpreter (the `tflite-micro` wheel).

What a firmware build needs to know before flashing: which ops the model uses and
whether TFLM has them, the smallest tensor arena it runs in, and whether its outputs
match the desktop interpreter's. TFLM's Python wrapper can crash the process when an
arena is too small (a failed Prepare, then a segfault on the next construction), and the
arena search tries too-small arenas on purpose: every TFLM run happens in a child process.
"""

from __future__ import annotations

import io
import math
import re
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from firmware_harness.errors import UserError
from firmware_harness.runtime import Model

ARENA_LIMIT = 4 << 20
ARENA_STEP = 16  # TFLM aligns allocations to 16 bytes
CHILD_TIMEOUT_S = 600

# The child: model bytes, arena size and quantized inputs in, argmax of each output out.
_CHILD = """
import io, sys
import numpy as np
from tflite_micro import runtime
job = np.load(io.BytesIO(sys.stdin.buffer.read()))
content, inputs = job["model"].tobytes(), job["inputs"]
try:
    interp = runtime.Interpreter.from_bytes(content, arena_size=int(job["arena"]))
    out = []
    for x in inputs:
        interp.set_input(x[None], 0)
        interp.invoke()
        out.append(int(np.argmax(interp.get_output(0))))
    interp.print_allocations()  # to stderr: "Arena allocation total N bytes"
except RuntimeError as e:
    print("TFLM refused:", e, file=sys.stderr)
    sys.exit(3)
sys.stdout.buffer.write(np.asarray(out, np.int64).tobytes())
"""


def tflm_version() -> str:
    try:
        from tflite_micro import __version__
    except ImportError as e:
        raise UserError("TFLite Micro is not installed; pip install 'edgedigits[mcu]' (the tflite-micro wheel)") from e
    return __version__


@dataclass
class _Run:
    ok: bool
    predictions: np.ndarray | None
    log: str


def _run(content: bytes, arena: int, inputs: np.ndarray) -> _Run:
    """Run TFLM on `inputs` with `arena` bytes in a child process; a crash counts as 'does not run'."""
    job = io.BytesIO()
    np.savez(job, model=np.frombuffer(content, np.uint8), arena=arena, inputs=inputs)
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD], input=job.getvalue(), capture_output=True,
                              timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return _Run(False, None, "timed out")
    log = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        return _Run(False, None, log)
    return _Run(True, np.frombuffer(done.stdout, np.int64), log)


RESOLVER_METHOD_EXCEPTIONS = {"CUMSUM": "AddCumSum", "PADV2": "AddPadV2"}


def resolver_method(op: str) -> str:
    """The `tflite::MicroMutableOpResolver` method that registers builtin `op`: CONV_2D -> AddConv2D,
    BATCH_TO_SPACE_ND -> AddBatchToSpaceNd, RELU6 -> AddRelu6."""
    if op in RESOLVER_METHOD_EXCEPTIONS:
        return RESOLVER_METHOD_EXCEPTIONS[op]
    words = [w if re.fullmatch(r"\d+D", w) else w.capitalize() for w in op.split("_")]
    return "Add" + "".join(words)


def resolver_code(camel: str, ops: list[str]) -> list[str]:
    """C++ lines for a model's header: the op count and a function that adds exactly its ops to a resolver."""
    calls = [f"resolver.{resolver_method(op)}() == 0" for op in ops]  # 0 is kTfLiteOk
    return [
        f"// The {len(ops)} ops this model uses: {', '.join(ops)}. Size the resolver with k{camel}OpCount",
        f"// and add them with {camel}AddOps (true when all were added):",
        f"//   static tflite::MicroMutableOpResolver<k{camel}OpCount> resolver;",
        f"//   {camel}AddOps(resolver);",
        f"constexpr unsigned int k{camel}OpCount = {len(ops)};",
        "template <typename Resolver>",
        f"inline bool {camel}AddOps(Resolver& resolver) {{",
        "  return " + "\n      && ".join(calls) + ";",
        "}",
    ]


class MissingOps(UserError):
    """The model uses ops this TFLM build has no kernel for."""

    def __init__(self, ops: list[str]):
        super().__init__(f"TFLite Micro has no kernel for {', '.join(ops)}; export an int8 model with builtin ops")
        self.ops = ops


def recorded_arena(log: str) -> int | None:
    """The arena total TFLM's recording allocator printed in a child's log, if it did."""
    found = re.search(r"Arena allocation total (\d+) bytes", log)
    return int(found.group(1)) if found else None


def arena_bytes(content: bytes, sample: np.ndarray) -> int:
    """The smallest tensor arena (bytes, a multiple of 16) in which TFLM allocates and invokes the model.

    Raises MissingOps when TFLM lacks a kernel the model needs.
    """
    tflm_version()
    first = _run(content, ARENA_LIMIT, sample)
    if not first.ok:
        lacking = sorted(set(re.findall(r"Didn't find op for builtin opcode '(\w+)'", first.log)))
        if lacking:
            raise MissingOps(lacking)
        raise UserError(f"the model does not run in TFLite Micro even with a {ARENA_LIMIT >> 20} MiB arena")

    def runs(steps: int) -> bool:
        return _run(content, steps * ARENA_STEP, sample).ok

    low, high = 0, ARENA_LIMIT // ARENA_STEP  # in steps: `low` fails, `high` runs
    used = recorded_arena(first.log)
    if used:  # the smallest arena that runs is usually the one TFLM kept
        guess = math.ceil(used / ARENA_STEP)
        if runs(guess):
            high = guess
            if not runs(guess - 1):
                low = guess - 1
        else:  # Prepare's scratch buffers needed more than was kept: double until it runs
            low = guess
            while low * 2 < high and not runs(low * 2):
                low *= 2
            high = min(high, low * 2)
    while high - low > 1:
        mid = (low + high) // 2
        if runs(mid):
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


def predictions(content: bytes, arena: int, inputs: np.ndarray) -> np.ndarray:
    """TFLM's top-1 answer for each already-quantized input, in a child process with `arena` bytes."""
    run = _run(content, arena, inputs)
    if not run.ok:
        last = (run.log.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"TFLite Micro failed on the test images: {last}")
    return run.predictions


def check(model: Model, images: np.ndarray) -> McuReport:
    """Arena, ops and top-1 agreement with `model`'s desktop interpreter on `images` (uint8)."""
    version = tflm_version()
    ops = model.op_names()
    inputs = model.quantize(images)
    try:
        arena = arena_bytes(model.content, inputs[:1])
    except MissingOps as e:
        return McuReport(ops, e.ops, 0, 0.0, 0, version, model.backend.name)
    tflm = predictions(model.content, arena + 1024, inputs)
    desktop = np.argmax(model.predict(images), axis=1)
    return McuReport(ops, [], arena, float(np.mean(tflm == desktop)), len(images), version, model.backend.name)
