"""Load test of `edgedigits serve` on loopback: concurrent POST /predict of 28x28 PNG digits.

    python benchmarks/web_load.py [--seconds 30] [--clients 8]

Starts the real server on a free 127.0.0.1 port, runs --clients threads, each with one
keep-alive connection posting single MNIST test digits (28x28 PNG) for --seconds, then
stops. Records requests/s, p50/p99 latency, errors and how many answers were right.
Results: benchmarks/results/web_load.json and .md. Traffic never leaves this machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time

import cv2
import numpy as np

from firmware_harness import mnist
from firmware_harness.runtime import shipped_model
from firmware_harness.device import machine_info
import served
from record import record


def client(port: int, bodies: list[tuple[bytes, str]], stop_at: float, out: dict, lock: threading.Lock) -> None:
    latencies, errors, right = [], 0, 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    k = 0
    while time.perf_counter() < stop_at:
        body, label = bodies[k % len(bodies)]
        k += 1
        started = time.perf_counter()
        try:
            connection.request("POST", "/predict", body=body, headers={"Content-Type": "image/png"})
            response = connection.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                errors += 1
                continue
            right += answer["digits"] == label
        except (OSError, http.client.HTTPException, ValueError):
            errors += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            continue
        latencies.append(time.perf_counter() - started)
    with lock:
        out["latencies"] += latencies
        out["errors"] += errors
        out["right"] += right


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    test = mnist.load(mnist.locate(None), splits=("test",))
    bodies = [(cv2.imencode(".png", 255 - test.x_test[i])[1].tobytes(), str(int(test.y_test[i]))) for i in range(500)]
    with served.serving("--model", str(shipped_model())) as (_, port):
        out = {"latencies": [], "errors": 0, "right": 0}
        lock = threading.Lock()
        started = time.perf_counter()
        stop_at = started + args.seconds
        threads = [threading.Thread(target=client, args=(port, bodies, stop_at, out, lock)) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
    ms = np.array(out["latencies"]) * 1000
    done = len(ms)
    result = {
        "command": "python benchmarks/web_load.py " + " ".join(sys.argv[1:]),
        "device": machine_info(),
        "clients": args.clients,
        "seconds": round(wall, 1),
        "requests": done,
        "requests_per_s": round(done / wall, 1),
        "latency_ms": {"p50": round(float(np.percentile(ms, 50)), 2), "p99": round(float(np.percentile(ms, 99)), 2)},
        "errors": out["errors"],
        "answers_right": round(out["right"] / max(done, 1), 4),
        "targets": {"requests_per_s": 200, "errors": 0},
    }
    record("web_load", result, markdown(result))
    return 0


def markdown(result: dict) -> str:
    return "\n".join([
        f"`{result['command']}`: {result['clients']} keep-alive clients on 127.0.0.1 for {result['seconds']} s, "
        f"28×28 PNG digits, {result['device']['cpu']} ({result['device']['cores']} cores, shared by server and clients)",
        "",
        "| requests/s | p50 ms | p99 ms | errors | answers right |",
        "|---:|---:|---:|---:|---:|",
        f"| {result['requests_per_s']:.0f} | {result['latency_ms']['p50']:.2f} | {result['latency_ms']['p99']:.2f} | "
        f"{result['errors']} | {result['answers_right']:.1%} |",
    ]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
