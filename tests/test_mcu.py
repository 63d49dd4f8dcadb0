"""`edgedigits mcu`: the tensor arena search and the agreement check, in the real TFLite Micro interpreter."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tflite_micro")

from conftest import run_cli  # noqa: E402
from firmware_harness import mcu  # noqa: E402
from firmware_harness.runtime import Model  # noqa: E402


def _runs(content: bytes, arena: int, sample) -> bool:
    return mcu._run(content, arena, sample).ok  # noqa: SLF001


def _recorded_total(content: bytes, sample) -> int:
    """The arena TFLM's recording allocator reports after a run with plenty of room."""
    return mcu.recorded_arena(mcu._run(content, mcu.ARENA_LIMIT, sample).log)  # noqa: SLF001


def test_arena_is_the_smallest_that_runs_found_from_the_recorded_total(shipped_model, test_images, monkeypatch):
    model = Model(shipped_model)
    sample = model.quantize(test_images[0][:1])
    arenas = []
    real_run = mcu._run  # noqa: SLF001

    def counted_run(content, arena, inputs):
        arenas.append(arena)
        return real_run(content, arena, inputs)

    monkeypatch.setattr(mcu, "_run", counted_run)
    arena = mcu.arena_bytes(model.content, sample)
    monkeypatch.undo()
    assert arenas == [mcu.ARENA_LIMIT, arena, arena - mcu.ARENA_STEP], "no bisection when the recorded total is exact"
    assert _runs(model.content, arena, sample) and not _runs(model.content, arena - mcu.ARENA_STEP, sample)


def test_arena_search_goes_up_when_prepare_needs_more_than_recorded(test_images):
    pytest.importorskip("tensorflow")
    from edgedigits.export import artifacts, tflite_edit
    from edgedigits.training import models

    x_test = test_images[0]
    content = tflite_edit.strip(artifacts.convert(models.create_model("mlp"), "int8", calibration_images=x_test[:100]))
    sample = Model(content).quantize(x_test[:1])
    arena = mcu.arena_bytes(content, sample)
    assert arena > _recorded_total(content, sample), "this model's Prepare needs scratch beyond what TFLM keeps"
    assert _runs(content, arena, sample) and not _runs(content, arena - mcu.ARENA_STEP, sample)


def test_mcu_command_reports_ops_arena_and_agreement(shipped_model, mnist_path, tmp_path):
    result = run_cli("mcu", "--data", str(mnist_path), "--limit", "300", "--json", str(tmp_path / "mcu.json"),
                     module="firmware_harness.__main__")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "mcu.json").read_text())
    assert report["missing_ops"] == [] and "CONV_2D" in report["ops"] and "FULLY_CONNECTED" in report["ops"]
    assert report["n_compared"] == 300 and report["agreement"] >= 0.99
    assert report["arena_bytes"] == json.loads(shipped_model.with_suffix(".json").read_text())["tensor_arena_bytes"]
    assert f"tensor arena: {report['arena_bytes']:,} bytes" in result.stdout
