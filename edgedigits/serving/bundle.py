"""`edgedigits bundle`: a folder to copy to a Raspberry Pi and benchmark there, no TensorFlow.

Holds the models (with their cards), the MNIST test set compressed, the firmware_harness
package and the digit gate, requirements for Raspberry Pi OS (64-bit: LiteRT; 32-bit: tflite-runtime) and
`run.sh`, which makes a virtual environment, installs them and runs the bench, and a README
that says how to run `predict` and `camera` there. A marker file lists what the bundle wrote, so
that a second bundle into the folder replaces exactly those files and no others.
"""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import numpy as np

import firmware_harness
from firmware_harness import atomic, bounded_json, contract, mnist, runtime
from firmware_harness.errors import UserError

# The extras `litert` and `tflite-system` of pyproject.toml. Wheels on PyPI: ai-edge-litert 2.3 (manylinux_2_27
# aarch64, Python 3.10-3.13) and tflite-runtime 2.14 (manylinux_2_34 armv7l, Python 3.11 on Raspberry Pi OS
# Bookworm). PyPI has no armv7l numpy or OpenCV: on 32-bit they come from Debian's packages (benchmarks/arm.py).
REQUIREMENTS = {
    "requirements-64bit.txt": "ai-edge-litert>=2.1,<2.4\nnumpy>=1.24,<3\nopencv-python-headless>=4.8,<5.1\n",
    "requirements-32bit.txt": "tflite-runtime>=2.14,<2.15\nnumpy>=1.24,<2\n",
}
RUN_SH = """#!/usr/bin/env bash
# Benchmark the models in this folder on this device (Raspberry Pi OS, or any Linux).
# Usage: ./run.sh [extra bench options, e.g. --threads 4]
set -euo pipefail
cd "$(dirname "$0")"
case "$(uname -m)" in
  aarch64|arm64|x86_64) requirements=requirements-64bit.txt venv_options="" ;;
  armv7l|armv6l)
    # No armv7l wheels of numpy or OpenCV on PyPI: the venv sees Debian's (python3-numpy, python3-opencv).
    requirements=requirements-32bit.txt venv_options=--system-site-packages
    if ! python3 -c "import numpy" 2>/dev/null; then
      echo "error: 32-bit Raspberry Pi OS needs numpy from Debian: sudo apt install python3-numpy python3-opencv" >&2
      exit 2
    fi ;;
  *) echo "error: no TFLite wheels known for $(uname -m)" >&2; exit 2 ;;
esac
if [ ! -f .venv/.edgedigits-installed ]; then
  # The marker is written when the install has finished: a failed install (a flaky network) leaves
  # no .venv, and one cut short leaves no marker, so the next run starts it again. (A venv cannot be
  # made elsewhere and renamed: its scripts name the folder it was made in.)
  rm -rf .venv
  python3 -m venv $venv_options .venv
  if ! .venv/bin/pip install --quiet -r "$requirements"; then
    rm -rf .venv
    echo "error: pip install -r $requirements failed (see above); check the network and run ./run.sh again" >&2
    exit 1
  fi
  touch .venv/.edgedigits-installed
fi
mkdir -p results
.venv/bin/python -m firmware_harness bench models/*.tflite --data data/mnist_test.npz \\
  --json results/bench.json --markdown results/bench.md "$@"
echo "wrote results/bench.json and results/bench.md"
"""
README = """# edgedigits bundle

Copy this folder to the device and run, in it:

    ./run.sh                      # makes .venv (first time), benchmarks models/*.tflite on data/
    ./run.sh --threads 4          # any `bench` option

After the first run, `.venv` has the harness's runtime, so the other device commands work too:

    .venv/bin/python -m firmware_harness predict photo.jpg --model {model}
    .venv/bin/python -m firmware_harness camera --source 0 --model {model} --headless
    .venv/bin/python -m firmware_harness camera --source picamera --model {model}

`predict` and `camera` weigh each confidence by the digit gate in gate/ (is the mark a digit at all?),
so that `predict --min-confidence 0.9` shows letters and signs as '?'.

Results are in results/bench.json and results/bench.md. `{marker}` lists the files the bundle
wrote; `edgedigits bundle` replaces only those when run into this folder again.
"""
MARKER = contract.BUNDLE_MARKER


def build(out_dir: Path, models: list[Path], data: Path | None = None) -> Path:
    """Write the bundle into `out_dir`: a new or empty folder, or an earlier bundle, whose files (and only
    those, as its marker lists them) are replaced; any other file in it is left as it is."""
    _check_models(models)
    source = mnist.locate(data)
    if source is None:
        raise UserError(f"no MNIST found for the bundle's test set: pass --data PATH or set {mnist.ENV_VAR}")
    test = mnist.load(source, splits=("test",))
    out_dir = atomic.ensure_dir(out_dir)
    earlier = _earlier_files(out_dir)
    files: dict[str, bytes] = {}
    for model in models:
        files[f"models/{model.name}"] = model.read_bytes()
        card = model.with_suffix(".json")
        if card.is_file():
            files[f"models/{card.name}"] = card.read_bytes()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_test=test.x_test, y_test=test.y_test)
    files["data/mnist_test.npz"] = buffer.getvalue()
    for path in sorted(Path(firmware_harness.__file__).parent.glob("*.py")):
        files[f"firmware_harness/{path.name}"] = path.read_bytes()
    gate = runtime.gate_path()
    for path in (gate, gate.with_suffix(".json")) if gate else ():  # runtime.BUNDLED_GATE
        files[f"gate/{path.name}"] = path.read_bytes()
    for name, text in REQUIREMENTS.items():
        files[name] = text.encode()
    files["run.sh"] = RUN_SH.encode()
    files["README.md"] = README.format(model=shlex.quote(f"models/{models[0].name}"), marker=MARKER).encode()
    targets = {name: atomic.inside(out_dir, name) for name in files}
    for name in sorted(earlier - set(files)):  # an earlier bundle's models that this one does not hold
        atomic.inside(out_dir, name).unlink(missing_ok=True)
    # the marker first: a crash below leaves a bundle to redo
    atomic.write_json(atomic.inside(out_dir, MARKER), {"files": sorted(files)})
    for name, content in files.items():
        atomic.write_bytes(targets[name], content)
    (out_dir / "run.sh").chmod(0o755)
    return out_dir


def _check_models(models: list[Path]) -> None:
    names: dict[str, Path] = {}
    for model in models:
        if not model.is_file():
            raise UserError(f"model not found: {model}")
        if model.name in names:
            raise UserError(f"two models are named {model.name} ({names[model.name]} and {model}); "
                            f"a bundle keeps models by name: copy one to another name first")
        names[model.name] = model


def _earlier_files(out_dir: Path) -> set[str]:
    """The files an earlier bundle wrote here (its marker), or nothing for an empty folder; refuse any other."""
    marker = out_dir / MARKER
    if not marker.is_file():
        if any(out_dir.iterdir()):
            raise UserError(f"{out_dir} already holds files and is not an edgedigits bundle; "
                            f"choose a new or empty folder for --out")
        return set()
    try:
        listed = bounded_json.loads(marker.read_bytes())["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{marker} is damaged; choose a new or empty folder for --out") from e
    safe = {name for name in listed if isinstance(name, str) and ".." not in Path(name).parts
            and not Path(name).is_absolute()}
    return safe

