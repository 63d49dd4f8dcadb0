"""Which training ingredients make a model read other writers: an ablation, one float model per recipe.

    python benchmarks/recipes.py [--epochs 30] [--only NAME ...] [--seed 0]

Each recipe of `RECIPES` trains the default model on MNIST's training split (and, with "fonts", the font
bank's training fonts) with `edgedigits train`'s loop; run folders go to runs/ and are resumed. Each model
is measured as float Keras: MNIST's test set, the development sets framed as MNIST was made (the classify
column of benchmarks/handwriting.py; for measuring and choosing, never trained on) and the font bank's
held-out fonts. Results: recipes.json and .md in benchmarks/results/; a row already there with the same
run key is kept, not trained again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from handwriting import DATA, SETS, load, mnist_frame
from record import RESULTS, record

from firmware_harness.device import machine_info

ALL = ("shear", "aspect", "fill", "stroke", "fonts", "flags")
RECIPES = {  # name -> (styles, epochs as a multiple of --epochs)
    "shipped recipe": ((), 1),
    "+ shear": (("shear",), 1),
    "+ aspect": (("aspect",), 1),
    "+ fill": (("fill",), 1),
    "+ stroke": (("stroke",), 1),
    "+ fonts": (("fonts",), 1),
    "+ flags": (("flags",), 1),
    "all": (ALL, 1),
    "fill + fonts": (("fill", "fonts"), 1),
    "fill + fonts + shear": (("fill", "fonts", "shear"), 1),
}


def measure(model, splits) -> dict:
    """Float accuracy on MNIST's test set, each dev set (classify) and the held-out fonts."""
    from edgedigits.training import data, font_digits

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        predicted = model.predict(data.to_model_input(x), batch_size=1024, verbose=0).argmax(axis=1)
        return round(float(np.mean(predicted == y)), 4)

    row = {"mnist_test": accuracy(splits.x_test, splits.y_test)}
    for name in SETS:
        bright, y = load(DATA, name)
        row[name] = accuracy(np.stack([mnist_frame(im) for im in bright]), y)
    row["held_out_fonts"] = accuracy(*font_digits.load(held_out=True))
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="epochs of a recipe at multiple 1")
    parser.add_argument("--only", nargs="+", choices=list(RECIPES), help="recipes to run (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from edgedigits.training import data, train

    splits = data.load_splits()
    path = RESULTS / "recipes.json"
    rows = {r["key"]: r for r in json.loads(path.read_text())["rows"]} if path.is_file() else {}
    for name in args.only or list(RECIPES):
        styles, multiple = RECIPES[name]
        recipe = train.Recipe(epochs=args.epochs * multiple, styles=styles, seed=args.seed)
        key = train.recipe_key(recipe, splits)
        if key not in rows:
            started = time.perf_counter()
            folder = Path("runs") / f"recipes-{recipe.model}-{key}"
            resumed = (folder / "checkpoints").exists()
            result = train.train(recipe, splits, folder)
            rows[key] = {"recipe": name, "key": key, "model": recipe.model, "styles": list(styles),
                         "epochs": recipe.epochs, "seed": recipe.seed,
                         "train_minutes": round((time.perf_counter() - started) / 60, 1), "resumed": resumed,
                         **measure(result.model, splits)}
        print(json.dumps(rows[key]), file=sys.stderr)
        order = {n: i for i, n in enumerate(RECIPES)}
        result = {"command": "python benchmarks/recipes.py", "date": time.strftime("%Y-%m-%d"),
                  "device": machine_info(), "sets": list(SETS),
                  "rows": sorted(rows.values(), key=lambda r: (order.get(r["recipe"], 99), r["seed"]))}
        record("recipes", result, markdown(result))
    return 0


def markdown(result: dict) -> str:
    columns = ["mnist_test", *result["sets"], "held_out_fonts"]
    lines = [f"`{result['command']}`, {result['date']}; {result['device']['cpu']}. Float models of the default "
             "architecture, one per recipe; the development sets framed as MNIST was made (classify), never "
             "trained on; held-out fonts: the font bank's fonts kept out of training. Training: minutes on 2 "
             "cores (a run resumed from its checkpoints shows the rest only).", "",
             "| recipe | styles | epochs | seed | " + " | ".join(columns) + " | training |",
             "|---|---|---:|---:|" + "---:|" * len(columns) + "---:|"]
    for row in result["rows"]:
        cells = " | ".join(f"{row[c]:.2%}" for c in columns)
        lines.append(f"| {row['recipe']} | {', '.join(row['styles']) or '-'} | {row['epochs']} | {row['seed']} | "
                     f"{cells} | {row['train_minutes']} min{' (resumed)' if row.get('resumed') else ''} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
