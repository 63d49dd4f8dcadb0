"""The standard TFLite metadata (`TFLITE_METADATA`) that Android Studio's ML Model Binding, MediaPipe Tasks
and the TFLite Task Library read: a `ModelMetadata` flatbuffer in the model's metadata list, and the label
file zip-appended to the `.tflite`.

Written with the `flatbuffers` runtime (a dependency of LiteRT and TensorFlow) against the public schema,
tflite-support's `metadata_schema.fbs` 1.1.0 (file identifier "M001"); each table's field slots below are
its fields in the schema's order, a union taking two. `firmware_harness.tflite_metadata` reads it back.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from edgedigits.export import tflite_edit
from firmware_harness import tflite_file
from firmware_harness.contract import LABELS
from firmware_harness.device import package_version
from firmware_harness.tflite_metadata import ENTRY, FILE_IDENTIFIER

AUTHOR, LICENCE = "edgedigits", "Apache-2.0"
ABOUT = ("Reads one handwritten digit, 0-9. Best with the digit framed as MNIST was: its longest side 20 px, "
         "its centre of mass at the centre; edgedigits' finder frames each digit it finds in a photo so.")
GATE_ABOUT = ("Tells whether one mark, framed as MNIST framed its digits, is a digit at all or a letter, a sign or a "
              "scribble; edgedigits multiplies the digit model's confidence by this model's chance of 'digit'.")
MIN_PARSER_VERSION = "1.0.0"  # the fields written here are all in 1.0.0
LABELS_FILE = "labels.txt"
TENSOR_AXIS_LABELS = 2  # AssociatedFileType
RGB, GRAYSCALE = 1, 2  # ColorSpaceType
FEATURE_PROPERTIES, IMAGE_PROPERTIES = 1, 2  # ContentProperties union
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union


@dataclass(frozen=True)
class Description:
    """What the metadata says about a digit classifier."""

    name: str
    description: str
    version: str
    author: str
    licence: str
    color_space: int  # RGB or GRAYSCALE
    size: int  # the input's width and height
    float_input: bool  # a float input needs NormalizationOptions; a quantized one carries its own parameters
    ink: str  # "white on black" or "dark on light", said in the input's description
    labels: tuple[str, ...]
    scores: str  # what the output's values are: logits or probabilities


def describe_digits(content: bytes, name: str, *, ink: str, scores: str, labels: list[str] = LABELS,
                    about: str = ABOUT) -> Description:
    """The description of a model of 28x28 marks (the digit model; the gate with its own `labels` and `about`)
    from its own input tensor (channels, float or quantized)."""
    info = tflite_file.parse(content)
    image = info.tensors[info.inputs[0]]
    return Description(name=name, description=about, version=package_version("edgedigits") or "0", author=AUTHOR,
                       licence=LICENCE, color_space=RGB if image.shape[-1] == 3 else GRAYSCALE, size=image.shape[1],
                       float_input=image.type_code == 0, ink=ink, labels=tuple(labels), scores=scores)


def _strings(builder, *values: str | None) -> list[int | None]:
    return [None if v is None else builder.CreateString(v) for v in values]


def _table(builder, fields: list[tuple[str, int, object]]) -> int:
    """A table from (kind, slot, value): kind "offset" (a string, vector or table), "byte" or "uint"."""
    builder.StartObject(max(slot for _, slot, _ in fields) + 1 if fields else 0)
    for kind, slot, value in fields:
        if value is None:
            continue
        if kind == "offset":
            builder.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind == "byte":
            builder.PrependUint8Slot(slot, value, 0)
        else:
            builder.PrependUint32Slot(slot, value, 0)
    return builder.EndObject()


def _vector_of_offsets(builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _vector_of_floats(builder, values: list[float]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(value)
    return builder.EndVector()


def metadata_flatbuffer(d: Description) -> bytes:
    """The `ModelMetadata` flatbuffer of `d`."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    # input: an image
    size = _table(b, [("uint", 0, d.size), ("uint", 1, d.size)])
    image = _table(b, [("byte", 0, d.color_space), ("offset", 1, size)])
    content_in = _table(b, [("byte", 0, IMAGE_PROPERTIES), ("offset", 1, image)])
    units = None
    if d.float_input:
        mean, std = _vector_of_floats(b, [0.0]), _vector_of_floats(b, [255.0])
        normalization = _table(b, [("offset", 0, mean), ("offset", 1, std)])
        unit = _table(b, [("byte", 0, NORMALIZATION_OPTIONS), ("offset", 1, normalization)])
        units = _vector_of_offsets(b, [unit])
    stats_in = _table(b, [("offset", 0, _vector_of_floats(b, [255.0 if not d.float_input else 1.0])),
                          ("offset", 1, _vector_of_floats(b, [0.0]))])
    in_name, in_text = _strings(b, "image", f"a {d.size}x{d.size} image of one digit, {d.ink}; "
                                            "apps resize their picture to it")
    tensor_in = _table(b, [("offset", 0, in_name), ("offset", 1, in_text), ("offset", 3, content_in),
                           ("offset", 4, units), ("offset", 5, stats_in)])
    # output: a score per label
    file_name, file_text = _strings(b, LABELS_FILE, "the digit of each output, one per line")
    labels = _table(b, [("offset", 0, file_name), ("offset", 1, file_text), ("byte", 2, TENSOR_AXIS_LABELS)])
    feature = _table(b, [])
    content_out = _table(b, [("byte", 0, FEATURE_PROPERTIES), ("offset", 1, feature)])
    out_name, out_text = _strings(b, "scores", f"one score per digit 0-9: {d.scores}; the highest is the digit")
    tensor_out = _table(b, [("offset", 0, out_name), ("offset", 1, out_text), ("offset", 3, content_out),
                            ("offset", 6, _vector_of_offsets(b, [labels]))])
    graph = _table(b, [("offset", 2, _vector_of_offsets(b, [tensor_in])),
                       ("offset", 3, _vector_of_offsets(b, [tensor_out]))])
    name, text, version, author, licence, parser = _strings(b, d.name, d.description, d.version, d.author,
                                                            d.licence, MIN_PARSER_VERSION)
    root = _table(b, [("offset", 0, name), ("offset", 1, text), ("offset", 2, version),
                      ("offset", 3, _vector_of_offsets(b, [graph])), ("offset", 4, author), ("offset", 5, licence),
                      ("offset", 7, parser)])
    b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def with_standard_metadata(content: bytes, d: Description) -> bytes:
    """`content` with `TFLITE_METADATA` for `d` and the label file zip-appended, as tflite-support's
    MetadataPopulator stores it (uncompressed). An earlier entry is replaced; repacking the flatbuffer drops
    an earlier appended archive (as every `tflite_edit` rewrite does, so this comes last)."""
    model = tflite_edit.with_metadata(content, ENTRY, metadata_flatbuffer(d))
    buffer = io.BytesIO(model)
    buffer.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(zipfile.ZipInfo(LABELS_FILE, date_time=(1980, 1, 1, 0, 0, 0)), "\n".join(d.labels) + "\n")
    return buffer.getvalue()
