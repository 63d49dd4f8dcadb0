"""Where a benchmark's results go: `<stem>.json` and `<stem>.md` in benchmarks/results/, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware_harness import atomic

RESULTS = Path(__file__).resolve().parent / "results"


def record(stem: str, result: Any, markdown: str, folder: Path = RESULTS) -> None:
    """Write the JSON record and its Markdown table side by side, then print the table."""
    atomic.write_json(folder / f"{stem}.json", result)
    atomic.write_text(folder / f"{stem}.md", markdown)
    print(markdown)
