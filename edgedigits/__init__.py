"""edgedigits: train, compress, export and run handwritten-digit models on edge devices."""

DEFAULT_MODEL = "ds_cnn_fast"  # what `train` and `export` build by default; the shipped model is its export
MODEL_SUMMARY = "model_summary.json"  # the registry's names, params and MACs, for `models` without TensorFlow
