"""The README and the docs: short, built, and every results table rendered from its JSON."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import arm  # noqa: E402


def test_readme_is_read_in_five_minutes():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def test_every_results_table_is_its_json_rendered():
    pytest.importorskip("tensorflow")  # some benchmark scripts import the training stack
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "render.py"), "--check"], capture_output=True,
                          text=True, cwd=REPO)
    assert done.returncode == 0, "edited by hand, or its renderer changed (python benchmarks/render.py):\n" + \
        done.stdout + done.stderr[-2000:]


def test_the_docs_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    models = (tmp_path / "models" / "index.html").read_text(encoding="utf-8")
    assert models.count("<table>") >= 2, "the included results tables must render as tables"


def test_the_readme_has_an_install_block_for_every_emulated_platform():
    for name in arm.PLATFORMS:
        steps = arm.install_steps(name)
        assert "pip install" in steps and arm.VENV.removeprefix("~/") in steps


def test_arm_results_describe_the_shipped_model_and_agree_with_bench():
    result = json.loads((REPO / "benchmarks" / "results" / "arm.json").read_text(encoding="utf-8"))
    shipped = REPO / "edgedigits" / "pretrained" / "edgedigits_int8.tflite"
    measured = result["models"][shipped.name]["sha256"]
    if measured != arm._model_record(shipped)["sha256"]:  # measured before TFLITE_METADATA went in, or changed
        pytest.importorskip("ai_edge_litert.schema_py_generated", reason="removing the entry needs LiteRT's schema")
        from edgedigits.export import tflite_edit

        plain = tflite_edit.without_metadata(shipped.read_bytes(), "TFLITE_METADATA")
        assert hashlib.sha256(plain).hexdigest() == measured, \
            "the shipped model changed: run sudo python benchmarks/arm.py again"
    for name, platform in result["platforms"].items():
        if name == arm.REFERENCE:
            continue
        assert all(step["exit"] == 0 for step in platform["steps"].values()), name
        parity = next(r for r in result["parity"]
                      if r["platform"] == name and r["model"] == shipped.name and r["kernels"] == "xnnpack")
        assert platform["bench_accuracy"] == parity["accuracy"], name  # what `edgedigits bench` printed there


MEASURED = re.compile(r"(\d+(?:[.,]\d+)*) ?(%|µs|ms|s|min)\b")


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for item in value for s in _strings(item)] if isinstance(value, list) else []


def test_the_readme_export_figures_describe_the_shipped_file():
    """The export benchmark the README cites measured the shipped file's bytes before the card went in;
    the card says how big that was, names its data by checksum (no path on one disk), and the README
    names the shipped file's sha256."""
    pytest.importorskip("ai_edge_litert.schema_py_generated", reason="removing the entry needs LiteRT's schema")
    from edgedigits.export import tflite_edit

    shipped = REPO / "edgedigits" / "pretrained" / "edgedigits_int8.tflite"
    card = json.loads(shipped.with_suffix(".json").read_text())
    measured = json.loads((REPO / "benchmarks" / "results" / "export_ds_cnn_fast.json").read_text())
    plain = tflite_edit.without_metadata(shipped.read_bytes(), "edgedigits", "TFLITE_METADATA")
    assert hashlib.sha256(plain).hexdigest() == measured["sha256"]
    assert len(plain) == measured["bytes"] == card["bytes_without_metadata"]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("export_ds_cnn_fast.md"):][:400]
    assert card["sha256"][:12] in paragraph and f"{card['bytes']:,} B" in paragraph
    assert card["data"]["sha256"] and not [s for s in _strings(card) if s.startswith(("/", "~")) or ":\\" in s]


def _numbers(value) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        value = list(value.values())
    return [n for item in value for n in _numbers(item)] if isinstance(value, list) else []


@pytest.mark.parametrize("page", ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))])
def test_every_measured_number_in_the_readme_and_the_docs_comes_from_a_results_json(page):
    """Percentages and times in prose are figures some results JSON (or the shipped card) holds; the
    tables are their JSON rendered (above), so a number typed by hand and left behind fails here."""
    text = (REPO / page).read_text(encoding="utf-8")
    prose = re.sub(r"<!-- --8<-- \[start:headline\] -->.*?<!-- --8<-- \[end:headline\] -->", "", text, flags=re.S)
    sources = [*(REPO / "benchmarks" / "results").glob("*.json"), REPO / "edgedigits" / "pretrained" / "edgedigits_int8.json"]
    known = [n for path in sources for n in _numbers(json.loads(path.read_text(encoding="utf-8")))]
    scale = {"%": (1, 100), "µs": (1,), "ms": (1, 1000), "s": (1,), "min": (1 / 60,)}
    missing = []
    for shown_text, unit in MEASURED.findall(prose):
        shown = float(shown_text.replace(",", ""))
        decimals = len(shown_text.split(".")[1]) if "." in shown_text else 0
        if not any(round(v * k, decimals) == shown for v in known for k in scale[unit]):
            missing.append(f"{shown_text} {unit}")
    assert not missing, f"numbers in {page} that no results JSON holds: {missing}"
