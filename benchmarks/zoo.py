"""The benchmarks' shared parts (a module; nothing runs it): the model zoo, used by model_zoo.py, seed_spread.py
and uci_digits.py; the spread over seeds; a folder read by the real `edgedigits predict`.

The zoo is every registry model with the settings its registry entry carries (`edgedigits.training.models`),
exported in every format of the catalogue (`edgedigits.export.formats`), plus the pruned + QAT chain for the
models marked compressed; files and checkpoints are cached per model and seed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgedigits.export.formats import FORMATS

if TYPE_CHECKING:
    from edgedigits.training.data import Splits
    from edgedigits.export.pipeline import ExportPlan

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"


@dataclass(frozen=True)
class ZooEntry:
    model: str
    epochs: int
    compressed: bool = False  # also the pruned + QAT int8 of `edgedigits export --int8`


def zoo(summary: list[dict] | None = None) -> tuple[ZooEntry, ...]:
    """Every registry model, in the order registered, with its zoo settings. `summary`: rows as
    `edgedigits.training.models.summary()` gives them; by default model_summary.json, which `python -m edgedigits.training.models`
    writes from the registry, so that reading the zoo's files needs no TensorFlow."""
    from edgedigits import model_summary

    return tuple(ZooEntry(r["name"], r["zoo_epochs"], r["compressed"]) for r in summary or model_summary())


def zoo_plan(entry: ZooEntry, quick: bool = False, seed: int = 0) -> ExportPlan:
    """The `edgedigits export` plan of a zoo model: its recipe, every format, and the chain for the ds_cnn presets."""
    from edgedigits.export import pipeline

    defaults = pipeline.ExportPlan
    return pipeline.ExportPlan(model=entry.model, int8=entry.compressed, formats=tuple(FORMATS),
                               epochs=1 if quick else entry.epochs,
                               prune_epochs=1 if quick else defaults.prune_epochs,
                               qat_epochs=1 if quick else defaults.qat_epochs,
                               name=f"{entry.model}_pruned_qat_int8", seed=seed)


def seeded(name: str, seed: int) -> str:
    """A zoo name at a training seed: seed 0, the zoo table's own run, keeps the name; another gains `_seed<N>`."""
    return name if seed == 0 else f"{name}_seed{seed}"


def unseeded(name: str) -> tuple[str, int]:
    """The inverse of `seeded`: 'cnn_deep_int8_seed2' -> ('cnn_deep_int8', 2), 'cnn_deep_int8' -> (.., 0)."""
    base, _, seed = name.rpartition("_seed")
    return (base, int(seed)) if base and seed.isdigit() else (name, 0)


def zoo_folder(cache: Path, entry: ZooEntry, seed: int = 0) -> Path:
    """Where a zoo model's files and checkpoints are cached."""
    return cache / seeded(entry.model, seed)


def export_once(plan: ExportPlan, splits: Splits, out: Path) -> bool:
    """Run the export chain into `out` unless all its files are there; True when it ran."""
    from edgedigits.export import pipeline

    if all((out / f"{name}.tflite").exists() for name in plan.artifact_names()):
        return False
    print(f"== {plan.model} (seed {plan.seed})", file=sys.stderr, flush=True)
    pipeline.run(plan, splits, out)
    return True


def vs_cnn_deep(y_true: np.ndarray, predicted: np.ndarray, predicted_deep: np.ndarray) -> dict:
    """The images only this model / only cnn_deep int8 reads right, and the McNemar p of that split."""
    from edgedigits.evaluate import paired

    split = paired(y_true, predicted, predicted_deep)
    return {"only_this_right": split["only_a_right"], "only_cnn_deep_right": split["only_b_right"],
            "mcnemar_p": float(f"{split['mcnemar_p']:.3g}")}


def spread(values: list[float]) -> dict:
    """One figure over the seeds: mean, sample standard deviation, min, max and count."""
    return {"mean": round(statistics.fmean(values), 6),
            "std": round(statistics.stdev(values), 6) if len(values) > 1 else None,
            "min": min(values), "max": max(values), "n": len(values)}


def read_folder(folder: Path, model: Path, min_confidence: float = 0.0) -> dict[str, str]:
    """{file name: digits read} from one real `edgedigits predict --json` run over `folder` ('?' for each digit
    under `min_confidence`)."""
    try:
        done = subprocess.run(["edgedigits", "predict", str(folder), "--json", "--model", str(model),
                               "--min-confidence", str(min_confidence)], capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit("error: no `edgedigits` command on PATH; activate the environment edgedigits is installed in")
    if done.returncode != 0:
        sys.exit(f"error: edgedigits predict failed on {model.name} ({done.returncode}): {done.stderr[-500:]}")
    return {Path(line["path"]).name: line["digits"] for line in map(json.loads, done.stdout.splitlines())}
