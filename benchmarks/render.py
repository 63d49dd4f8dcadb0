"""Render what the docs show from data: every `benchmarks/results/<stem>.md` from its JSON, the README's
headline table, and the shipped model's app snippets in docs/snippets/ from its card.

    python benchmarks/render.py            # rewrite what differs
    python benchmarks/render.py --check    # list what differs from its render; exit 1 if anything does

Each benchmark script renders its own table with `markdown(result)` when it records a run; this
catalogue says which script renders which results file, so that a table is re-rendered (after a
change to its renderer) without re-running the measurement, and `tests/test_docs.py` checks that
no table was edited by hand. The docs include these files; nothing is pasted.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import sys
from pathlib import Path

import headline
from record import RESULTS

from edgedigits.export import app_snippets

ROOT = RESULTS.parents[1]
RENDERERS = {  # results stem (a glob) -> the module whose markdown(result) renders it
    "arm": "arm",
    "bad_inputs": "bad_inputs",
    "bench_repeat": "bench_repeat",
    "bench_tflite-runtime": "firmware_harness.bench",  # python -m firmware_harness bench --json --markdown
    "camera_fps": "camera_fps",
    "digit_gate": "digit_gate",
    "export_*": "export_int8",
    "fuzz*": "fuzz",
    "handwriting": "handwriting",
    "own_digits": "own_digits",
    "predict_speed": "predict_speed",
    "recipes": "recipes",
    "recognition": "recognition",
    "results*": "model_zoo",
    "seed_spread*": "seed_spread",
    "serve_siege": "serve_siege",
    "strings": "strings",
    "tune_*": "tune_search",
    "uci_digits": "uci_digits",
    "web_load": "web_load",
    "web_page": "web_page",
}
UNRENDERED = ("mcu",)  # JSON read by other tables, with no table of its own


def renderer(stem: str):
    for pattern, module in RENDERERS.items():
        if fnmatch.fnmatch(stem, pattern):
            return importlib.import_module(module).markdown
    raise KeyError(f"benchmarks/results/{stem}.json has no renderer: add it to RENDERERS in benchmarks/render.py")


def renders() -> dict[Path, str]:
    """Every generated file and what it should hold."""
    out = {}
    for path in sorted(RESULTS.glob("*.json")):
        if path.stem in UNRENDERED:
            continue
        out[path.with_suffix(".md")] = renderer(path.stem)(json.loads(path.read_text(encoding="utf-8")))
    readme = ROOT / "README.md"
    out[readme] = headline.into_readme(readme.read_text(encoding="utf-8"))
    shipped = json.loads((ROOT / "edgedigits" / "pretrained" / "edgedigits_int8.json").read_text(encoding="utf-8"))
    gate = app_snippets.shipped_gate_card()
    out[ROOT / "docs" / "snippets" / "edgedigits_int8_android.kt"] = app_snippets.kotlin("edgedigits_int8", shipped, gate)
    out[ROOT / "docs" / "snippets" / "edgedigits_int8_ios.swift"] = app_snippets.swift("edgedigits_int8", shipped, gate)
    out[ROOT / "docs" / "snippets" / "edgedigits_int8_mediapipe.js"] = app_snippets.javascript("edgedigits_int8")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only list the files that differ from their render")
    args = parser.parse_args()
    wanted = renders()
    differ = [path for path, text in wanted.items() if not path.is_file() or path.read_text(encoding="utf-8") != text]
    for path in differ:
        print(f"{'differs' if args.check else 'rendered'}: {path.relative_to(ROOT)}")
    if args.check:
        return 1 if differ else 0
    from firmware_harness import atomic

    for path in differ:
        atomic.ensure_dir(path.parent)
        atomic.write_text(path, wanted[path])
    return 0


if __name__ == "__main__":
    sys.exit(main())
