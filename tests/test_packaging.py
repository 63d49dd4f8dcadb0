"""What `pip install` brings: every package folder."""

from __future__ import annotations

import pytest

from conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_folder_is_installed(project):
    """pyproject.toml lists the packages by hand: a new stage's folder left out would be missing from a wheel."""
    listed = set(project["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(REPO).parts) for root in ("edgedigits", "firmware_harness")
               for p in (REPO / root).rglob("__init__.py")}
    assert folders == listed, (sorted(folders - listed), sorted(listed - folders))

