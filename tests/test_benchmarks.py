"""`benchmarks/run.py --quick`: the zoo table's code path end to end, on small slices (CI smoke test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")

from conftest import REPO  # noqa: E402

ZOO_MODELS = ("ds_cnn", "ds_cnn_fast", "ds_cnn_micro", "mlp", "lenet5", "cnn_basic", "cnn_bn", "cnn_deep")
ROW_KEYS = {"name", "format", "model", "backend", "backend_version", "input_dtype", "bytes", "gzip_bytes", "params",
            "macs", "accuracy", "n_eval", "invoke_us", "e2e_us", "images_per_s", "threads"}


def test_quick_zoo_run_writes_table_plot_and_json(tmp_path, mnist_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--cache", str(tmp_path / "cache"),
                           "--results", str(tmp_path / "results")], capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "EDGEDIGITS_DATA": str(mnist_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "results" / "results_quick.json").read_text())
    names = {row["name"] for row in result["rows"]}
    for model in ZOO_MODELS:
        assert {f"{model}_{fmt}" for fmt in ("fp32", "fp16", "dynamic", "int8")} <= names, model
    assert {"ds_cnn_pruned_qat_int8", "ds_cnn_fast_pruned_qat_int8", "ds_cnn_micro_pruned_qat_int8", "edgedigits_int8",
            "tfmot_tutorial"} <= names
    for row in result["rows"]:
        assert ROW_KEYS <= row.keys(), ROW_KEYS - row.keys()
        assert row["n_eval"] == 2000
        if row["format"].startswith("int8"):
            assert row["tflm_arena_bytes"] > 0
    assert {c["name"] for c in result["classical"]} == {"knn", "random_forest", "svm_rbf"}
    assert set(result["comparisons"]) == set(result["comparisons_ds_cnn_fast"]) == {"vs_cnn_deep_int8", "vs_tfmot_tutorial"}
    table = (tmp_path / "results" / "results_quick.md").read_text()
    assert "| **edgedigits_int8** |" in table and "classical baseline" in table
    assert (tmp_path / "results" / "pareto_quick.png").stat().st_size > 10_000
    assert (tmp_path / "results" / "confusion_edgedigits_int8_quick.png").is_file()
    assert (tmp_path / "results" / "curves_ds_cnn_quick.png").is_file()
    assert sorted(result["trained_this_run"]) == sorted(ZOO_MODELS), "an empty cache trains every model"
    assert result["same_file_as_shipped"] == [], "a 2,000-image run cannot reproduce the shipped model"
