"""`edgedigits serve`: a web page to draw or upload digits, and `POST /predict`. No TensorFlow.

The page sends the image bytes as the request body (a drawn canvas as PNG, or the
dropped/uploaded file). `POST /predict` answers exactly what `edgedigits predict --json`
prints for the image; `?details=1` adds the 28x28 crops the model saw (PNG, base64) and
the server-side latency. Uploads are limited in bytes (checked while reading), in pixels
(checked from the header before decoding) and in content type; nothing from a request is
written to disk. Bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import base64
import threading
import time
from importlib import resources
from pathlib import Path

import cv2

from firmware_harness import images, recognize
from firmware_harness.errors import UserError
from firmware_harness.runtime import Model

MAX_UPLOAD_BYTES = 10 << 20
MAX_PIXELS = 16_000_000
ACCEPTED_TYPES = ("image/", "application/octet-stream")


class TooLarge(Exception):
    pass


def create_app(model_path: Path, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS):
    """The Starlette application serving `model_path`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    model = Model(model_path)
    lock = threading.Lock()  # one interpreter, and it is not thread-safe
    page = resources.files("edgedigits.web").joinpath("index.html").read_text(encoding="utf-8")

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": model.name, "backend": model.backend.name})

    async def predict(request: Request) -> JSONResponse:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not kind.startswith(ACCEPTED_TYPES):
            return _error(415, f"send the image itself as the body (Content-Type image/png, image/jpeg, ...), not {kind or 'nothing'}")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            return _error(413, f"{int(declared) >> 20} MiB is over the {max_bytes >> 20} MiB upload limit")
        try:
            body = await _read_limited(request, max_bytes)
        except TooLarge:
            return _error(413, f"the upload is over the {max_bytes >> 20} MiB limit")
        name = request.query_params.get("name", "upload")
        started = time.perf_counter()
        try:
            image = images.decode(body, name, max_pixels=max_pixels)
            with lock:
                reading = recognize.read(model, image)
        except images.TooManyPixels as e:
            return _error(413, str(e))
        except UserError as e:
            return _error(400, str(e))
        answer = {"path": name, **reading.as_json()}
        if request.query_params.get("details"):
            answer["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
            answer["crops"] = [_png_base64(crop) for crop in reading.crops]
        return JSONResponse(answer)

    return Starlette(routes=[Route("/", index), Route("/health", health), Route("/predict", predict, methods=["POST"])])


async def _read_limited(request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def _png_base64(crop) -> str:
    ok, png = cv2.imencode(".png", crop)
    return base64.b64encode(png.tobytes()).decode("ascii") if ok else ""


def serve(model_path: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the server until Ctrl-C."""
    try:
        import uvicorn
    except ImportError as e:
        raise UserError("the web demo needs its extra: pip install 'edgedigits[web]'") from e
    app = create_app(model_path)
    print(f"edgedigits: http://{host}:{port}/  (model {model_path.name}; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
