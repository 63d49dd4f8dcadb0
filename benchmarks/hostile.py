"""Crafted inputs that are valid files but cost an unguarded reader minutes of CPU or gigabytes.

Each builder writes one file into a folder and returns its path; `benchmarks/fuzz.py` runs
them as its semantic kinds (`SEMANTIC`), `benchmarks/serve_siege.py` posts the images, and the
crafted forms (`FORMS`: a body and its Content-Type), to the server. The two hand-built models (`MODELS`) are committed in benchmarks/data/;
`python benchmarks/hostile.py` writes them again with TensorFlow's flatbuffer schema.
"""

from __future__ import annotations

import io
import re
import struct
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
MODELS = {"shape_bomb": "shape_bomb.tflite", "lying_output": "lying_output.tflite"}


def grid_png(folder: Path, side: int = 1024, square: int = 5, pitch: int = 10) -> Path:
    """A bilevel PNG of `side`² with a square of ink every `pitch` px: ~(side/pitch)² marks in ~2 KB."""
    import cv2

    image = np.full((side, side), 255, np.uint8)
    for y in range(0, side, pitch):
        for x in range(0, side, pitch):
            image[y:y + square, x:x + square] = 0
    path = folder / f"grid{side}.png"
    cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_BILEVEL, 1])
    return path


def dense_digits_png(folder: Path, count: int = 990) -> Path:
    """A 1024² page with `count` printed digits: just under the preprocessing's cap, all of it read."""
    import cv2

    from firmware_harness.preprocess import MAX_MARKS

    image = np.full((1024, 1024), 255, np.uint8)
    for n in range(min(count, MAX_MARKS - 10)):
        y, x = divmod(n, 32)
        cv2.putText(image, str(n % 10), (x * 32, y * 32 + 26), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2)
    path = folder / "dense_digits.png"
    cv2.imwrite(str(path), image)
    return path


def deep_png(folder: Path, width: int = 8000, height: int = 5000) -> Path:
    """A 40-MP 16-bit RGBA PNG: a few hundred KB that decode to 320 MB."""
    import cv2

    image = np.full((height, width, 4), 65535, np.uint16)
    image[height // 3:2 * height // 3, width // 3:width // 3 + width // 20] = (0, 0, 0, 65535)
    path = folder / "deep.png"
    cv2.imwrite(str(path), image)
    return path


def scan_bomb_jpeg(folder: Path, side: int = 4000, repeats: int = 5000) -> Path:
    """A 16-MP progressive JPEG whose smallest scan is repeated `repeats` times: under 1 MB, and each copy is
    decoded over the whole image (13 s in `predict` before scans were counted)."""
    import cv2

    image = np.full((side, side), 255, np.uint8)
    cv2.putText(image, "12", (side // 4, side // 2), cv2.FONT_HERSHEY_SIMPLEX, side / 200, 0, side // 60)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 50])
    data = encoded.tobytes()
    starts = [m.start() for m in re.finditer(b"\xff\xda", data)]
    ends = starts[1:] + [data.rindex(b"\xff\xd9")]
    smallest = min(zip(starts, ends), key=lambda span: span[1] - span[0])
    scan = data[smallest[0]:smallest[1]]
    path = folder / "scan_bomb.jpg"
    path.write_bytes(data[:-2] + scan * repeats + b"\xff\xd9")
    return path


def many_parts_form(parts: int = 20_000) -> tuple[str, bytes]:
    """A 1 MB multipart/form-data body of `parts` tiny fields: (content type, body)."""
    boundary = "b0undary"
    body = b"".join(b"--%s\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nx\r\n" % (boundary.encode(), i)
                    for i in range(parts)) + b"--%s--\r\n" % boundary.encode()
    return f"multipart/form-data; boundary={boundary}", body


def nested_form(depth: int = 2000) -> tuple[str, bytes]:
    """multipart/form-data nested `depth` deep (each part itself a multipart/mixed body)."""
    body = b"x"
    for level in range(depth):
        boundary = b"n%d" % level
        body = (b"--%s\r\nContent-Type: multipart/mixed; boundary=n%d\r\n\r\n%s\r\n--%s--\r\n"
                % (boundary, level - 1, body, boundary)) if level else body
    return f"multipart/form-data; boundary=n{depth - 1}", body


FORMS: dict[str, Callable[[], tuple[str, bytes]]] = {"form_20000_parts": many_parts_form,
                                                     "form_nested_2000": nested_form}


def _npy(header_shape: tuple, body: bytes, descr: str = "|u1") -> bytes:
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, header_shape)
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body


def _npz(path: Path, x_test: bytes) -> Path:
    labels = io.BytesIO()
    np.save(labels, np.zeros(10, np.uint8))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x_test.npy", x_test)
        zf.writestr("y_test.npy", labels.getvalue())
    return path


def npz_negative_shape(folder: Path, body_mib: int = 256) -> Path:
    """x_test's header says shape (-1, 28, 28) over a body of zeros that deflates ~1000:1."""
    return _npz(folder / "negative_shape.npz", _npy((-1, 28, 28), bytes(body_mib << 20)))


def npz_empty_axis(folder: Path) -> Path:
    """x_test of shape (10, 28, 28, 0): no pixels at all."""
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((10, 28, 28, 0), np.uint8))
    return _npz(folder / "empty_axis.npz", buffer.getvalue())


def idx_overflow(folder: Path) -> Path:
    """An IDX image header with dims (2^31, 2^31, 4): their product overflows int64."""
    idx = folder / "idx_overflow"
    idx.mkdir(exist_ok=True)
    for split in ("train", "t10k"):
        (idx / f"{split}-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + struct.pack(">III", 2 ** 31, 2 ** 31, 4))
        (idx / f"{split}-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + struct.pack(">I", 10) + bytes(10))
    return idx / "t10k-images-idx3-ubyte"


def batch_bomb(folder: Path, batch: int = 300_000) -> Path:
    """The shipped model with its declared input batch patched from 1 to `batch` (each tensor under the size cap)."""
    from firmware_harness.runtime import shipped_model

    data = bytearray(shipped_model().read_bytes())
    shape = struct.pack("<4i", 1, 28, 28, 1)
    at = data.find(shape)
    data[at:at + 4] = struct.pack("<i", batch)
    path = folder / "batch_bomb.tflite"
    path.write_bytes(bytes(data))
    return path


def _with_card_replaced(folder: Path, name: str, make) -> Path:
    """The shipped model with its `edgedigits` metadata entry rewritten in place by `make(card bytes)`, which
    must keep the length (a flatbuffer's sizes stay right, so no schema is needed)."""
    from firmware_harness import tflite_file
    from firmware_harness.runtime import shipped_model

    data = shipped_model().read_bytes()
    card = bytes(tflite_file.parse(data).metadata["edgedigits"])
    new = make(card)
    assert len(new) == len(card)
    path = folder / name
    path.write_bytes(data.replace(card, new, 1))
    return path


def labels_escape_tflite(folder: Path) -> Path:
    """The shipped model whose labels hold a terminal escape (ESC, then the digits 3-9: what fits in place)."""
    def relabel(card: bytes) -> bytes:
        digits = b'"labels":["0","1","2","3","4","5","6","7","8","9"]'
        assert digits in card
        escaped = b'"labels":["\\u001b","3","4","5","6","7","8","9"]'  # as long as the card allows, padded
        return card.replace(digits, escaped.ljust(len(digits)), 1)
    return _with_card_replaced(folder, "labels_escape.tflite", relabel)


def deep_metadata_tflite(folder: Path) -> Path:
    """The shipped model whose card is JSON nested thousands of levels deep ([[[...]]]): RecursionError once."""
    return _with_card_replaced(folder, "deep_metadata.tflite",
                               lambda card: b"[" * (len(card) // 2) + b"]" * (len(card) - len(card) // 2))


def frame_bomb_avi(folder: Path, side: int = 7000) -> Path:
    """An MJPEG AVI of two 49-MP white frames: about a megabyte that decodes to 147 MB a frame."""
    import cv2

    path = folder / "frame_bomb.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (side, side))
    for _ in range(2):
        writer.write(np.full((side, side, 3), 255, np.uint8))
    writer.release()
    return path


def nan_float_tiff(folder: Path) -> Path:
    """A float32 TIFF of a digit page with one NaN pixel (min-max stretching of it made every pixel NaN)."""
    import cv2

    image = np.ones((100, 200), np.float32)
    image[30:80, 40:50] = 0.0
    image[0, 0] = np.nan
    path = folder / "nan.tiff"
    cv2.imwrite(str(path), image)
    return path


def _committed(name: str) -> Callable[[Path], Path]:
    def copy(folder: Path) -> Path:
        path = folder / MODELS[name]
        path.write_bytes((DATA / MODELS[name]).read_bytes())
        return path
    return copy


# kind -> (the loader fuzz.run_case feeds it to, builder)
SEMANTIC: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "marks_grid": ("image", grid_png),
    "marks_dense": ("image", dense_digits_png),
    "deep_png": ("image", deep_png),
    "scan_bomb_jpeg": ("image", scan_bomb_jpeg),
    "nan_float_tiff": ("image", nan_float_tiff),
    "frame_bomb_avi": ("video", frame_bomb_avi),
    "npz_negative_shape": ("npz", npz_negative_shape),
    "npz_empty_axis": ("npz", npz_empty_axis),
    "idx_overflow": ("idx", idx_overflow),
    "batch_bomb": ("tflite", batch_bomb),
    "shape_bomb": ("tflite", _committed("shape_bomb")),
    "lying_output": ("tflite", _committed("lying_output")),
    "labels_escape": ("tflite", labels_escape_tflite),
    "deep_metadata": ("tflite", deep_metadata_tflite),
}


def _write_models(folder: Path) -> None:
    """Build the two models with TensorFlow's flatbuffer schema (needs the train extra)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as fb

    def build(tensors, operators, inputs, outputs, buffers) -> bytes:
        model, graph = fb.ModelT(), fb.SubGraphT()
        model.version, model.operatorCodes, model.buffers = 3, [], [fb.BufferT()]
        for data in buffers:
            buffer = fb.BufferT()
            buffer.data = list(data)
            model.buffers.append(buffer)
        graph.tensors, graph.operators, graph.inputs, graph.outputs = [], [], inputs, outputs
        for name, shape, kind, buffer_index in tensors:
            tensor = fb.TensorT()
            tensor.name, tensor.shape, tensor.type, tensor.buffer = name, list(shape), kind, buffer_index
            graph.tensors.append(tensor)
        codes: dict[int, int] = {}
        for code, ins, outs, options in operators:
            if code not in codes:
                op_code = fb.OperatorCodeT()
                op_code.builtinCode, op_code.deprecatedBuiltinCode, op_code.version = code, min(code, 127), 1
                codes[code] = len(model.operatorCodes)
                model.operatorCodes.append(op_code)
            op = fb.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = codes[code], ins, outs
            op.builtinOptionsType, op.builtinOptions = options
            graph.operators.append(op)
        model.subgraphs = [graph]
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    f32, i32, op, options = fb.TensorType.FLOAT32, fb.TensorType.INT32, fb.BuiltinOperator, fb.BuiltinOptions
    mean = fb.ReducerOptionsT()
    mean.keepDims = False
    # input [1,28,28,1] -> TILE x10 -> RESIZE_BILINEAR to 10000x10000 -> MEAN: every activation declared
    # small, computed at allocation as [1, 10000, 10000, 10] float (4 GB)
    shape_bomb = build(
        [("in", (1, 28, 28, 1), f32, 0), ("multiples", (4,), i32, 1), ("tiled", (1, 28, 28, 1), f32, 0),
         ("size", (2,), i32, 2), ("big", (1, 28, 28, 1), f32, 0), ("axes", (2,), i32, 3), ("out", (1, 10), f32, 0)],
        [(op.TILE, [0, 1], [2], (options.TileOptions, fb.TileOptionsT())),
         (op.RESIZE_BILINEAR, [2, 3], [4], (options.ResizeBilinearOptions, fb.ResizeBilinearOptionsT())),
         (op.MEAN, [4, 5], [6], (options.ReducerOptions, mean))],
        [0], [6],
        [np.array([1, 1, 1, 10], "<i4").tobytes(), np.array([10000, 10000], "<i4").tobytes(),
         np.array([1, 2], "<i4").tobytes()])
    # declares its output [1,10]; MEAN to [1,1] then a dense layer of 100 units computes [1,100]
    lying = build(
        [("in", (1, 28, 28, 1), f32, 0), ("axes", (3,), i32, 1), ("pooled", (1, 1), f32, 0),
         ("w", (100, 1), f32, 2), ("out", (1, 10), f32, 0)],
        [(op.MEAN, [0, 1], [2], (options.ReducerOptions, mean)),
         (op.FULLY_CONNECTED, [2, 3, -1], [4], (options.FullyConnectedOptions, fb.FullyConnectedOptionsT()))],
        [0], [4],
        [np.array([1, 2, 3], "<i4").tobytes(), np.linspace(-1, 1, 100, dtype="<f4").tobytes()])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODELS["shape_bomb"]).write_bytes(shape_bomb)
    (folder / MODELS["lying_output"]).write_bytes(lying)


if __name__ == "__main__":
    _write_models(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA)
    print(f"wrote {', '.join(MODELS.values())}")
