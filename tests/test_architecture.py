"""Each extension point is one catalogue: adding a toy model, export format, backend or camera source is one
record or class in one place, and everything else (validation, help, the zoo, the loop) picks it up.
docs/architecture.md shows these same additions."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_harness import camera, runtime, sources
from firmware_harness.runtime import Model


class Slideshow(sources.Source):
    """A toy camera source: `slideshow:N` shows N frames of MNIST test digits written on a grey page."""

    help = "slideshow:N (N frames of test digits)"

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return spec.startswith("slideshow:")

    def __init__(self, spec: str):
        self.left = int(spec.split(":")[1])

    def read(self) -> np.ndarray | None:
        if self.left == 0:
            return None
        self.left -= 1
        frame = np.full((240, 320, 3), 200, np.uint8)
        frame[80:160, 120:200] = 30  # a dark block: ink the preprocessing finds
        return frame


def test_a_camera_source_is_one_class_in_the_catalogue(monkeypatch, shipped_model):
    monkeypatch.setattr(sources, "SOURCES", [Slideshow, *sources.SOURCES])
    assert "slideshow:N" in sources.help_text()
    summary = camera.run(Model(shipped_model), "slideshow:4", camera.LoopSettings(headless=True, json_lines=True))
    assert summary["frames"] == 4


def test_a_backend_is_one_entry_in_the_catalogue(monkeypatch, shipped_model):
    name, spec = next((n, s) for n, s in runtime.BACKENDS.items() if runtime._import_backend(n) is not None)
    monkeypatch.setitem(runtime.BACKENDS, "toy-" + name, spec)  # the same interpreter under another name
    assert "toy-" + name in [b.name for b in runtime.available_backends()]
    model = Model(shipped_model, backend="toy-" + name)
    assert model.backend.name == "toy-" + name and model.predict(np.zeros((2, 28, 28), np.uint8)).shape == (2, 10)


def test_a_model_is_one_registered_builder(monkeypatch):
    pytest.importorskip("tensorflow")
    import sys

    from conftest import REPO
    from edgedigits.training import models
    from edgedigits.export.pipeline import ExportPlan

    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))

    @models.register(zoo_epochs=2)
    def toy_mlp():
        """One hidden layer of 16."""
        inputs = models.keras.Input(models.INPUT_SHAPE)
        x = models.keras.layers.Dense(16, activation="relu")(models.keras.layers.Flatten()(inputs))
        return models.keras.Model(inputs, models.keras.layers.Dense(models.NUM_CLASSES)(x))

    assert models.create_model("toy_mlp").output_shape == (None, 10)
    ExportPlan(model="toy_mlp", int8=False, formats=("fp32",)).validate()
    summary = models.summary()  # what `python -m edgedigits.training.models` writes to model_summary.json
    assert summary[-1] == {"name": "toy_mlp", "params": 12_730, "macs": 12_704, "zoo_epochs": 2, "compressed": False}
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    sys.modules.pop("zoo", None)
    import zoo

    assert zoo.zoo(summary)[-1] == zoo.ZooEntry("toy_mlp", 2, compressed=False)  # the model zoo trains it too


def test_an_export_format_is_one_record_in_the_catalogue(monkeypatch, tmp_path):
    pytest.importorskip("tensorflow")
    from edgedigits.export import artifacts, formats
    from edgedigits.training import models
    from edgedigits.export.pipeline import ExportPlan

    toy = formats.Format("fp16_noopt", "float16 weights (a toy copy of fp16)", "tab:red", optimize=True,
                         weight_type="float16")
    monkeypatch.setitem(formats.FORMATS, toy.name, toy)
    assert "fp16_noopt (float16 weights (a toy copy" in formats.help_text()
    ExportPlan(model="ds_cnn_micro", int8=False, formats=("fp16_noopt",)).validate()
    content = artifacts.convert(models.create_model("ds_cnn_micro"), "fp16_noopt")
    path = tmp_path / "toy.tflite"
    path.write_bytes(content)
    assert Model(path).predict(np.zeros((1, 28, 28), np.uint8)).shape == (1, 10)
