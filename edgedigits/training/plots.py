"""Figures: training curves, confusion matrix, misclassified gallery. PNG, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from firmware_harness import atomic


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return Path(path)


def curves(history: dict[str, list[float]], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train and validation."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + metric)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, label=(prefix or "train_") + metric)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return _save(fig, path)


def confusion(matrix: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Confusion matrix with counts; rows are true labels."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5.4))
    shown = np.log1p(matrix)
    ax.imshow(shown, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if shown[i, j] > shown.max() * 0.6 else "black")
    ax.set_xticks(range(len(matrix)))
    ax.set_yticks(range(len(matrix)))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def gallery(images: np.ndarray, true: np.ndarray, pred: np.ndarray, path: str | Path, limit: int = 64) -> Path:
    """Misclassified digits, each titled 'true -> predicted'."""
    plt = _pyplot()
    n = min(len(images), limit)
    cols = 8
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.25), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k], cmap="gray")
            ax.set_title(f"{true[k]}→{pred[k]}", fontsize=8)
    return _save(fig, path)


def pareto(rows: list[dict], path: str | Path, colours: dict[str, str], highlight: str = "") -> Path:
    """Accuracy against invoke p50 (log scale), colour = format (`colours`: the export formats' catalogue
    gives them), area ~ file size; `highlight` starred.

    Labels go on the post-training int8 row of each model (named by model), the highlighted
    row and rows of other kinds (e.g. a reference recipe), so the plot stays readable.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    sizes = np.array([r["bytes"] for r in rows], dtype=np.float64)
    area = 20 + 600 * np.sqrt(sizes / sizes.max())
    colours = colours | {"int8 pruned+QAT": "tab:purple"}
    seen = set()
    for row, s in zip(rows, area):
        x, y = row["invoke_us"]["p50"], 100 * row["accuracy"]
        if row["name"] == highlight:
            ax.scatter(x, y, s=260, marker="*", color="crimson", edgecolors="black", zorder=5, label="shipped model")
            ax.annotate(f"{row['name']} (shipped)", (x, y), fontsize=8, weight="bold", xytext=(6, -10),
                        textcoords="offset points")
            continue
        colour = colours.get(row["format"], "tab:orange")
        kind = row["format"] if row["format"] in colours else "reference"
        ax.scatter(x, y, s=s, alpha=0.5, color=colour, edgecolors="none", label=None if kind in seen else kind)
        seen.add(kind)
        if row["format"] == "int8" or kind == "reference":
            label = row["name"].removesuffix("_int8") if row["format"] == "int8" else row["name"]
            ax.annotate(label, (x, y), fontsize=7, xytext=(5, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("invoke p50 (µs, one image, one thread)")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.set_title("accuracy vs latency; marker area ~ file size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right", markerscale=0.5)
    return _save(fig, path)


def tune_front(rows: list[dict], front: list[dict], path: str | Path, presets: dict[str, int]) -> Path:
    """A search's trials: validation accuracy against file bytes, the Pareto front joined, presets named."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    done = [r for r in rows if r["state"] == "COMPLETE"]
    ax.scatter([r["bytes"] for r in done], [100 * r["val_accuracy"] for r in done], s=24, color="tab:gray",
               alpha=0.6, label="trials (float, cheap fidelity)")
    if front:
        ax.plot([r["bytes"] for r in front], [100 * r["val_accuracy"] for r in front], "-o", color="crimson",
                label="Pareto front")
    promoted = [r for r in rows if "int8_val_accuracy" in r]
    if promoted:
        ax.scatter([r["bytes"] for r in promoted], [100 * r["int8_val_accuracy"] for r in promoted], marker="*",
                   s=160, color="tab:purple", label="promoted: int8 after prune + QAT")
    for name, number in presets.items():
        row = next((r for r in done if r["number"] == number), None)
        if row:
            ax.annotate(name, (row["bytes"], 100 * row["val_accuracy"]), fontsize=8, xytext=(5, 5),
                        textcoords="offset points")
    ax.set_xlabel("int8 file bytes")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("edgedigits tune")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)
