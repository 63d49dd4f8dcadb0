"""The browser page as a set of static files, for `edgedigits serve` and `edgedigits web DIR`.

The page runs the model itself (LiteRT.js, OpenCV.js; both vendored under
`edgedigits/serving/web/vendor` by `web/vendor.py`), works offline after the first visit (a service
worker caches every file listed here) and can be added to a phone's home screen (the
manifest). `model.tflite` is the browser's variant of the chosen model (`web_model`): the
`<name>_web.tflite` that `edgedigits export` wrote beside it, or made here;
`model.json` describes it: name, labels, input and output quantization, and its card. For a
model of the digits 0-9, `gate.tflite` is the digit gate's variant (`edgedigits/builds/gate.py`), which
weighs each confidence as the harness does.
"""

from __future__ import annotations

import hashlib
import html
import json
from importlib import resources
from pathlib import Path

from edgedigits.export import web_model
from firmware_harness import atomic, bounded_json, contract, tflite_file
from firmware_harness.errors import UserError
from firmware_harness.runtime import check_digit_model, gate_path, read_model_bytes

SKIPPED = ("__init__.py", "__pycache__")
MARKER = ".edgedigits-web"  # in a folder `edgedigits web` wrote
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".json": "application/json", ".webmanifest": "application/manifest+json",
                 ".wasm": "application/wasm", ".tflite": "application/octet-stream", ".svg": "image/svg+xml",
                 ".png": "image/png"}


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")


def _static_files() -> dict[str, bytes]:
    root = resources.files("edgedigits.serving.web")
    files: dict[str, bytes] = {}

    def walk(folder, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.name in SKIPPED or entry.name.startswith("."):
                continue
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            else:
                files[prefix + entry.name] = entry.read_bytes()

    walk(root, "")
    return files


def describe(model_path: Path, content: bytes, web_content: bytes, labels: list[str],
             gate_content: bytes | None) -> dict:
    """model.json: what the page needs to read the web model (and the digit gate's web variant, if the
    page has one), and the source model's card if it has one."""
    card_path = model_path.with_suffix(".json")
    try:
        card = bounded_json.loads(card_path.read_bytes()) if card_path.is_file() else None
    except (OSError, ValueError) as e:
        raise UserError(f"{card_path}: not a readable card ({e}); fix or remove it beside its model") from e
    gate = {**_io(gate_content), "digit": contract.GATE_DIGIT} if gate_content else None
    return {
        "name": model_path.name,
        "labels": labels,
        **_io(web_content),
        "gate": gate,
        "source_sha256": hashlib.sha256(content).hexdigest(),
        "card": card,
    }


def _io(web_content: bytes) -> dict:
    web = tflite_file.parse(web_content)
    return {key: {"shape": list(t.shape), "dtype": "uint8", "scale": t.scales[0], "zero_point": t.zero_points[0]}
            for key, t in (("input", web.tensors[web.inputs[0]]), ("output", web.tensors[web.outputs[0]]))}


def _web_content(model_path: Path) -> bytes:
    """The browser variant of a model: the `<name>_web.tflite` beside it (`edgedigits export` and
    `edgedigits.builds.gate` write one), or made here (which needs the TFLite schema: LiteRT or TensorFlow)."""
    beside = model_path.with_name(f"{model_path.stem}_web.tflite")
    return read_model_bytes(beside) if beside.is_file() else web_model.web_variant(read_model_bytes(model_path))


def _gate(labels: list[str]) -> bytes | None:
    """The shipped digit gate's web variant, for a model that reads the digits 0-9 (as the harness does)."""
    path = gate_path()
    return _web_content(path) if path and labels == contract.LABELS else None


def site(model_path: Path) -> dict[str, bytes]:
    """Every file of the page for `model_path` (relative path -> bytes)."""
    content = read_model_bytes(model_path)
    check_digit_model(tflite_file.parse(content), str(model_path), contract.NUM_CLASSES)  # the page reads digits
    web_content = _web_content(model_path)
    try:
        labels = contract.labels_from(tflite_file.parse(web_content).metadata_json(contract.METADATA_NAME))
    except UserError as e:
        raise UserError(f"{model_path}: {e}") from None
    gate_content = _gate(labels)
    files = _static_files()
    files["model.tflite"] = web_content
    if gate_content:
        files["gate.tflite"] = gate_content
    files["model.json"] = json.dumps(describe(model_path, content, web_content, labels, gate_content),
                                     indent=1).encode()
    files["index.html"] = files["index.html"].replace(b"{{model}}", html.escape(model_path.name).encode())
    cached = sorted(name for name in files if name != "sw.js")
    version = hashlib.sha256(b"".join(hashlib.sha256(files[n]).digest() for n in cached)).hexdigest()[:16]
    files["sw.js"] = (files["sw.js"].replace(b"{{version}}", version.encode())
                      .replace(b"{{files}}", json.dumps(["./", *cached]).encode()))
    return files


def write(model_path: Path, folder: Path) -> list[Path]:
    """Write the page into `folder`: a new or empty folder, or one an earlier `edgedigits web` wrote
    (its MARKER file), so no file of anyone else's is overwritten. Returns the files written."""
    files = site(model_path)
    atomic.claim_folder(folder, MARKER, "edgedigits web")
    targets = {name: atomic.inside(folder, name) for name in sorted(files)}  # no file through a link (vendor/)
    for name, target in targets.items():
        atomic.write_bytes(target, files[name])
    return list(targets.values())
