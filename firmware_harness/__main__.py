"""`python -m firmware_harness bench|mcu|predict|camera ...`: the device-side commands.

Needs only numpy, OpenCV and a TFLite interpreter (LiteRT or tflite-runtime), so it runs
on a Raspberry Pi with no edgedigits install. `edgedigits bench|mcu|predict|camera`
forward here, so every option is defined once.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from firmware_harness import atomic, mnist
from firmware_harness.errors import Interrupted, UserError, WorkError
from firmware_harness.runtime import BACKENDS


def shipped_model() -> Path | None:
    """The int8 model shipped with edgedigits, if that package is installed beside the harness."""
    try:
        from importlib import resources

        path = Path(str(resources.files("edgedigits.pretrained") / "edgedigits_int8.tflite"))
    except ImportError:
        return None
    return path if path.is_file() else None


def _models(paths: list[Path]) -> list[Path]:
    for path in paths:
        if not path.is_file():
            raise UserError(f"model not found: {path}")
    if paths:
        return paths
    shipped = shipped_model()
    if shipped is None:
        raise UserError("no model given and no shipped model installed; pass MODEL.tflite")
    return [shipped]


def _test_data(path: Path | None) -> mnist.DigitData:
    where = mnist.locate(path)
    if where is None:
        raise UserError(f"no test data found: pass --data PATH (mnist.npz, an npz with x_test/y_test, or IDX files) "
                        f"or set {mnist.ENV_VAR}")
    return mnist.load(where, splits=("test",))


def cmd_bench(args: argparse.Namespace) -> int:
    from firmware_harness import bench

    models = _models(args.models)
    test = _test_data(args.data)
    if args.limit:
        test = mnist.DigitData(test.x_test[: args.limit], test.y_test[: args.limit], source=test.source,
                               is_mnist=test.is_mnist)
    settings = bench.BenchSettings(warmup=args.warmup, runs=args.runs, threads=args.threads, backend=args.backend)
    result = bench.run(models, test, settings)
    table = bench.markdown(result)
    print(table, end="")
    if args.json:
        atomic.write_json(args.json, result)
    if args.markdown:
        atomic.write_text(args.markdown, table)
    return 0


def cmd_mcu(args: argparse.Namespace) -> int:
    from firmware_harness import mcu
    from firmware_harness.runtime import Model

    (path,) = _models([args.model] if args.model else [])
    test = _test_data(args.data)
    images = test.x_test[: args.limit] if args.limit else test.x_test
    report = mcu.check(Model(path, backend=args.backend), images)
    print(f"{path.name}: TFLite Micro {report.tflm_version}")
    print(f"  ops: {', '.join(report.ops)}")
    print(f"  ops TFLM lacks: {', '.join(report.missing_ops) or 'none'}")
    print(f"  tensor arena: {report.arena_bytes:,} bytes")
    print(f"  agreement with {Model(path, backend=args.backend).backend.name}: {report.agreement:.2%} "
          f"of {report.n_compared} test images")
    if args.json:
        atomic.write_json(args.json, {"model": str(path), **report.__dict__})
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of a usage dump."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser(prog: str = "python -m firmware_harness") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    bench = sub.add_parser("bench", help="size, accuracy and latency table for .tflite models")
    bench.add_argument("models", nargs="*", type=Path, metavar="MODEL", help="default: the shipped int8 model")
    bench.add_argument("--data", type=Path, help=f"npz with x_test/y_test or IDX folder [default: ${mnist.ENV_VAR}, keras cache]")
    bench.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    bench.add_argument("--warmup", type=int, default=50, help="untimed runs before timing (default 50)")
    bench.add_argument("--runs", type=int, default=1000, help="timed single-image runs (default 1000)")
    bench.add_argument("--backend", choices=list(BACKENDS), help="default: the first that imports")
    bench.add_argument("--limit", type=int, help="use only the first N test images")
    bench.add_argument("--json", type=Path, help="write {device, rows} JSON here")
    bench.add_argument("--markdown", type=Path, help="write the Markdown table here")
    bench.set_defaults(func=cmd_bench)

    mcu = sub.add_parser("mcu", help="run a model in TensorFlow Lite Micro: ops, arena, agreement")
    mcu.add_argument("model", nargs="?", type=Path, metavar="MODEL", help="default: the shipped int8 model")
    mcu.add_argument("--data", type=Path, help="test data, as for bench")
    mcu.add_argument("--limit", type=int, help="compare on the first N test images only")
    mcu.add_argument("--backend", choices=list(BACKENDS), help="desktop interpreter to compare against")
    mcu.add_argument("--json", type=Path, help="write the report as JSON here")
    mcu.set_defaults(func=cmd_mcu)
    return parser


def _positive(args: argparse.Namespace) -> None:
    for name in ("threads", "runs", "limit"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UserError(f"--{name} must be at least 1 (got {value})")
    if getattr(args, "warmup", 0) < 0:
        raise UserError("--warmup must be 0 or more")


def _raise_interrupted(signum, frame):
    raise Interrupted()


def main(argv: list[str] | None = None, prog: str = "python -m firmware_harness") -> int:
    """Run one harness command; errors are one line on stderr with exit code 2 (input) or 1 (work)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        _positive(args)
        return args.func(args)
    except (UserError, WorkError) as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except Interrupted:
        print("interrupted", file=sys.stderr)
        return Interrupted.exit_code


if __name__ == "__main__":
    sys.exit(main())
