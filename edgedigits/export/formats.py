"""The export formats: one record each, read by `artifacts.convert`, `ExportPlan.validate`, the CLI help,
the plots and the zoo. Adding a format is adding a record here (docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware_harness.errors import UserError


@dataclass(frozen=True)
class Format:
    """An export format: how the TFLite converter is set, and how help and plots name and colour it."""

    name: str
    label: str  # what the CLI help says
    colour: str  # its points in benchmarks/results/pareto.png
    optimize: bool = True  # converter.optimizations = [Optimize.DEFAULT]: weights quantized
    weight_type: str | None = None  # converter.target_spec.supported_types, a tf dtype name, e.g. "float16"
    full_integer: bool = False  # int8 activations: calibrated (or QAT), int8/uint8 input and output


FORMATS = {f.name: f for f in (
    Format("fp32", "float32", "tab:gray", optimize=False),
    Format("fp16", "float16 weights", "tab:olive", weight_type="float16"),
    Format("dynamic", "int8 weights, float activations", "tab:cyan"),
    Format("int8", "full integer, calibrated after training", "tab:blue", full_integer=True),
)}


def format_named(name: str) -> Format:
    """The catalogue's record for `name`, or a one-line error listing the formats."""
    if name not in FORMATS:
        raise UserError(f"unknown format '{name}'; choose from: {', '.join(FORMATS)}")
    return FORMATS[name]


def help_text() -> str:
    """The formats with what each is, for `export --formats --help`."""
    return "; ".join(f"{f.name} ({f.label})" for f in FORMATS.values())
