"""`edgedigits bundle`: a folder to copy to a Raspberry Pi and benchmark there, no TensorFlow.

Holds the models (with their cards), the MNIST test set compressed, the firmware_harness
package, requirements for Raspberry Pi OS (64-bit: LiteRT; 32-bit: tflite-runtime) and
`run.sh`, which makes a virtual environment, installs them and runs the bench.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np

import firmware_harness
from firmware_harness import atomic, mnist
from firmware_harness.errors import UserError

# Wheels checked on PyPI for Python 3.11: ai-edge-litert 2.3 (manylinux_2_27 aarch64) and
# tflite-runtime 2.14 (manylinux_2_34 armv7l, i.e. Raspberry Pi OS Bookworm); OpenCV has no
# armv7l wheel on PyPI, piwheels (on by default on Raspberry Pi OS) has one.
REQUIREMENTS = {
    "requirements-64bit.txt": "ai-edge-litert>=2.1,<2.4\nnumpy>=1.24,<3\nopencv-python-headless>=4.8,<5.1\n",
    "requirements-32bit.txt": (
        "--extra-index-url https://www.piwheels.org/simple\n"
        "tflite-runtime>=2.14,<2.15\nnumpy>=1.24,<2\nopencv-python-headless>=4.8,<4.11\n"
    ),
}
RUN_SH = """#!/usr/bin/env bash
# Benchmark the models in this folder on this device (Raspberry Pi OS Bookworm, or any Linux).
# Usage: ./run.sh [extra bench options, e.g. --threads 4]
set -euo pipefail
cd "$(dirname "$0")"
case "$(uname -m)" in
  aarch64|arm64|x86_64) requirements=requirements-64bit.txt ;;
  armv7l|armv6l) requirements=requirements-32bit.txt ;;
  *) echo "error: no TFLite wheels known for $(uname -m)" >&2; exit 2 ;;
esac
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet -r "$requirements"
fi
mkdir -p results
.venv/bin/python -m firmware_harness bench models/*.tflite --data data/mnist_test.npz \\
  --json results/bench.json --markdown results/bench.md "$@"
echo "wrote results/bench.json and results/bench.md"
"""


def build(out_dir: Path, models: list[Path], data: Path | None = None) -> Path:
    """Write the bundle into `out_dir` (created; existing files of the same names are replaced)."""
    for model in models:
        if not model.is_file():
            raise UserError(f"model not found: {model}")
    source = mnist.locate(data)
    if source is None:
        raise UserError(f"no MNIST found for the bundle's test set: pass --data PATH or set {mnist.ENV_VAR}")
    test = mnist.load(source, splits=("test",))
    out_dir = atomic.ensure_dir(out_dir)
    for model in models:
        atomic.write_bytes(out_dir / "models" / model.name, model.read_bytes())
        card = model.with_suffix(".json")
        if card.is_file():
            atomic.write_bytes(out_dir / "models" / card.name, card.read_bytes())
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_test=test.x_test, y_test=test.y_test)
    atomic.write_bytes(out_dir / "data" / "mnist_test.npz", buffer.getvalue())
    package = Path(firmware_harness.__file__).parent
    target = out_dir / "firmware_harness"
    if target.exists():
        shutil.rmtree(target)
    for path in sorted(package.glob("*.py")):
        atomic.write_bytes(target / path.name, path.read_bytes())
    for name, text in REQUIREMENTS.items():
        atomic.write_text(out_dir / name, text)
    run = atomic.write_text(out_dir / "run.sh", RUN_SH)
    run.chmod(0o755)
    return out_dir
