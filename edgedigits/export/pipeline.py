"""The `edgedigits export` chain: train -> prune -> QAT -> convert -> verify -> artifacts.

Each stage keeps its checkpoints in a run folder named by a hash of what decides it
(model, recipe, data), so running the same command again reuses finished stages and
continues an interrupted one from its last completed epoch.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgedigits import DEFAULT_MODEL
from edgedigits.training import compress, data, fine_tune
from edgedigits.export import artifacts, names, tflite_edit
from edgedigits.export.formats import FORMATS, format_named
from firmware_harness import atomic, bounded_json
from firmware_harness.errors import UserError


@dataclass
class ExportPlan:
    """What `edgedigits export` makes; every field is a CLI option."""

    model: str = DEFAULT_MODEL
    int8: bool = True  # the pruned + QAT full-integer model
    formats: tuple[str, ...] = ()  # plain conversions of the float model
    sparsity: float = compress.DEFAULT_SPARSITY
    epochs: int = 30
    prune_epochs: int = 10
    qat_epochs: int = 4
    prune_lr: float = 1e-3
    qat_lr: float = 3e-4
    io_type: str = "int8"
    seed: int = 0
    name: str | None = None
    start_from: Path | None = None  # a trained float .keras model: skip training
    styles: tuple[str, ...] = ()  # augmentation and data for writers MNIST lacks (data.STYLES), in every stage
    recipe_overrides: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Check the options before any data or TensorFlow is loaded."""
        compress.check_sparsity(self.sparsity)
        data.check_styles(self.styles)
        if self.start_from is not None and not Path(self.start_from).is_file():
            raise UserError(f"starting checkpoint not found: {self.start_from}")
        for fmt in self.formats:
            format_named(fmt)
        if self.io_type not in artifacts.IO_TYPES:
            raise UserError(f"unknown --io '{self.io_type}'; choose int8 or uint8")
        if self.name is not None:
            names.check_name(self.name)
        if not self.int8 and not self.formats:
            raise UserError(f"nothing to export: pass --int8 and/or --formats {','.join(FORMATS)}")
        for stage in ("epochs", "prune_epochs", "qat_epochs"):
            if getattr(self, stage) < 1:
                raise UserError(f"--{stage.replace('_', '-')} must be at least 1")
        files = self.artifact_names()
        clashes = sorted({n for n in files if files.count(n) > 1})
        if clashes:
            raise UserError(f"two exported files would both be {clashes[0]}.tflite; list each format once and "
                            "give the --int8 model another --name")

    def recipe(self):
        """The float model's training recipe (`edgedigits train`'s) for this plan."""
        from edgedigits.training import train

        return train.Recipe(model=self.model, epochs=self.epochs, seed=self.seed, styles=self.styles,
                            **self.recipe_overrides)

    def artifact_name(self, fmt: str | None = None) -> str:
        if fmt is None:  # the compressed model
            return self.name or ("edgedigits_int8" if self.model == DEFAULT_MODEL else f"{self.model}_int8")
        return f"{self.model}_{fmt}"

    def artifact_names(self) -> list[str]:
        """Every file this plan writes (without `.tflite`): one per format, then the compressed model's."""
        return [self.artifact_name(fmt) for fmt in self.formats] + ([self.artifact_name()] if self.int8 else [])


def model_for(model: str | None, start_from: Path | None) -> str:
    """The registry model an export is of: --model, or the one saved in --from's .keras (read without
    TensorFlow), which must then agree with --model; else DEFAULT_MODEL. A file that is not a readable
    .keras is left for the loader to refuse."""
    saved = _saved_model_name(Path(start_from)) if start_from is not None else None
    if saved is not None and model not in (None, saved):
        raise UserError(f"{start_from} holds a {saved} model, not {model}; pass --model {saved} or leave --model out")
    return model or saved or DEFAULT_MODEL


def _saved_model_name(path: Path) -> str | None:
    """The model's name in a .keras file (a zip with config.json), or None if it is not one."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = json.loads(archive.read("config.json")).get("config", {}).get("name")
    except (OSError, KeyError, ValueError, AttributeError, zipfile.BadZipFile):
        return None
    return name if isinstance(name, str) else None


def _stage(step: str, message: str) -> None:
    print(f"[{step}] {message}", file=sys.stderr, flush=True)


def run_key(plan: ExportPlan, splits: data.Splits) -> str:
    """A short hash of what decides the float model: same key, same checkpoint."""
    from edgedigits.training import train

    return train.recipe_key(plan.recipe(), splits, start=export_sha(plan.start_from) if plan.start_from else None)


def run_folder(plan: ExportPlan, splits: data.Splits, out_dir: Path) -> Path:
    """Where `run` keeps this plan's float model (model.keras, curves.png) and stage checkpoints."""
    return Path(out_dir) / "runs" / f"{plan.model}-{run_key(plan, splits)}"


def export_sha(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise UserError(f"cannot read starting checkpoint {path}: {e.strerror}") from e


def float_model(plan: ExportPlan, splits: data.Splits, run_dir: Path):
    """The trained float model: from --from, a finished run in `run_dir`, or a new (resumable) training run."""
    from edgedigits.training import train

    if plan.start_from:
        model = train.load_keras_model(plan.start_from)
        return model, {"source": str(plan.start_from), "test_accuracy": train.evaluate_keras(model, splits.x_test, splits.y_test)[1]}
    card_path, model_path = run_dir / "card.json", run_dir / "model.keras"
    if card_path.exists() and model_path.exists():
        card = bounded_json.loads(card_path.read_bytes())
        if card.get("sha256") == export_sha(model_path):
            _stage("1/4 train", f"reusing {model_path}")
            return train.load_keras_model(model_path), card
    result = train.train(plan.recipe(), splits, run_dir)
    return result.model, result.card


def run(plan: ExportPlan, splits: data.Splits, out_dir: Path) -> list[dict]:
    """Run the chain and write artifacts to `out_dir`; returns one card per exported file.

    The run folder is locked meanwhile: a second export of the same recipe is refused, not interleaved."""
    plan.validate()
    out_dir = atomic.ensure_dir(out_dir)
    started = time.perf_counter()
    run_dir = atomic.ensure_dir(run_folder(plan, splits, out_dir))
    with atomic.folder_lock(run_dir):
        return _run(plan, splits, out_dir, run_dir, started)


def _run(plan: ExportPlan, splits: data.Splits, out_dir: Path, run_dir: Path, started: float) -> list[dict]:
    from edgedigits.training import train

    timings = {}

    _stage("1/4 train", f"{plan.model} float model in {run_dir}")
    t = time.perf_counter()
    model, float_card = float_model(plan, splits, run_dir)
    timings["train_s"] = round(time.perf_counter() - t, 1)
    float_acc = float_card["test_accuracy"]
    tested = f"accuracy {float_acc:.2%} on {len(splits.x_test)} {splits.test_name}" if splits.own else \
        f"test accuracy {float_acc:.2%} on {len(splits.x_test)} images"
    _stage("1/4 train", f"float model: {tested} "
                        f"({timings['train_s']:.0f} s)")
    cards, written = [], []

    logits = model.predict(data.to_model_input(splits.x_test), batch_size=1024, verbose=0) if plan.formats else None
    for fmt in plan.formats:
        _stage("convert", f"{plan.model} -> {fmt}")
        converted = artifacts.convert(model, fmt, calibration_images=splits.x_train, io_type=plan.io_type)
        content = tflite_edit.strip(converted)
        cards.append(_finish(plan.artifact_name(fmt), content, fmt, plan.io_type, logits, splits, out_dir, written,
                             stripped_bytes=len(converted) - len(content), float_accuracy=float_acc,
                             source={"model": plan.model, "float_card": float_card}))

    if plan.int8:
        stage_root = run_dir / "checkpoints"
        tag = f"s{round(plan.sparsity * 100)}"
        t = time.perf_counter()
        if plan.sparsity > 0:
            _stage("2/4 prune", f"magnitude pruning to {plan.sparsity:.0%}, {plan.prune_epochs} epochs")
            model = compress.prune(model, splits, plan.sparsity,
                                   compress.StageRecipe(plan.prune_epochs, lr=plan.prune_lr, seed=plan.seed,
                                                        styles=plan.styles),
                                   stage_root / f"prune-{tag}-e{plan.prune_epochs}-lr{plan.prune_lr:g}")
        timings["prune_s"] = round(time.perf_counter() - t, 1)
        pruned_acc = train.evaluate_keras(model, splits.x_test, splits.y_test)[1]
        layers = compress.sparsity_report(model)
        _stage("2/4 prune", f"sparsity {compress.overall_sparsity(layers):.1%}, test accuracy {pruned_acc:.2%}")

        t = time.perf_counter()
        _stage("3/4 qat", f"int8 quantization-aware training, {plan.qat_epochs} epochs"
                          f"{', zero weights kept zero' if plan.sparsity > 0 else ''}")
        qat = compress.quantize(model, splits, compress.StageRecipe(plan.qat_epochs, lr=plan.qat_lr, seed=plan.seed,
                                                                     styles=plan.styles),
                                stage_root / f"qat-{tag}-p{plan.prune_epochs}-e{plan.qat_epochs}-lr{plan.qat_lr:g}",
                                preserve_sparsity=plan.sparsity > 0)
        timings["qat_s"] = round(time.perf_counter() - t, 1)

        _stage("4/4 convert", f"full-integer {plan.io_type} TFLite, verified on {len(splits.x_test)} {splits.test_name}")
        t = time.perf_counter()
        logits = qat.predict(data.to_model_input(splits.x_test), batch_size=1024, verbose=0)
        converted = artifacts.convert(qat, "int8", io_type=plan.io_type, quantization_aware=True)
        content = tflite_edit.strip(converted)
        timings["convert_s"] = round(time.perf_counter() - t, 1)
        own = {"own_digits": fine_tune.before_after(content, splits)} if splits.own else {}
        timings["total_s"] = round(time.perf_counter() - started, 1)
        cards.append(_finish(
            plan.artifact_name(), content, "int8", plan.io_type, logits, splits, out_dir, written,
            stripped_bytes=len(converted) - len(content), float_accuracy=float_acc, pruned_float_accuracy=pruned_acc, qat_keras_accuracy=float(
                np.mean(np.argmax(logits, axis=1) == splits.y_test)),
            target_sparsity=plan.sparsity, layer_sparsity=compress.overall_sparsity(layers), layers=layers,
            source={"model": plan.model, "plan": _plan_dict(plan), "float_card": float_card, "timings": timings},
            **own,
        ))
        if own:
            _stage("own digits", fine_tune.summary(own["own_digits"]))
    _stage("done", f"{time.perf_counter() - started:.0f} s in all; files written:\n"
                   + "\n".join(f"  {path}" for path in dict.fromkeys(written)))  # labels.txt once, not per file
    return cards


def _plan_dict(plan: ExportPlan) -> dict:
    d = asdict(plan)
    d["start_from"] = str(plan.start_from) if plan.start_from else None
    d["recipe_overrides"] = {k: v for k, v in d["recipe_overrides"].items() if k != "start"}  # the float card names it
    return d


def _finish(name: str, content: bytes, fmt: str, io_type: str, keras_logits: np.ndarray, splits: data.Splits,
            out_dir: Path, written: list[Path], **extra) -> dict:
    """Verify a converted file, measure its TFLM arena if it is int8, write the artifacts (added to `written`)."""
    check = artifacts.verify(content, fmt, keras_logits, splits.x_test, splits.y_test)
    if fmt == "int8":
        extra.update(artifacts.tflm_figures(content, (splits.x_test, splits.y_test), check))
    card = artifacts.build_card(content, fmt, io_type, check, name=name, data=splits.describe(), **extra)
    content, card = artifacts.embed_card(content, card)
    written += artifacts.write_artifacts(out_dir, name, content, card)
    kernels = ", ".join(f"{k} {v:.2%}" for k, v in check.per_kernel.items())
    _stage("verified", f"{out_dir / (name + '.tflite')}: {card['bytes']:,} bytes, {card['weight_sparsity']:.1%} zero "
                       f"weights; accuracy on {check.n_eval} {splits.test_name} by kernel: {kernels}")
    return card
