"""Shared fixtures: the real MNIST copy, small real slices, and small real models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firmware_harness import mnist

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # benchmarks/served.py: a real server on a free port, shared

from served import serving  # noqa: E402


def _mnist_path() -> Path:
    env = os.environ.get(mnist.ENV_VAR)
    path = Path(env) if env else REPO.parent / "shared" / "data" / "mnist.npz"
    if not path.exists():
        pytest.exit(f"MNIST not found at {path}: set {mnist.ENV_VAR}=/path/to/mnist.npz", returncode=2)
    return path


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    return _mnist_path()


@pytest.fixture(scope="session")
def mnist_data(mnist_path):
    return mnist.load(mnist_path)


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600,
            module: str = "edgedigits.launch") -> subprocess.CompletedProcess:
    """Run `edgedigits ARGS` (or another module's main) in a fresh interpreter, through its real entry point."""
    code = f"import sys; from {module} import main; sys.exit(main())"
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    """A clean failure: the exit code, one 'error:' line on stderr, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    """The int8 model installed as package data (what every command runs by default)."""
    from firmware_harness.runtime import shipped_model as find

    path = find()
    assert path is not None, "the shipped model is not installed with the package"
    return path


@pytest.fixture(scope="session")
def test_images(mnist_path):
    data = mnist.load(mnist_path, splits=("test",))
    return data.x_test, data.y_test


@pytest.fixture(scope="module")
def server(shipped_model):
    """`edgedigits serve` on a free loopback port, through the real command; its base URL."""
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    with serving("--model", str(shipped_model)) as (_, port):
        yield f"http://127.0.0.1:{port}"
