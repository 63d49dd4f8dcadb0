"""The house by stage: every import points down a stage, and docs/architecture.md draws the tree as it is.

Stages, lowest first: the device side (firmware_harness, which a Pi runs with no edgedigits install), then
edgedigits' training, export, serving and builds (tune, gate), and the command face (cli, launch, doctor,
evaluate) on top. A module may import its own stage and the stages below it; serving and builds stand side
by side and import neither each other. The package root (edgedigits/__init__.py: constants, and DigitReader
from the harness) and the shipped files (edgedigits/pretrained) sit between the harness and training.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

RANKS = {"firmware_harness": 0, "edgedigits": 0.5, "edgedigits.pretrained": 0.5, "edgedigits.training": 1,
         "edgedigits.export": 2, "edgedigits.serving": 3, "edgedigits.builds": 3, "face": 4}
FACE = ("edgedigits.cli", "edgedigits.launch", "edgedigits.doctor", "edgedigits.evaluate")


def stage_of(module: str) -> str:
    """The stage a dotted module name belongs to."""
    if module.startswith(FACE):
        return "face"
    if module.startswith("firmware_harness"):
        return "firmware_harness"
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and ".".join(parts[:2]) in RANKS else parts[0]


def imported(source: str) -> set[str]:
    """Every edgedigits / firmware_harness module a source imports, at the top or inside a function.

    `from edgedigits.export import pipeline` names edgedigits.export.pipeline; `from edgedigits import X`
    names edgedigits.X, which is the root (a constant) unless X is a face module."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] in ("edgedigits", "firmware_harness")}


def upward_imports(module: str, source: str) -> list[str]:
    """The imports of `module` that point up a stage or sideways into another stage of its rank."""
    own = stage_of(module)
    return sorted(m for m in imported(source) if stage_of(m) != own and RANKS[stage_of(m)] >= RANKS[own])


def _modules() -> dict[str, Path]:
    files = [*(REPO / "edgedigits").rglob("*.py"), *(REPO / "firmware_harness").rglob("*.py")]
    return {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p for p in files}


def test_every_import_points_down_a_stage():
    wrong = {m: bad for m, p in _modules().items() if (bad := upward_imports(m, p.read_text(encoding="utf-8")))}
    assert not wrong, wrong


def test_the_check_sees_an_upward_import_even_inside_a_function():
    source = "def f():\n    from edgedigits.serving import web_site\n"
    assert upward_imports("edgedigits.training.data", source) == ["edgedigits.serving.web_site"]
    assert upward_imports("edgedigits.builds.tune", source) == ["edgedigits.serving.web_site"]  # sideways
    assert upward_imports("edgedigits.training.train", "from edgedigits import DEFAULT_MODEL") == []  # the root
    assert upward_imports("firmware_harness.bench", "from edgedigits import DEFAULT_MODEL") == [
        "edgedigits.DEFAULT_MODEL"]  # the harness runs where edgedigits is not installed
    assert upward_imports("edgedigits.cli", source) == []


def _drawn_tree() -> set[str]:
    """The paths docs/architecture.md's map draws: `name/` opens a folder at its indentation, and every
    name ending in .py, .js or / is a path (several may share a line, separated by commas)."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(.*?)```", text, re.S).group(1)
    paths, folders = set(), []  # folders: (indent, path) of the open folders
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        names = re.match(r"\s*((?:[\w.]+/?(?:, )?)+)(?:\s{2,}|$)", line)
        if not names or not re.search(r"(\.py|\.js|/)(,|$)", names.group(1).replace(" ", "")):
            continue  # a line that goes on describing the entry above
        folders = [(i, f) for i, f in folders if i < indent]
        parent = folders[-1][1] if folders else ""
        for name in names.group(1).replace(" ", "").split(","):
            paths.add(parent + name)
            if name.endswith("/"):
                folders.append((indent, parent + name))
    return paths


def test_the_architecture_map_matches_the_tree():
    drawn = _drawn_tree()
    missing = sorted(p for p in drawn if not (REPO / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
    modules = [p.relative_to(REPO).as_posix() for p in (*(REPO / "edgedigits").rglob("*.py"),
                                                        *(REPO / "firmware_harness").rglob("*.py"))]
    undrawn = sorted(m for m in modules if not m.endswith("__init__.py") and m not in drawn)
    assert not undrawn, f"modules docs/architecture.md does not draw: {undrawn}"
    packages = {p.parent.relative_to(REPO).as_posix() + "/" for p in (REPO / "edgedigits").rglob("__init__.py")}
    assert packages <= drawn, sorted(packages - drawn)

