"""`edgedigits serve`: the browser page that reads digits itself, and `POST /predict` for API users. No TensorFlow.

The page (`web_site`: LiteRT.js and OpenCV.js, the model's browser variant, a service
worker and a manifest) reads drawings, photos and the live camera in the browser; it never
calls `/predict`. `POST /predict` takes the image bytes as the request body
(`curl --data-binary @x.png` and `curl -F file=@x.png` work too) and answers exactly what
`edgedigits predict --json` prints for the image;
`?details=1` adds the 28x28 crops the model saw (PNG, base64) and the server-side latency.
`GET /health` answers `{"status": "ok", "model", "backend"}` without touching the model.

One request cannot stall the others: recognition runs in a bounded pool of worker
threads (one interpreter each), never on the event loop, and a request that finds the pool
and its queue full gets 503 with Retry-After. Uploads are limited in bytes (checked while
reading), in time (a body must arrive within BODY_TIMEOUT_S), in pixels and decoded bytes
(checked from the header before decoding) and in content type; connections are limited in
number and the server's own log lines in rate. Nothing from a request is written to disk.
Bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import os
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import cv2

from edgedigits.serving import web_site
from firmware_harness import images, recognize
from firmware_harness.errors import UserError
from firmware_harness.preprocess import TooManyMarks
from firmware_harness.runtime import Model

MAX_UPLOAD_BYTES = 10 << 20
MAX_PIXELS = 16_000_000
RAW_TYPES = ("image/", "application/octet-stream", "application/x-www-form-urlencoded")  # the last: curl --data-binary
FORM_TYPE = "multipart/form-data"  # curl -F file=@x.png, an HTML form
BODY_TIMEOUT_S = 10.0  # a client must send its whole upload within this
QUEUED_PER_WORKER = 4  # requests that may wait for each worker before the server answers 503
MAX_CONNECTIONS = 2048  # uvicorn answers 503 beyond this many open connections
KEEP_ALIVE_S = 5
LOG_LINES_PER_S = 5


class TooLarge(Exception):
    pass


class _Recognizer:
    """A pool of worker threads, each with its own interpreter (they are not thread-safe)."""

    def __init__(self, model_path: Path, backend: str | None, threads: int, workers: int):
        self.model = Model(model_path, backend=backend, threads=threads)  # checks the file once, here
        self._settings = (model_path, backend, threads)
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recognize")
        self._slots = threading.BoundedSemaphore(workers * (1 + QUEUED_PER_WORKER))

    def try_acquire(self) -> bool:
        return self._slots.acquire(blocking=False)

    async def read(self, body: bytes, name: str, max_pixels: int) -> recognize.Reading:
        """Decode and read an upload on a worker thread; the caller holds a slot (released here)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._read, body, name, max_pixels)
        finally:
            self._slots.release()

    def _read(self, body: bytes, name: str, max_pixels: int) -> recognize.Reading:
        model = getattr(self._local, "model", None)
        if model is None:
            path, backend, threads = self._settings
            model = self._local.model = Model(path, backend=backend, threads=threads)
            self._local.gate = recognize.gate_for(model)
        return recognize.read(model, images.decode(body, name, max_pixels=max_pixels), self._local.gate)


def create_app(model_path: Path, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS,
               backend: str | None = None, threads: int = 1, workers: int | None = None):
    """The Starlette application serving `model_path`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    recognizer = _Recognizer(model_path, backend, threads, workers or os.cpu_count() or 1)
    model = recognizer.model
    files = web_site.site(model_path)
    gzipped: dict[str, bytes] = {}  # compressed on first request: 23 MB of page is 6.7 MB over the wire

    async def page_file(request: Request) -> Response:
        name = request.path_params.get("path") or "index.html"
        if name not in files:
            return _error(404, f"no such file: /{name}")
        headers = {"Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        body = files[name]
        if "gzip" in request.headers.get("accept-encoding", "") and len(body) > 1024:
            if name not in gzipped:
                gzipped[name] = await asyncio.get_running_loop().run_in_executor(None, gzip.compress, body, 6)
            body, headers["Content-Encoding"] = gzipped[name], "gzip"
        return Response(body, media_type=web_site.content_type(name), headers=headers)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": model.name, "backend": model.backend.name})

    async def predict(request: Request) -> JSONResponse:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not kind.startswith((*RAW_TYPES, FORM_TYPE)):
            return _error(415, f"send the image itself as the body (Content-Type image/png, image/jpeg, ...) or as "
                               f"a multipart form field, not {kind or 'nothing'}")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            return _error(413, f"{int(declared) >> 20} MiB is over the {max_bytes >> 20} MiB upload limit")
        try:
            body = await asyncio.wait_for(_read_limited(request, max_bytes), BODY_TIMEOUT_S)
        except TooLarge:
            return _error(413, f"the upload is over the {max_bytes >> 20} MiB limit")
        except asyncio.TimeoutError:
            return _error(408, f"the upload did not arrive within {BODY_TIMEOUT_S:.0f} s")
        name = request.query_params.get("name", "upload")
        if kind == FORM_TYPE:
            body, name = _form_file(request.headers["content-type"], body, name)
        started = time.perf_counter()
        if not recognizer.try_acquire():
            return _error(503, "the server is busy reading other images; try again in a second", {"Retry-After": "1"})
        try:
            reading = await recognizer.read(body, name, max_pixels)
        except images.TooManyPixels as e:
            return _error(413, str(e))
        except TooManyMarks as e:
            return _error(422, str(e))
        except UserError as e:
            return _error(400, str(e))
        answer = {"path": name, **reading.as_json()}
        if request.query_params.get("details"):
            answer["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
            answer["crops"] = [_png_base64(crop) for crop in reading.crops]
        return JSONResponse(answer)

    return Starlette(routes=[Route("/health", health), Route("/predict", predict, methods=["POST"]),
                             Route("/", page_file), Route("/{path:path}", page_file)])


async def _read_limited(request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _form_file(content_type: str, body: bytes, name: str) -> tuple[bytes, str]:
    """The first file (or, failing that, the first field) of a multipart/form-data body, and its file name."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    parts = list(message.iter_parts()) if message.is_multipart() else []
    chosen = next((p for p in parts if p.get_filename()), parts[0] if parts else None)
    if chosen is None:
        return b"", name
    return chosen.get_payload(decode=True) or b"", chosen.get_filename() or name


def _error(status: int, message: str, headers: dict[str, str] | None = None):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _png_base64(crop) -> str:
    ok, png = cv2.imencode(".png", crop)
    return base64.b64encode(png.tobytes()).decode("ascii") if ok else ""


class _RateLimit(logging.Filter):
    """Let through at most `per_second` records a second, and say how many were dropped."""

    def __init__(self, per_second: int):
        super().__init__()
        self.per_second, self.window, self.count, self.dropped = per_second, 0, 0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = int(time.monotonic())
        if now != self.window:
            if self.dropped:
                record.msg = f"({self.dropped} log lines dropped in the last second) {record.msg}"
            self.window, self.count, self.dropped = now, 0, 0
        self.count += 1
        if self.count > self.per_second:
            self.dropped += 1
            return False
        return True


def _raise_open_files_limit(wanted: int) -> None:
    """Room for MAX_CONNECTIONS sockets: the usual soft limit of 1,024 files is less (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def serve(model_path: Path, host: str = "127.0.0.1", port: int = 8000, backend: str | None = None,
          threads: int = 1, certfile: Path | None = None, keyfile: Path | None = None) -> None:
    """Run the server until Ctrl-C; over https with `certfile` (and `keyfile` if the key is apart),
    which a phone's browser needs for the camera and the offline copy on any address but localhost."""
    try:
        import uvicorn
    except ImportError as e:
        raise UserError("the web demo needs its extra: pip install 'edgedigits[web]'") from e
    tls = _tls_settings(certfile, keyfile)
    app = create_app(model_path, backend=backend, threads=threads)
    _raise_open_files_limit(MAX_CONNECTIONS + 256)
    limit = _RateLimit(LOG_LINES_PER_S)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        logging.getLogger(name).addFilter(limit)
    scheme = "https" if tls else "http"
    print(f"edgedigits: {scheme}://{host}:{port}/  (model {model_path.name}; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", limit_concurrency=MAX_CONNECTIONS,
                timeout_keep_alive=KEEP_ALIVE_S, backlog=MAX_CONNECTIONS, **tls)


def _tls_settings(certfile: Path | None, keyfile: Path | None) -> dict:
    """uvicorn's TLS arguments, the files checked first so that a wrong path is a one-line error."""
    if certfile is None:
        if keyfile is not None:
            raise UserError("--keyfile needs --certfile too")
        return {}
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as e:
        raise UserError(f"cannot use {certfile}{' and ' + str(keyfile) if keyfile else ''} for https ({e}); "
                        f"give a PEM certificate and its private key") from e
    return {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile) if keyfile else None}
