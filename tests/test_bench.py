"""`python -m firmware_harness bench` / `edgedigits bench`: the table, the JSON, the errors.

No TensorFlow here: this file also runs in the tflite-runtime + numpy<2 environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli

ROW_KEYS = {"model", "backend", "backend_version", "input_dtype", "bytes", "gzip_bytes", "params", "macs",
            "accuracy", "n_eval", "invoke_us", "e2e_us", "images_per_s", "threads"}
DEVICE_KEYS = {"cpu", "arch", "cores", "os", "python", "numpy", "backend"}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory, mnist_path, shipped_model):
    out = tmp_path_factory.mktemp("bench")
    result = run_cli("bench", str(shipped_model), "--data", str(mnist_path), "--runs", "300", "--warmup", "20",
                     "--json", str(out / "bench.json"), "--markdown", str(out / "bench.md"),
                     module="firmware_harness.__main__")
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text()


def test_json_has_every_field(bench_run):
    _, data, _ = bench_run
    assert DEVICE_KEYS <= data["device"].keys()
    (row,) = data["rows"]
    assert ROW_KEYS <= row.keys(), ROW_KEYS - row.keys()
    assert {"p50", "p90", "p99", "mean"} <= row["invoke_us"].keys() and "p50" in row["e2e_us"]
    assert row["n_eval"] == 10_000 and row["input_dtype"] == "int8" and row["threads"] == 1
    assert row["runs"] == 300 and row["instances"] == 5, "300 timed runs pooled over 5 fresh interpreters"
    assert 0 < row["invoke_us"]["p50"] <= row["invoke_us"]["p90"] <= row["invoke_us"]["p99"]
    assert row["e2e_us"]["p50"] >= row["invoke_us"]["p50"]


def test_the_whole_reading_path_is_timed_on_photos(bench_run):
    """20 photo-sized rows read as predict reads them (finder, model, gate): a time per photo that holds the
    finder's, and rows of clean MNIST test digits on paper read right."""
    _, data, markdown = bench_run
    (row,) = data["rows"]
    assert row["photos"] == 20 and row["photo_size"] == [480, 640] and row["gate"]
    assert 0 < row["finder_ms"]["p50"] < row["photo_ms"]["p50"] <= row["photo_ms"]["p90"]
    assert row["photo_exact"] >= 0.9, row["photo_exact"]
    assert "| photo p50 ms | finder ms | rows exact |" in markdown


def test_table_is_printed_and_written(bench_run):
    result, data, markdown = bench_run
    assert result.stdout == markdown
    assert markdown.startswith("Machine: ") and "| model | input | backend |" in markdown
    assert f"| {data['rows'][0]['model']} | int8 |" in markdown


def test_accuracy_matches_evaluate(bench_run, mnist_path, shipped_model, tmp_path):
    _, data, _ = bench_run
    row = data["rows"][0]
    result = run_cli("evaluate", str(shipped_model), "--data", str(mnist_path), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    evaluated = json.loads((tmp_path / "evaluation.json").read_text())
    assert abs(row["accuracy"] - evaluated["accuracy"]) <= 0.0001


def test_evaluating_the_shipped_model_writes_to_the_working_folder(mnist_path, shipped_model, tmp_path):
    """Not beside the model: the shipped model lives in the installed package."""
    def package_files() -> set[str]:
        return {p.name for p in shipped_model.parent.iterdir()} - {"__pycache__"}

    before = package_files()
    result = run_cli("evaluate", "--data", str(mnist_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())["model"] == str(shipped_model)
    assert package_files() == before


def test_edgedigits_bench_forwards_and_defaults_to_the_shipped_model(mnist_path, tmp_path):
    result = run_cli("bench", "--data", str(mnist_path), "--runs", "20", "--warmup", "2", "--limit", "200",
                     "--json", str(tmp_path / "b.json"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "b.json").read_text())["rows"][0]["model"] == "edgedigits_int8"


@pytest.mark.parametrize("args,fragment", [
    (["missing.tflite"], "model not found"),
    (["--backend", "tpu"], "invalid choice: 'tpu'"),
    (["--data", "nowhere.npz"], "data not found"),
    (["--runs", "0"], "--runs must be at least 1"),
    (["--instances", "0"], "--instances must be at least 1"),
    (["--photos", "-1"], "--photos must be 0 or more"),
])
def test_bench_errors_are_one_line(args, fragment, mnist_path, tmp_path):
    data = [] if "--data" in args else ["--data", str(mnist_path)]
    result = run_cli("bench", *args, *data, cwd=tmp_path)
    assert_one_line_error(result, 2, fragment)


def test_no_data_anywhere_says_what_to_set(tmp_path, shipped_model):
    result = run_cli("bench", str(shipped_model), env={"EDGEDIGITS_DATA": "", "KERAS_HOME": str(tmp_path)})
    assert_one_line_error(result, 2, "EDGEDIGITS_DATA")


NO_TF = """
import sys
from edgedigits.launch import main
sys.argv = ["edgedigits", *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    code = e.code
print("TENSORFLOW_LOADED" if "tensorflow" in sys.modules else "NO_TENSORFLOW", code)
"""


@pytest.mark.parametrize("command", ["bench", "evaluate", "models", "--help"])
def test_runtime_commands_never_import_tensorflow(command, mnist_path, shipped_model, tmp_path):
    import subprocess
    import sys

    args = {"bench": ["bench", str(shipped_model), "--data", str(mnist_path), "--runs", "5", "--limit", "100"],
            "evaluate": ["evaluate", str(shipped_model), "--data", str(mnist_path), "--out", str(tmp_path)],
            "models": ["models"], "--help": ["--help"]}[command]
    result = subprocess.run([sys.executable, "-c", NO_TF, *args], capture_output=True, text=True, timeout=300)
    assert "NO_TENSORFLOW 0" in result.stdout, result.stdout[-1000:] + result.stderr[-2000:]


def test_same_named_models_get_rows_that_tell_them_apart(tmp_path, shipped_model, mnist_path):
    from firmware_harness.bench import distinct_names

    assert distinct_names([Path("x/a/m.tflite"), Path("x/b/m.tflite"), Path("n.tflite")]) == ["a/m", "b/m", "n"]
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / shipped_model.name).write_bytes(shipped_model.read_bytes())
    result = run_cli("bench", str(tmp_path / "a" / shipped_model.name), str(tmp_path / "b" / shipped_model.name),
                     "--data", str(mnist_path), "--limit", "200", "--runs", "20", "--warmup", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("|")[1].strip() for line in result.stdout.splitlines() if line.startswith("| ") and "int8" in line]
    assert rows == ["a/edgedigits_int8", "b/edgedigits_int8"]


def test_every_shipped_file_gets_a_row_even_the_ones_it_cannot_measure(tmp_path, shipped_model, mnist_path):
    """`bench pretrained/*.tflite`: the digit gate (two scores, not ten) and the app variant (RGB, for MediaPipe) are
    rows that say why, not the end."""
    files = sorted(shipped_model.parent.glob("*.tflite"))
    result = run_cli("bench", *map(str, files), "--data", str(mnist_path), "--limit", "200", "--runs", "20",
                     "--warmup", "2", "--json", str(tmp_path / "bench.json"))
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert [row["path"] for row in rows] == [str(f) for f in files]
    refused = [row for row in rows if "error" in row]
    assert [Path(row["path"]).name for row in refused] == [f.name for f in files if "gate" in f.name or "mobile" in f.name]
    assert all(("10 scores" if "gate" in row["path"] else "is not a 28x28 image") in row["error"] for row in refused)
    assert all(row["accuracy"] > 0.95 for row in rows if "error" not in row)
    table_rows = [line for line in result.stdout.splitlines() if line.startswith("| edgedigits")]
    assert len(table_rows) == len(files) and sum("not measured" in line for line in table_rows) == len(refused)
    assert result.returncode == 2 and result.stderr.count("error:") == len(refused)  # as predict: said, and counted
