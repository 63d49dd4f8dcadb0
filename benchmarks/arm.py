"""Raspberry Pi OS, emulated: install edgedigits as the README says in arm64 and armhf Debian root
filesystems under qemu-user, run the device commands there, and compare every answer with x86.

    sudo python benchmarks/arm.py [--platforms trixie-arm64,bookworm-arm64,bookworm-armhf]

Needs root on a Debian host, and the network (Debian's mirror, PyPI) for the first run, which builds
each root filesystem (benchmarks/rootfs.py; the time is recorded) and the micro preset's models; later
runs reuse them. In each platform it runs the README's install steps for it, then `doctor`, `bench`
on the MNIST test set, the raw outputs of every model with every kernel family, `predict` on a folder
of photo-like scenes, `camera --headless` on a video of them, and a bundle's `run.sh`. Emulation
proves the install and the outputs, never speed: the seconds recorded say how long the run took.
Writes benchmarks/results/arm.json and arm.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from record import record
from rootfs import CACHE, Rootfs

ROOT = Path(__file__).resolve().parents[1]
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")


@dataclass(frozen=True)
class Platform:
    name: str
    pi_os: str  # the Raspberry Pi OS release this Debian root filesystem stands for
    rootfs: Rootfs


PLATFORMS = {p.name: p for p in (
    Platform("trixie-arm64", "Raspberry Pi OS Trixie, 64-bit", Rootfs("trixie", "arm64", BASE_PACKAGES)),
    Platform("bookworm-arm64", "Raspberry Pi OS Bookworm, 64-bit", Rootfs("bookworm", "arm64", BASE_PACKAGES)),
    Platform("bookworm-armhf", "Raspberry Pi OS Bookworm, 32-bit", Rootfs("bookworm", "armhf", BASE_PACKAGES)),
)}
REFERENCE = "x86_64"  # the platform every answer is compared with: this host, LiteRT with XNNPACK
VENV = "~/edgedigits-venv"  # where the README's Raspberry Pi steps make the virtual environment
INSTALL_BLOCK = re.compile(r"<!-- benchmarks/arm\.py runs this on: ([\w\- ]+) -->\n```bash\n(.*?)```", re.S)
SCENES = 20  # photo-like scenes for predict and (3 frames each) the camera video
MICRO_EXPORT = ["export", "--int8", "--model", "ds_cnn_micro", "--sparsity", "0", "--formats", "fp32"]


def install_steps(platform: str, readme: Path = ROOT / "README.md") -> str:
    """The README's Raspberry Pi install block for this platform (it is what this script runs)."""
    for match in INSTALL_BLOCK.finditer(readme.read_text(encoding="utf-8")):
        if platform in match.group(1).split():
            return match.group(2)
    raise SystemExit(f"error: README.md has no install block for {platform} (a `<!-- benchmarks/arm.py runs this "
                     f"on: {platform} -->` line before a ```bash block)")


def models() -> list[Path]:
    """The shipped model, the micro preset (int8) and one float model (the micro preset's fp32), made once."""
    from firmware_harness.runtime import shipped_model

    micro = CACHE / "models" / "ds_cnn_micro"
    wanted = [micro / "ds_cnn_micro_int8.tflite", micro / "ds_cnn_micro_fp32.tflite"]
    if not all(p.is_file() for p in wanted):
        shutil.rmtree(micro, ignore_errors=True)
        print(f"== exporting the micro preset into {micro} (once; about 8 minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "edgedigits.launch", *MICRO_EXPORT, "--out", str(micro)], check=True)
    return [shipped_model(), *wanted]


def write_inputs(folder: Path, data: Path) -> None:
    """Photo-like scenes of MNIST test digits (seeded) as PNG files, and a video showing each for 3 frames."""
    import cv2

    from edgedigits.training import scenes
    from firmware_harness import mnist

    test = mnist.load(data, splits=("test",))
    (folder / "scenes").mkdir(parents=True)
    frames = []
    for i, scene in enumerate(scenes.scenes(test.x_test, test.y_test, SCENES, seed=31)):
        cv2.imwrite(str(folder / "scenes" / f"scene_{i:02d}_{scene.text}.png"), scene.image)
        frames.append(scene.image)
    scenes.write_video(str(folder / "scenes.mp4"), frames, repeat=3)


def dump_outputs(out: Path, data: Path, model_paths: list[Path]) -> None:
    """Raw output tensors of every model with every kernel family on the MNIST test set, and what ran them."""
    import numpy as np

    from firmware_harness import mnist, runtime
    from firmware_harness.device import machine_info

    test = mnist.load(data, splits=("test",))
    arrays = {"y_test": test.y_test}
    backend = None
    for path in model_paths:
        for kernels in runtime.KERNELS:
            model = runtime.Model(path, kernels=kernels)
            backend = model.backend
            arrays[f"{path.stem}/{kernels}"] = np.concatenate(
                [model.invoke_quantized(model.quantize(test.x_test[i:i + runtime.BATCH]))
                 for i in range(0, len(test.x_test), runtime.BATCH)])
    np.savez_compressed(out / "outputs.npz", **arrays)
    info = {"machine": machine_info(), "backend": backend.name, "backend_version": backend.version}
    (out / "info.json").write_text(json.dumps(info), encoding="utf-8")


def platform_steps(platform: str) -> list[tuple[str, str]]:
    """(name, bash) for each step run in the platform, in order; each after the first runs in the venv."""
    venv = f". {VENV}/bin/activate && cd /tmp/edgedigits && "
    return [
        ("install", "sudo() { \"$@\"; }; export DEBIAN_FRONTEND=noninteractive\n"
                    f"rm -rf {VENV} /tmp/edgedigits && mkdir /tmp/edgedigits\n"
                    "tar -C /src --exclude=./.git --exclude='./.ci/venv*' --exclude=./build -cf - . "
                    "| tar -C /tmp/edgedigits -xf -\ncd /tmp/edgedigits\n" + install_steps(platform)),
        ("doctor", venv + "edgedigits doctor | tee /out/doctor.txt"),
        ("bench", venv + "edgedigits bench --runs 200 --json /out/bench.json"),
        ("outputs", venv + "python /src/benchmarks/arm.py --dump /out /in/models/*.tflite"),
        ("predict", venv + "edgedigits predict /in/scenes --json > /out/predict.jsonl"),
        ("camera", venv + "edgedigits camera --source /in/scenes.mp4 --headless --json > /out/camera.jsonl"),
        ("bundle", venv + "rm -rf /tmp/bundle && edgedigits bundle --out /tmp/bundle && "
                          "/tmp/bundle/run.sh --runs 100 --warmup 5 && cp /tmp/bundle/results/bench.json "
                          "/out/bundle_bench.json"),
    ]


def run_platform(platform: Platform, inputs: Path, data: Path) -> dict:
    """Build (once) and enter the platform's root filesystem, run every step; the outputs go to CACHE/runs/NAME."""
    print(f"== {platform.name} ({platform.pi_os})", flush=True)
    built_s = platform.rootfs.build()
    out = CACHE / "runs" / platform.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log = out / "log.txt"
    env = {"EDGEDIGITS_DATA": f"/data/{data.name}", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_DEFAULT_TIMEOUT": "180",
           **{k: v for k, v in os.environ.items() if k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "HTTPS_PROXY",
                                                           "HTTP_PROXY", "NO_PROXY")}}
    steps = {}
    with platform.rootfs.entered({"/src": ROOT, "/data": data.parent, "/in": inputs, "/out": out}):
        for name, script in platform_steps(platform.name):
            with log.open("a", encoding="utf-8") as f:
                f.write(f"\n== {name}\n{script}\n")
            started = time.perf_counter()
            code = platform.rootfs.run(script, env, log)
            steps[name] = {"exit": code, "emulated_s": round(time.perf_counter() - started, 1)}
            print(f"   {name}: exit {code} in {steps[name]['emulated_s']} s (emulated)", flush=True)
            if code != 0 and name == "install":
                break
    run = {"pi_os": platform.pi_os, "rootfs": f"Debian {platform.rootfs.suite} {platform.rootfs.arch}",
           "rootfs_build_s": round(built_s or _recorded_build_s(platform.rootfs), 1), "steps": steps,
           "log_tail": _tail(log) if any(s["exit"] for s in steps.values()) else None, "out": str(out)}
    (out / "run.json").write_text(json.dumps(run), encoding="utf-8")  # for --report-only
    return run


def _recorded_build_s(rootfs: Rootfs) -> float:
    return float((rootfs.path / ".edgedigits-built").read_text())


def _tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def host_reference(inputs: Path, data: Path, model_paths: list[Path]) -> dict:
    """The same outputs, predict and camera readings on this x86 host (LiteRT)."""
    out = CACHE / "runs" / REFERENCE
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    dump_outputs(out, data, model_paths)
    harness = [sys.executable, "-m", "firmware_harness"]
    for name, args in (("predict", ["predict", str(inputs / "scenes"), "--json"]),
                       ("camera", ["camera", "--source", str(inputs / "scenes.mp4"), "--headless", "--json"])):
        with (out / f"{name}.jsonl").open("w") as f:
            subprocess.run([*harness, *args], stdout=f, check=True)
    (out / "run.json").write_text(json.dumps({"out": str(out)}), encoding="utf-8")
    return {"out": str(out)}


def compare(runs: dict[str, dict], model_paths: list[Path]) -> dict:
    """Per platform: what ran and how it went; per platform x model x kernels: accuracy and parity with x86."""
    import numpy as np

    ref_dir = Path(runs[REFERENCE]["out"])
    ref = np.load(ref_dir / "outputs.npz")
    y = ref["y_test"]
    ref_predict = _read_jsonl(ref_dir / "predict.jsonl")
    ref_camera = [r for r in _read_jsonl(ref_dir / "camera.jsonl") if "frame" in r]
    rows, platforms = [], {}
    for name, run in runs.items():
        out = Path(run["out"])
        summary = {k: v for k, v in run.items() if k != "out"}
        if (out / "info.json").is_file():
            summary.update(json.loads((out / "info.json").read_text()))
        if (out / "bench.json").is_file():
            bench_row = json.loads((out / "bench.json").read_text())["rows"][0]
            summary["bench_accuracy"] = bench_row["accuracy"]
        if (out / "bundle_bench.json").is_file():
            summary["bundle_accuracy"] = {r["model"]: r["accuracy"]
                                          for r in json.loads((out / "bundle_bench.json").read_text())["rows"]}
        if name != REFERENCE and (out / "doctor.txt").is_file():
            summary["doctor"] = (out / "doctor.txt").read_text().splitlines()
        if (out / "predict.jsonl").is_file():
            readings = _read_jsonl(out / "predict.jsonl")
            summary["predict"] = {
                "images": len(readings),
                "read_right": sum(Path(r["path"]).stem.split("_")[-1] == r["digits"] for r in readings),
                "same_as_x86": sum(a["digits"] == b["digits"] for a, b in zip(readings, ref_predict)),
            }
        if (out / "camera.jsonl").is_file():
            frames = [r for r in _read_jsonl(out / "camera.jsonl") if "frame" in r]
            summary["camera"] = {"frames": len(frames),
                                 "same_as_x86": sum(a["digits"] == b["digits"] for a, b in zip(frames, ref_camera))}
        platforms[name] = summary
        if not (out / "outputs.npz").is_file():
            continue
        outputs = np.load(out / "outputs.npz")
        for path in model_paths:
            for key in sorted(k for k in outputs.files if k.startswith(path.stem + "/")):
                raw, base = outputs[key], ref[f"{path.stem}/xnnpack"]
                integer = raw.dtype.kind in "iu"
                diff = np.abs(raw.astype(np.float64) - base.astype(np.float64))
                rows.append({
                    "platform": name, "model": path.name, "kernels": key.split("/")[1],
                    "accuracy": round(float(np.mean(np.argmax(raw, 1) == y)), 4),
                    "top1_differs_from_x86": int(np.sum(np.argmax(raw, 1) != np.argmax(base, 1))),
                    "max_output_diff": int(diff.max()) if integer else float(f"{diff.max():.3g}"),
                    "output": "int8 steps" if integer else "float",
                })
    return {"platforms": platforms, "parity": rows}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def markdown(result: dict) -> str:
    """The parity table and one line per platform, from arm.json."""
    lines = ["# Raspberry Pi OS, emulated (qemu-user): install, outputs and parity with x86", "",
             "Emulation proves that the install works and what the outputs are; its timings are not a Raspberry "
             "Pi's. Re-run: `sudo python benchmarks/arm.py`.", "",
             "| platform | Python | runtime | install | doctor | bench accuracy | predict (same as x86) | "
             "camera frames (same as x86) | bundle run.sh |", "|---|---|---|---|---|---|---|---|---|"]
    for name, p in result["platforms"].items():
        steps = p.get("steps", {})
        doctor = p.get("doctor", [])
        doctor_cell = (f"{sum(l.startswith('OK') for l in doctor)} ok, {sum(l.startswith('WARN') for l in doctor)} "
                       f"warn, {sum(l.startswith('FAIL') for l in doctor)} fail") if doctor else "-"
        predict, camera = p.get("predict", {}), p.get("camera", {})
        bundle = "ok" if steps.get("bundle", {}).get("exit") == 0 else ("-" if not steps else "failed")
        lines.append(
            f"| {name} | {p.get('machine', {}).get('python', '-')} | {p.get('backend', '-')} "
            f"{p.get('backend_version', '')} | {_step_cell(steps, 'install')} | {doctor_cell} | "
            f"{_pct(p.get('bench_accuracy'))} | {predict.get('same_as_x86', '-')}/{predict.get('images', '-')} | "
            f"{camera.get('same_as_x86', '-')}/{camera.get('frames', '-')} | {bundle} |")
    lines += ["", "doctor's warnings there: the training packages and TFLite Micro are not installed (a device "
              "install), and a root filesystem has no camera.", "",
              "Per image, against x86 LiteRT with XNNPACK on the MNIST test set (10,000 images). Kernels: `xnnpack` is "
              "the interpreter's default op resolver (LiteRT applies XNNPACK to int8 models; tflite-runtime 2.14's "
              "answers on armv7 equal its `builtin` ones), `builtin` the optimized kernels without XNNPACK, "
              "`reference` the reference kernels:", "",
              "| platform | model | kernels | accuracy | top-1 differs from x86 | largest output difference |",
              "|---|---|---|---|---|---|"]
    for r in result["parity"]:
        lines.append(f"| {r['platform']} | {r['model']} | {r['kernels']} | {_pct(r['accuracy'])} | "
                     f"{r['top1_differs_from_x86']} | {r['max_output_diff']} {r['output']} |")
    lines += ["", "First run (building each root filesystem, emulated): " + ", ".join(
        f"{name} {p['rootfs_build_s']:.0f} s" for name, p in result["platforms"].items() if "rootfs_build_s" in p), ""]
    return "\n".join(lines)


def _step_cell(steps: dict, name: str) -> str:
    step = steps.get(name)
    return "-" if step is None else ("ok" if step["exit"] == 0 else f"exit {step['exit']}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platforms", default=",".join(PLATFORMS), help="comma list of: " + ", ".join(PLATFORMS))
    parser.add_argument("--data", type=Path, help="mnist.npz [default: $EDGEDIGITS_DATA, keras cache]")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: compare the outputs the last run left in the cache and record them")
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)  # inside a platform: write outputs.npz there
    parser.add_argument("dump_models", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from firmware_harness import mnist

    data = mnist.locate(args.data)
    if data is None:
        return f"error: no MNIST found: pass --data PATH or set {mnist.ENV_VAR}"
    if args.dump:
        dump_outputs(args.dump, data, args.dump_models)
        return 0
    if os.geteuid() != 0:
        return "error: building and entering root filesystems needs root: sudo python benchmarks/arm.py"
    wanted = args.platforms.split(",")
    unknown = sorted(set(wanted) - set(PLATFORMS))
    if unknown:
        return f"error: unknown platform(s) {', '.join(unknown)}; choose from {', '.join(PLATFORMS)}"
    model_paths = models()
    started = time.perf_counter()
    if args.report_only:
        runs = {name: json.loads((CACHE / "runs" / name / "run.json").read_text()) for name in [REFERENCE, *wanted]}
        return _record(runs, model_paths, None)
    with tempfile.TemporaryDirectory(prefix="edgedigits-arm-") as tmp:
        inputs = Path(tmp)
        write_inputs(inputs, data)
        (inputs / "models").mkdir()
        for path in model_paths:
            shutil.copyfile(path, inputs / "models" / path.name)
        runs = {REFERENCE: host_reference(inputs, data, model_paths)}
        for name in wanted:
            runs[name] = run_platform(PLATFORMS[name], inputs, data)
    return _record(runs, model_paths, round(time.perf_counter() - started))


def _record(runs: dict[str, dict], model_paths: list[Path], wall_s: float | None) -> int | str:
    """Compare every platform's outputs with x86's and write arm.json and arm.md (wall_s: None for --report-only)."""
    result = {"command": "sudo python benchmarks/arm.py", "wall_time_s": wall_s,
              "models": {p.name: _model_record(p) for p in model_paths}, **compare(runs, model_paths)}
    record("arm", result, markdown(result))
    failed = [n for n, p in result["platforms"].items() if any(s["exit"] for s in p.get("steps", {}).values())]
    return f"error: steps failed on {', '.join(failed)} (see arm.md and the logs)" if failed else 0


def _model_record(path: Path) -> dict:
    """The file's sha256 and what its card says it measured on this host (bytes, arena, accuracy per kernel)."""
    import hashlib

    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size,
            **{k: card[k] for k in ("tensor_arena_bytes", "accuracy_per_kernel") if card.get(k) is not None}}


if __name__ == "__main__":
    sys.exit(main())
