"""The small JSON card every artifact carries: what made it, when, with which versions."""

from __future__ import annotations

import hashlib
import shlex
import sys
import time
from pathlib import Path

from firmware_harness.device import package_version

PACKAGES = ("edgedigits", "tensorflow", "tf-keras", "tensorflow-model-optimization", "numpy", "ai-edge-litert")


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def provenance() -> dict:
    """Fields common to every card: the command, the time, the package versions."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)  # set when run as `python -m package.module`
    if spec is not None:
        argv = ["python", "-m", spec.name.removesuffix(".__main__"), *sys.argv[1:]]
    else:
        argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else []
    return {
        "command": shlex.join(argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {name: package_version(name) for name in PACKAGES if package_version(name)},
    }
