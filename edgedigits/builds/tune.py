"""`edgedigits tune`: hardware-aware search of the `ds_cnn` space with Optuna.

Each trial samples a block string (kinds, filters, where the two stride-2 layers go), a width,
dropout, a learning rate and an augmentation strength, then:
1. converts the untrained model to int8 and measures, with the harness on this machine, the file's
   bytes, its TFLite Micro arena and its invoke p50; a trial over a `--max-*` limit ends there, before
   any training (the file's size, arena and speed do not depend on the weights);
2. trains the float model briefly on a subset (the cheap fidelity), reporting validation accuracy each
   epoch to Optuna's pruner, which stops trials that fall behind;
then the best feasible trials are promoted through the full prune -> QAT -> int8 chain of `export`,
verified on the validation split. The test set is never used. The study lives in a SQLite file
(Ctrl-C, then the same command continues it) or, with `--storage postgresql://...`, in a database that
several machines work on together. Bytes are the model's own: the `edgedigits` metadata entry
that export adds (the card, about 750 bytes) comes on top.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgedigits.training import data
from firmware_harness import atomic
from firmware_harness.errors import UserError, check_interrupted

FILTERS = (8, 12, 16, 24, 32, 48)
WIDTHS = (0.75, 1.0, 1.25)
DROPOUTS = (0.0, 0.1, 0.2)
AUGMENT = (0.5, 1.0, 1.5)  # augmentation strength: the training ranges of rotation, zoom and shift, scaled
STARTUP_TRIALS = 16  # random trials before TPE models the space
PRUNE_AFTER_EPOCHS = 2  # the pruner's warm-up: epochs of the cheap run before it may stop a trial


@dataclass(frozen=True)
class Limits:
    max_bytes: int | None = None
    max_arena: int | None = None
    max_latency_us: float | None = None

    def _checked(self, measured: dict):
        for key, limit, unit in (("bytes", self.max_bytes, "B"), ("arena_bytes", self.max_arena, "B"),
                                 ("invoke_us", self.max_latency_us, "µs")):
            if limit is not None and measured.get(key) is not None:
                yield key, measured[key], limit, unit

    def broken(self, measured: dict) -> list[str]:
        """The limits a measured file breaks, as text."""
        return [f"{key} {value:,} {unit} > {limit:,} {unit}" for key, value, limit, unit in self._checked(measured)
                if value > limit]

    def violations(self, measured: dict) -> list[float]:
        """How far over each limit the file is, as a fraction of the limit (0 or less: within it)."""
        return [value / limit - 1 for key, value, limit, _ in self._checked(measured)] or [0.0]


@dataclass(frozen=True)
class Budget:
    """How much each fidelity costs."""

    trials: int  # trials in the study (completed or pruned), over all workers
    cheap_images: int  # training images of the cheap fidelity
    cheap_epochs: int
    promote: int  # best feasible trials taken through the full chain
    epochs: int  # the full chain: float epochs, pruning and QAT epochs
    prune_epochs: int
    qat_epochs: int
    limit: int | None = None  # use only the first N training images (and validation is cut to match)


FULL = Budget(trials=60, cheap_images=20_000, cheap_epochs=6, promote=5, epochs=30, prune_epochs=10, qat_epochs=4)
QUICK = Budget(trials=6, cheap_images=4_000, cheap_epochs=3, promote=1, epochs=3, prune_epochs=1, qat_epochs=1,
               limit=6_000)


def parse_bytes(text: str | None) -> int | None:
    """'32KB' -> 32768, '16000' -> 16000 (KB and MB are powers of 1024)."""
    if text is None:
        return None
    value = text.strip().upper().removesuffix("B")
    scale = {"K": 1024, "M": 1024 ** 2}.get(value[-1:], 1)
    try:
        return int(float(value.rstrip("KM")) * scale)
    except ValueError:
        raise UserError(f"'{text}' is not a size; write e.g. 32KB, 12288 or 1MB") from None


def sample(trial) -> dict:
    """A point of the ds_cnn space: model kwargs, the learning rate and the augmentation strength."""
    n = trial.suggest_int("n_blocks", 4, 7)
    first_down = trial.suggest_int("down1", 0, n - 2)
    second_down = trial.suggest_int("down2", first_down + 1, n - 1)
    tokens = []
    for i in range(n):
        kind = trial.suggest_categorical(f"kind{i}", ["c", "d"])
        filters = trial.suggest_categorical(f"filters{i}", FILTERS)
        tokens.append(f"{kind}{filters}{'s2' if i in (first_down, second_down) else ''}")
    return {"blocks": " ".join(tokens), "width": trial.suggest_categorical("width", WIDTHS),
            "dropout": trial.suggest_categorical("dropout", DROPOUTS),
            "lr": trial.suggest_float("lr", 1e-3, 6e-3, log=True),
            "augment": trial.suggest_categorical("augment", AUGMENT)}


def recipe_augment(strength: float) -> bool | float:
    """A recipe's `augment` for a strength: True for 1, so that a trial at the default strength trains
    (and keys its checkpoints) exactly as `edgedigits export` does."""
    return True if strength == 1.0 else strength


def preset_params(blocks: str, dropout: float) -> dict:
    """The trial parameters that sample() turns into this preset (width 1, the default learning rate)."""
    from edgedigits.training import train

    tokens = blocks.split()
    downs = [i for i, t in enumerate(tokens) if t.endswith("s2")]
    params = {"n_blocks": len(tokens), "down1": downs[0], "down2": downs[1], "width": 1.0, "dropout": dropout,
              "lr": train.Recipe.lr, "augment": 1.0}
    for i, token in enumerate(tokens):
        params[f"kind{i}"], params[f"filters{i}"] = token[0], int(token[1:].removesuffix("s2"))
    return params


def measure(model_kwargs: dict, calibration: np.ndarray, need_arena: bool) -> dict:
    """Bytes, TFLite Micro arena and invoke p50 of the model's int8 file (its weights do not matter)."""
    from edgedigits.export import artifacts, tflite_edit
    from edgedigits.training import models
    from firmware_harness import mcu
    from firmware_harness.runtime import Model

    keras_model = models.create_model("ds_cnn", **model_kwargs)
    content = tflite_edit.strip(artifacts.convert(keras_model, "int8", calibration_images=calibration))
    model = Model(content, name="trial")
    invoke_ns, _ = model.time_single(calibration, warmup=20, runs=300)
    arena = mcu.arena_bytes(content, model.quantize(calibration[:1])) if need_arena else None
    return {"bytes": len(content), "arena_bytes": arena, "invoke_us": round(float(np.median(invoke_ns)) / 1000, 2),
            "params": models.count_params(keras_model), "macs": models.count_macs(keras_model)}


def cheap_accuracy(trial, model_kwargs: dict, lr: float, augment: float, splits: data.Splits, budget: Budget,
                   seed: int) -> float:
    """Validation accuracy of a short float training run on a subset, reported each epoch to the pruner."""
    import optuna

    from edgedigits.training import train
    from edgedigits.training.tf_stack import keras, seed_everything

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            trial.report(float(logs["val_accuracy"]), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation accuracy {logs['val_accuracy']:.4f} after epoch {epoch + 1}")

    seed_everything(seed)
    subset = replace(splits, x_train=splits.x_train[:budget.cheap_images], y_train=splits.y_train[:budget.cheap_images])
    recipe = train.Recipe(model="ds_cnn", epochs=budget.cheap_epochs, lr=lr, seed=seed, model_kwargs=model_kwargs,
                          augment=recipe_augment(augment))
    model, train_ds, val_ds, steps = train.compiled(recipe, subset)
    model.fit(train_ds, steps_per_epoch=steps, epochs=budget.cheap_epochs, validation_data=val_ds,
              callbacks=[Report()], verbose=0)
    return train.evaluate_keras(model, splits.x_val, splits.y_val)[1]


def storage_url(url: str) -> str:
    """The URL Optuna opens: `postgresql://` (as `--help` shows it) with the psycopg2 driver the tune extra
    installs, where SQLAlchemy 2.1 would look for psycopg 3."""
    return "postgresql+psycopg2://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url


def _password(url: str) -> str:
    """The password in a URL's `user:password@host`, or ''."""
    netloc = url.partition("://")[2].partition("/")[0]
    return netloc.rpartition("@")[0].partition(":")[2] if "@" in netloc else ""


def masked(text: str, url: str | None = None) -> str:
    """A storage URL (or any `text` that may quote `url`) as it may be shown or written down: the URL's
    password, if any, as ***."""
    password = _password(url or text)
    if not password:
        return text
    text = text.replace(f":{password}@", ":***@")
    return text if url is None else text.replace(password, "***")  # a reason quoting it bare: mask it all


@dataclass
class Search:
    """One study: its storage, limits, budget and output folder."""

    study_name: str
    storage: str
    out: Path
    limits: Limits
    budget: Budget
    seed: int = 0
    data_path: Path | None = None
    mnist_mix: float = data.MNIST_MIX  # with your own digits (a labelled folder or CSV)
    strict: bool = False

    @property
    def shown_storage(self) -> str:
        """The storage URL for messages and reports: never its password."""
        return masked(self.storage)

    def study(self):
        """Create the study, or join it. Exactly one worker creates it (the database's unique study name
        decides) and enqueues the presets; workers that start together retry while the first one makes the
        database's tables (Optuna's schema set-up is not safe to run twice at once)."""
        import optuna
        import sqlalchemy.exc

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Prune from the middle of the cheap run on, once five trials have finished: the first epochs of a
        # warm-up-then-cosine schedule rank models by noise, and a pruner that acted on them after three
        # trials cut most of a 60-trial study at epoch 1 while the sampler kept proposing the same model.
        warmup = min(PRUNE_AFTER_EPOCHS, self.budget.cheap_epochs - 1)
        settings = {"study_name": self.study_name, "storage": storage_url(self.storage),
                    "pruner": optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)}
        attempts = 8
        for attempt in range(attempts):
            try:
                return self._create_or_join(settings)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError) as e:
                if attempt + 1 == attempts:
                    reason = str(e.orig if getattr(e, "orig", None) else e).strip().splitlines()[0]
                    reason = masked(reason, self.storage)
                    raise UserError(f"cannot open the study in {self.shown_storage}: {reason}; check --storage") from e
                time.sleep(0.25 * (attempt + 1))

    def _create_or_join(self, settings: dict):
        """The creator samples with --seed (a one-machine search repeats); a worker that joins (another machine,
        or a rerun after Ctrl-C) samples with fresh entropy, or it would propose what the first one did."""
        import optuna

        try:
            study = optuna.create_study(direction="maximize", sampler=_sampler(self.seed), **settings)
        except optuna.exceptions.DuplicatedStudyError:
            return optuna.load_study(sampler=_sampler(None), **settings)
        from edgedigits.training.models import DS_CNN_PRESETS

        for spec in DS_CNN_PRESETS.values():
            study.enqueue_trial(preset_params(spec["blocks"], spec["dropout"]))
        return study

    def _loaded(self) -> data.Splits:
        return data.load_splits(self.data_path, limit=self.budget.limit, mnist_mix=self.mnist_mix, strict=self.strict)

    def splits(self) -> data.Splits:
        splits = self._loaded()
        if self.budget.limit:  # a validation split in proportion to the training images kept
            splits = replace(splits, x_val=splits.x_val[:self.budget.limit // 4], y_val=splits.y_val[:self.budget.limit // 4])
        return splits

    def run(self, trials: int | None = None) -> dict:
        """Run trials until the study holds `trials` (completed or pruned), promote the best, write the report."""
        import optuna
        from optuna.study import MaxTrialsCallback
        from optuna.trial import TrialState

        splits = self.splits()  # bad data fails before the study is made
        study = self.study()
        total = trials or self.budget.trials
        calibration = splits.x_train[:256]
        need_arena = _can_measure_arena(self.limits)
        started = time.perf_counter()

        def objective(trial) -> float:
            check_interrupted()  # a Ctrl-C whose exception a finalizer dropped stops the search here
            point = sample(trial)
            twin = _same_trial(study, trial)
            if twin is not None:  # TPE proposes a model again: its answer is known, train nothing
                trial.set_user_attr("same_as", twin.number)
                for key in ("blocks", "bytes", "arena_bytes", "invoke_us", "params", "macs", "over_limits", "constraints"):
                    if key in twin.user_attrs:
                        trial.set_user_attr(key, twin.user_attrs[key])
                if twin.state != TrialState.COMPLETE:
                    raise optuna.TrialPruned(f"the same model as trial {twin.number}, which was pruned")
                return twin.value
            kwargs = {k: point[k] for k in ("blocks", "width", "dropout")}
            try:
                measured = measure(kwargs, calibration, need_arena)
            except UserError as e:  # the interpreter refuses this model: record it, and the search goes on
                trial.set_user_attr("blocks", point["blocks"])
                trial.set_user_attr("refused", str(e))
                trial.set_user_attr("constraints", [10.0])  # ranked below any measured model
                raise optuna.TrialPruned(f"refused: {e}") from e
            for key, value in {**measured, "blocks": point["blocks"]}.items():
                trial.set_user_attr(key, value)
            trial.set_user_attr("constraints", self.limits.violations(measured))
            broken = self.limits.broken(measured)
            if broken:
                trial.set_user_attr("over_limits", broken)
                raise optuna.TrialPruned("over the limits: " + "; ".join(broken))
            return cheap_accuracy(trial, kwargs, point["lr"], point["augment"], splits, self.budget, self.seed)

        done = _finished(study)
        if done < total:
            _say(f"study {self.study_name}: {done} of {total} trials done; running the rest ({self.shown_storage})")
            study.optimize(objective, callbacks=[MaxTrialsCallback(total, states=(TrialState.COMPLETE, TrialState.PRUNED)),
                                                 _progress(total)], catch=())
        return self.report(study, self.promote(study, splits), round(time.perf_counter() - started, 1))

    def promote(self, study, splits: data.Splits) -> dict[int, dict]:
        """Take the best feasible trials through the full prune -> QAT -> int8 chain; int8 accuracy on validation."""
        from optuna.trial import TrialState

        from edgedigits.export import pipeline

        promoted = _promoted(study)
        ranked = sorted((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: -t.value)
        for trial in ranked[:self.budget.promote]:
            if trial.number in promoted:
                continue
            check_interrupted()
            _say(f"promoting trial {trial.number} ({trial.user_attrs['blocks']}) through prune -> QAT -> int8")
            plan = self.plan(trial, name=f"trial{trial.number}_int8")
            on_validation = replace(splits, x_test=splits.x_val, y_test=splits.y_val)  # never the test set
            card = pipeline.run(plan, on_validation, self.out / "promoted")[-1]
            promoted[trial.number] = {"int8_val_accuracy": card["tflite_accuracy"],
                                      "accuracy_per_kernel": card.get("accuracy_per_kernel"),
                                      "bytes": card.get("bytes_without_metadata", card["bytes"]),
                                      "arena_bytes": card.get("tensor_arena_bytes")}
            study.set_user_attr(f"promoted/{trial.number}", promoted[trial.number])
        return promoted

    def plan(self, trial, name: str):
        """The `edgedigits export --int8` plan of a trial (the full chain at this search's budget)."""
        from edgedigits.export.pipeline import ExportPlan

        p = trial.params
        kwargs = {"blocks": trial.user_attrs["blocks"], "width": p["width"], "dropout": p["dropout"]}
        return ExportPlan(model="ds_cnn", epochs=self.budget.epochs, prune_epochs=self.budget.prune_epochs,
                          qat_epochs=self.budget.qat_epochs, seed=self.seed, name=name,
                          recipe_overrides={"model_kwargs": kwargs, "lr": p["lr"],
                                            "augment": recipe_augment(p.get("augment", 1.0))})

    def export(self, number: int | None) -> list[dict]:
        """`edgedigits export --int8` of trial `number` (default: the best promoted one) on the training data,
        verified on the test set like any export; written to OUT/export."""
        from optuna.trial import TrialState

        from edgedigits.export import pipeline

        study = self.study()
        promoted = _promoted(study)
        if number is None:
            if not promoted:
                raise UserError("no promoted trial to export yet: run the search first, or pass --export N")
            fits = [n for n in promoted if not self.limits.broken(promoted[n])] or list(promoted)
            number = max(fits, key=lambda n: promoted[n]["int8_val_accuracy"])
        trial = next((t for t in study.trials if t.number == number), None)
        if trial is None or trial.state != TrialState.COMPLETE:
            raise UserError(f"trial {number} is not a completed trial of study {self.study_name}")
        _say(f"exporting trial {number} ({trial.user_attrs['blocks']})")
        return pipeline.run(self.plan(trial, name=f"tune_trial{number}_int8"), self._loaded(), self.out / "export")

    def report(self, study, promoted: dict[int, dict], wall_s: float) -> dict:
        """trials.json / trials.md, pareto.json and pareto.png in the output folder."""
        from edgedigits.training.models import DS_CNN_PRESETS

        rows = [trial_row(t, promoted.get(t.number), self.limits) for t in study.trials]
        front = pareto_front([r for r in rows if r["state"] == "COMPLETE"])
        result = {"study": self.study_name, "storage": self.shown_storage, "limits": vars(self.limits),
                  "budget": vars(self.budget), "wall_time_s": wall_s, "trials": rows,
                  "pareto": [r["number"] for r in front], "presets": {n: i for i, n in enumerate(DS_CNN_PRESETS)}}
        out = atomic.ensure_dir(self.out)
        atomic.write_json(out / "trials.json", result)
        atomic.write_json(out / "pareto.json", {"study": self.study_name, "front": front})
        atomic.write_text(out / "trials.md", markdown(result))
        from edgedigits.training import plots

        plots.tune_front(rows, front, out / "pareto.png", presets=result["presets"])
        _say(f"wrote {out / 'trials.md'}, trials.json, pareto.json and pareto.png")
        return result


def trial_row(trial, promoted: dict | None, limits: Limits) -> dict:
    """One trial for the report; a promoted trial's limits are checked again on its final file, which the QAT
    conversion can make a little larger than the untrained file measured before training."""
    attrs = trial.user_attrs
    final = {}
    if promoted:
        final = {"int8_val_accuracy": promoted["int8_val_accuracy"], "int8_bytes": promoted["bytes"],
                 "int8_arena_bytes": promoted["arena_bytes"],
                 "int8_over_limits": limits.broken({"bytes": promoted["bytes"], "arena_bytes": promoted["arena_bytes"]})}
    return {"number": trial.number, "state": trial.state.name, "blocks": attrs.get("blocks"),
            "width": trial.params.get("width"), "dropout": trial.params.get("dropout"), "lr": trial.params.get("lr"),
            "augment": trial.params.get("augment", 1.0),
            "val_accuracy": trial.value, "bytes": attrs.get("bytes"), "arena_bytes": attrs.get("arena_bytes"),
            "invoke_us": attrs.get("invoke_us"), "params": attrs.get("params"), "over_limits": attrs.get("over_limits"),
            "same_as": attrs.get("same_as"), "refused": attrs.get("refused"),
            **final}


def pareto_front(rows: list[dict]) -> list[dict]:
    """Rows no other row beats on every objective: accuracy up; bytes, arena and latency down."""
    def key(r):
        return (-r["val_accuracy"], r["bytes"], r["arena_bytes"] or 0, r["invoke_us"])

    def dominates(a, b):
        ka, kb = key(a), key(b)
        return all(x <= y for x, y in zip(ka, kb)) and ka != kb

    return sorted((r for r in rows if not any(dominates(o, r) for o in rows)), key=lambda r: r["bytes"])


def markdown(result: dict) -> str:
    lines = [f"`edgedigits tune` study `{result['study']}`: {len(result['trials'])} trials; limits "
             f"{json.dumps({k: v for k, v in result['limits'].items() if v is not None})}; cheap fidelity "
             f"{result['budget']['cheap_epochs']} epochs on {result['budget']['cheap_images']:,} images; "
             f"validation accuracy (the test set is not used); * = on the Pareto front", "",
             "| trial | state | blocks | width | dropout | lr | augment | val acc (float, cheap) | int8 val acc (full chain) "
             "| bytes | TFLM arena | invoke p50 µs |", "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    presets = {i: n for n, i in result["presets"].items()}
    for r in result["trials"]:
        star = "*" if r["number"] in result["pareto"] else ""
        name = f" ({presets[r['number']]})" if r["number"] in presets else ""
        acc = f"{r['val_accuracy']:.2%}" if r["val_accuracy"] is not None else "-"
        int8 = ""
        if "int8_val_accuracy" in r:
            int8 = f"{r['int8_val_accuracy']:.2%} in {r['int8_bytes']:,} B, arena {_num(r['int8_arena_bytes'])} B"
            int8 += " (over: " + "; ".join(r["int8_over_limits"]) + ")" if r["int8_over_limits"] else ""
        state = r["state"].lower() + (" (over limits)" if r["over_limits"] else "")
        state += f" (same as {r['same_as']})" if r.get("same_as") is not None else ""
        state += " (refused by the interpreter)" if r.get("refused") else ""
        lines.append(f"| {r['number']}{star}{name} | {state} | `{r['blocks']}` | {r['width']} | {r['dropout']} | "
                     f"{_num(r['lr'], '.4f')} | {r.get('augment', 1.0)} | {acc} | {int8} | {_num(r['bytes'])} | {_num(r['arena_bytes'])} | "
                     f"{r['invoke_us'] if r['invoke_us'] is not None else '-'} |")
    return "\n".join(lines) + "\n"


def _sampler(seed: int | None):
    """TPE that knows the limits: a trial over them is ranked by how far over it is (Optuna's constrained
    TPE), so that the sampler moves towards models that fit even before any has fitted. It models the
    parameters jointly (multivariate, grouped by which blocks a trial has), since a block's filters only
    mean something next to its neighbours', and starts from STARTUP_TRIALS random ones: with ten, a 16 KB
    search settled on one small model and proposed it again and again."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, constraints_func=_constraints, n_startup_trials=STARTUP_TRIALS,
                                          multivariate=True, group=True)


def _constraints(trial) -> tuple[float, ...]:
    return tuple(trial.user_attrs.get("constraints", (0.0,)))


def _same_trial(study, trial):
    """A finished trial with exactly this trial's parameters, if there is one."""
    from optuna.trial import TrialState

    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if other.number != trial.number and other.params == trial.params:
            return other
    return None


def _num(value, spec: str = ",") -> str:
    return format(value, spec) if value is not None else "-"


def _promoted(study) -> dict[int, dict]:
    """The trials taken through the full chain, as the study records them: trial number -> result."""
    return {int(k.split("/")[1]): v for k, v in study.user_attrs.items() if k.startswith("promoted/")}


def _can_measure_arena(limits: Limits) -> bool:
    """True if TFLite Micro is here; without it, --max-arena is an error (mcu's, saying what to install)."""
    from firmware_harness import mcu

    try:
        mcu.tflm_version()
    except UserError:
        if limits.max_arena is not None:
            raise
        return False
    return True


def _finished(study) -> int:
    """Trials that count towards the study's total: completed or pruned (enqueued presets wait, uncounted)."""
    from optuna.trial import TrialState

    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)


def _progress(total: int):
    def report(study, trial) -> None:
        value = f"{trial.value:.4f}" if trial.value is not None else "-"
        _say(f"trial {trial.number} {trial.state.name.lower()}: val {value}, {trial.user_attrs.get('blocks')}, "
             f"{trial.user_attrs.get('bytes', 0):,} B ({_finished(study)} of {total})")
    return report


def _say(text: str) -> None:
    print(f"[tune] {text}", file=sys.stderr, flush=True)
