"""`edgedigits tune`: a real Optuna study on real MNIST slices, in SQLite and in a real PostgreSQL server."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
optuna = pytest.importorskip("optuna")

from conftest import REPO  # noqa: E402

FINISHED = ("COMPLETE", "PRUNED")


def tune(*args: str, mnist_path, **popen) -> subprocess.Popen:
    command = [sys.executable, "-c", "import sys; sys.argv = ['edgedigits', *sys.argv[1:]]; "
               "from edgedigits.launch import main; main()", "tune", "--quick", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "EDGEDIGITS_DATA": str(mnist_path)}, cwd=REPO, **popen)


def finished(study) -> list:
    return [t for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED]


def test_quick_search_interrupted_and_rerun_continues_the_study(tmp_path, mnist_path):
    out = tmp_path / "tune"
    storage = f"sqlite:///{out / 'study.db'}"
    args = ("--trials", "5", "--max-bytes", "20KB", "--out", str(out), "--study", "s")
    first = tune(*args, mnist_path=mnist_path)
    deadline = time.time() + 600
    while time.time() < deadline:  # interrupt once two trials are done
        time.sleep(2)
        try:
            if len(finished(optuna.load_study(study_name="s", storage=storage))) >= 2:
                break
        except KeyError:  # the study is not created yet
            pass
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 130, err[-2000:]
    counted = [int(n) for n in re.findall(r"\((\d+) of 5\)$", err, re.M)]  # "[tune] trial 3 complete: ... (2 of 5)"
    assert counted[:2] == [1, 2] and counted == sorted(set(counted)), err[-2000:]
    before = {t.number: t.params for t in finished(optuna.load_study(study_name="s", storage=storage))}
    assert len(before) >= 2

    second = tune(*args, mnist_path=mnist_path)
    _, err = second.communicate(timeout=900)
    assert second.returncode == 0, err[-3000:]
    counted = [int(n) for n in re.findall(r"\((\d+) of 5\)$", err, re.M)]
    assert counted == list(range(5 - len(counted) + 1, 6)), err[-3000:]  # one more each trial, up to 5
    study = optuna.load_study(study_name="s", storage=storage)
    after = {t.number: t.params for t in finished(study)}
    assert len(after) == 5 and all(after[n] == p for n, p in before.items()), "the rerun continues the same study"
    result = json.loads((out / "trials.json").read_text())
    fast = next(r for r in result["trials"] if r["number"] == result["presets"]["ds_cnn_fast"])
    assert fast["state"] == "PRUNED" and fast["over_limits"] and fast["bytes"] > 20 * 1024  # refused before training
    assert not study.trials[fast["number"]].intermediate_values, "a trial over the limits must not train"
    front = json.loads((out / "pareto.json").read_text())["front"]
    assert front and all(r["bytes"] <= 20 * 1024 for r in front)
    promoted = [r for r in result["trials"] if "int8_val_accuracy" in r]
    assert len(promoted) == 1 and (out / "promoted" / f"trial{promoted[0]['number']}_int8.tflite").is_file()
    assert (out / "pareto.png").stat().st_size > 10_000 and "| trial |" in (out / "trials.md").read_text()


@pytest.fixture
def postgres_url():
    """A real PostgreSQL server in a temporary folder (Debian's postgresql binaries), on a Unix socket."""
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    if initdb is None:
        pytest.skip("no PostgreSQL server binaries (apt install postgresql)")
    bindir = Path(initdb).resolve().parent
    root = Path(tempfile.mkdtemp(prefix="edgedigits-pg-"))  # not under pytest's root-only tmp: postgres must enter it
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def pg(tool: str, *args: str) -> None:
        subprocess.run([*as_postgres, str(bindir / tool), *args], check=True, capture_output=True, timeout=120)

    pg("initdb", "-D", str(root / "data"), "-U", "postgres", "--auth=trust")
    pg("pg_ctl", "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-o",
       f"-p {port} -k {root} -c listen_addresses=''", "start")
    try:
        pg("createdb", "-h", str(root), "-p", str(port), "-U", "postgres", "optuna")
        yield f"postgresql+psycopg2://postgres@/optuna?host={root}&port={port}"
    finally:
        pg("pg_ctl", "-D", str(root / "data"), "-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(tmp_path, mnist_path, postgres_url):
    args = ("--trials", "4", "--promote", "0", "--storage", postgres_url, "--study", "shared")
    workers = [tune(*args, "--out", str(tmp_path / f"w{i}"), mnist_path=mnist_path) for i in range(2)]
    logs = []
    for worker in workers:
        _, err = worker.communicate(timeout=900)
        assert worker.returncode == 0, err[-3000:]
        logs.append({int(n) for n in re.findall(r"\[tune\] trial (\d+) (?:complete|pruned)", err)})
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    done = {t.number for t in finished(study)}
    assert 4 <= len(done) <= 5  # a worker may start one trial before it sees that the other finished the 4th
    assert logs[0] and logs[1], "both workers ran trials"
    assert not logs[0] & logs[1], "no trial ran in both workers"
    params = [json.dumps(t.params, sort_keys=True) for t in finished(study)]
    assert len(params) == len(set(params)), "the presets are enqueued once"
    assert logs[0] | logs[1] == done, "every finished trial was run by one of the workers"


@pytest.mark.parametrize("url", ["postgresql+psycopg2://nobody:PASSWORD@127.0.0.1:1/none",
                                 "postgresql://nobody:PASSWORD@127.0.0.1:1/none"])  # the form --help shows
def test_a_storage_that_cannot_be_reached_is_one_line_without_its_password(tmp_path, mnist_path, url):
    done = tune("--trials", "1", "--storage", url, "--out", str(tmp_path / "out"), mnist_path=mnist_path)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 2 and err.strip().startswith("error: cannot open the study in postgresql"), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "PASSWORD" not in err and "nobody:***@127.0.0.1" in err
    assert not any("PASSWORD" in p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())


def test_a_report_names_its_storage_without_the_password():
    from edgedigits.builds.tune import masked

    assert masked("postgresql+psycopg2://u:p@ss@db.example:5432/x") == "postgresql+psycopg2://u:***@db.example:5432/x"
    assert masked("postgresql://u@h/x") == "postgresql://u@h/x" and masked("sqlite:///a.db") == "sqlite:///a.db"


def test_a_model_proposed_again_is_not_trained_again():
    """TPE proposes a finished trial's exact parameters again: the earlier answer is found, nothing is trained."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial

    from edgedigits.builds import tune

    study = optuna.create_study(direction="maximize")
    space = {"width": CategoricalDistribution(tune.WIDTHS), "lr": FloatDistribution(1e-3, 6e-3, log=True)}
    study.add_trial(create_trial(params={"width": 1.0, "lr": 0.002}, distributions=space, value=0.97))
    study.add_trial(create_trial(params={"width": 0.75, "lr": 0.002}, distributions=space, state=TrialState.PRUNED))
    for params, expected in (({"width": 1.0, "lr": 0.002}, 0), ({"width": 0.75, "lr": 0.002}, 1),
                             ({"width": 1.25, "lr": 0.002}, None)):
        study.enqueue_trial(params)  # as if TPE had proposed these
        trial = study.ask(space)
        assert trial.params == params
        twin = tune._same_trial(study, trial)
        assert (twin.number if twin else None) == expected


def test_limits_say_how_far_over_they_are():
    """What the constrained sampler ranks an over-limit trial by."""
    from edgedigits.builds import tune

    limits = tune.Limits(max_bytes=16384, max_arena=8192)
    measured = {"bytes": 24576, "arena_bytes": 4096, "invoke_us": 9.0}
    assert limits.violations(measured) == [0.5, -0.5]
    assert limits.broken(measured) == ["bytes 24,576 B > 16,384 B"]
    assert tune.Limits().violations(measured) == [0.0]
