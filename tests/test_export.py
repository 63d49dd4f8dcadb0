"""`edgedigits export`: the whole chain on a real slice, real files in a real interpreter."""

from __future__ import annotations

import gzip
import hashlib
import json
import re

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import assert_one_line_error, run_cli  # noqa: E402
from edgedigits import DEFAULT_MODEL  # noqa: E402
from firmware_harness import mnist, tflite_file, tflite_metadata  # noqa: E402
from firmware_harness.runtime import Model  # noqa: E402

LIMIT = 2000
# 12 epochs: enough for ds_cnn_micro to read most of the slice on any draw (6 left one run at 47.6 %, where
# post-training int8 flips many near-tied answers); the tests check the chain, not this machine's speed
FAST = ["--limit", str(LIMIT), "--epochs", "12", "--prune-epochs", "1", "--qat-epochs", "1"]
AGREEMENT = {"fp32": 0.999, "fp16": 0.99, "dynamic": 0.9, "int8": 0.9}  # float conversions are all but exact


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mnist_path):
    out = tmp_path_factory.mktemp("export")
    result = run_cli("export", "--model", "ds_cnn_micro", *FAST, "--formats", "fp32,fp16,dynamic,int8",
                     "--data", str(mnist_path), "--out", str(out), "--name", "micro_int8")
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


@pytest.fixture(scope="module")
def test_set(mnist_path):
    data = mnist.load(mnist_path, splits=("test",))
    return data.x_test[:LIMIT], data.y_test[:LIMIT]


def test_int8_file_runs_in_a_real_interpreter_with_int8_io(exported, test_set):
    out, _ = exported
    model = Model(out / "micro_int8.tflite")
    assert model.input.dtype == np.int8 and model.output.dtype == np.int8
    assert model.input.scale == pytest.approx(1 / 255) and model.input.zero_point == -128
    assert tflite_file.parse(model.content).float_activations() == []
    accuracy = np.mean(np.argmax(model.predict(test_set[0]), axis=1) == test_set[1])
    assert accuracy > 0.3, "a few epochs on 2k images must beat chance (10 %) by far"


def test_reached_sparsity_is_within_two_points_of_target(exported):
    out, _ = exported
    card = json.loads((out / "micro_int8.json").read_text())
    info = tflite_file.parse((out / "micro_int8.tflite").read_bytes())
    assert card["target_sparsity"] == 0.5
    assert abs(info.weight_sparsity() - 0.5) <= 0.02, info.weight_sparsity()
    assert card["weight_sparsity"] == pytest.approx(info.weight_sparsity(), abs=1e-4)


def test_pruning_makes_up_for_unpruned_depthwise_kernels(tmp_path, mnist_path):
    """tfmot leaves depthwise kernels dense; the other kernels are pruned harder so all together reach the target."""
    from edgedigits.training import compress, data, models

    splits = data.load_splits(mnist_path, limit=500)
    model = models.create_model("ds_cnn", blocks="c8 c16s2 d32s2 d48")
    pruned = compress.prune(model, splits, 0.5, compress.StageRecipe(epochs=1, lr=1e-3), tmp_path)
    rows = compress.sparsity_report(pruned)
    assert any(r["layer"].endswith("_dw") for r in rows)
    assert all(r["zeros"] == 0 for r in rows if r["layer"].endswith("_dw"))
    assert abs(compress.overall_sparsity(rows) - 0.5) <= 0.02


def test_c_array_holds_exactly_the_tflite_bytes(exported):
    out, _ = exported
    content = (out / "micro_int8.tflite").read_bytes()
    source = (out / "micro_int8_model_data.cc").read_text()
    header = (out / "micro_int8_model_data.h").read_text()
    body = source[source.index("{") + 1: source.index("};")]
    assert bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", body)) == content
    assert f"g_micro_int8_model_data_len = {len(content)};" in source
    assert "alignas(16)" in source and '#include "micro_int8_model_data.h"' in source
    arena = int(re.search(r"TensorArenaSize = (\d+);", header).group(1))
    assert arena == json.loads((out / "micro_int8.json").read_text())["tensor_arena_bytes"]


def test_the_card_gives_accuracy_per_kernel_and_its_minimum(exported, test_set):
    import importlib.util

    out, result = exported
    card = json.loads((out / "micro_int8.json").read_text())
    per_kernel = card["accuracy_per_kernel"]
    kernels = {"xnnpack", "builtin", "reference"} | ({"tflite_micro"} if importlib.util.find_spec("tflite_micro") else set())
    assert set(per_kernel) == {"machine"} | kernels
    for kernel in kernels - {"tflite_micro"}:
        model = Model(out / "micro_int8.tflite", kernels=kernel)
        assert per_kernel[kernel] == np.mean(np.argmax(model.predict(test_set[0]), axis=1) == test_set[1])
    assert card["accuracy_min_over_kernels"] == min(per_kernel[k] for k in kernels)
    assert "by kernel: xnnpack" in result.stderr


def test_every_card_field_is_present_and_true(exported, test_set):
    out, _ = exported
    content = (out / "micro_int8.tflite").read_bytes()
    card = json.loads((out / "micro_int8.json").read_text())
    required = {"format", "io_type", "input", "output", "preprocessing", "labels", "float_accuracy",
                "tflite_accuracy", "bytes", "gzip_bytes", "weight_sparsity", "params", "macs", "sha256",
                "versions", "command", "stripped_bytes", "tensor_arena_bytes"}
    assert required <= card.keys(), required - card.keys()
    info = tflite_file.parse(content)
    model = Model(content)
    assert card["sha256"] == hashlib.sha256(content).hexdigest()
    assert card["bytes"] == len(content)
    assert card["gzip_bytes"] == len(gzip.compress(content, compresslevel=9, mtime=0))
    assert card["params"] == info.param_count() and card["macs"] == info.mac_count()
    assert card["input"]["dtype"] == "int8" and card["input"]["shape"] == [1, 28, 28, 1]
    assert card["input"]["zero_point"] == model.input.zero_point
    assert card["input"]["scale"] == pytest.approx(model.input.scale)
    assert card["output"]["scale"] == pytest.approx(model.output.scale)
    accuracy = float(np.mean(np.argmax(model.predict(test_set[0]), axis=1) == test_set[1]))
    assert card["tflite_accuracy"] == pytest.approx(accuracy) and card["n_eval"] == LIMIT
    assert card["labels"] == [str(d) for d in range(10)]
    assert (out / "labels.txt").read_text().split() == card["labels"]
    assert card["stripped_bytes"] > 0, "stripping names must save bytes"
    assert "export" in card["command"] and card["versions"]["tensorflow"].startswith("2.21")


def test_the_file_carries_its_card_and_a_browser_variant(exported, test_set):
    """The `edgedigits` metadata entry: labels, input contract, accuracy per kernel, sha256 of the weights;
    and `<name>_web.tflite` beside it, the same answers with uint8 ends."""
    from edgedigits.export import artifacts

    out, _ = exported
    content = (out / "micro_int8.tflite").read_bytes()
    card = json.loads((out / "micro_int8.json").read_text())
    entry = tflite_file.parse(content).metadata_json("edgedigits")
    assert entry["labels"] == card["labels"] and entry["accuracy_per_kernel"] == card["accuracy_per_kernel"]
    assert entry["input"]["zero_point"] == -128 and "white ink" in entry["input"]["pixels"]
    assert entry["weights_sha256"] == card["weights_sha256"] == tflite_file.parse(content).weights_sha256()
    web = out / "micro_int8_web.tflite"
    assert web.read_bytes() == artifacts.web_file(content, "micro_int8")
    assert tflite_metadata.read(web.read_bytes())["files"] == tflite_metadata.read(content)["files"]
    np.testing.assert_array_equal(Model(web).predict(test_set[0][:500]), Model(content).predict(test_set[0][:500]))


PACKAGED = ("micro_int8.tflite", "micro_int8_web.tflite", "micro_int8_mobile.tflite", "micro_int8_model_data.h",
            "micro_int8_model_data.cc", "micro_int8_android.kt", "micro_int8_ios.swift", "labels.txt", "DigitFinder.kt")


def test_packaging_the_exported_file_writes_what_export_wrote(exported, test_set, tmp_path):
    """`edgedigits package` of export's own file, verified on the same images: the same bytes, file by file
    (the embedded card, TFLITE_METADATA, the C array and its arena, both variants, the snippets)."""
    out, _ = exported
    np.savez(tmp_path / "test.npz", x_test=test_set[0], y_test=test_set[1])
    done = run_cli("package", str(out / "micro_int8.tflite"), "--out", str(tmp_path / "pkg"),
                   "--data", str(tmp_path / "test.npz"))
    assert done.returncode == 0, done.stderr[-3000:]
    for name in PACKAGED:
        assert (tmp_path / "pkg" / name).read_bytes() == (out / name).read_bytes(), name


def test_zero_point_vectors_are_stored_once_per_length(exported):
    from tensorflow.lite.python import schema_py_generated as schema

    content = (exported[0] / "micro_int8.tflite").read_bytes()
    subgraph = schema.Model.GetRootAs(content).Subgraphs(0)
    where: dict[int, set[int]] = {}  # zero-point vector length -> byte positions of its copies
    for i in range(subgraph.TensorsLength()):
        q = subgraph.Tensors(i).Quantization()
        if q is not None and q.ZeroPointLength() > 1:
            assert not q.ZeroPointAsNumpy().any(), "per-channel int8 zero points are all 0"
            where.setdefault(q.ZeroPointLength(), set()).add(q._tab.Vector(q._tab.Offset(10)))  # noqa: SLF001
    assert where, "the int8 model has per-channel tensors"
    assert all(len(positions) == 1 for positions in where.values()), where


def test_pooling_head_keeps_its_axes(exported):
    """MEAN(keep_dims) + RESHAPE, not MEAN alone: tflite-runtime 2.14 has a fast int8 MEAN only with keep_dims."""
    from tensorflow.lite.python import schema_py_generated as schema

    content = (exported[0] / "micro_int8.tflite").read_bytes()
    codes = [op.builtin_code for op in tflite_file.parse(content).operators]
    mean = codes.index(schema.BuiltinOperator.MEAN)
    assert codes[mean + 1] == schema.BuiltinOperator.RESHAPE
    options = schema.ReducerOptions()  # the harness's reader skips builtin options: read this one with TF's schema
    table = schema.Model.GetRootAs(content).Subgraphs(0).Operators(mean).BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    assert options.KeepDims()


def test_plain_formats_are_written_and_verified(exported, test_set):
    out, _ = exported
    sizes = {}
    for fmt in ("fp32", "fp16", "dynamic", "int8"):
        path = out / f"ds_cnn_micro_{fmt}.tflite"
        card = json.loads(path.with_suffix(".json").read_text())
        model = Model(path)
        sizes[fmt] = path.stat().st_size
        assert card["format"] == fmt
        assert card["float_accuracy"] > 0.7, card["float_accuracy"]  # trained enough for agreement to mean much
        assert card["agreement_with_keras"] >= AGREEMENT[fmt], (fmt, card["agreement_with_keras"])
        assert np.argmax(model.predict(test_set[0][:10]), axis=1).shape == (10,)
    assert sizes["fp16"] < sizes["fp32"] and sizes["int8"] < sizes["fp16"]


def test_summary_table_is_printed(exported):
    _, result = exported
    assert "| micro_int8.tflite | int8 |" in result.stdout
    assert "[2/4 prune]" in result.stderr and "[3/4 qat]" in result.stderr


def test_rerun_reuses_finished_stages(exported, mnist_path):
    out, _ = exported
    result = run_cli("export", "--model", "ds_cnn_micro", *FAST, "--data", str(mnist_path), "--out", str(out),
                     "--name", "micro_int8")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reusing" in result.stderr
    assert "Epoch" not in result.stdout + result.stderr


def test_checkpoints_are_not_reused_after_a_layout_change(monkeypatch, mnist_path):
    """Same recipe, different architecture (a changed default layout): a different run folder."""
    from edgedigits.training import data, models
    from edgedigits.export import pipeline

    splits = data.load_splits(mnist_path, limit=200)
    plan = pipeline.ExportPlan(model="ds_cnn_micro")
    before = pipeline.run_key(plan, splits)
    assert pipeline.run_key(plan, splits) == before
    monkeypatch.setitem(models._REGISTRY, "ds_cnn_micro",
                        models.Entry(lambda: models.ds_cnn(blocks="c8 c16s2 d32"), zoo_epochs=1, compressed=True))
    assert pipeline.run_key(plan, splits) != before


@pytest.mark.parametrize("args,fragment", [
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--sparsity", "0.99"], "--sparsity must be between 0 and 0.95"),
    (["--sparsity", "-0.1"], "--sparsity must be between 0 and 0.95"),
    (["--formats", "int4"], "unknown format 'int4'"),
    (["--io", "float"], "unknown --io"),
    (["--model", "ds_cnn_micro", "--formats", "int8"], "would both be ds_cnn_micro_int8.tflite"),
    (["--formats", "fp32,fp32", "--no-int8"], f"would both be {DEFAULT_MODEL}_fp32.tflite"),
    (["--formats", "fp16", "--name", f"{DEFAULT_MODEL}_fp16"], f"would both be {DEFAULT_MODEL}_fp16.tflite"),
])
def test_bad_options_fail_fast_with_one_line(tmp_path, mnist_path, args, fragment):
    out = tmp_path / "out"
    result = run_cli("export", *args, *FAST, "--data", str(mnist_path), "--out", str(out))
    assert_one_line_error(result, 2, fragment)
    assert not out.exists() or not any(out.rglob("*.tflite"))


def test_corrupt_starting_checkpoint(tmp_path, mnist_path):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"PK\x03\x04" + bytes(200))
    out = tmp_path / "out"
    result = run_cli("export", "--from", str(bad), *FAST, "--data", str(mnist_path), "--out", str(out))
    assert_one_line_error(result, 2, "not a readable Keras model")
    assert not any(out.rglob("*.tflite")) if out.exists() else True


def test_unwritable_output_folder(tmp_path, mnist_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_cli("export", *FAST, "--data", str(mnist_path), "--out", str(blocker / "out"))
    assert_one_line_error(result, 2, "cannot create folder")


# The MicroMutableOpResolver methods of TFLite Micro (tensorflow/lite/micro/micro_mutable_op_resolver.h).
TFLM_RESOLVER_METHODS = """Abs Add AddN ArgMax ArgMin AveragePool2D BatchToSpaceNd Cast Ceil CircularBuffer Concatenation
Conv2D Cos CumSum DepthToSpace DepthwiseConv2D Dequantize Elu Equal Exp ExpandDims Fill Floor FloorDiv FloorMod
FullyConnected Gather GatherNd Greater GreaterEqual HardSwish If L2Normalization L2Pool2D LeakyRelu Less LessEqual
Log LogicalAnd LogicalNot LogicalOr Logistic Maximum MaxPool2D Mean Minimum Mul Neg NotEqual Pack Pad PadV2 Prelu
Quantize ReduceMax Relu Relu6 Reshape ResizeBilinear ResizeNearestNeighbor Round Rsqrt Shape Sin Softmax
SpaceToBatchNd SpaceToDepth Split SplitV Squeeze Sqrt Square StridedSlice Sub Svdf Tanh TransposeConv Transpose
Unpack ZerosLike""".split()

# Declarations of the TFLM calls the docs' snippet (docs/microcontrollers.md) makes, for a syntax check without TFLM's sources.
TFLM_STUB = """#pragma once
#include <cstddef>
#include <cstdint>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
struct TfLiteTensor { union { int8_t* int8; uint8_t* uint8; } data; };
namespace tflite {
struct Model {};
const Model* GetModel(const void* buffer);
template <unsigned int tOpCount> class MicroMutableOpResolver {
 public:
%s
};
class MicroInterpreter {
 public:
  template <unsigned int N>
  MicroInterpreter(const Model* model, MicroMutableOpResolver<N>& resolver, uint8_t* arena, size_t arena_size);
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
};
}  // namespace tflite
"""


def test_readme_tflm_snippet_compiles_against_the_generated_header(exported, tmp_path):
    """The header adds exactly the model's ops, and the docs' snippet builds on it (g++ -fsyntax-only)."""
    import shutil
    import subprocess

    from conftest import REPO
    from firmware_harness import mcu

    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++ here")
    out, _ = exported
    header = (out / "micro_int8_model_data.h").read_text()
    ops = Model(out / "micro_int8.tflite").op_names()
    assert f"constexpr unsigned int kMicroInt8OpCount = {len(ops)};" in header
    assert re.findall(r"resolver\.(\w+)\(\) == 0", header) == [mcu.resolver_method(op) for op in ops]
    assert set(ops) >= {"CONV_2D", "FULLY_CONNECTED", "MEAN", "RESHAPE"}

    page = (REPO / "docs" / "microcontrollers.md").read_text()
    snippet = re.search(r"```cpp\n(#include \"edgedigits_int8_model_data.h\".*?)```", page, re.S).group(1)
    snippet = snippet.replace("edgedigits_int8", "micro_int8").replace("EdgedigitsInt8", "MicroInt8")
    stub = TFLM_STUB % "\n".join(f"  TfLiteStatus Add{m}();" for m in TFLM_RESOLVER_METHODS)
    for name in ("micro_interpreter.h", "micro_mutable_op_resolver.h"):
        (tmp_path / "tensorflow" / "lite" / "micro").mkdir(parents=True, exist_ok=True)
        (tmp_path / "tensorflow" / "lite" / "micro" / name).write_text(stub)
    (tmp_path / "read_digit.cc").write_text(snippet)
    for name in ("micro_int8_model_data.h", "micro_int8_model_data.cc"):
        shutil.copy(out / name, tmp_path / name)
    built = subprocess.run([compiler, "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", "-I", str(tmp_path),
                            str(tmp_path / "read_digit.cc"), str(tmp_path / "micro_int8_model_data.cc")],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]


def test_export_from_a_checkpoint_takes_its_architecture(tmp_path, mnist_path):
    """A LeNet-5 checkpoint exported without --model is named and carded as lenet5, never as the default."""
    run = tmp_path / "l5"
    assert run_cli("train", "--model", "lenet5", "--epochs", "1", "--limit", "1000", "--data", str(mnist_path),
                   "--out", str(run)).returncode == 0
    out = tmp_path / "out"
    result = run_cli("export", "--from", str(run / "model.keras"), "--no-int8", "--formats", "fp32", "--limit", "1000",
                     "--data", str(mnist_path), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.tflite")) == ["lenet5_fp32.tflite"]
    assert json.loads((out / "lenet5_fp32.json").read_text())["source"]["model"] == "lenet5"
    refused = run_cli("export", "--from", str(run / "model.keras"), "--model", "ds_cnn", "--no-int8", "--formats",
                      "fp32", "--limit", "1000", "--data", str(mnist_path), "--out", str(out))
    assert_one_line_error(refused, 2, "holds a lenet5 model, not ds_cnn")


def test_export_says_each_stage_once_then_the_total_and_every_file_written(exported):
    out, result = exported
    lines = result.stderr.splitlines()
    stages = [line.split("]")[0] + "]" for line in lines if re.match(r"\[\d/4 \w+\]", line)]
    assert stages == ["[1/4 train]", "[1/4 train]", "[2/4 prune]", "[2/4 prune]", "[3/4 qat]", "[4/4 convert]"]
    assert any(re.match(r"\[1/4 train\] float model: test accuracy \d+\.\d\d% on 2000 images", line) for line in lines)
    done = next(k for k, line in enumerate(lines) if re.match(r"\[done\] \d+ s in all; files written:", line))
    written = [line.strip() for line in lines[done + 1:] if line.startswith("  ")]
    expected = {str(out / f"{name}{suffix}") for name in ("micro_int8", "ds_cnn_micro_fp32", "ds_cnn_micro_fp16",
                                                            "ds_cnn_micro_dynamic", "ds_cnn_micro_int8")
                for suffix in (".tflite", ".json", "_model_data.h", "_model_data.cc", "_android.kt", "_ios.swift")} | \
        {str(out / "labels.txt"), str(out / "DigitFinder.kt")} | {str(out / f"{name}_{variant}.tflite") for name in ("micro_int8", "ds_cnn_micro_int8")
                                     for variant in ("web", "mobile")}
    assert set(written) == expected and all(out.joinpath(p).is_file() for p in written)
