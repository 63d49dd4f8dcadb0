"""`edgedigits serve` under hostile load on loopback: /health stays quick, idle uploads cannot starve it, memory stays flat.

    python benchmarks/serve_siege.py [--seconds 20] [--clients 8] [--idle 1100] [--requests 5000]

Starts the real server on a free 127.0.0.1 port, then:
1. --clients keep-alive clients post crafted images (benchmarks/hostile.py: grids of marks,
   a page of 990 digits, a 16-bit 40-MP PNG, a large photo) for --seconds while a prober
   asks GET /health every 20 ms on its own connection: /health latency p50/p99/max;
2. --idle connections each send the headers and a few bytes of an upload and stop there;
   /health is asked 20 times while they are open, and the server's log is measured;
3. --requests posts (digits and crafted images, from --clients clients), the server's RSS
   read from /proc every 500 requests.
Results: benchmarks/results/serve_siege.json and .md. Traffic never leaves this machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

import hostile
from firmware_harness import mnist
from firmware_harness.device import machine_info
import served
from record import record

HEALTH_EVERY_S = 0.02
BUSY_PAUSE_S = 0.05  # a client's wait after a 503 (shorter than the Retry-After of 1 s, to keep the load up)


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def _bodies(folder: Path) -> dict[str, tuple[str, bytes]]:
    """The crafted uploads (Content-Type, body), and a photo-like 4000x3000 page and an MNIST digit for
    contrast."""
    test = mnist.load(mnist.locate(None), splits=("test",))
    page = np.full((3000, 4000), 235, np.uint8)
    for k in range(40):
        y, x = divmod(k, 8)
        tile = cv2.resize(255 - test.x_test[k], (280, 280), interpolation=cv2.INTER_LINEAR)
        page[200 + y * 500:480 + y * 500, 200 + x * 460:480 + x * 460] = tile
    bodies = {name: ("image/png", build(folder).read_bytes()) for name, (loader, build) in hostile.SEMANTIC.items()
              if loader == "image"}
    bodies.update({name: build() for name, build in hostile.FORMS.items()})
    bodies["grid512"] = ("image/png", hostile.grid_png(folder, side=512).read_bytes())
    bodies["photo_12mp"] = ("image/jpeg", cv2.imencode(".jpg", page)[1].tobytes())
    bodies["digit"] = ("image/png", cv2.imencode(".png", 255 - test.x_test[0])[1].tobytes())
    return bodies


def _post(connection: http.client.HTTPConnection, upload: tuple[str, bytes]) -> int:
    content_type, body = upload
    connection.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
    response = connection.getresponse()
    response.read()
    return response.status


def _clients(port: int, bodies: list[tuple[str, bytes]], clients: int, until, statuses: dict) -> None:
    """`clients` threads posting `bodies` in turn until `until(k)` says stop; status codes counted. A client
    told 503 (busy) waits BUSY_PAUSE_S and posts the same body again, and `k` counts answered posts."""
    lock = threading.Lock()
    counter = iter(range(10 ** 9))

    def work() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while not until(k := next(counter)):
            while True:
                try:
                    status = _post(connection, bodies[k % len(bodies)])
                except (OSError, http.client.HTTPException):
                    status = "connection error"
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                if status != 503 or until(k):
                    break
                time.sleep(BUSY_PAUSE_S)
        connection.close()

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _health_ms(connection: http.client.HTTPConnection) -> float:
    started = time.perf_counter()
    connection.request("GET", "/health")
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise OSError(f"/health answered {response.status}")
    return (time.perf_counter() - started) * 1000


def _percentiles(ms: list[float]) -> dict:
    values = np.array(ms) if ms else np.array([np.nan])
    return {"n": len(ms), "p50": round(float(np.percentile(values, 50)), 2),
            "p99": round(float(np.percentile(values, 99)), 2), "max": round(float(values.max()), 2)}


def adversarial(port: int, bodies: dict[str, tuple[str, bytes]], clients: int, seconds: float) -> dict:
    statuses: dict = {}
    stop_at = time.perf_counter() + seconds
    health: list[float] = []
    failures = 0

    def probe() -> None:
        nonlocal failures
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.perf_counter() < stop_at:
            try:
                health.append(_health_ms(connection))
            except (OSError, http.client.HTTPException):
                failures += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            time.sleep(HEALTH_EVERY_S)

    prober = threading.Thread(target=probe)
    prober.start()
    crafted = [body for name, body in bodies.items() if name != "digit"]
    _clients(port, crafted, clients, lambda k: time.perf_counter() >= stop_at, statuses)
    prober.join()
    return {"clients": clients, "seconds": seconds, "uploads": sorted(n for n in bodies if n != "digit"),
            "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)}, "health_ms": _percentiles(health),
            "health_failures": failures}


def idle(port: int, count: int, log: Path) -> dict:
    """`count` connections that send the start of an upload and then nothing."""
    log_before = log.stat().st_size
    sockets, refused = [], 0
    head = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
            + b"\x89PNG\r\n\x1a\n")
    for _ in range(count):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(head)
            sockets.append(s)
        except OSError:
            refused += 1
            s.close()
    time.sleep(1.0)
    health, failures = [], 0
    for _ in range(20):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            health.append(_health_ms(connection))
        except (OSError, http.client.HTTPException):
            failures += 1
        connection.close()
        time.sleep(0.05)
    for s in sockets:
        s.close()
    return {"connections": count, "open": len(sockets), "refused": refused, "health_ms": _percentiles(health),
            "health_failures": failures, "log_bytes": log.stat().st_size - log_before}


def memory(port: int, pid: int, bodies: dict[str, tuple[str, bytes]], clients: int, requests: int) -> dict:
    samples = [round(_rss_mib(pid), 1)]
    statuses: dict = {}
    mixed = list(bodies.values())

    sampled: set[int] = set()

    def until(k: int) -> bool:
        if k and k % 500 == 0 and k not in sampled:
            sampled.add(k)
            samples.append(round(_rss_mib(pid), 1))
        return k >= requests

    _clients(port, mixed, clients, until, statuses)
    samples.append(round(_rss_mib(pid), 1))
    return {"requests": requests, "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
            "rss_mib": samples, "growth_mib_after_first_1000": round(samples[-1] - samples[min(2, len(samples) - 1)], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--idle", type=int, default=1100)
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="siege-") as tmp:
        folder = Path(tmp)
        bodies = _bodies(folder)
        log = folder / "server.log"
        with open(log, "wb") as log_file, served.serving(log=log_file) as (server, port):
            result = {"command": "python benchmarks/serve_siege.py " + " ".join(sys.argv[1:]), "device": machine_info(),
                      "adversarial": adversarial(port, bodies, args.clients, args.seconds),
                      "idle": idle(port, args.idle, log),
                      "memory": memory(port, server.pid, bodies, args.clients, args.requests),
                      "targets": {"health_p99_ms": 100, "idle_health_failures": 0}}
    record("serve_siege", result, markdown(result))
    a, i = result["adversarial"], result["idle"]
    ok = (a["health_ms"]["p99"] <= 100 and a["health_failures"] == 0 and i["health_failures"] == 0)
    return 0 if ok else 1


def markdown(result: dict) -> str:
    a, i, m = result["adversarial"], result["idle"], result["memory"]
    return "\n".join([
        f"`{result['command']}` on {result['device']['cpu']} ({result['device']['cores']} cores, shared by server "
        f"and clients), 127.0.0.1", "",
        "| phase | what | /health p50 ms | /health p99 ms | /health max ms | /health failures | answers |",
        "|---|---|---:|---:|---:|---:|---|",
        f"| adversarial | {a['clients']} clients posting {', '.join(a['uploads'])} for {a['seconds']:.0f} s | "
        f"{a['health_ms']['p50']} | {a['health_ms']['p99']} | {a['health_ms']['max']} | {a['health_failures']} | "
        f"{json.dumps(a['statuses'])} |",
        f"| idle | {i['open']} connections holding a partial upload ({i['refused']} refused) | {i['health_ms']['p50']} | "
        f"{i['health_ms']['p99']} | {i['health_ms']['max']} | {i['health_failures']} | server log grew "
        f"{i['log_bytes']:,} bytes |",
        "", f"Memory over {m['requests']:,} requests ({json.dumps(m['statuses'])}): server RSS (MiB) every 500 "
        f"requests {m['rss_mib']}; growth after the first 1,000: {m['growth_mib_after_first_1000']} MiB.",
    ]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
