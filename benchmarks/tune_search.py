"""Run `edgedigits tune` with the given limits and record the study: every trial, the Pareto front, the wall time.

    python benchmarks/tune_search.py [--trials 30] [--promote 3] -- --max-bytes 16KB --max-arena 8KB

The study is kept in benchmarks/.cache/tune/<study>/ (run again: it continues), and the record goes
to benchmarks/results/tune_<study>.json and .md, with the front plot as tune_<study>.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from record import RESULTS, record
from zoo import CACHE

from edgedigits.builds import tune
from firmware_harness.device import machine_info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--promote", type=int, default=3)
    parser.add_argument("--study", default=None, help="study name [default: tune's, from the limits]")
    parser.add_argument("limits", nargs="*", help="`edgedigits tune` limit options, after --")
    args = parser.parse_args()
    study = args.study or "-".join(["search", *(a.lstrip("-").replace("max-", "") for a in args.limits)]).lower()
    out = CACHE / "tune" / study
    command = ["edgedigits", "tune", "--trials", str(args.trials), "--promote", str(args.promote), "--study", study,
               "--out", str(out), *args.limits]
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    result = json.loads((out / "trials.json").read_text())
    result.update(command=" ".join(command).replace(str(CACHE), "benchmarks/.cache"), device=machine_info(),
                  wall_time_s=round(time.perf_counter() - started, 1))
    shutil.copyfile(out / "pareto.png", RESULTS / f"tune_{study}.png")
    record(f"tune_{study}", result, markdown(result))
    return 0


def markdown(result: dict) -> str:
    head = (f"`{result['command']}` on {result['device']['cpu']} ({result['device']['cores']} cores), "
            f"{result['wall_time_s'] / 60:.0f} min (this run; a continued study counts only its own time)\n\n")
    return head + tune.markdown(result)


if __name__ == "__main__":
    sys.exit(main())
