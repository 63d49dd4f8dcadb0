"""`DigitReader`: the Python API for apps on a Pi or a desktop (no TensorFlow), also `edgedigits.DigitReader`.

    from edgedigits import DigitReader

    reader = DigitReader()                   # the shipped model; DigitReader("my.tflite", threads=2) for another
    reading = reader.read("photo.jpg")       # a path, or a BGR / gray numpy image
    print(reading.digits, reading.confidences, reading.boxes, reading.line_texts())
    probabilities = reader.classify(reading.crops)  # (N, 28, 28) MNIST-style digits -> (N, 10)

`edgedigits predict` reads its files through it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from firmware_harness import images, recognize
from firmware_harness.errors import UserError
from firmware_harness.recognize import Reading
from firmware_harness.runtime import Model, default_model


class DigitReader:
    """Reads handwritten digits in images with a TFLite digit model."""

    def __init__(self, model: str | os.PathLike | Model | None = None, backend: str | None = None,
                 threads: int = 1, max_pixels: int | None = None, gate: bool = True):
        """`model`: a .tflite file (default: the shipped int8 model) or a loaded `Model`; `backend`: litert,
        tflite-runtime or tensorflow (default: the first that imports); `max_pixels`: the largest image read
        (default: 40 MP, or $EDGEDIGITS_MAX_PIXELS); `gate`: weigh each confidence by the shipped digit
        gate's chance that the mark is a digit at all (letters and signs then read with low confidence)."""
        if not isinstance(model, Model):
            path = Path(model) if model is not None else default_model()
            if path is None:
                raise UserError("no model given and no shipped model installed; pass a .tflite file")
            model = Model(path, backend=backend, threads=threads)
        self.model = model
        self.gate = recognize.gate_for(model) if gate else None
        self.max_pixels = max_pixels or images.pixel_budget()

    def read(self, image: np.ndarray | str | os.PathLike) -> Reading:
        """Every digit in an image file or a BGR, BGRA or gray image array (uint8, uint16, or floats in 0-1 or
        0-255), in reading order (lines top to bottom): `.digits`, `.confidences`, `.boxes` ([x, y, w, h]),
        `.lines`, `.line_texts()`."""
        if isinstance(image, np.ndarray):
            image = images.as_uint8(image)
        else:
            image = images.read(Path(image), max_pixels=self.max_pixels)
        return recognize.read(self.model, image, self.gate)

    def classify(self, digits: np.ndarray) -> np.ndarray:
        """The model's probabilities (N, 10) for N digits already framed as in MNIST: (N, 28, 28) uint8,
        white ink on black, or floats in [0, 1] (the gate does not weigh them: these are digits)."""
        digits = np.asarray(digits)
        if digits.ndim == 2:
            digits = digits[None]
        if digits.shape[1:3] != (28, 28):
            raise UserError(f"classify takes (N, 28, 28) digits framed as in MNIST, not shape {digits.shape}")
        return recognize.softmax(self.model.predict(digits))
