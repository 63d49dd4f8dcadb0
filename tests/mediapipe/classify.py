"""Run in a virtual environment of its own with `mediapipe` (its opencv-contrib stays out of the project's):
MediaPipe Tasks' ImageClassifier on a model over images, and the model's TFLITE_METADATA read back with
MediaPipe's own generated flatbuffer reader.

    python classify.py MODEL.tflite IMAGES.npz  ->  JSON on stdout: {"answers": [...], "scores": [...], "metadata": {...}}

IMAGES.npz holds `x`, uint8 (N, H, W, 3) RGB images.
"""

import json
import sys

import mediapipe as mp
import numpy as np
from mediapipe.tasks import python as tasks
from mediapipe.tasks.metadata import metadata_schema_py_generated as schema
from mediapipe.tasks.python import vision


def metadata(path: str) -> dict:
    """The TFLITE_METADATA entry, parsed by MediaPipe's generated reader of metadata_schema.fbs."""
    from mediapipe.tasks.metadata import schema_py_generated as tflite

    content = bytearray(open(path, "rb").read())
    model = tflite.Model.GetRootAs(content, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == "TFLITE_METADATA":
            data = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            meta = schema.ModelMetadataT.InitFromPackedBuf(bytearray(data), 0)
            graph = meta.subgraphMetadata[0]
            image = graph.inputTensorMetadata[0].content.contentProperties
            labels = graph.outputTensorMetadata[0].associatedFiles[0]
            return {"name": meta.name.decode(), "color_space": int(image.colorSpace),
                    "size": [int(image.defaultSize.width), int(image.defaultSize.height)],
                    "labels_file": labels.name.decode(), "labels_type": int(labels.type)}
    return {}


def main() -> None:
    model_path, images_path = sys.argv[1:3]
    images = np.load(images_path)["x"]
    options = vision.ImageClassifierOptions(base_options=tasks.BaseOptions(model_asset_path=model_path),
                                            max_results=1)
    answers, scores = [], []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image in images:
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            best = result.classifications[0].categories[0]
            answers.append(int(best.category_name))
            scores.append(float(best.score))
    json.dump({"answers": answers, "scores": scores, "metadata": metadata(model_path)}, sys.stdout)


if __name__ == "__main__":
    main()
