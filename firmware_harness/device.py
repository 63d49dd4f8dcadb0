"""What a measurement ran on: CPU, OS, Python and package versions."""

from __future__ import annotations

import os
import platform
from functools import cache
from importlib import metadata


def package_version(name: str) -> str | None:
    """Installed version of distribution `name`, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def opencv_version() -> str | None:
    """The version of the OpenCV that imports (pip's or the system's: Debian's python3-opencv), or None."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2.__version__


@cache
def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else platform)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """The machine a benchmark row was measured on."""
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": package_version("numpy"),
        "opencv": opencv_version(),
    }
