"""The `edgedigits` command. Each command is a thin function over the modules that do the work.

Modules are imported inside the commands: `--help`, `bench`, `predict` and `camera`
never load TensorFlow.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgedigits import DEFAULT_MODEL, __version__
from edgedigits.export import formats as formats_mod
from firmware_harness.atomic import remove_empty_created
from firmware_harness.errors import Interrupted, UserError, WorkError, printable, printable_streams, raise_interrupted

# The extra that brings each optional module a command may import: a missing one is a one-line error naming it.
EXTRA_OF = {"optuna": "tune", "sqlalchemy": "tune", "psycopg2": "tune", "matplotlib": "train", "tensorflow": "train",
            "tf_keras": "train", "tensorflow_model_optimization": "train", "starlette": "web", "uvicorn": "web",
            "ai_edge_litert": "litert", "cv2": "litert"}

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain: "[default: ...]" stays visible
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Train, compress, export and run handwritten-digit models for phones, Raspberry Pis and microcontrollers.",
)

def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgedigits {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False,
) -> None:
    """Train, compress, export and run handwritten-digit models for phones, Raspberry Pis and microcontrollers."""


DataOption = Annotated[
    Optional[Path],
    typer.Option("--data", help="mnist.npz, a folder of IDX files, or your own digits: a folder of class folders 0-9 "
                                "or a CSV of path,label rows [default: $EDGEDIGITS_DATA, then "
                                "~/.keras/datasets/mnist.npz, then download]"),
]
StrictOption = Annotated[bool, typer.Option("--strict", help="With your own digits: fail if an image is skipped "
                                                             "(no single digit found, unreadable) instead of listing it.")]
StylesOption = Annotated[str, typer.Option(
    "--styles", help="More augmentation and data for writers MNIST lacks, a comma list of: shear, aspect, fill, "
                     "stroke, fonts, flags (see docs/models.md); in every training stage.")]
MixOption = Annotated[float, typer.Option(help="With your own digits: the share of each epoch drawn from MNIST's "
                                               "training images, 0 to 0.95.")]


def _fine_tuning(data: Optional[Path], model: str, start_from: Optional[Path] = None) -> tuple[dict, int]:
    """Recipe changes and default epochs for a labelled folder (fine-tune the shipped float model), else none and
    30; no TensorFlow."""
    from firmware_harness import labelled

    if data is None or start_from is not None or not labelled.is_labelled(data):
        return {}, 30
    from edgedigits.training import fine_tune

    overrides = fine_tune.recipe_overrides(model)
    return overrides, fine_tune.EPOCHS if overrides else 30


def _styles(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


@app.command()
def train(
    model: Annotated[str, typer.Option(help="Registry model name (see `edgedigits models`).")] = DEFAULT_MODEL,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs (early stopping may end sooner) "
                                                       "[default: 30; 10 when fine-tuning on your own digits].")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 128,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate for Adam [default: 0.003; 0.001 when "
                                                     "fine-tuning on your own digits].")] = None,
    schedule: Annotated[str, typer.Option(help="cosine (with warm-up) or plateau (ReduceLROnPlateau).")] = "cosine",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same run on the same machine.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Run folder [default: runs/<model>-<hash of recipe and data>].")] = None,
    data: DataOption = None,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N training and test images (smoke runs).")] = None,
    strict: StrictOption = False,
    mnist_mix: MixOption = 0.5,
    styles: StylesOption = "",
) -> None:
    """Train a model on MNIST, or fine-tune it on your own digits; writes model.keras, history.json, curves.png and card.json."""
    from edgedigits.training import data as data_mod

    fine, default_epochs = _fine_tuning(data, model)
    recipe_options = {"epochs": default_epochs if epochs is None else epochs, "lr": 3e-3, **fine,
                      **({"lr": lr} if lr is not None else {})}
    splits = data_mod.load_splits(data, limit=limit, mnist_mix=mnist_mix, strict=strict)  # fails before TensorFlow loads
    from edgedigits.training import train as train_mod

    recipe = train_mod.Recipe(model=model, batch_size=batch_size, schedule=schedule, seed=seed, styles=_styles(styles),
                              **recipe_options)
    recipe.validate()
    result = train_mod.train(recipe, splits, out)
    tested = (f"accuracy on your {len(splits.x_test)} validation images {result.test_accuracy:.2%}, on MNIST's test "
              f"set {result.card['mnist_test_accuracy']:.2%}" if splits.own else
              f"test accuracy {result.test_accuracy:.2%} ({len(splits.x_test)} images)")
    typer.echo(f"{model}: {tested}; best epoch {result.card['best_epoch']}, {result.card['wall_time_s']:.0f} s; "
               f"saved {result.path}")


@app.command()
def models() -> None:
    """List the registered models with their parameters and MACs; mark the default (no TensorFlow needed)."""
    from edgedigits import model_summary

    rows = model_summary()
    typer.echo("params as the .tflite stores them (batch norm folded), MACs of one image")
    for row in sorted(rows, key=lambda r: r["name"]):
        default = "  (default: the shipped model's architecture)" if row["name"] == DEFAULT_MODEL else ""
        typer.echo(f"{row['name']:14s} {row['params']:>10,} params {row['macs']:>12,} MACs{default}")


@app.command()
def export(
    int8: Annotated[bool, typer.Option("--int8/--no-int8", help="Prune, quantization-aware train and export the full-integer model.")] = True,
    formats: Annotated[str, typer.Option(help=f"Also convert the float model to these formats, a comma list: {formats_mod.help_text()}.")] = "",
    model: Annotated[Optional[str], typer.Option(help=f"Registry model name [default: {DEFAULT_MODEL}, or the model saved in --from].")] = None,
    sparsity: Annotated[float, typer.Option(help="Target fraction of zero weights, 0 to 0.95 (0: plain QAT).")] = 0.5,
    epochs: Annotated[Optional[int], typer.Option(help="Float training epochs [default: 30; 10 when fine-tuning on your "
                                                       "own digits].")] = None,
    prune_epochs: Annotated[int, typer.Option(help="Pruning fine-tuning epochs.")] = 10,
    qat_epochs: Annotated[int, typer.Option(help="Quantization-aware training epochs.")] = 4,
    io: Annotated[str, typer.Option(help="int8 model input/output type: int8, or uint8 for apps that feed camera bytes.")] = "int8",
    out: Annotated[Path, typer.Option(help="Output folder for the artifacts and the run's checkpoints.")] = Path("export"),
    name: Annotated[Optional[str], typer.Option(help="Artifact name [default: edgedigits_int8 for the default model, else <model>_int8].")] = None,
    start_from: Annotated[Optional[Path], typer.Option("--from", help="Start from this trained float .keras model instead of training.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    data: DataOption = None,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N training and test images (smoke runs).")] = None,
    strict: StrictOption = False,
    mnist_mix: MixOption = 0.5,
    styles: StylesOption = "",
) -> None:
    """Train (or reuse, or fine-tune on your own digits), prune, quantization-aware train, convert, verify and write .tflite + card + C array."""
    from edgedigits.training import data as data_mod
    from edgedigits.export import pipeline

    chosen = pipeline.model_for(model, start_from)
    fine, default_epochs = _fine_tuning(data, chosen, start_from)
    plan = pipeline.ExportPlan(
        model=chosen, int8=int8, formats=tuple(f.strip() for f in formats.split(",") if f.strip()),
        sparsity=sparsity, epochs=default_epochs if epochs is None else epochs, prune_epochs=prune_epochs,
        qat_epochs=qat_epochs, io_type=io, seed=seed, name=name, start_from=start_from, styles=_styles(styles),
        recipe_overrides=fine,
    )
    plan.validate()  # bad options and data fail fast, before TensorFlow loads
    splits = data_mod.load_splits(data, limit=limit, mnist_mix=mnist_mix, strict=strict)
    cards = pipeline.run(plan, splits, out)
    typer.echo(_summary_table(cards))


@app.command()
def package(
    model: Annotated[Path, typer.Argument(help="A .tflite digit classifier: 28x28x1 in, 10 scores out (int8 or float32).")],
    out: Annotated[Optional[Path], typer.Option(help="Folder for the artifacts (new, empty, or an earlier package's) "
                                                     "[default: ./<model name>_package, as export writes ./export].")] = None,
    name: Annotated[Optional[str], typer.Option(help="Artifact name [default: the model's file name].")] = None,
    data: DataOption = None,
) -> None:
    """Write what export writes for a .tflite you already have (card, TFLITE_METADATA, C array, web and app variants, snippets), without TensorFlow."""
    from edgedigits.export import package as package_mod
    from firmware_harness import mnist

    if not model.is_file():
        raise UserError(f"model not found: {model}")
    where = mnist.locate(data)
    if where is None:
        raise UserError(f"no MNIST found to verify the model on: pass --data PATH or set {mnist.ENV_VAR}=/path/to/mnist.npz")
    test = mnist.load(where, splits=("test",))
    card, written = package_mod.package(model, out or Path(f"{model.stem}_package"),
                                        (test.x_test, test.y_test), name)
    typer.echo(package_mod.summary(card))
    typer.echo("files written:\n" + "\n".join(f"  {path}" for path in written))


def _summary_table(cards: list[dict]) -> str:
    rows = ["| file | format | bytes | gzip | zero weights | float acc | tflite acc | agrees |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for c in cards:
        rows.append(f"| {c['name']}.tflite | {c['format']} | {c['bytes']:,} | {c['gzip_bytes']:,} | "
                    f"{c['weight_sparsity']:.1%} | {c['float_accuracy']:.2%} | {c['tflite_accuracy']:.2%} | "
                    f"{c['agreement_with_keras']:.2%} |")
    return "\n".join(rows)


@app.command()
def tune(
    quick: Annotated[bool, typer.Option(help="A tiny budget on a few thousand images: the same code in minutes (CI).")] = False,
    trials: Annotated[Optional[int], typer.Option(help="Trials in the study, over all workers [default: 60, --quick 6].")] = None,
    max_bytes: Annotated[Optional[str], typer.Option(help="Largest int8 file, e.g. 32KB.")] = None,
    max_arena: Annotated[Optional[str], typer.Option(help="Largest TFLite Micro tensor arena, e.g. 16KB.")] = None,
    max_latency_us: Annotated[Optional[float], typer.Option(help="Slowest invoke p50 on this machine, in µs.")] = None,
    promote: Annotated[Optional[int], typer.Option(help="Best trials taken through prune -> QAT -> int8 [default: 5, --quick 1].")] = None,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL; postgresql://... lets several machines share "
                                                        "the study [default: sqlite:///OUT/study.db].")] = None,
    study: Annotated[Optional[str], typer.Option(help="Study name [default: made from the limits and the budget].")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the study, the report and promoted models.")] = Path("tune"),
    export_trial: Annotated[Optional[int], typer.Option("--export", help="Export this trial with `export --int8`'s chain "
                                                                         "and stop (-1: the best promoted trial).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    data: DataOption = None,
    strict: StrictOption = False,
    mnist_mix: MixOption = 0.5,
) -> None:
    """Search the ds_cnn space for the most accurate int8 model within --max-bytes/--max-arena/--max-latency-us."""
    from dataclasses import replace

    from edgedigits.builds import tune as tune_mod
    from firmware_harness import atomic

    limits = tune_mod.Limits(tune_mod.parse_bytes(max_bytes), tune_mod.parse_bytes(max_arena), max_latency_us)
    budget = tune_mod.QUICK if quick else tune_mod.FULL
    if promote is not None:
        if promote < 0:
            raise UserError("--promote must be 0 or more")
        budget = replace(budget, promote=promote)
    if trials is not None and trials < 1:
        raise UserError("--trials must be at least 1")
    name = study or "-".join(["ds_cnn", *(f"{k}{v:g}" for k, v in
                                           (("b", limits.max_bytes), ("a", limits.max_arena), ("l", limits.max_latency_us))
                                           if v is not None), *(["quick"] if quick else [])])
    out = atomic.ensure_dir(out)
    search = tune_mod.Search(name, storage or f"sqlite:///{(out / 'study.db').resolve()}", out, limits, budget,
                             seed=seed, data_path=data, mnist_mix=mnist_mix, strict=strict)
    if export_trial is not None:
        cards = search.export(None if export_trial < 0 else export_trial)
        typer.echo(_summary_table(cards))
        return
    result = search.run(trials)
    front = ", ".join(str(n) for n in result["pareto"])
    typer.echo(f"{len(result['trials'])} trials in study {name}; Pareto front: trials {front}; report in {out}")


@app.command()
def evaluate(
    model: Annotated[Optional[Path], typer.Argument(help=".tflite or .keras model [default: the shipped model].")] = None,
    data: DataOption = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for confusion.png, misclassified.png, evaluation.json "
                                                     "[default: beside the model; ./evaluation for the shipped model].")] = None,
    backend: Annotated[Optional[str], typer.Option(help="litert, tflite-runtime or tensorflow (for .tflite).")] = None,
    kernels: Annotated[str, typer.Option(help="The interpreter's kernels for .tflite: xnnpack, builtin or reference "
                                              "(int8 accuracy depends on them).")] = "xnnpack",
) -> None:
    """Accuracy, per-class precision/recall/F1, confusion matrix and misclassified digits on the test set."""
    from edgedigits import evaluate as evaluate_mod
    from firmware_harness import atomic, mnist

    path = model or default_model()
    where = mnist.locate(data)
    if where is None:
        raise UserError(f"no MNIST found: pass --data PATH or set {mnist.ENV_VAR}=/path/to/mnist.npz")
    test = mnist.load(where, splits=("test",))
    predicted = evaluate_mod.predict_file(path, test.x_test, backend, kernels)
    result = evaluate_mod.metrics(test.y_test, predicted)
    folder = atomic.ensure_dir(out or (path.parent if model else Path("evaluation")))  # not into the installed package
    atomic.write_json(folder / "evaluation.json", {"model": str(path), "data": test.source, **result})
    if not evaluate_mod.write_report(result, test.x_test, test.y_test, predicted, folder, title=path.name):
        typer.echo("note: no confusion.png / misclassified.png without matplotlib (pip install matplotlib)", err=True)
    typer.echo(f"{path.name}: accuracy {result['accuracy']:.2%} on {result['n_eval']} test images ({test.name})")
    typer.echo("digit  precision  recall  f1      support")
    for row in result["per_class"]:
        typer.echo(f"{row['digit']:>5}  {row['precision']:.4f}     {row['recall']:.4f}  {row['f1']:.4f}  {row['support']:>7}")
    typer.echo(f"wrote {folder / 'evaluation.json'}")


_FORWARD = {"allow_extra_args": True, "ignore_unknown_options": True}


def _harness(command: str, ctx: typer.Context) -> None:
    """Run a `python -m firmware_harness` command with this command's arguments (options defined there, once).

    `edgedigits` itself (edgedigits.launch) sends these commands to the harness before typer loads;
    these entries list them in `edgedigits -h` and serve callers of `cli.main`."""
    from firmware_harness.__main__ import main as harness_main

    raise typer.Exit(harness_main([command, *ctx.args], prog="edgedigits"))


@app.command(context_settings=_FORWARD, add_help_option=False)
def bench(ctx: typer.Context) -> None:
    """Size, accuracy and latency table for .tflite models [MODEL...] (see `edgedigits bench --help`)."""
    _harness("bench", ctx)


@app.command(context_settings=_FORWARD, add_help_option=False)
def mcu(ctx: typer.Context) -> None:
    """Run a model in TensorFlow Lite Micro: ops, tensor arena, agreement (see `edgedigits mcu --help`)."""
    _harness("mcu", ctx)


@app.command(context_settings=_FORWARD, add_help_option=False)
def predict(ctx: typer.Context) -> None:
    """Read the digits in image files or folders: PATH... [--model M] [--json] (see `edgedigits predict --help`)."""
    _harness("predict", ctx)


@app.command(context_settings=_FORWARD, add_help_option=False)
def camera(ctx: typer.Context) -> None:
    """Capture loop: --source 0|FILE.mp4|DIR|URL|picamera [--headless] [--json] (see `edgedigits camera --help`)."""
    _harness("camera", ctx)


@app.command(context_settings=_FORWARD, add_help_option=False)
def collect(ctx: typer.Context) -> None:
    """Save every digit found as a crop in OUT/<digit read>/ to correct by hand: --source SRC --out OUT (see `edgedigits collect --help`)."""
    _harness("collect", ctx)


@app.command()
def bundle(
    models: Annotated[Optional[list[Path]], typer.Argument(help=".tflite models [default: the shipped model].")] = None,
    out: Annotated[Path, typer.Option(help="Folder to create and copy to the device.")] = Path("pi-bundle"),
    data: DataOption = None,
) -> None:
    """A folder to copy to a Raspberry Pi: models, MNIST test set, firmware_harness, requirements, run.sh."""
    from edgedigits.serving import bundle as bundle_mod

    folder = bundle_mod.build(out, list(models or [default_model()]), data)
    typer.echo(f"wrote {folder}; copy it to the device and run ./run.sh there")


@app.command()
def doctor(
    camera_index: Annotated[int, typer.Option("--camera", help="Camera index to try.")] = 0,
) -> None:
    """Check this machine: Python, packages, runtimes, TFLite Micro, camera, MNIST, the shipped model."""
    from edgedigits import doctor as doctor_mod
    from firmware_harness.runtime import shipped_model

    lines = doctor_mod.run(shipped_model(), camera_index)
    for line in lines:
        typer.echo(str(line))
    if any(line.status == "fail" for line in lines):
        raise typer.Exit(1)


@app.command()
def serve(
    model: Annotated[Optional[Path], typer.Option(help=".tflite model [default: the shipped model].")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    backend: Annotated[Optional[str], typer.Option(help="litert, tflite-runtime or tensorflow [default: the first that imports].")] = None,
    threads: Annotated[int, typer.Option(help="Interpreter threads per worker.")] = 1,
    certfile: Annotated[Optional[Path], typer.Option(help="PEM certificate: serve https, which a phone needs for the camera and the offline copy.")] = None,
    keyfile: Annotated[Optional[Path], typer.Option(help="Its private key, if not in the certificate file.")] = None,
) -> None:
    """The page that reads digits in the browser (draw, photo, live camera; offline after one visit), POST /predict and GET /health (needs the web extra)."""
    from edgedigits.serving import serve as serve_mod

    path = model or default_model()
    if not path.is_file():
        raise UserError(f"model not found: {path}")
    if threads < 1:
        raise UserError(f"--threads must be at least 1 (got {threads})")
    serve_mod.serve(path, host, port, backend=backend, threads=threads, certfile=certfile, keyfile=keyfile)


@app.command()
def web(
    folder: Annotated[Path, typer.Argument(help="Folder to write the page into (new, empty, or written by an earlier `edgedigits web`).")],
    model: Annotated[Optional[Path], typer.Option(help="Full-integer int8 .tflite model [default: the shipped model].")] = None,
) -> None:
    """Write the browser page as static files (any static host serves them; https for a phone's camera)."""
    from edgedigits.serving import web_site

    path = model or default_model()
    if not path.is_file():
        raise UserError(f"model not found: {path}")
    written = web_site.write(path, folder)
    total = sum(p.stat().st_size for p in written)
    typer.echo(f"wrote {len(written)} files ({total / 1e6:.1f} MB) to {folder}; serve that folder, for example: "
               f"python -m http.server -d {folder}")


def default_model() -> Path:
    """The shipped int8 model (package data), found where the harness finds it."""
    from firmware_harness.runtime import shipped_model

    path = shipped_model()
    if path is None:
        raise UserError("the shipped model is missing from this install; pass a model path or run `edgedigits export --int8`")
    return path


def main() -> None:
    """Entry point: one-line errors (exit 2 for bad input, 1 for failed work), no traceback unless --debug."""
    printable_streams()
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    signal.signal(signal.SIGINT, raise_interrupted)
    try:
        app(prog_name="edgedigits")
    except (UserError, WorkError) as e:
        remove_empty_created()
        if debug:
            raise
        typer.echo(f"error: {printable(str(e), one_line=True)}", err=True)
        sys.exit(e.exit_code)
    except ModuleNotFoundError as e:
        remove_empty_created()
        extra = EXTRA_OF.get((e.name or "").split(".")[0])
        if debug or extra is None:
            raise
        typer.echo(f"error: this command needs {e.name}, which is not installed: pip install 'edgedigits[{extra}]'",
                   err=True)
        sys.exit(UserError.exit_code)
    except Interrupted:
        remove_empty_created()
        typer.echo("interrupted", err=True)
        sys.exit(Interrupted.exit_code)
