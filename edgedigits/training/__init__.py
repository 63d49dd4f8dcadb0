"""Stage 1, training: data, the model registry, training, compression and the synthetic data (glyphs,
scenes). Imports only firmware_harness and the package root."""
