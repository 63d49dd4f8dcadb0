"""Mutation fuzzing of every input the tool reads: .tflite models, images, npz/IDX data, videos.

    python benchmarks/fuzz.py [--cases 1000] [--kinds tflite,image,npz,idx,video] [--semantic KIND,...] [--seed 0]

Each case mutates a real file (truncation, bit flips, random byte runs, scattered bytes)
and feeds it to the loader a user would hit (Model + predict, image decode + digit
finding, MNIST loading, video capture + reading). Cases run in a child process watched by
this one: a case must end in a result or a one-line UserError; a dead child counts as a
crash, a case over 15 s as a hang, and the run continues after it. Results:
benchmarks/results/fuzz.json and .md (fuzz_<backend>.* on another runtime stack). tests/test_fuzz.py runs the same code, fewer cases.

The semantic kinds are crafted files that are valid (benchmarks/hostile.py: grids of marks,
a 16-bit 40-MP PNG, header bombs, a model whose shapes are computed huge, a model whose
output lies about its shape); each is run once, with its wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import select
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import hostile
from firmware_harness.runtime import PROBE_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("tflite", "image", "npz", "idx", "video")
CASE_TIMEOUT_S = PROBE_TIMEOUT_S + 5.0  # time for the harness to refuse a model that hangs its probe child


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One of four mutations, chosen and placed by `rng`."""
    b = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0 or not b:
        return bytes(b[:rng.randrange(len(b) + 1)])
    if kind == 1:
        for _ in range(rng.randint(1, 8)):
            p = rng.randrange(len(b))
            b[p] ^= 1 << rng.randrange(8)
    elif kind == 2:
        p, n = rng.randrange(len(b)), rng.randint(1, 64)
        b[p:p + n] = bytes(rng.randrange(256) for _ in range(n))
    else:
        for _ in range(rng.randint(5, 60)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def _repack_zip(data: bytes, rng: random.Random) -> bytes:
    """Mutate one member of a zip (npz) and pack it again with valid CRCs, so the npy parser sees it."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    victim = rng.choice(sorted(members))
    members[victim] = mutate(members[victim], rng)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return out.getvalue()


def _fix_png_crcs(data: bytes) -> bytes:
    """Recompute every PNG chunk CRC after a mutation, so libpng decodes the damaged data."""
    b = bytearray(data)
    pos = 8
    while pos + 12 <= len(b):
        length = struct.unpack(">I", b[pos:pos + 4])[0]
        end = pos + 8 + length
        if end + 4 > len(b):
            break
        b[end:end + 4] = struct.pack(">I", zlib.crc32(bytes(b[pos + 4:end])) & 0xFFFFFFFF)
        pos = end + 4
    return bytes(b)


def mutate_file(kind: str, data: bytes, rng: random.Random) -> bytes:
    """Half of the cases damage the raw bytes; for checksummed formats the other half keep checksums valid."""
    if kind == "npz" and rng.random() < 0.5:
        return _repack_zip(data, rng)
    if kind == "image" and data[:4] == b"\x89PNG" and rng.random() < 0.5:
        return _fix_png_crcs(mutate(data, rng))
    return mutate(data, rng)


def make_seeds(folder: Path) -> dict[str, Path]:
    """Real, valid files of each kind to mutate (small, so a case is quick)."""
    import cv2
    import numpy as np

    from edgedigits.training import scenes
    from firmware_harness import mnist
    from firmware_harness.runtime import shipped_model

    test = mnist.load(mnist.locate(None), splits=("test",))
    sample = scenes.scenes(test.x_test, test.y_test, 3, seed=4, size=(240, 320))
    cv2.imwrite(str(folder / "seed.png"), sample[0].image)
    cv2.imwrite(str(folder / "seed.jpg"), sample[1].image)
    np.savez(folder / "seed.npz", x_test=test.x_test[:200], y_test=test.y_test[:200])
    idx = folder / "idx"
    idx.mkdir()
    for split, x, y in (("train", test.x_test[:100], test.y_test[:100]), ("t10k", test.x_test[100:150], test.y_test[100:150])):
        (idx / f"{split}-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + np.array(x.shape, ">u4").tobytes() + x.tobytes())
        (idx / f"{split}-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + np.array(y.shape, ">u4").tobytes() + y.tobytes())
    scenes.write_video(str(folder / "seed.mp4"), [s.image for s in sample], fps=10, repeat=3)
    return {"tflite": shipped_model(), "image": folder / "seed.png", "image_jpg": folder / "seed.jpg",
            "npz": folder / "seed.npz", "idx": idx / "train-images-idx3-ubyte", "video": folder / "seed.mp4"}


def run_case(kind: str, path: Path) -> tuple[str, str]:
    """Feed one (mutated) file to its loader; ('ok', '') or ('refused', the one-line error). Anything else
    escapes as a bug."""
    import numpy as np

    from firmware_harness import images, mnist, preprocess, sources
    from firmware_harness.errors import UserError
    from firmware_harness.runtime import Model

    try:
        if kind == "tflite":
            assert Model(path).predict(np.zeros((2, 28, 28), np.uint8)).shape == (2, 10)
        elif kind == "image":
            preprocess.find_digits(images.read(path))
        elif kind in ("npz", "idx"):
            mnist.load(path if kind == "npz" else path.parent, splits=("test",) if kind == "npz" else ("train", "test"))
        else:
            source = sources.open_source(str(path))
            while (frame := source.read()) is not None:
                preprocess.find_digits(frame)
            source.close()
    except UserError as e:
        assert "\n" not in str(e), "errors are one line"
        return "refused", str(e)
    return "ok", ""


CHILD = """
import random, sys
from pathlib import Path
sys.path.insert(0, {bench!r})
from fuzz import mutate_file, run_case
kind, seed_path, work, seed, start, stop = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
data = seed_path.read_bytes()
for case in range(start, stop):
    target = work / seed_path.name
    target.write_bytes(mutate_file(kind, data, random.Random(seed * 1_000_003 + case)))
    print(case, run_case(kind, target)[0], flush=True)
"""

SEMANTIC_CHILD = """
import json, resource, sys
from pathlib import Path
sys.path.insert(0, {bench!r})
from fuzz import run_case
result, message = run_case(sys.argv[1], Path(sys.argv[2]))
own = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))  # this exec only
peak = max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({{"result": result, "message": message, "peak_rss_mib": round(peak / 1024, 1)}}), flush=True)
"""


def fuzz(kind: str, seed_path: Path, cases: int, seed: int, work: Path) -> dict:
    """Run `cases` mutations of `seed_path`; count ok / refused / crashes / hangs / errors."""
    counts = {"ok": 0, "refused": 0, "crash": 0, "hang": 0, "error": 0}
    failures = []
    loader = "image" if kind == "image_jpg" else kind
    folder = work / kind
    folder.mkdir(exist_ok=True)
    if kind == "idx":  # the other IDX files stay valid; one of them is mutated
        for sibling in seed_path.parent.iterdir():
            (folder / sibling.name).write_bytes(sibling.read_bytes())
    code = CHILD.format(bench=str(ROOT / "benchmarks"))
    case = 0
    while case < cases:
        # stderr to a file, not a pipe nobody drains: FFmpeg warns on every damaged video and a full
        # pipe would block the child (it looked like a hang in the decoder)
        errors = tempfile.TemporaryFile(mode="w+")
        child = subprocess.Popen([sys.executable, "-c", code, loader, str(seed_path), str(folder), str(seed),
                                  str(case), str(cases)], stdout=subprocess.PIPE, stderr=errors, text=True)
        while case < cases:
            ready, _, _ = select.select([child.stdout], [], [], CASE_TIMEOUT_S)
            if not ready:
                child.kill()
                counts["hang"] += 1
                failures.append({"case": case, "result": "hang"})
                case += 1
                break
            line = child.stdout.readline()
            if not line:  # the child ended without finishing: a crash or an uncaught exception
                child.wait()
                errors.seek(0)
                tail = errors.read()[-300:]
                result = "crash" if child.returncode < 0 else "error"
                counts[result] += 1
                failures.append({"case": case, "result": result, "returncode": child.returncode, "stderr": tail})
                case += 1
                break
            counts[line.split()[1]] += 1
            case += 1
        child.kill()
        child.wait()
        child.stdout.close()
        errors.close()
    return {"kind": kind, "cases": cases, **counts, "failures": failures[:20]}


def semantic(kind: str, work: Path) -> dict:
    """Build one crafted input (benchmarks/hostile.py) and feed it to its loader in a child: the result, the
    wall time and the peak RSS of the child and of any process it started (the model probe)."""
    loader, build = hostile.SEMANTIC[kind]
    folder = work / kind
    folder.mkdir(exist_ok=True)
    path = build(folder)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", SEMANTIC_CHILD.format(bench=str(ROOT / "benchmarks")), loader,
                              str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=CASE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        row = {"result": "hang", "message": f"over {CASE_TIMEOUT_S:.0f} s", "peak_rss_mib": None}
    else:
        if child.returncode == 0 and out.strip():
            row = json.loads(out.strip().splitlines()[-1])
        else:
            row = {"result": "crash" if child.returncode < 0 else "error", "message": err.strip()[-300:],
                   "peak_rss_mib": None}
    return {"kind": kind, "loader": loader, "input_bytes": sum(p.stat().st_size for p in path.parent.rglob("*")
                                                              if p.is_file()),
            "seconds": round(time.perf_counter() - started, 2), **row}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--kinds", default=",".join(KINDS), help="random mutation kinds (empty: none)")
    parser.add_argument("--semantic", default=",".join(hostile.SEMANTIC), help="crafted kinds (empty: none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from firmware_harness.device import machine_info
    from firmware_harness.runtime import get_backend
    from record import record

    rows, crafted = [], []
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        work = Path(tmp)
        kinds = [k for k in args.kinds.split(",") if k]
        seeds = make_seeds(work) if kinds else {}
        for kind in kinds:
            for name in [k for k in seeds if k.split("_")[0] == kind]:
                started = time.perf_counter()
                row = fuzz(name, seeds[name], args.cases, args.seed, work)
                row["seconds"] = round(time.perf_counter() - started, 1)
                print(json.dumps({k: v for k, v in row.items() if k != "failures"}), flush=True)
                rows.append(row)
        for kind in [k for k in args.semantic.split(",") if k]:
            crafted.append(semantic(kind, work))
            print(json.dumps(crafted[-1]), flush=True)
    backend = get_backend().name
    result = {"command": "python benchmarks/fuzz.py " + " ".join(sys.argv[1:]), "device": machine_info(),
              "backend": backend, "case_timeout_s": CASE_TIMEOUT_S, "rows": rows, "semantic": crafted}
    stem = "fuzz" if backend == "litert" else f"fuzz_{backend}"  # one record per runtime stack
    record(stem, result, markdown(result))
    clean = all(r["crash"] == r["hang"] == r["error"] == 0 for r in rows)
    return 0 if clean and all(r["result"] in ("ok", "refused") for r in crafted) else 1


def _table_text(message: str) -> str:
    """A message in a Markdown table cell: the temporary folder cut off, pipes escaped."""
    return message.split("/")[-1].replace("|", "\\|") if message else "(read)"


def markdown(result: dict) -> str:
    lines = [f"`{result['command']}` on {result['device']['cpu']}, backend {result['backend']}, "
             f"a case over {result['case_timeout_s']:.0f} s counts as a hang", "",
             "| input | cases | valid result | clean one-line error | crashes | hangs | other errors | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['kind']} | {r['cases']} | {r['ok']} | {r['refused']} | {r['crash']} | {r['hang']} | {r['error']} "
              f"| {r['seconds']} |" for r in result['rows']]
    lines += ["", "Crafted inputs (`benchmarks/hostile.py`), valid files built to cost CPU or memory; peak RSS of the "
              "process that read it and of any child it started:", "",
              "| input | file bytes | read as | result | seconds | peak RSS MiB | what the user sees |",
              "|---|---:|---|---|---:|---:|---|"]
    lines += [f"| {r['kind']} | {r['input_bytes']:,} | {r['loader']} | {r['result']} | {r['seconds']} | "
              f"{r['peak_rss_mib']} | {_table_text(r['message'])} |" for r in result['semantic']]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("EDGEDIGITS_MAX_PIXELS", "40000000")
    sys.exit(main())
