"""`edgedigits serve` on a free loopback port, for the benchmarks and the tests that need a real server."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

SERVE = [sys.executable, "-c", "import sys; from edgedigits.launch import main; sys.exit(main())", "serve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    """Until `url` answers; RuntimeError if the process exits first or the time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{url}: the server exited with code {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {seconds} s")
            time.sleep(0.2)


@contextmanager
def serving(*args: str, log=None) -> Iterator[tuple[subprocess.Popen, int]]:
    """`edgedigits serve ARGS` on a free port, answering /health: yields the process and the port.

    Its output goes to `log` (an open file, or subprocess.DEVNULL), else to a temporary file whose tail a
    failed start reports; never to a pipe, which nobody reads while it serves and which, once full, would
    stop the server mid-test."""
    with tempfile.TemporaryFile() as spare:
        out = spare if log is None else log
        port = free_port()
        server = subprocess.Popen([*SERVE, "--port", str(port), *args], stdout=out, stderr=out)
        try:
            try:
                wait_for(f"http://127.0.0.1:{port}/health", server)
            except RuntimeError as e:
                spare.seek(0)
                raise RuntimeError(f"{e}: {spare.read()[-2000:].decode(errors='replace')}") from None
            yield server, port
        finally:
            server.terminate()
            server.wait(timeout=10)
