"""The browser page in headless Chromium: cold start, time per read, the same readings as Python, wheel size.

    python benchmarks/web_page.py [--starts 7] [--digits 1000] [--scenes 100]

Runs `edgedigits serve` with the shipped model and opens its page in Debian's Chromium
(Playwright), accelerator `wasm` (LiteRT.js, XNNPACK in WebAssembly; no WebGPU headless):
- cold start: a fresh browser context each time (empty HTTP cache), from navigation to
  `window.edgedigits.ready`, over loopback;
- per read: `window.edgedigits.read` timed in the page on a 28x28 digit and a 640x480
  photo-like scene;
- the same readings: --digits MNIST test digits and --scenes photo-like scenes (PNG) read by
  the page and by the Python harness (`recognize.read`) on the same images;
- the wheel: `pip wheel .` with and without the page's files (their compressed size in it).
Results: benchmarks/results/web_page.json and .md. Loopback and this machine's 2 cores: a
phone on Wi-Fi loads slower and reads at its own speed.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

from edgedigits.training import scenes
from firmware_harness import images, mnist, recognize
from firmware_harness.device import machine_info
from firmware_harness.runtime import Model, shipped_model
import served
from record import record

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
READ_DIGITS_JS = """async data => {
    const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0)), out = [];
    for (let i = 0; i < bytes.length / 784; i++) {
      const image = new ImageData(28, 28);
      for (let k = 0; k < 784; k++) image.data.set([bytes[i * 784 + k], bytes[i * 784 + k], bytes[i * 784 + k], 255], 4 * k);
      out.push((await window.edgedigits.read(image)).digits);
    }
    return out;
}"""
READ_IMAGE_JS = """async url => {
    const image = new Image(); image.src = url; await image.decode();
    return (await window.edgedigits.read(image)).digits;
}"""
TIME_READS_JS = """async ([url, runs]) => {
    const image = new Image(); image.src = url; await image.decode();
    await window.edgedigits.read(image);
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now(); await window.edgedigits.read(image); times.push(performance.now() - t);
    }
    return times;
}"""


def read_digits(page, digits: np.ndarray) -> list[str]:
    """What the page reads in each 28x28 gray image (white ink on black)."""
    return page.evaluate(READ_DIGITS_JS, base64.b64encode(np.ascontiguousarray(digits, np.uint8).tobytes()).decode())


def png_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode()


def scene_agreement(page, model: Model, photos: list[np.ndarray]) -> tuple[int, int]:
    """Digits the page and Python read alike (position by position) in each PNG-encoded photo, and the digits in all."""
    same = total = 0
    for photo in photos:
        png = cv2.imencode(".png", photo)[1].tobytes()
        python = recognize.read(model, images.decode(png, "scene.png")).digits
        page_digits = page.evaluate(READ_IMAGE_JS, "data:image/png;base64," + base64.b64encode(png).decode())
        same += sum(a == b for a, b in zip(python, page_digits))
        total += max(len(python), len(page_digits))
    return same, total


def _wheel_sizes() -> dict:
    with tempfile.TemporaryDirectory(prefix="wheel-") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp, str(ROOT)], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            web = [i for i in z.infolist() if i.filename.startswith("edgedigits/serving/web/")]
        size = wheel.stat().st_size
    web_compressed = sum(i.compress_size for i in web)
    return {"bytes": size, "web_files": len(web), "web_bytes_compressed": web_compressed,
            "web_bytes_installed": sum(i.file_size for i in web), "without_web_bytes": size - web_compressed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=7)
    parser.add_argument("--digits", type=int, default=1000)
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--reads", type=int, default=100)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("error: no Chromium; apt-get install chromium")
    from playwright.sync_api import sync_playwright

    test = mnist.load(mnist.locate(None), splits=("test",))
    model_path = shipped_model()
    model = Model(model_path)
    photos = [s.image for s in scenes.scenes(test.x_test, test.y_test, args.scenes, seed=3)]
    with served.serving("--model", str(model_path), log=subprocess.DEVNULL) as (_, port), sync_playwright() as p:
        base = f"http://127.0.0.1:{port}/"
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        starts, in_page = [], []
        for _ in range(args.starts):
            context = browser.new_context()
            page = context.new_page()
            started = time.perf_counter()
            page.goto(base)
            in_page.append(page.evaluate("window.edgedigits.ready"))
            starts.append((time.perf_counter() - started) * 1000)
            context.close()
        page = browser.new_page()
        page.goto(base)
        page.evaluate("window.edgedigits.ready")
        digit_ms = page.evaluate(TIME_READS_JS, [png_url(255 - test.x_test[0]), args.reads])
        scene_ms = page.evaluate(TIME_READS_JS, [png_url(photos[0]), max(args.reads // 4, 5)])
        browser_answers = read_digits(page, test.x_test[:args.digits])
        same, total = scene_agreement(page, model, photos)
        version = browser.version
        browser.close()
    truth = [str(int(label)) for label in test.y_test[:args.digits]]
    python_answers = [recognize.read(model, image).digits for image in test.x_test[:args.digits]]
    result = {
        "command": " ".join(["python benchmarks/web_page.py", *sys.argv[1:]]),
        "device": machine_info(),
        "browser": f"Chromium {version} (headless), LiteRT.js {_litertjs_version()}, "
                   f"accelerator wasm",
        "model": model_path.name,
        "cold_start_ms": {"runs": args.starts, "median": round(statistics.median(starts)),
                          "min": round(min(starts)), "max": round(max(starts)),
                          "in_page_median": round(statistics.median(in_page))},
        "read_ms": {"digit_28x28": _spread(digit_ms), "scene_640x480": _spread(scene_ms)},
        "mnist": {"digits": args.digits,
                  "browser_accuracy": float(np.mean([a == t for a, t in zip(browser_answers, truth)])),
                  "python_accuracy": float(np.mean([a == t for a, t in zip(python_answers, truth)])),
                  "same_answers": int(sum(a == b for a, b in zip(browser_answers, python_answers)))},
        "scenes": {"scenes": args.scenes, "digits": total, "same_digits": same},
        "wheel": _wheel_sizes(),
        "targets": {"accuracy_gap_points": 0.2, "scene_agreement": 0.98},
    }
    record("web_page", result, markdown(result))
    return 0


def _litertjs_version() -> str:
    return json.loads((ROOT / "edgedigits" / "serving" / "web" / "vendor" / "VENDOR.json").read_text())["litert.js"]["version"]


def _spread(times: list[float]) -> dict:
    return {"runs": len(times), "median": round(statistics.median(times), 2), "p90": round(float(np.percentile(times, 90)), 2)}


def markdown(result: dict) -> str:
    c, r, m, s, w = (result[k] for k in ("cold_start_ms", "read_ms", "mnist", "scenes", "wheel"))
    mb = 1e6
    return "\n".join([
        f"`{result['command']}` on {result['device']['cpu']} ({result['device']['cores']} cores): {result['browser']}, "
        f"model {result['model']}, served by `edgedigits serve` over loopback.", "",
        "| what | measured | target |", "|---|---:|---:|",
        f"| cold start, navigation to `edgedigits.ready` (fresh context, median of {c['runs']}) | {c['median']} ms "
        f"({c['min']}-{c['max']}) | |",
        f"| one read of a 28×28 digit (median, p90 of {r['digit_28x28']['runs']}) | {r['digit_28x28']['median']} ms, "
        f"{r['digit_28x28']['p90']} ms | |",
        f"| one read of a 640×480 photo-like scene (median, p90 of {r['scene_640x480']['runs']}) | "
        f"{r['scene_640x480']['median']} ms, {r['scene_640x480']['p90']} ms | |",
        f"| {m['digits']:,} MNIST test digits: browser / Python harness accuracy | {m['browser_accuracy']:.2%} / "
        f"{m['python_accuracy']:.2%} ({m['same_answers']:,} answers the same) | within 0.2 points |",
        f"| {s['scenes']} photo-like scenes: digits read the same in the browser and by `edgedigits predict` | "
        f"{s['same_digits']} of {s['digits']} ({s['same_digits'] / s['digits']:.1%}) | ≥ 98 % |",
        f"| wheel, with / without the page's files | {w['bytes'] / mb:.2f} MB / {w['without_web_bytes'] / mb:.2f} MB | |",
        f"| the page's {w['web_files']} files, installed (what a first visit loads; `serve` sends them gzipped) | "
        f"{w['web_bytes_installed'] / mb:.1f} MB | |",
    ]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
