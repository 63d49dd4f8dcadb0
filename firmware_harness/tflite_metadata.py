"""Read the standard TFLite metadata (`TFLITE_METADATA`) of a `.tflite`: no TensorFlow, no tflite-support.

The entry is a `ModelMetadata` flatbuffer (tflite-support's `metadata_schema.fbs`, identifier "M001") in the
model's metadata list; its associated files (the labels) are a zip archive appended to the model. Only the
fields a digit classifier uses are read; `edgedigits.export.standard_metadata` writes them.
"""

from __future__ import annotations

import io
import zipfile

from firmware_harness.errors import UserError
from firmware_harness.tflite_file import FlatReader, MalformedModel, parse

ENTRY = "TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}
FILE_TYPES = {0: "UNKNOWN", 1: "DESCRIPTIONS", 2: "TENSOR_AXIS_LABELS", 3: "TENSOR_VALUE_LABELS",
              4: "TENSOR_AXIS_SCORE_CALIBRATION", 5: "VOCABULARY"}
IMAGE_PROPERTIES, NORMALIZATION_OPTIONS = 2, 1  # union member numbers
MAX_APPENDED = 1 << 20  # a label file is a few bytes; more than this in the appended archive is not read


def read(content: bytes) -> dict:
    """The model's standard metadata as a dict, with the appended files' text under "files"; raise
    UserError if the model has none or it is malformed."""
    model = parse(content)
    if ENTRY not in model.metadata:
        raise UserError(f"the model has no {ENTRY} entry; package it with `edgedigits package MODEL.tflite`")
    buf = model.metadata[ENTRY]
    if len(buf) < 8 or buf[4:8] != FILE_IDENTIFIER:
        raise MalformedModel(f"the {ENTRY} entry is not a ModelMetadata flatbuffer (no 'M001' identifier)")
    r = FlatReader(buf)
    root = r.root()
    graphs = r.tables(root, 3)
    return {
        "name": r.string(root, 0), "description": r.string(root, 1), "version": r.string(root, 2),
        "author": r.string(root, 4), "license": r.string(root, 5), "min_parser_version": r.string(root, 7),
        "inputs": [_tensor(r, t) for t in (r.tables(graphs[0], 2) if graphs else [])],
        "outputs": [_tensor(r, t) for t in (r.tables(graphs[0], 3) if graphs else [])],
        "files": appended_files(content),
    }


def _tensor(r: FlatReader, table: int) -> dict:
    tensor = {"name": r.string(table, 0), "description": r.string(table, 1)}
    content = r.target(table, 3)
    if content is not None and r.scalar(content, 0, "<B") == IMAGE_PROPERTIES:
        image = r.target(content, 1)
        size = r.target(image, 1)
        tensor["image"] = {"color_space": COLOR_SPACES.get(r.scalar(image, 0, "<B"), "?"),
                           "size": None if size is None else [r.scalar(size, 0, "<I"), r.scalar(size, 1, "<I")]}
    for unit in r.tables(table, 4):
        if r.scalar(unit, 0, "<B") == NORMALIZATION_OPTIONS:
            options = r.target(unit, 1)
            tensor["normalization"] = {"mean": r.numbers(options, 0, "f"), "std": r.numbers(options, 1, "f")}
    tensor["associated_files"] = [{"name": r.string(f, 0), "type": FILE_TYPES.get(r.scalar(f, 2, "<b"), "?")}
                                  for f in r.tables(table, 6)]
    return tensor


def appended_files(content: bytes) -> dict[str, str]:
    """The text files zip-appended to the model (its associated files), by name; {} if there are none."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            infos = [i for i in archive.infolist() if i.file_size <= MAX_APPENDED]
            return {i.filename: archive.read(i).decode("utf-8", errors="replace") for i in infos}
    except (zipfile.BadZipFile, OSError, ValueError):
        return {}
