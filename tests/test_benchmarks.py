"""`benchmarks/model_zoo.py --quick` and `seed_spread.py --quick`: the zoo's code paths end to end on small slices."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from firmware_harness import tflite_file

pytest.importorskip("tensorflow")

from conftest import REPO  # noqa: E402

from edgedigits.training import models  # noqa: E402
from edgedigits.export.formats import FORMATS  # noqa: E402

COMPRESSED = [name for name, entry in models.entries().items() if entry.compressed]
ROW_KEYS = {"name", "format", "model", "backend", "backend_version", "input_dtype", "bytes", "gzip_bytes", "params",
            "macs", "accuracy", "n_eval", "invoke_us", "e2e_us", "images_per_s", "threads"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One checkpoint cache for the module: the seed spread reuses the zoo run's seed-0 models."""
    return tmp_path_factory.mktemp("cache")


def run_benchmark(script: str, *args: str, mnist_path) -> None:
    # the time limit guards against a hang, not a slow machine: the quick zoo takes 16 min here, twice that when
    # another process keeps both cores busy
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--quick", *args], capture_output=True,
                          text=True, timeout=3600, env={**os.environ, "EDGEDIGITS_DATA": str(mnist_path)})
    assert done.returncode == 0, done.stderr[-3000:]


SMOKE_MODELS = ("ds_cnn_micro", "cnn_deep")  # the compressed chain and the baseline the comparisons need


def test_quick_zoo_run_writes_table_plot_and_json(cache, tmp_path, mnist_path):
    """The zoo's code paths on two registry models (the whole registry is the benchmark's run, not CI's: 13
    models take 16 min here even on 2,000-image slices)."""
    run_benchmark("model_zoo.py", "--models", *SMOKE_MODELS, "--cache", str(cache), "--results",
                  str(tmp_path / "results"), mnist_path=mnist_path)
    result = json.loads((tmp_path / "results" / "results_quick.json").read_text())
    names = {row["name"] for row in result["rows"]}
    for model in SMOKE_MODELS:
        assert {f"{model}_{fmt}" for fmt in FORMATS} <= names, model
    assert {"ds_cnn_micro_pruned_qat_int8", "edgedigits_int8", "tfmot_tutorial"} <= names
    assert not any(row["name"].startswith(("ds_cnn_fast", "lenet5")) for row in result["rows"]), "--models is a filter"
    assert COMPRESSED == ["ds_cnn", "ds_cnn_fast", "ds_cnn_micro"]
    for row in result["rows"]:
        assert ROW_KEYS <= row.keys(), ROW_KEYS - row.keys()
        assert row["n_eval"] == 2000
        if row["format"].startswith("int8"):
            assert row["tflm_arena_bytes"] > 0
    assert {c["name"] for c in result["classical"]} == {"knn", "random_forest", "svm_rbf"}
    assert set(result["comparisons"]) == {"vs_cnn_deep_int8", "vs_tfmot_tutorial"}
    assert "comparisons_ds_cnn" not in result, "ds_cnn was not in this run"
    deep = result["comparisons"]["vs_cnn_deep_int8"]  # the paired counts account for the whole accuracy gap
    assert deep["only_this_right"] - deep["only_cnn_deep_right"] == round(deep["accuracy_difference_pp"] / 100 * 2000)
    assert 0 < deep["mcnemar_p"] <= 1
    table = (tmp_path / "results" / "results_quick.md").read_text()
    assert "| **edgedigits_int8** |" in table and "classical baseline" in table
    assert "every float model trained in this run" in table.splitlines()[0]
    assert (tmp_path / "results" / "pareto_quick.png").stat().st_size > 10_000
    assert (tmp_path / "results" / "confusion_edgedigits_int8_quick.png").is_file()
    assert (tmp_path / "results" / "curves_ds_cnn_micro_quick.png").is_file()
    assert sorted(result["trained_this_run"]) == sorted(SMOKE_MODELS), "an empty cache trains every model run"
    assert result["same_file_as_shipped"] == [], "a 2,000-image run cannot reproduce the shipped model"
    # the tutorial is built after the zoo: its tensor names (and so its bytes) must not count the zoo's layers
    tutorial = tflite_file.parse((cache / "quick" / "tfmot_tutorial.tflite").read_bytes()).tensors
    assert any(t.name.startswith("sequential/quant_conv2d/") for t in tutorial), [t.name for t in tutorial][:5]


def test_quick_seed_spread_trains_each_seed_and_summarises(cache, tmp_path, mnist_path):
    run_benchmark("seed_spread.py", "--models", "ds_cnn_micro", "cnn_deep", "--seeds", "0", "1", "--cache", str(cache),
                  "--results", str(tmp_path / "results"), mnist_path=mnist_path)
    result = json.loads((tmp_path / "results" / "seed_spread_quick.json").read_text())
    assert [(r["model"], r["seed"]) for r in result["runs"]] == [
        ("ds_cnn_micro", 0), ("ds_cnn_micro", 1), ("cnn_deep", 0), ("cnn_deep", 1)]
    for folder, name in (("ds_cnn_micro", "ds_cnn_micro_pruned_qat_int8"), ("cnn_deep", "cnn_deep_int8")):
        seed0, seed1 = (cache / "quick" / f / f"{name}.tflite" for f in (folder, f"{folder}_seed1"))
        assert seed0.read_bytes() != seed1.read_bytes(), "another seed is another training run"
    spread = result["summary"]["ds_cnn_micro"]["pruned_qat_int8"]
    assert spread["n"] == 2 and spread["min"] <= spread["mean"] <= spread["max"]
    deep = result["summary"]["cnn_deep"]["int8"]["mean"]
    assert result["vs_cnn_deep_int8"] == {"ds_cnn_micro": pytest.approx(100 * (spread["mean"] - deep), abs=1e-3)}
    table = (tmp_path / "results" / "seed_spread_quick.md").read_text()
    assert "| ds_cnn_micro | int8 pruned+QAT |" in table and "| cnn_deep | float (Keras) |" in table


def test_a_failing_zoo_row_is_recorded_and_the_others_still_run(tmp_path, mnist_path):
    """One model whose chain fails (here: not in the registry) must not end an hour's run."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import model_zoo
    from zoo import ZooEntry

    from edgedigits.training import data

    splits = data.load_splits(mnist_path, limit=300)
    entries = [ZooEntry("no_such_model", 1), ZooEntry("mlp", 1)]
    files, trained, _, failed = model_zoo.export_entries(entries, splits, tmp_path / "cache", True, tmp_path, "_quick")
    assert [f["model"] for f in failed] == ["no_such_model"] and "no_such_model" in failed[0]["error"]
    assert trained == ["mlp"] and all(path.is_file() for _, path in files.values())
    assert set(files) == {f"mlp_{fmt}" for fmt in FORMATS}
