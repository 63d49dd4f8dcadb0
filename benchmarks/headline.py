"""The README's headline table, rendered from the results JSON (`python benchmarks/render.py` writes it).

One row per shipped model (the default and the micro preset): file bytes, int8 accuracy on the MNIST
test set for every kernel family measured (x86 from the model's card, ARM from
`benchmarks/arm.py`), the minimum over them (the figure we publish), the TFLite Micro arena and
the x86 invoke p50 from the zoo run.
"""

from __future__ import annotations

import json
import re

from record import RESULTS

START, END = "<!-- headline: made by `python benchmarks/render.py` from the results JSON; do not edit -->", \
    "<!-- --8<-- [end:headline] -->"
MODELS = {"edgedigits_int8.tflite": "shipped (`ds_cnn_fast`, pruned + QAT)",
          "ds_cnn_micro_int8.tflite": "micro preset (`ds_cnn_micro`, QAT)"}
KERNEL_LABELS = {"xnnpack": "default (XNNPACK)", "builtin": "builtin", "reference": "reference",
                 "tflite_micro": "TFLite Micro"}


def _load(stem: str) -> dict:
    return json.loads((RESULTS / f"{stem}.json").read_text(encoding="utf-8"))


def accuracies(arm: dict, model: str) -> dict[str, float]:
    """'<machine> <kernels>' -> accuracy, from the card (x86, TFLite Micro) and arm.json (ARM)."""
    record = arm["models"][model]
    out = {("" if k == "tflite_micro" else "x86_64 ") + KERNEL_LABELS[k]: v
           for k, v in record["accuracy_per_kernel"].items() if k in KERNEL_LABELS}
    for row in arm["parity"]:
        if row["model"] == model and row["platform"] != "x86_64":  # x86 is the card's
            platform = arm["platforms"][row["platform"]]
            where = f"{platform['machine']['arch']} ({row['platform']}, {platform['backend']})"
            out[f"{where} {KERNEL_LABELS[row['kernels']]}"] = row["accuracy"]
    return out


def table() -> str:
    arm, zoo, micro = _load("arm"), _load("results"), _load("export_ds_cnn_micro")
    p50 = {"edgedigits_int8.tflite": next(r["invoke_us"]["p50"] for r in zoo["rows"] if r["name"] == "edgedigits_int8")}
    if micro["sha256"] == arm["models"]["ds_cnn_micro_int8.tflite"]["sha256"]:
        p50["ds_cnn_micro_int8.tflite"] = micro["invoke_us_p50"]
    lines = ["| model | bytes | int8 accuracy, minimum over kernels | spread | kernels measured | "
             "TFLite Micro arena | invoke p50, x86 |", "|---|---:|---:|---:|---:|---:|---:|"]
    per_model = {model: accuracies(arm, model) for model in MODELS}
    for model, label in MODELS.items():
        acc = per_model[model]
        record = arm["models"][model]
        p50_cell = f"{p50[model]:.1f} µs" if model in p50 else "-"
        lines.append(f"| {label} | {record['bytes']:,} | **{min(acc.values()):.2%}** | "
                     f"{(max(acc.values()) - min(acc.values())) * 100:.2f} pp | {len(acc)} | "
                     f"{record['tensor_arena_bytes']:,} B | {p50_cell} |")
    lines += ["", "Accuracy on the 10,000 MNIST test images for each kernel family (int8 results depend on them):", "",
              "| kernels | " + " | ".join(MODELS) + " |", "|---|" + "---:|" * len(MODELS)]
    for kernels in dict.fromkeys(k for acc in per_model.values() for k in acc):
        lines.append(f"| {kernels} | " + " | ".join(f"{acc[kernels]:.2%}" if kernels in acc else "-"
                                                     for acc in per_model.values()) + " |")
    lines += ["", "x86 and TFLite Micro from each model's card (`edgedigits export` verifies with every kernel "
              "family); ARM from `benchmarks/results/arm.json` (emulated: outputs, not speed); invoke p50 from "
              "`benchmarks/results/results.json` and `export_ds_cnn_micro.json`, one thread."]
    return "\n".join(lines) + "\n"


def into_readme(readme: str) -> str:
    """The README with the table between its markers replaced by a fresh render."""
    pattern = re.compile(re.escape(START) + r"\n.*?(?=" + re.escape(END) + ")", re.S)
    if not pattern.search(readme):
        raise ValueError(f"README.md has no headline markers ({START} ... {END})")
    return pattern.sub(lambda _: START + "\n" + table(), readme, count=1)
