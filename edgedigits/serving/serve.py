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
import re
import resource
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
MAX_FORM_PARTS = 16  # a form sends one image; a body of 20,000 parts is refused from a count of its delimiters
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

    async def read(self, body: bytes, name: str, max_pixels: int, form: str | None) -> tuple[recognize.Reading, str]:
        """Take the file out of a form (`form`: its Content-Type), decode and read it, all on a worker thread,
        never on the event loop; the caller holds a slot (released here). Returns the reading and the name."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._read, body, name, max_pixels,
                                                                    form)
        finally:
            self._slots.release()

    def _read(self, body: bytes, name: str, max_pixels: int, form: str | None) -> tuple[recognize.Reading, str]:
        model = getattr(self._local, "model", None)
        if model is None:
            path, backend, threads = self._settings
            model = self._local.model = Model(path, backend=backend, threads=threads)
            self._local.gate = recognize.gate_for(model)
        if form is not None:
            body, name = form_file(form, body, name)
        return recognize.read(model, images.decode(body, name, max_pixels=max_pixels), self._local.gate), name


def create_app(model_path: Path, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS,
               backend: str | None = None, threads: int = 1, workers: int | None = None, host: str = "127.0.0.1"):
    """The Starlette application serving `model_path`; bound to a loopback `host`, it answers only requests
    whose Host header names this machine (a page elsewhere cannot reach it by DNS rebinding)."""
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
        started = time.perf_counter()
        if not recognizer.try_acquire():
            return _error(503, "the server is busy reading other images; try again in a second", {"Retry-After": "1"})
        try:
            form = request.headers["content-type"] if kind == FORM_TYPE else None
            reading, name = await recognizer.read(body, name, max_pixels, form)
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

    app = Starlette(routes=[Route("/health", health), Route("/predict", predict, methods=["POST"]),
                            Route("/", page_file), Route("/{path:path}", page_file)])
    return _named_only(app, {*LOOPBACK_NAMES, host.lower()}) if _is_loopback(host) else app


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def _is_loopback(host: str) -> bool:
    return host.lower() in LOOPBACK_NAMES or host.startswith("127.")


def host_name(header: str) -> str:
    """The name in a Host header, without its port: `[::1]:8000` -> `::1`, `localhost:80` -> `localhost`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _named_only(app, names: set[str]):
    """An ASGI wrapper answering 421 to a request whose Host header names another machine."""
    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            header = next((v for k, v in scope["headers"] if k == b"host"), b"").decode("latin-1")
            if header and host_name(header) not in names:  # no Host at all (HTTP/1.0) cannot be a rebinding
                await _error(421, f"this server answers only to {', '.join(sorted(names))}, not to Host "
                                  f"{header[:80]!r}")(scope, receive, send)
                return
        await app(scope, receive, send)
    return guarded


async def _read_limited(request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def form_file(content_type: str, body: bytes, name: str) -> tuple[bytes, str]:
    """The first file (or, failing that, the first field) of a multipart/form-data body, and its file name.

    Read flat, in C-speed byte splits: at most MAX_FORM_PARTS parts, each part's payload taken as bytes and
    never parsed again (a part that is itself multipart nests nothing), headers at most 8 KB a part."""
    match = re.search(r'boundary="?([^";\s]{1,70})"?', content_type, re.IGNORECASE)
    if match is None:
        raise UserError("a multipart/form-data upload needs a boundary in its Content-Type")
    delimiter = b"--" + match.group(1).encode("latin-1")
    if body.count(delimiter) > MAX_FORM_PARTS + 1:
        raise UserError(f"the form has more than {MAX_FORM_PARTS} parts; send one image")
    parts = []
    for section in body.split(delimiter)[1:]:
        if section.startswith(b"--"):  # the closing delimiter
            break
        head, found, payload = section.partition(b"\r\n\r\n")
        if not found or len(head) > 8192:
            continue
        filename = re.search(r'filename="([^"]*)"', head.decode("latin-1"), re.IGNORECASE)
        parts.append((payload.removesuffix(b"\r\n"), filename.group(1) if filename else None))
    chosen = next((p for p in parts if p[1]), parts[0] if parts else None)
    if chosen is None:
        return b"", name
    return chosen[0], chosen[1] or name


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
    if not 1 <= port <= 65535:
        raise UserError(f"--port {port} is not a port; give one from 1 to 65535")
    app = create_app(model_path, backend=backend, threads=threads, host=host)
    _raise_open_files_limit(MAX_CONNECTIONS + 256)
    limit = _RateLimit(LOG_LINES_PER_S)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        logging.getLogger(name).addFilter(limit)
    print("\n".join(where_to_open(host, port, bool(tls), model_path.name)), flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", limit_concurrency=MAX_CONNECTIONS,
                timeout_keep_alive=KEEP_ALIVE_S, backlog=MAX_CONNECTIONS, **tls)


ALL_ADDRESSES = ("0.0.0.0", "::", "")


def where_to_open(host: str, port: int, https: bool, model_name: str) -> list[str]:
    """The lines `serve` starts with: the addresses to open, not the one it binds (0.0.0.0 opens nowhere)."""
    scheme = "https" if https else "http"
    if host not in ALL_ADDRESSES:
        return [f"edgedigits: {scheme}://{_url_host(host)}:{port}/  (model {model_name}; Ctrl-C stops)"]
    lines = [f"edgedigits: listening on every address, port {port} (model {model_name}; Ctrl-C stops)",
             f"  on this machine: {scheme}://127.0.0.1:{port}/"]
    found = lan_addresses()
    lines += [f"  on the network:  {scheme}://{_url_host(a)}:{port}/" for a in found] or [
        "  on the network:  no address found (is this machine on a network?)"]
    if not https:
        lines.append("  a phone's browser opens the page over http, but its camera and the offline copy need https: "
                     "--certfile cert.pem --keyfile key.pem (docs/phones-and-web.md)")
    return lines


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback: each interface's (Linux), and the host name's."""
    found = set()
    try:
        found |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    except OSError:
        pass
    if sys.platform.startswith("linux"):
        import fcntl
        import struct

        for _, name in socket.if_nameindex():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # an ioctl on a socket: nothing is sent
                try:
                    request = struct.pack("256s", name[:15].encode())
                    found.add(socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, request)[20:24]))  # SIOCGIFADDR
                except OSError:  # no IPv4 address on this interface
                    pass
    return sorted(a for a in found if not a.startswith("127."))


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
