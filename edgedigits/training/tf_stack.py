"""The one place that imports TensorFlow.

tensorflow-model-optimization needs Keras 2 (`tf_keras`), so TF_USE_LEGACY_KERAS=1 must be
set before TensorFlow is first imported. Everything else imports `tf`, `keras` and
`tfmot` from here, and only inside the functions that need them, so commands that
only run `.tflite` files never load TensorFlow.
"""

import os

from firmware_harness import native_stderr

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


try:
    with native_stderr.captured():  # TF's C++ start-up banner
        import tensorflow as tf
        import tensorflow_model_optimization as tfmot
        import tf_keras as keras

        tf.config.list_physical_devices()  # CUDA probing logs here, inside the capture
except ImportError as e:  # depends on the install
    from firmware_harness.errors import UserError

    raise UserError(
        f"this command needs TensorFlow ({e.name} is not installed); install the training extra: "
        "pip install 'edgedigits[train]'"
    ) from e

tf.get_logger().setLevel("ERROR")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and TensorFlow and make TF ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


__all__ = ["tf", "keras", "tfmot", "seed_everything"]
