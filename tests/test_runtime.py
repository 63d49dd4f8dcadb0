"""The device runtime: real .tflite files in a real interpreter, malformed files, backends.

No TensorFlow here: this file also runs in the tflite-runtime + numpy<2 environment.
"""

from __future__ import annotations

import os
import struct
import time

import numpy as np
import pytest

from firmware_harness import runtime, tflite_file
from firmware_harness.errors import UserError
from firmware_harness.runtime import Model


def test_shipped_model_is_int8_with_exact_pixel_mapping(shipped_model):
    model = Model(shipped_model)
    assert model.input.dtype == np.int8 and model.output.dtype == np.int8
    assert model.input.shape == (1, 28, 28, 1)
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    pixels = np.pad(pixels, ((0, 0), (6, 6), (6, 6)))
    np.testing.assert_array_equal(model.quantize(pixels)[..., 0], pixels.astype(np.int16) - 128)
    as_float = model.quantize(pixels.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(as_float[..., 0], pixels.astype(np.int16) - 128)


def test_path_and_bytes_give_the_same_logits(shipped_model, test_images):
    x, _ = test_images
    from_path = Model(shipped_model).predict(x[:50])
    from_bytes = Model(shipped_model.read_bytes()).predict(x[:50])
    np.testing.assert_array_equal(from_path, from_bytes)


def test_batched_prediction_equals_one_image_at_a_time(shipped_model, test_images):
    x, _ = test_images
    model = Model(shipped_model)
    batched = model.predict(x[:300], batch=128)
    single = np.concatenate([model.predict(x[i:i + 1]) for i in range(300)])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    assert model.predict(x[:0]).shape == (0, 10)


def test_reader_agrees_with_the_interpreter(shipped_model):
    info = tflite_file.parse(shipped_model.read_bytes())
    model = Model(shipped_model)
    names = [op["op_name"] for op in model._interp._get_ops_details()]  # noqa: SLF001
    for code, name in tflite_file.WEIGHTED_OPS.items():
        assert names.count(name) == sum(op.builtin_code == code for op in info.operators), name
    assert info.tensors[info.inputs[0]].shape == (1, 28, 28, 1)
    assert info.float_activations() == []
    assert 0.5 <= info.weight_sparsity() < 0.7
    assert info.param_count() > 1000 and info.mac_count() > info.param_count()


def _tensor_table(content: bytes, tensor: int) -> tuple[tflite_file.FlatReader, int]:
    reader = tflite_file.FlatReader(content)  # the tests edit one field in place
    graph = reader.tables(reader._unpack("<I", 0), 2)[0]  # noqa: SLF001
    return reader, reader.tables(graph, 0)[tensor]


def _patch_tensor_field(content: bytes, tensor: int, field: int, value: int) -> bytes:
    """The model with one uint32 field of one tensor table overwritten (buffer index, an offset, ...)."""
    reader, table = _tensor_table(content, tensor)
    pos = reader.field(table, field)
    assert pos is not None, f"tensor {tensor} has no field {field}"
    return content[:pos] + struct.pack("<I", value) + content[pos + 4:]


def _patch_first_dim(content: bytes, tensor: int, value: int) -> bytes:
    """The model with the first dimension of one tensor's shape overwritten."""
    reader, table = _tensor_table(content, tensor)
    start, _ = reader.vector(table, 0, 4)
    return content[:start] + struct.pack("<i", value) + content[start + 4:]


@pytest.mark.parametrize("case", ["random", "png", "truncated", "empty", "text", "flipped_header",
                                  "weightless", "shape_signature_offset", "huge_activation"])
def test_malformed_files_are_refused_cleanly(tmp_path, shipped_model, case):
    content = shipped_model.read_bytes()
    info = tflite_file.parse(content)
    data = {
        "random": np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "png": b"\x89PNG\r\n\x1a\n" + bytes(300),
        "truncated": content[: len(content) // 2],
        "empty": b"",
        "text": b"hello, I am not a model\n",
        "flipped_header": content[:4] + b"TFL4" + content[8:],
        # found by benchmarks/fuzz.py: LiteRT loads the first and fails in invoke; tflite-runtime 2.14
        # hangs or segfaults on the second (field 2 is a tensor's buffer, 7 its shape signature)
        "weightless": _patch_tensor_field(content, info.operators[0].inputs[1], 2, 0),
        "shape_signature_offset": _patch_tensor_field(content, info.inputs[0], 7, 0x7FFF0000),
        # also from fuzz.py: a batch size of 4,194,305 in one activation's shape made LiteRT allocate
        # 6.6 GB (5 s per allocation here, 40 s for the case; a Pi runs out of memory)
        "huge_activation": _patch_first_dim(content, info.operators[4].outputs[0], 0x00400001),
    }[case]
    path = tmp_path / "bad.tflite"
    path.write_bytes(data)
    with pytest.raises(UserError) as err:
        Model(path).predict(np.zeros((1, 28, 28), np.uint8))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_model_and_unknown_backend(tmp_path, shipped_model):
    with pytest.raises(UserError, match="model not found"):
        Model(tmp_path / "nope.tflite")
    with pytest.raises(UserError, match="unknown backend 'tpu'"):
        Model(shipped_model, backend="tpu")


def test_backends_in_preference_order(shipped_model):
    first = next(name for name in runtime.BACKENDS if runtime._import_backend(name) is not None)  # noqa: SLF001
    assert Model(shipped_model).backend.name == first
    forced = Model(shipped_model, backend=first)
    assert forced.backend.version not in ("", "unknown")


def test_kernels_choose_the_interpreters_op_resolver(shipped_model, test_images):
    """int8 answers depend on the kernels: the reference kernels requantize unlike XNNPACK on some images."""
    x, _ = test_images
    logits = {k: Model(shipped_model, kernels=k).predict(x[:1000]) for k in runtime.KERNELS}
    assert not np.array_equal(logits["xnnpack"], logits["reference"])
    assert np.abs(logits["xnnpack"] - logits["reference"]).max() < 1.0, "a few quantization steps, not another model"
    with pytest.raises(UserError, match="unknown kernels 'gpu'"):
        Model(shipped_model, kernels="gpu")


def test_the_probe_time_limit_does_not_count_the_childs_start(shipped_model, monkeypatch, tmp_path):
    """A slow device (or a loaded one) starts Python and imports the interpreter slowly; that is not the
    file's doing. Here the child's start-up is made 1.5 s slower than the whole limit for the file."""
    (tmp_path / "sitecustomize.py").write_text(f"import time\ntime.sleep({runtime.PROBE_TIMEOUT_S + 1.5})\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    started = time.perf_counter()
    runtime._probe_in_child(shipped_model.read_bytes(), runtime.get_backend().name, "shipped", 10)
    assert time.perf_counter() - started > runtime.PROBE_TIMEOUT_S + 1.5
