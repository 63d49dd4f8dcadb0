"""Mutated inputs never crash or hang the tool: the CI-sized run of benchmarks/fuzz.py.

Every input kind a user can hand the tool: .tflite models (500 cases), PNG and JPEG
images, npz and IDX data files, and videos (150 each). `python benchmarks/fuzz.py`
runs 1000 per kind and records the counts.
"""

from __future__ import annotations

import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import fuzz  # noqa: E402

CASES = {"tflite": 500, "image": 150, "image_jpg": 150, "npz": 150, "idx": 150, "video": 60}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory, mnist_path, monkeypatch_module):
    monkeypatch_module.setenv("EDGEDIGITS_DATA", str(mnist_path))
    return fuzz.make_seeds(tmp_path_factory.mktemp("seeds")), tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("kind", list(CASES))
def test_mutated_inputs_end_in_a_result_or_a_clean_error(kind, seeds):
    paths, work = seeds
    row = fuzz.fuzz(kind, paths[kind], CASES[kind], seed=11, work=work)
    assert row["crash"] == row["hang"] == row["error"] == 0, row["failures"]
    assert row["ok"] + row["refused"] == CASES[kind]
    assert row["refused"] > 0, "the mutations must reach the error paths"


@pytest.mark.parametrize("kind", list(fuzz.hostile.SEMANTIC))
def test_crafted_inputs_end_within_10_s_and_1_gib(kind, seeds):
    """Valid files built to cost CPU or memory (benchmarks/hostile.py): a result or a one-line error, bounded."""
    row = fuzz.semantic(kind, seeds[1])
    assert row["result"] in ("ok", "refused"), row
    assert row["seconds"] <= 10 and row["peak_rss_mib"] <= 1024, row
