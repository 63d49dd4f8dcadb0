"""edgedigits: train, compress, export and run handwritten-digit models on edge devices."""

import os

# tensorflow-model-optimization needs Keras 2 (tf_keras), chosen before TensorFlow is first imported;
# set here, by the desktop package, so that a device command run through it (bench --backend tensorflow)
# leaves TensorFlow loadable for training in the same process. The device runtime knows nothing of Keras.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

DEFAULT_MODEL = "ds_cnn_fast"  # what `train` and `export` build by default; the shipped model is its export
MODEL_SUMMARY = "model_summary.json"  # the registry as built: names, params, MACs, zoo settings; read without TensorFlow


def model_summary() -> list[dict]:
    """The registry as built, from model_summary.json: what `models` prints and the model zoo trains."""
    import json
    from importlib import resources

    return json.loads(resources.files("edgedigits").joinpath(MODEL_SUMMARY).read_text(encoding="utf-8"))


def __getattr__(name: str):
    """`from edgedigits import DigitReader` (TensorFlow-free; imported only when asked for)."""
    if name == "DigitReader":
        from firmware_harness.reader import DigitReader

        return DigitReader
    raise AttributeError(f"module 'edgedigits' has no attribute {name!r}")
