"""What `pip install` brings: every package folder, and for each extra what its commands need."""

from __future__ import annotations

import re

import pytest

from conftest import REPO
from firmware_harness.runtime import BACKENDS

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _names(requirements: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9._-]+", r).group(0).lower().replace("_", "-") for r in requirements}


def test_every_package_folder_is_installed(project):
    """pyproject.toml lists the packages by hand: a new stage's folder left out would be missing from a wheel."""
    listed = set(project["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(REPO).parts) for root in ("edgedigits", "firmware_harness")
               for p in (REPO / root).rglob("__init__.py")}
    assert folders == listed, (sorted(folders - listed), sorted(listed - folders))


@pytest.mark.parametrize("extra", ["litert", "tflite", "tflite-system", "mcu"])
def test_every_extra_that_runs_a_model_brings_an_interpreter(project, extra):
    """`pip install '.[mcu]'` alone must run `edgedigits mcu`, which compares TFLite Micro with a desktop
    interpreter (doctor's advice names this extra)."""
    interpreters = {spec[2].lower() for spec in BACKENDS.values()}
    assert _names(project["project"]["optional-dependencies"][extra]) & interpreters, extra
