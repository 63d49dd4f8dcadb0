"""Rewrite a .tflite with the TFLite schema's object API (from LiteRT or TensorFlow): no converter.

Used to strip a converted file (`strip`), to add or remove the `edgedigits` metadata entry
(`with_metadata`, `without_metadata`) and to make the browser's variant (`web_model`). Reading needs none of this: `firmware_harness.tflite_file` parses files
in pure Python.
"""

from __future__ import annotations

import importlib

from firmware_harness.errors import UserError

SCHEMA_MODULES = ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated")


def schema():
    """The generated TFLite schema module of whichever runtime is installed."""
    for name in SCHEMA_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise UserError("rewriting a .tflite needs the TFLite schema: pip install 'edgedigits[litert]'")


def load(content: bytes):
    """The file as a mutable `ModelT`."""
    return schema().ModelT.InitFromPackedBuf(bytearray(content), 0)


def pack(model) -> bytes:
    """A `ModelT` back to .tflite bytes, each distinct int64 vector stored once.

    Per-channel quantization gives every conv, depthwise and bias tensor an int64 zero-point
    vector, all zeros; tensors with the same channel count then point at one shared copy,
    which flatbuffers allow.
    """
    import flatbuffers  # a dependency of LiteRT and of TensorFlow, which hold the schema
    import numpy as np

    class SharingBuilder(flatbuffers.Builder):
        def __init__(self, size: int):
            super().__init__(size)
            self.int64_vectors: dict[bytes, int] = {}

        def CreateNumpyVector(self, x):  # noqa: N802 - overrides the flatbuffers API
            if x.dtype != np.int64:
                return super().CreateNumpyVector(x)
            key = x.astype("<i8").tobytes()
            if key not in self.int64_vectors:
                self.int64_vectors[key] = super().CreateNumpyVector(x)
            return self.int64_vectors[key]

    builder = SharingBuilder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def strip(content: bytes) -> bytes:
    """Drop what a device never reads: names, signature defs and the description (inputs and outputs
    are then found by index, as TFLM and the mobile APIs do anyway)."""
    model = load(content)
    model.description, model.signatureDefs = None, None
    for graph in model.subgraphs:
        graph.name = None
        for tensor in graph.tensors:
            tensor.name = None
    return pack(model)


def _entry_name(entry) -> str:
    return entry.name.decode() if isinstance(entry.name, bytes) else entry.name


def _drop_metadata(model, name: str) -> None:
    """Remove the metadata entry `name` and its buffer if nothing else points at it (indices renumbered)."""
    dropped = {m.buffer for m in model.metadata or [] if _entry_name(m) == name}
    model.metadata = [m for m in model.metadata or [] if _entry_name(m) != name]
    dropped -= {m.buffer for m in model.metadata} | {t.buffer for graph in model.subgraphs for t in graph.tensors}
    keep = [i for i in range(len(model.buffers)) if i not in dropped]
    index = {old: new for new, old in enumerate(keep)}
    model.buffers = [model.buffers[i] for i in keep]
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.buffer = index[tensor.buffer]
    for entry in model.metadata:
        entry.buffer = index[entry.buffer]


def without_metadata(content: bytes, *names: str) -> bytes:
    """`content` without the metadata entries `names` and their buffers: the file as it was before `with_metadata`."""
    model = load(content)
    for name in names:
        _drop_metadata(model, name)
    return pack(model)


def with_metadata(content: bytes, name: str, data: bytes) -> bytes:
    """`content` with the metadata entry `name` holding `data` (an entry of that name is replaced)."""
    import numpy as np

    s = schema()
    model = load(content)
    _drop_metadata(model, name)
    buffer = s.BufferT()
    buffer.data = np.frombuffer(data, np.uint8)
    model.buffers.append(buffer)
    entry = s.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    model.metadata.append(entry)
    return pack(model)
