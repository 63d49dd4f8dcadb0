"""`python -m firmware_harness bench|mcu|predict|camera|collect ...`: the device-side commands.

Needs only numpy, OpenCV and a TFLite interpreter (LiteRT or tflite-runtime), so it runs
on a Raspberry Pi with no edgedigits install. `edgedigits bench|mcu|predict|camera|collect`
forward here, so every option is defined once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import textwrap
from pathlib import Path

from firmware_harness import atomic, mnist, sources
from firmware_harness.errors import (NO_OPENCV, Interrupted, UserError, WorkError, printable, printable_streams,
                                     raise_interrupted)
from firmware_harness.runtime import BACKENDS, KERNELS, default_model


def _models(paths: list[Path], how: str = "--model M.tflite") -> list[Path]:
    """The models given, else the default one (the shipped model, or the one a bundle carries); `how` says
    how this command takes a model, for the error when there is none."""
    for path in paths:
        if not path.is_file():
            raise UserError(f"model not found: {path}")
    if paths:
        return paths
    default = default_model()
    if default is None:
        raise UserError(f"no model given, and none is installed with the harness (nor one model in a bundle's "
                        f"models/); pass {how}")
    return [default]


def _test_data(path: Path | None) -> mnist.DigitData:
    where = mnist.locate(path)
    if where is None:
        raise UserError(f"no test data found: pass --data PATH (mnist.npz, an npz with x_test/y_test, or IDX files) "
                        f"or set {mnist.ENV_VAR}")
    return mnist.load(where, splits=("test",))


def cmd_bench(args: argparse.Namespace) -> int:
    from firmware_harness import bench

    models = _models(args.models, how="MODEL.tflite")
    test = _test_data(args.data)
    if args.limit:
        test = mnist.DigitData(test.x_test[: args.limit], test.y_test[: args.limit], source=test.source,
                               is_mnist=test.is_mnist)
    settings = bench.BenchSettings(warmup=args.warmup, runs=args.runs, instances=args.instances, threads=args.threads,
                                   backend=args.backend, kernels=args.kernels, photos=args.photos)
    result = bench.run(models, test, settings)
    table = bench.markdown(result)
    print(table, end="")
    if args.json:
        atomic.write_json(args.json, result)
    if args.markdown:
        atomic.write_text(args.markdown, table)
    refused = [row for row in result["rows"] if "error" in row]
    for row in refused:
        print(f"error: {printable(row['error'], one_line=True)}", file=sys.stderr)
    return 2 if refused else 0  # as predict: the others are measured, and the exit code says one was not


def cmd_mcu(args: argparse.Namespace) -> int:
    from firmware_harness import mcu
    from firmware_harness.runtime import Model

    (path,) = _models([args.model] if args.model else [], how="MODEL.tflite")
    test = _test_data(args.data)
    images = test.x_test[: args.limit] if args.limit else test.x_test
    report = mcu.check(Model(path, backend=args.backend), images)
    print(f"{path.name}: TFLite Micro {report.tflm_version}")
    print(f"  ops: {', '.join(report.ops)}")
    print(f"  ops TFLM lacks: {', '.join(report.missing_ops) or 'none'}")
    print(f"  tensor arena: {report.arena_bytes:,} bytes")
    print(f"  agreement with {report.reference}: {report.agreement:.2%} of {report.n_compared} test images")
    if args.json:
        atomic.write_json(args.json, {"model": str(path), **report.__dict__})
    return 0


def _sentence(text: str) -> str:
    """A help text as click shows one: a capital first letter and a full stop (or a closing `]`)."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("." if text and text[-1] not in ".]" else "")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of a usage dump, and help laid out as the typer commands'
    (click's): `Usage: prog [OPTIONS] ARGS`, the description, then Arguments, Options and Commands as two
    columns, `--opt <int>`, sentences, and every default as `[default: X]`."""

    METAVARS = {int: "<int>", float: "<float>", Path: "<path>"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, add_help=False, **kwargs)
        self.add_argument("-h", "--help", action="help", help="Show this message and exit.")

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)

    def format_usage(self) -> str:
        words = [self.prog, "[OPTIONS]"]
        for action in self._positionals._group_actions:
            if isinstance(action, argparse._SubParsersAction):
                words.append("COMMAND [ARGS]...")
            else:
                name = action.metavar or action.dest.upper()
                words.append({"+": f"{name}...", "*": f"[{name}]...", "?": f"[{name}]"}.get(action.nargs, name))
        return "Usage: " + " ".join(words) + "\n"

    def format_help(self) -> str:
        width = max(50, min(80, shutil.get_terminal_size((80, 24)).columns))
        parts = [self.format_usage()]
        if self.description:
            parts.append(textwrap.fill(self.description, width, initial_indent="  ", subsequent_indent="  ") + "\n")
        sections = {"Arguments": [], "Options": [], "Commands": []}
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                sections["Commands"] += [(c.dest, _sentence(c.help or "")) for c in action._choices_actions]
            elif action.option_strings:
                sections["Options"].append((self._option_name(action), self._described(action)))
            else:
                sections["Arguments"].append((action.metavar or action.dest.upper(), self._described(action)))
        sections["Options"].append(sections["Options"].pop(0))  # -h, --help last, as click lists it
        for title, rows in sections.items():
            if rows:
                parts.append(f"{title}:\n" + self._rows(rows, width))
        return "\n".join(parts)

    def _option_name(self, action: argparse.Action) -> str:
        names = ", ".join(action.option_strings)
        return names if action.nargs == 0 else f"{names} {self.METAVARS.get(action.type, '<str>')}"

    @staticmethod
    def _described(action: argparse.Action) -> str:
        text = _sentence(action.help or "")
        if action.choices and not isinstance(action.choices, dict):
            choices = f"One of: {', '.join(action.choices)}."
            text = f"{choices} {text}" if text.startswith("[") else f"{text} {choices}".strip()
        if "[default:" not in text and action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            text += f"  [default: {action.default}]"
        return text

    @staticmethod
    def _rows(rows: list[tuple[str, str]], width: int) -> str:
        column = min(30, max(len(name) for name, _ in rows)) + 4
        lines = []
        for name, text in rows:
            wrapped = textwrap.wrap(text, width - column) or [""]
            if len(name) + 4 > column:  # a long name stands on its own line, as click does
                lines.append(f"  {name}")
                lines += [" " * column + w for w in wrapped]
            else:
                lines.append(f"  {name:<{column - 2}}{wrapped[0]}")
                lines += [" " * column + w for w in wrapped[1:]]
        return "\n".join(lines) + "\n"


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from firmware_harness import images, progress
    from firmware_harness.read_files import read_files
    from firmware_harness.reader import DigitReader

    (model_path,) = _models([args.model] if args.model else [])
    reader = DigitReader(model_path, backend=args.backend, threads=args.threads, max_pixels=args.max_pixels)
    found = images.image_files(args.paths, recursive=args.recursive)
    files = found.files
    if found.skipped():
        print(f"note: {printable(found.skipped(), one_line=True)}", file=sys.stderr)
    if not files:
        raise UserError("no image files found in the given folders" + ("" if args.recursive else
                                                                       " (--recursive reads their subfolders)"))
    annotator = None
    if args.annotate:
        from firmware_harness.annotate import Annotator

        annotator = Annotator(args.annotate, args.min_confidence)
    failed = 0
    # the results scrolling by on a terminal are progress enough; a bar is for output that goes to a file
    bar = progress.Bar("predict", len(files), unit="images") if len(files) > 1 and not sys.stdout.isatty() else None
    for done in read_files(reader, files, args.jobs):
        if bar:
            bar.advance()
        if done.error:
            failed += 1
            print(f"error: {printable(str(done.error), one_line=True)}", file=sys.stderr)
            continue
        if annotator:
            annotator.write(done.path, images.read(done.path, max_pixels=reader.max_pixels), done.reading)
        if args.json:
            print(json.dumps({"path": str(done.path), **done.reading.as_json(args.min_confidence)}), flush=True)
        else:
            print(f"{printable(str(done.path), one_line=True)}: {done.reading.as_text(args.min_confidence)}", flush=True)
    if bar:
        bar.close()
    return 2 if failed else 0  # a file that could not be read is bad input


def cmd_camera(args: argparse.Namespace) -> int:
    import json

    from firmware_harness import camera, recognize
    from firmware_harness.runtime import Model

    (model_path,) = _models([args.model] if args.model else [])
    model = Model(model_path, backend=args.backend, threads=args.threads)
    settings = camera.LoopSettings(headless=args.headless, max_frames=args.max_frames, record=args.record,
                                   json_lines=args.json, smooth=args.smooth, work_size=args.work_size)
    result = camera.run(model, args.source, settings, recognize.gate_for(model))
    if args.json:
        print(json.dumps({"summary": result}))
    else:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in result["stage_ms"].items() if v is not None)
        print(f"{result['frames']} frames, {result['fps']:.1f} fps, frame p50 {result['frame_ms']['p50']} ms "
              f"p90 {result['frame_ms']['p90']} ms; mean per stage (ms): {stages}", file=sys.stderr)
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from firmware_harness import collect, contract, recognize
    from firmware_harness.runtime import Model

    (model_path,) = _models([args.model] if args.model else [])
    model = Model(model_path, backend=args.backend, threads=args.threads)
    if model.labels != contract.LABELS:
        raise UserError(f"{model_path.name} does not read the digits 0-9 (its labels: "
                        f"{printable(' '.join(model.labels), one_line=True)[:80]}); collect with a digit model")
    settings = collect.CollectSettings(every=args.every, max_frames=args.max_frames,
                                       min_confidence=args.min_confidence)
    result = collect.run(model, args.source, args.out, settings, recognize.gate_for(model))
    counts = ", ".join(f"{d}: {n}" for d, n in result["saved"].items()) or "none"
    print(f"{sum(result['saved'].values())} crops from {result['frames']} frames in {result['folder']} ({counts}); "
          f"move the misread ones to their digit's folder, then: edgedigits export --int8 --data {result['folder']}")
    return 0


def _command(sub, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose summary is both its line in the command list and its help's description."""
    return sub.add_parser(name, help=summary, description=_sentence(summary))


def build_parser(prog: str = "python -m firmware_harness") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    bench = _command(sub, "bench", "size, accuracy and latency table for .tflite models")
    bench.add_argument("models", nargs="*", type=Path, metavar="MODEL", help="[default: the shipped int8 model]")
    bench.add_argument("--data", type=Path, help=f"npz with x_test/y_test, IDX folder, or your own digits (class folders "
                       f"0-9 or a CSV of path,label) [default: ${mnist.ENV_VAR}, keras cache]")
    bench.add_argument("--threads", type=int, default=1, help="interpreter threads")
    bench.add_argument("--warmup", type=int, default=50, help="untimed runs before timing")
    bench.add_argument("--runs", type=int, default=1000, help="timed single-image runs in all")
    bench.add_argument("--instances", type=int, default=5,
                       help="fresh interpreters the runs are split over and pooled")
    bench.add_argument("--backend", choices=list(BACKENDS), help="[default: the first that imports]")
    bench.add_argument("--kernels", choices=list(KERNELS), default="xnnpack",
                       help="the interpreter's kernels: int8 accuracy depends on them")
    bench.add_argument("--limit", type=int, help="use only the first N test images")
    bench.add_argument("--photos", type=int, default=20,
                       help="640x480 photos read through the whole path (finder, model, gate) and timed; 0: none")
    bench.add_argument("--json", type=Path, help="write {device, rows} JSON here")
    bench.add_argument("--markdown", type=Path, help="write the Markdown table here")
    bench.set_defaults(func=cmd_bench)

    mcu = _command(sub, "mcu", "run a model in TensorFlow Lite Micro: ops, arena, agreement")
    mcu.add_argument("model", nargs="?", type=Path, metavar="MODEL", help="[default: the shipped int8 model]")
    mcu.add_argument("--data", type=Path, help="test data, as for bench")
    mcu.add_argument("--limit", type=int, help="compare on the first N test images only")
    mcu.add_argument("--backend", choices=list(BACKENDS), help="desktop interpreter to compare against")
    mcu.add_argument("--json", type=Path, help="write the report as JSON here")
    mcu.set_defaults(func=cmd_mcu)

    predict = _command(sub, "predict", "read the digits in image files or folders of images")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    predict.add_argument("--model", type=Path, help="[default: the shipped int8 model]")
    predict.add_argument("-r", "--recursive", action="store_true", help="also read the images in the subfolders of "
                         "a folder given (symlinked folders are not followed)")
    predict.add_argument("--json", action="store_true", help="one JSON line per image: path, digits, confidences, boxes")
    predict.add_argument("--max-pixels", type=int, default=None, help="refuse larger images before decoding "
                         "[default: $EDGEDIGITS_MAX_PIXELS, else 40000000]")
    predict.add_argument("--backend", choices=list(BACKENDS), help="[default: the first that imports]")
    predict.add_argument("--threads", type=int, default=1, help="interpreter threads")
    predict.add_argument("--jobs", type=int, default=1, help="worker processes, each with its own interpreter (a "
                         "folder of thousands of images on all cores)")
    predict.add_argument("--min-confidence", type=float, default=0.0, help="show a digit read with less confidence "
                         "than this (0-1) as '?': the chance that the mark is a digit at all (the shipped digit "
                         "gate's) times the chance that it is this digit, so 0.9 turns most letters and signs into '?'")
    predict.add_argument("--annotate", type=Path, metavar="DIR", help="write each image with the boxes found and "
                         "the digits read drawn on it, as DIR/NAME.png (a new or empty folder, or one it wrote)")
    predict.set_defaults(func=cmd_predict)

    cam = _command(sub, "camera", "capture loop: find and read digits in live frames")
    cam.add_argument("--source", default="0", help=sources.help_text())
    cam.add_argument("--model", type=Path, help="[default: the shipped int8 model]")
    cam.add_argument("--headless", action="store_true", help="no window, even if a display exists")
    cam.add_argument("--max-frames", type=int, help="stop after N frames")
    cam.add_argument("--record", type=Path, help="write the annotated frames to this .mp4")
    cam.add_argument("--json", action="store_true", help="one JSON line per frame, then a summary line")
    cam.add_argument("--smooth", type=int, default=5, help="read-out = most common string of the last K frames")
    cam.add_argument("--work-size", type=int, default=480, help="process frames with their long side at most this "
                     "(smaller is faster; digits should stay over ~25 px tall at that scale)")
    cam.add_argument("--backend", choices=list(BACKENDS), help="[default: the first that imports]")
    cam.add_argument("--threads", type=int, default=1, help="interpreter threads")
    cam.set_defaults(func=cmd_camera)

    col = _command(sub, "collect", "save every digit found as a crop in OUT/<digit read>/: correct the folders by "
                                   "hand and they are your own digits to fine-tune on (export --data OUT)")
    col.add_argument("--source", required=True, help=sources.help_text())
    col.add_argument("--out", type=Path, required=True, help="folder of the crops: new, empty, or one collect wrote "
                     "(crops are added; none is written over)")
    col.add_argument("--every", type=int, default=1, help="keep the digits of every Nth frame (a camera gives about "
                     "30 a second: 15 keeps two)")
    col.add_argument("--max-frames", type=int, help="stop after N frames")
    col.add_argument("--min-confidence", type=float, default=0.0, help="do not save marks read with less confidence "
                     "than this (0-1; with the digit gate, most letters and signs are under 0.5)")
    col.add_argument("--model", type=Path, help="[default: the shipped int8 model]")
    col.add_argument("--backend", choices=list(BACKENDS), help="[default: the first that imports]")
    col.add_argument("--threads", type=int, default=1, help="interpreter threads")
    col.set_defaults(func=cmd_collect)
    return parser


def _positive(args: argparse.Namespace) -> None:
    if getattr(args, "max_pixels", 0) is None:
        from firmware_harness.images import pixel_budget

        args.max_pixels = pixel_budget()
    if not 0 <= getattr(args, "min_confidence", 0) <= 1:
        raise UserError(f"--min-confidence must be between 0 and 1 (got {args.min_confidence})")
    for name in ("threads", "runs", "instances", "limit", "max_pixels", "max_frames", "smooth", "work_size", "jobs",
                 "every"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UserError(f"--{name} must be at least 1 (got {value})")
    for name in ("warmup", "photos"):
        if getattr(args, name, 0) < 0:
            raise UserError(f"--{name} must be 0 or more (got {getattr(args, name)})")


def main(argv: list[str] | None = None, prog: str = "python -m firmware_harness") -> int:
    """Run one harness command; errors are one line on stderr with exit code 2 (input) or 1 (work)."""
    printable_streams()
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, raise_interrupted)
    try:
        _positive(args)
        code = args.func(args)
        sys.stdout.flush()  # a full disk is seen here, not as exit's "Exception ignored" (code 120)
        return code
    except (UserError, WorkError) as e:
        atomic.remove_empty_created()
        print(f"error: {printable(str(e), one_line=True)}", file=sys.stderr)
        sources.exit_now_if_stuck(e.exit_code)
        return e.exit_code
    except ModuleNotFoundError as e:
        atomic.remove_empty_created()
        if e.name != "cv2":
            raise
        print(f"error: {NO_OPENCV}", file=sys.stderr)
        return WorkError.exit_code
    except Interrupted:
        atomic.remove_empty_created()
        print("interrupted", file=sys.stderr)
        return Interrupted.exit_code
    except BrokenPipeError:  # `... | head`: the reader has gone; say nothing more, as a command killed by SIGPIPE
        _drop_unwritable_stdout()
        return 141
    except OSError as e:  # `predict --json > out.jsonl` on a full disk: the output itself cannot be written
        if e.errno not in atomic.WRITE_ERRNOS:
            raise
        _drop_unwritable_stdout()
        print(f"error: cannot write the output: {e.strerror}; free some space or write it elsewhere", file=sys.stderr)
        return UserError.exit_code


def _drop_unwritable_stdout() -> None:
    """Point stdout at /dev/null if what it holds cannot be flushed, so exit does not fail again (code 120)."""
    try:
        sys.stdout.flush()
    except OSError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
