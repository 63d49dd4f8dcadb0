"""Train a registry model on MNIST.

Adam with a cosine schedule (linear warm-up) or ReduceLROnPlateau, on-the-fly
augmentation, early stopping on validation loss that restores the best weights (with
cosine, only in the schedule's second half: its high-LR first half is noisy), and a
checkpoint after every epoch so a killed run continues where it stopped. Writes
`model.keras`, `history.json`, `curves.png` and `card.json` into the run folder.
`fit_resumable` is the epoch loop that pruning and QAT reuse.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgedigits import DEFAULT_MODEL
from edgedigits.training import cards, data, models
from edgedigits.training.tf_stack import keras, seed_everything, tf
from firmware_harness import atomic, bounded_json, progress
from firmware_harness.errors import Interrupted, UserError, check_interrupted

SCHEDULES = ("cosine", "plateau")


MAX_AUGMENT = 3.0  # beyond 3x the default ranges (30 degrees, 30 % zoom and shift) digits leave the frame


@dataclass
class Recipe:
    """Everything that decides a training run; stored in the card."""

    model: str = DEFAULT_MODEL
    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    schedule: str = "cosine"
    warmup_epochs: int = 1
    patience: int = 10  # epochs without a lower validation loss, counted after `patience_from`
    label_smoothing: float = 0.0
    augment: bool | float = True  # True: rotation, zoom and shift at data.py's ranges; a number scales them
    styles: tuple[str, ...] = ()  # more augmentation and data for writers MNIST lacks: names in data.STYLES
    seed: int = 0
    model_kwargs: dict = field(default_factory=dict)
    start: str | None = None  # a trained float .keras of this model to fine-tune from, instead of fresh weights

    def described(self) -> dict:
        """The recipe as cards and run keys hold it: a starting file by name and sha256, not by its path."""
        recipe = asdict(self)
        start = recipe.pop("start")
        if start is not None:
            recipe["start"] = {"file": Path(start).name, "sha256": cards.sha256_file(start)}
        styles = recipe.pop("styles")  # left out when empty: runs keyed before styles existed keep their keys
        if styles:
            recipe["styles"] = list(styles)
            if "fonts" in styles:
                from edgedigits.training import font_digits

                recipe["font_digits_sha256"] = font_digits.bank_sha256()
        return recipe

    @property
    def augment_strength(self) -> float:
        """How strongly the training images are augmented: 1 for True, 0 for False, else the number."""
        return float(self.augment)

    @property
    def patience_from(self) -> int:
        """The epoch after which patience counts: the middle of a cosine schedule, whose high-LR first half is noisy."""
        return self.epochs // 2 if self.schedule == "cosine" else 0

    def validate(self) -> None:
        if self.schedule not in SCHEDULES:
            raise UserError(f"unknown schedule '{self.schedule}'; choose one of: {', '.join(SCHEDULES)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if not 0 < self.lr < 1:
            raise UserError(f"--lr must be between 0 and 1 (got {self.lr})")
        if not 0 <= self.augment_strength <= MAX_AUGMENT:
            raise UserError(f"augmentation strength must be between 0 and {MAX_AUGMENT:g} (got {self.augment})")
        data.check_styles(self.styles)
        if self.styles and not self.augment_strength:
            raise UserError("styles are augmentation: they need --augment on")
        if self.start is not None and not Path(self.start).is_file():
            raise UserError(f"starting model not found: {self.start}")


@dataclass
class TrainResult:
    model: keras.Model
    history: dict[str, list[float]]
    test_accuracy: float
    card: dict
    path: Path


def sparse_loss(label_smoothing: float = 0.0):
    """Cross-entropy on integer labels and logits, with optional label smoothing."""
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    categorical = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)

    def loss(y_true, logits):
        return categorical(tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), models.NUM_CLASSES), logits)

    return loss


def compile_model(model: keras.Model, lr, label_smoothing: float = 0.0) -> None:
    """Adam on cross-entropy with accuracy; `lr` is a float or a schedule."""
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=sparse_loss(label_smoothing),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def lr_schedule(recipe: Recipe, steps_per_epoch: int):
    """Cosine decay to 1 % with linear warm-up, or a constant rate for ReduceLROnPlateau."""
    if recipe.schedule == "plateau":
        return recipe.lr
    warmup = recipe.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=recipe.lr / 10 if warmup else recipe.lr,
        decay_steps=max(recipe.epochs * steps_per_epoch - warmup, 1),
        alpha=0.01,
        warmup_target=recipe.lr if warmup else None,
        warmup_steps=warmup,
    )


CHECKPOINTS = "ckpt"  # the stage folder's subfolder of per-epoch checkpoints


class _EpochCheckpoint(keras.callbacks.Callback):
    """After each epoch: checkpoint model + optimizer, keep the best weights, stop early."""

    def __init__(self, stage_dir: Path, patience: int | None, patience_from: int, state: dict):
        super().__init__()
        self.stage_dir, self.patience, self.patience_from, self.state = stage_dir, patience, patience_from, state
        self.manager: tf.train.CheckpointManager | None = None

    def set_model(self, model):
        super().set_model(model)
        ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        self.manager = tf.train.CheckpointManager(ckpt, self.stage_dir / CHECKPOINTS, max_to_keep=2)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key, value in logs.items():
            self.state["history"].setdefault(key, []).append(float(value))
        val_loss = float(logs.get("val_loss", math.inf))
        if val_loss < self.state["best_val_loss"]:
            best = f"best_weights-{epoch + 1}.h5"  # a new name per epoch: state.json picks the set's members
            self.state.update(best_val_loss=val_loss, best_epoch=epoch + 1, wait=0, best_weights=best)
            with atomic.atomic_path(self.stage_dir / best) as tmp:
                self.model.save_weights(str(tmp), save_format="h5")
        else:
            self.state["wait"] += 1
        self.state["epoch"] = epoch + 1
        self.state["checkpoint"] = Path(self.manager.save(checkpoint_number=epoch + 1)).name  # the folder may move
        atomic.write_json(self.stage_dir / "state.json", self.state)  # written last: names a finished checkpoint set
        for old in self.stage_dir.glob("best_weights-*.h5"):  # what state.json no longer names
            if old.name != self.state.get("best_weights"):
                old.unlink(missing_ok=True)
        if _out_of_patience(self.state, self.patience, self.patience_from):
            self.model.stop_training = True


class _EpochProgress(keras.callbacks.Callback):
    """One progress line per stage on a terminal: epochs done, elapsed, ETA, and the last epoch's figures."""

    def __init__(self, label: str, epochs: int, done: int):
        super().__init__()
        self.bar = progress.Bar(label, epochs, unit="epochs")
        self.bar.advance(done)  # drawn at once: an epoch can take minutes

    def on_epoch_end(self, epoch, logs=None):
        check_interrupted()  # a Ctrl-C whose exception a finalizer dropped stops training here
        logs = logs or {}
        self.bar.note = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k in ("loss", "val_loss", "val_accuracy"))
        self.bar.advance()


def _out_of_patience(state: dict, patience: int | None, patience_from: int) -> bool:
    """True once `patience` epochs after epoch `patience_from` brought no lower validation loss."""
    return patience is not None and min(state["wait"], state["epoch"] - patience_from) >= patience


def fit_resumable(
    model: keras.Model,
    train_ds,
    val_ds,
    *,
    epochs: int,
    steps_per_epoch: int,
    stage_dir: Path,
    patience: int | None = None,
    patience_from: int = 0,
    callbacks: tuple = (),
    label: str = "train",
) -> dict:
    """Fit a compiled model epoch by epoch, resuming from `stage_dir` if an earlier run stopped.

    Returns the stage state: history, best epoch, epochs done. With `patience`, stops
    early on validation loss (counting only epochs after `patience_from`) and leaves the
    best weights in the model.
    """
    stage_dir = atomic.ensure_dir(stage_dir)
    state_file = stage_dir / "state.json"
    state = {"epoch": 0, "best_val_loss": math.inf, "best_epoch": 0, "wait": 0, "history": {}, "done": False}
    if state_file.exists():
        state = _read_state(state_file)
        checkpoint = stage_dir / CHECKPOINTS / Path(state["checkpoint"]).name  # older states hold a full path
        tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore(str(checkpoint)).expect_partial()
        if not state["done"]:
            print(f"[{label}] resuming after epoch {state['epoch']} of {epochs} ({stage_dir})", file=sys.stderr)
    finished = state["done"] or state["epoch"] >= epochs or _out_of_patience(state, patience, patience_from)
    if not finished:
        saver = _EpochCheckpoint(stage_dir, patience, patience_from, state)
        shown = _EpochProgress(label, epochs, state["epoch"])
        try:
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=epochs,
                initial_epoch=state["epoch"],
                steps_per_epoch=steps_per_epoch,
                callbacks=[*callbacks, saver, shown],
                verbose=0 if shown.bar.shown else 2,  # a terminal gets one bar per stage, a log a line per epoch
            )
            shown.bar.close()
        except (KeyboardInterrupt, Interrupted):
            print(f"\n[{label}] stopped during epoch {state['epoch'] + 1}; {state['epoch']} finished epoch(s) "
                  f"are saved in {stage_dir}; run the same command again to continue", file=sys.stderr)
            raise
    best = stage_dir / state.get("best_weights", "best_weights.h5")  # the older name, for runs made before
    if patience is not None and best.exists():
        model.load_weights(str(best))
    state["done"] = True
    atomic.write_json(state_file, state)
    return state


def _read_state(path: Path) -> dict:
    try:
        state = bounded_json.loads(path.read_bytes())
        state["checkpoint"]  # noqa: B018 - must exist
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: unreadable checkpoint state ({e}); delete {path.parent} to start this stage again") from e
    return state


def recipe_key(recipe: Recipe, splits: data.Splits, start: str | None = None) -> str:
    """A short hash of what decides a trained model: recipe, training data, architecture as built (a
    checkpoint made before a model's default layout changed is not reused) and a starting file's sha256."""
    fingerprint = hashlib.sha256(splits.x_train.tobytes() + splits.y_train.tobytes()).hexdigest()
    model = models.create_model(recipe.model, **recipe.model_kwargs)
    layers = [[type(layer).__name__, str(layer.output_shape), layer.count_params()] for layer in model.layers]
    blob = json.dumps({"recipe": recipe.described(), "data": fingerprint, "start": start, "layers": layers}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


RUN_RECIPE = "recipe.json"  # in a run folder: the key and recipe of the run its checkpoints belong to


def train(recipe: Recipe, splits: data.Splits, out_dir: str | Path | None = None) -> TrainResult:
    """Train `recipe.model` on `splits`, write the run folder, return the best model and its figures.

    The folder defaults to runs/<model>-<recipe key>; a folder that holds another recipe's run is
    refused, never resumed (its card would describe a run that did not happen).
    """
    recipe.validate()
    key = recipe_key(recipe, splits)
    out_dir = atomic.ensure_dir(out_dir or Path("runs") / f"{recipe.model}-{key}")
    with atomic.folder_lock(out_dir):
        _claim(out_dir, recipe, key)
        return _train(recipe, splits, out_dir)


def _claim(out_dir: Path, recipe: Recipe, key: str) -> None:
    """Mark `out_dir` as this recipe's run, or refuse it if it holds another one."""
    marker = out_dir / RUN_RECIPE
    if marker.is_file():
        try:
            held = bounded_json.loads(marker.read_bytes())
        except (OSError, ValueError) as e:
            raise UserError(f"{marker} is damaged; delete {out_dir} to train there again") from e
        if held.get("key") == key:
            return
        theirs = held.get("recipe", {})
        diff = ", ".join(f"{k} {theirs.get(k)} (now {v})" for k, v in recipe.described().items() if theirs.get(k) != v)
        raise UserError(f"{out_dir} holds the run of another recipe or data ({diff or 'other data'}); "
                        f"leave --out out for a folder of its own, or delete {out_dir}")
    named_for_it = out_dir.name == f"{recipe.model}-{key}"  # export's run folders, also from before the marker
    if not named_for_it and ((out_dir / "checkpoints").exists() or (out_dir / "model.keras").exists()):
        raise UserError(f"{out_dir} holds a run whose recipe is not recorded; leave --out out for a folder of its "
                        f"own, or delete {out_dir}")
    atomic.write_json(marker, {"key": key, "recipe": recipe.described()})


def compiled(recipe: Recipe, splits: data.Splits) -> tuple[keras.Model, object, object, int]:
    """The recipe's model compiled with its optimizer and schedule, the training and validation datasets, and
    the steps per epoch (seed first with seed_everything)."""
    model = _starting_model(recipe)
    x, y = data.training_images(splits.x_train, splits.y_train, recipe.styles, recipe.seed)
    steps = math.ceil(len(x) / recipe.batch_size)
    compile_model(model, lr_schedule(recipe, steps), recipe.label_smoothing)
    train_ds = (
        data.make_dataset(x, y, recipe.batch_size, train=True, seed=recipe.seed, augment=recipe.augment_strength,
                          styles=recipe.styles)
        if recipe.augment_strength
        else data.make_dataset(x, y, recipe.batch_size, train=False).repeat()
    )
    val_ds = data.make_dataset(splits.x_val, splits.y_val, 512, train=False)
    return model, train_ds, val_ds, steps


def _starting_model(recipe: Recipe) -> keras.Model:
    """Fresh weights of the recipe's model, or the weights of its `start` file (which must be that model)."""
    if recipe.start is None:
        return models.create_model(recipe.model, **recipe.model_kwargs)
    model = load_keras_model(recipe.start)
    if model.name != recipe.model:
        raise UserError(f"{recipe.start} holds a {model.name} model, not {recipe.model}; fine-tune it with "
                        f"--model {model.name}")
    return model


def _train(recipe: Recipe, splits: data.Splits, out_dir: Path) -> TrainResult:
    seed_everything(recipe.seed)
    started = time.perf_counter()
    model, train_ds, val_ds, steps = compiled(recipe, splits)
    callbacks = (keras.callbacks.ReduceLROnPlateau(factor=0.3, patience=2),) if recipe.schedule == "plateau" else ()
    start = f" fine-tuned from {Path(recipe.start).name}" if recipe.start else ""
    print(f"[train] {recipe.model}{start}: {models.count_params(model):,} parameters (batch norm folded), "
          f"{models.count_macs(model):,} MACs; "
          f"{len(splits.x_train)} train / {len(splits.x_val)} val images, up to {recipe.epochs} epochs", file=sys.stderr)
    state = fit_resumable(model, train_ds, val_ds, epochs=recipe.epochs, steps_per_epoch=steps,
                          stage_dir=out_dir / "checkpoints" / "train", patience=recipe.patience,
                          patience_from=recipe.patience_from, callbacks=callbacks)
    test_loss, test_acc = evaluate_keras(model, splits.x_test, splits.y_test)
    model_path = out_dir / "model.keras"
    with atomic.atomic_path(model_path) as tmp:
        model.save(str(tmp))
    card = {
        "kind": "keras-float",
        "model": recipe.model,
        "params": models.count_params(model),
        "macs": models.count_macs(model),
        "recipe": recipe.described(),
        "data": splits.describe(),
        **({"font_digits": font_digits_used()} if "fonts" in recipe.styles else {}),
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "val_loss": state["best_val_loss"],
        "val_accuracy": _at_best(state, "val_accuracy"),
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        **({"mnist_test_accuracy": evaluate_keras(model, splits.own.x_mnist_test, splits.own.y_mnist_test)[1]}
           if splits.own else {}),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "file": model_path.name,
        "sha256": cards.sha256_file(model_path),
        **cards.provenance(),
    }
    atomic.write_json(out_dir / "history.json", state["history"])
    atomic.write_json(out_dir / "card.json", card)
    from edgedigits.training import plots

    plots.curves(state["history"], out_dir / "curves.png", title=f"{recipe.model} training")
    return TrainResult(model, state["history"], test_acc, card, model_path)


def font_digits_used() -> dict:
    """For a card: the font bank a run trained on, by sha256, and its training fonts with their versions."""
    from edgedigits.training import font_digits

    card = json.loads(font_digits.CARD.read_text())
    return {"sha256": card["sha256"], "licence": "SIL Open Font License 1.1",
            "fonts": [f"{f['package']} {f['version']}" for f in card["fonts"] if not f["held_out"]]}


def _at_best(state: dict, key: str) -> float | None:
    values = state["history"].get(key, [])
    return values[state["best_epoch"] - 1] if 0 < state["best_epoch"] <= len(values) else None


def evaluate_keras(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy) of a Keras model on uint8 images."""
    logits = model.predict(data.to_model_input(x), batch_size=1024, verbose=0)
    loss = float(sparse_loss()(y, logits))
    return loss, float(np.mean(np.argmax(logits, axis=1) == y))


def load_keras_model(path: str | Path) -> keras.Model:
    """Load a float model saved by `train`, with a one-line error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model not found: {path}")
    try:
        return keras.models.load_model(str(path), compile=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: not a readable Keras model ({type(e).__name__}); retrain it or pass another file") from e
