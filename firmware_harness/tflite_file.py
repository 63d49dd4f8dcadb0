"""Read a `.tflite` flatbuffer in pure Python, with every offset bounds-checked.

What the device side needs without TensorFlow: tensors (shape, type, quantization,
constant data), operators and their builtin codes, so it can count parameters, MACs
and zero weights, check that a model is fully integer, and refuse a malformed file
with a clear error before the C++ interpreter ever sees it.
Schema: tensorflow/compiler/mlir/lite/schema/schema.fbs (fields used here only).
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass, field

import numpy as np

from firmware_harness import bounded_json
from firmware_harness.errors import UserError

FILE_IDENTIFIER = b"TFL3"
# TensorType -> numpy dtype (types this reader can size; others are kept as None)
TENSOR_TYPES = {
    0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_,
    7: np.int16, 9: np.int8, 10: np.float64, 12: np.uint64, 15: np.uint32, 16: np.uint16,
}
# Far above any tensor of a digit model; a corrupt shape (one flipped bit in a batch size) can
# otherwise make the interpreter allocate gigabytes, which takes seconds here and kills a Pi.
MAX_TENSOR_BYTES = 1 << 28
CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE, FULLY_CONNECTED = 3, 4, 6, 9
WEIGHTED_OPS = {CONV_2D: "CONV_2D", DEPTHWISE_CONV_2D: "DEPTHWISE_CONV_2D", FULLY_CONNECTED: "FULLY_CONNECTED"}


class MalformedModel(UserError):
    """The bytes are not a well-formed TFLite flatbuffer."""


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    type_code: int
    buffer: int
    scales: list[float] = field(default_factory=list)
    zero_points: list[int] = field(default_factory=list)
    data: bytes | None = None  # constant contents, None for activations

    @property
    def dtype(self):
        return TENSOR_TYPES.get(self.type_code)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    def array(self) -> np.ndarray:
        """The constant contents as a numpy array of the tensor's shape."""
        return np.frombuffer(self.data, dtype=self.dtype, count=int(np.prod(self.shape, dtype=np.int64))).reshape(self.shape)


@dataclass
class Operator:
    builtin_code: int
    custom_code: str | None
    inputs: list[int]
    outputs: list[int]


@dataclass
class TFLiteModel:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    size: int
    metadata: dict[str, bytes] = field(default_factory=dict)  # the file's named metadata buffers

    def weights_sha256(self) -> str:
        """sha256 of the constant tensors' bytes in tensor order: the same for a file and for that file
        with metadata added, changed by any change of weights."""
        digest = hashlib.sha256()
        for t in self.tensors:
            if t.data is not None:
                digest.update(t.data)
        return digest.hexdigest()

    def metadata_json(self, name: str) -> dict | None:
        """The metadata entry `name` parsed as a JSON object, or None if absent or not a JSON object."""
        try:
            value = bounded_json.loads(self.metadata[name])
        except (KeyError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def weight_tensors(self) -> list[tuple[Operator, Tensor]]:
        """(op, constant weight tensor) for every conv/depthwise/dense op, seen through DEQUANTIZE."""
        producers = {out: op for op in self.operators for out in op.outputs}
        pairs = []
        for op in self.operators:
            if op.builtin_code in WEIGHTED_OPS and len(op.inputs) > 1 and op.inputs[1] >= 0:
                weight = self.tensors[op.inputs[1]]
                source = producers.get(weight.index)
                if not weight.is_constant and source is not None and source.builtin_code == DEQUANTIZE:
                    weight = self.tensors[source.inputs[0]]
                if weight.is_constant:
                    pairs.append((op, weight))
        return pairs

    def param_count(self) -> int:
        """Elements of the weight and bias tensors of conv/depthwise/dense ops."""
        producers = {out: op for op in self.operators for out in op.outputs}
        total = 0
        for op, weight in self.weight_tensors():
            total += int(np.prod(weight.shape, dtype=np.int64))
            if len(op.inputs) > 2 and op.inputs[2] >= 0:
                bias = self.tensors[op.inputs[2]]
                source = producers.get(bias.index)
                if not bias.is_constant and source is not None and source.builtin_code == DEQUANTIZE:
                    bias = self.tensors[source.inputs[0]]
                total += int(np.prod(bias.shape, dtype=np.int64)) if bias.is_constant else 0
        return total

    def mac_count(self) -> int:
        """Multiply-accumulates of one inference in conv/depthwise/dense ops (batch 1)."""
        total = 0
        for op, weight in self.weight_tensors():
            out = self.tensors[op.outputs[0]].shape
            kernel = int(np.prod(weight.shape, dtype=np.int64))
            if op.builtin_code == CONV_2D and len(out) == 4:
                total += out[1] * out[2] * kernel
            elif op.builtin_code == DEPTHWISE_CONV_2D and len(out) == 4:
                total += out[1] * out[2] * kernel
            elif op.builtin_code == FULLY_CONNECTED:
                rows = int(np.prod(out[:-1], dtype=np.int64)) // max(out[0], 1) if len(out) > 1 else 1
                total += max(rows, 1) * kernel
        return int(total)

    def weight_sparsity(self) -> float:
        """Fraction of conv/depthwise/dense weight values that are exactly zero."""
        zeros = count = 0
        for _, weight in self.weight_tensors():
            values = weight.array()
            zeros += int(np.count_nonzero(values == 0))
            count += values.size
        return zeros / count if count else 0.0

    def float_activations(self) -> list[str]:
        """Names of non-constant tensors that are floating point (empty for a full-integer model)."""
        used = {i for op in self.operators for i in (*op.inputs, *op.outputs) if i >= 0}
        return [t.name or str(t.index) for t in self.tensors
                if t.index in used and not t.is_constant and t.type_code in (0, 1, 10)]


class FlatReader:
    """Bounds-checked access to flatbuffer tables, vectors and strings."""

    def __init__(self, buf: bytes):
        self.buf = buf

    def _unpack(self, fmt: str, pos: int):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.buf):
            raise MalformedModel(f"truncated or corrupt (offset {pos} is past the end of the {len(self.buf)}-byte file)")
        if pos % size:  # flatbuffers aligns every scalar to its size; the official verifier checks it
            raise MalformedModel(f"misaligned {size}-byte value at offset {pos}")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def root(self) -> int:
        """Position of the root table."""
        return self._unpack("<I", 0)

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of field `index` of the table at `table`, or None if absent."""
        vtable = table - self._unpack("<i", table)
        vtable_size = self._unpack("<H", vtable)
        if vtable_size < 4 or vtable_size % 2 or vtable + vtable_size > len(self.buf):
            raise MalformedModel(f"a table at offset {table} has a broken vtable")
        if 4 + 2 * index + 2 > vtable_size:
            return None
        offset = self._unpack("<H", vtable + 4 + 2 * index)
        return table + offset if offset else None

    def scalar(self, table: int, index: int, fmt: str, default=0):
        pos = self.field(table, index)
        return default if pos is None else self._unpack(fmt, pos)

    def target(self, table: int, index: int) -> int | None:
        """Follow the uoffset stored in field `index` (a table, vector or string)."""
        pos = self.field(table, index)
        return None if pos is None else pos + self._unpack("<I", pos)

    def vector(self, table: int, index: int, item_size: int) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) if absent."""
        pos = self.target(table, index)
        if pos is None:
            return 0, 0
        length = self._unpack("<I", pos)
        if pos + 4 + length * item_size > len(self.buf):  # also bounds what a malformed file can make us allocate
            raise MalformedModel(f"a vector of {length} items at {pos} runs past the end of the file")
        return pos + 4, length

    def tables(self, table: int, index: int) -> list[int]:
        start, length = self.vector(table, index, 4)
        return [start + 4 * i + self._unpack("<I", start + 4 * i) for i in range(length)]

    def numbers(self, table: int, index: int, fmt: str) -> list:
        size = struct.calcsize(fmt)
        start, length = self.vector(table, index, size)
        if length and start % size:
            raise MalformedModel(f"misaligned vector of {size}-byte values at offset {start}")
        return list(struct.unpack_from(f"<{length}{fmt}", self.buf, start)) if length else []

    def string(self, table: int, index: int) -> str | None:
        start, length = self.vector(table, index, 1)
        if self.target(table, index) is None:
            return None
        return self.buf[start:start + length].decode("utf-8", errors="replace")


ZERO_POINT_RANGE = {3: (0, 255), 9: (-128, 127), 7: (-32768, 32767), 2: (0, 0), 4: (0, 0)}


def _check_quantization(t: Tensor, axis: int) -> None:
    """TFLite's quantization invariants; the old tflite-runtime crashes on files that break them."""
    if not t.scales and not t.zero_points:
        return
    if t.zero_points and len(t.zero_points) != len(t.scales):
        raise MalformedModel(f"tensor {t.index} has {len(t.scales)} scales but {len(t.zero_points)} zero points")
    if not all(np.isfinite(s) and s > 0 for s in t.scales):
        raise MalformedModel(f"tensor {t.index} has a quantization scale that is not a positive number")
    if len(t.scales) > 1 and not (0 <= axis < len(t.shape) and t.shape[axis] == len(t.scales)):
        raise MalformedModel(f"tensor {t.index} has {len(t.scales)} per-channel scales for shape {list(t.shape)}")
    low, high = ZERO_POINT_RANGE.get(t.type_code, (-(2 ** 63), 2 ** 63 - 1))
    if len(t.scales) > 1 and t.type_code in (7, 9):
        low = high = 0  # per-channel weights are symmetric
    if any(not low <= z <= high for z in t.zero_points):
        raise MalformedModel(f"tensor {t.index} has a zero point outside [{low}, {high}]")


def parse(buf: bytes) -> TFLiteModel:
    """Parse and validate the first subgraph of a TFLite model; raise MalformedModel if it is not one."""
    if len(buf) < 8 or buf[4:8] != FILE_IDENTIFIER:
        raise MalformedModel("not a TFLite model (no 'TFL3' file identifier)")
    try:
        return _parse(FlatReader(buf))
    except (struct.error, UnicodeDecodeError, OverflowError, ValueError) as e:
        raise MalformedModel(f"malformed TFLite model ({e})") from e


def _parse(r: FlatReader) -> TFLiteModel:
    model = r._unpack("<I", 0)
    op_codes = []
    for code in r.tables(model, 1):
        deprecated = r.scalar(code, 0, "<b")
        op_codes.append((max(deprecated, r.scalar(code, 3, "<i")), r.string(code, 1)))
    buffers = []
    for b in r.tables(model, 4):
        start, length = r.vector(b, 0, 1)
        buffers.append(r.buf[start:start + length] if length else None)
    subgraphs = r.tables(model, 2)
    if not subgraphs:
        raise MalformedModel("the model has no subgraph")
    graph = subgraphs[0]
    tensors = []
    for i, t in enumerate(r.tables(graph, 0)):
        shape = tuple(r.numbers(t, 0, "i"))
        signature = r.numbers(t, 7, "i")  # tflite-runtime 2.14 reads it unchecked: a bad offset hangs or crashes it
        if signature and (len(signature) != len(shape) or any(s not in (d, -1) for s, d in zip(signature, shape))):
            raise MalformedModel(f"tensor {i} has shape signature {signature} for shape {list(shape)}")
        if any(d < 0 for d in shape):
            shape = tuple(max(d, 1) for d in shape)
        buffer = r.scalar(t, 2, "<I")
        if buffer >= max(len(buffers), 1):
            raise MalformedModel(f"tensor {i} names buffer {buffer} of {len(buffers)}")
        q = r.target(t, 4)
        scales = r.numbers(q, 2, "f") if q is not None else []
        zero_points = r.numbers(q, 3, "q") if q is not None else []
        axis = r.scalar(q, 6, "<i") if q is not None else 0
        tensor = Tensor(i, r.string(t, 3) or "", shape, r.scalar(t, 1, "<b"), buffer, scales, zero_points)
        size = math.prod(shape) * (np.dtype(tensor.dtype).itemsize if tensor.dtype else 1)
        if size > MAX_TENSOR_BYTES:
            raise MalformedModel(f"tensor {i} has shape {list(shape)}, {size:,} bytes (limit {MAX_TENSOR_BYTES:,})")
        data = buffers[buffer] if buffers else None
        if data is not None:
            if tensor.dtype is None:
                raise MalformedModel(f"tensor {i} has unsupported type code {tensor.type_code}")
            if len(data) < size:
                raise MalformedModel(f"tensor {i} needs {size} bytes but its buffer holds {len(data)}")
            tensor.data = data
        _check_quantization(tensor, axis)
        tensors.append(tensor)
    n = len(tensors)

    def indices(table: int, index: int, what: str) -> list[int]:
        values = r.numbers(table, index, "i")
        if any(v < -1 or v >= n for v in values):
            raise MalformedModel(f"{what} names a tensor outside 0..{n - 1}")
        return values

    operators = []
    for o in r.tables(graph, 3):
        opcode = r.scalar(o, 0, "<I")
        if opcode >= len(op_codes):
            raise MalformedModel(f"an operator uses opcode {opcode} of {len(op_codes)}")
        builtin, custom = op_codes[opcode]
        operators.append(Operator(builtin, custom, indices(o, 1, "an operator input"), indices(o, 2, "an operator output")))
    metadata = {}
    for m in r.tables(model, 6):
        index = r.scalar(m, 1, "<I")
        if index >= len(buffers):
            raise MalformedModel(f"a metadata entry names buffer {index} of {len(buffers)}")
        metadata[r.string(m, 0) or ""] = buffers[index] or b""
    parsed = TFLiteModel(tensors, operators, indices(graph, 1, "the model input"), indices(graph, 2, "the model output"),
                         len(r.buf), metadata)
    _check_dataflow(parsed)
    return parsed


def _check_dataflow(model: TFLiteModel) -> None:
    """Operators run in file order; each must read only model inputs, constants and earlier outputs."""
    ready = set(model.inputs) | {t.index for t in model.tensors if t.is_constant}
    for k, op in enumerate(model.operators):
        missing = [i for i in op.inputs if i != -1 and i not in ready]
        if missing:
            raise MalformedModel(f"operator {k} reads tensor {missing[0]}, which has no data and no producer")
        ready.update(op.outputs)
    if not set(model.outputs) <= ready:
        raise MalformedModel("a model output is never computed")
