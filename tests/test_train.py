"""`edgedigits train`: real training on real slices, artifacts, reproducibility."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import assert_one_line_error, run_cli  # noqa: E402
from edgedigits.training import cards, models, train  # noqa: E402


def _train(tmp_path, name, seed, mnist_path):
    out = tmp_path / name
    result = run_cli("train", "--model", "ds_cnn_micro", "--epochs", "1", "--limit", "1500", "--seed", str(seed),
                     "--data", str(mnist_path), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_train_writes_model_history_curves_card_and_is_reproducible(tmp_path, mnist_path):
    first = _train(tmp_path, "a", 7, mnist_path)
    again = _train(tmp_path, "b", 7, mnist_path)
    other = _train(tmp_path, "c", 8, mnist_path)
    loss = [json.loads((d / "history.json").read_text())["loss"][0] for d in (first, again, other)]
    assert loss[0] == loss[1], "the same --seed must give the same first-epoch loss"
    assert loss[0] != loss[2]

    for name in ("model.keras", "history.json", "curves.png", "card.json"):
        assert (first / name).stat().st_size > 0
    card = json.loads((first / "card.json").read_text())
    assert card["sha256"] == cards.sha256_file(first / "model.keras")
    assert card["recipe"]["seed"] == 7 and card["model"] == "ds_cnn_micro"
    assert card["data"]["dataset"] == "mnist" and card["data"]["train"] == 1500
    assert str(mnist_path) not in json.dumps(card["data"]) and len(card["data"]["sha256"]) == 64  # identity, no path
    assert "--seed 7" in card["command"]
    model = train.load_keras_model(first / "model.keras")
    assert models.count_params(model) == card["params"]
    from firmware_harness import mnist

    test = mnist.load(mnist_path, splits=("test",))
    _, accuracy = train.evaluate_keras(model, test.x_test[:1500], test.y_test[:1500])
    assert accuracy == pytest.approx(card["test_accuracy"], abs=1e-6)


@pytest.mark.parametrize("args,fragment", [
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--schedule", "step"], "unknown schedule"),
])
def test_train_bad_options(tmp_path, mnist_path, args, fragment):
    result = run_cli("train", *args, "--limit", "500", "--data", str(mnist_path), "--out", str(tmp_path / "x"))
    assert_one_line_error(result, 2, fragment)


def test_corrupt_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"PK\x03\x04 not really a keras file")
    with pytest.raises(Exception, match="not a readable Keras model"):
        train.load_keras_model(bad)


def test_evaluate_keras_matches_manual_accuracy(mnist_path):
    from edgedigits.training import data, models

    splits = data.load_splits(mnist_path, limit=300)
    model = models.create_model("mlp")
    logits = model.predict(data.to_model_input(splits.x_test), verbose=0)
    _, accuracy = train.evaluate_keras(model, splits.x_test, splits.y_test)
    assert accuracy == pytest.approx(np.mean(np.argmax(logits, 1) == splits.y_test))


@pytest.mark.parametrize("patience_from,stops_after", [(0, 3), (4, 6)])
def test_patience_counts_only_epochs_after_patience_from(tmp_path, mnist_path, patience_from, stops_after):
    from edgedigits.training import data, models

    splits = data.load_splits(mnist_path, limit=256)
    model = models.create_model("mlp")
    train.compile_model(model, 0.0)  # no learning: validation loss never improves after epoch 1
    state = train.fit_resumable(
        model,
        data.make_dataset(splits.x_train, splits.y_train, 64, train=True),
        data.make_dataset(splits.x_val, splits.y_val, 64, train=False),
        epochs=10, steps_per_epoch=1, stage_dir=tmp_path / "stage", patience=2, patience_from=patience_from,
    )
    assert (state["epoch"], state["best_epoch"]) == (stops_after, 1)


def test_a_stage_folder_resumes_after_it_moved(tmp_path, mnist_path):
    """Checkpoints are found relative to the stage folder, so a copied cache or a renamed --out still resumes."""
    from edgedigits.training import data, models

    splits = data.load_splits(mnist_path, limit=256)
    datasets = (data.make_dataset(splits.x_train, splits.y_train, 64, train=True),
                data.make_dataset(splits.x_val, splits.y_val, 64, train=False))
    trained = models.create_model("mlp")
    train.compile_model(trained, 1e-3)
    train.fit_resumable(trained, *datasets, epochs=2, steps_per_epoch=1, stage_dir=tmp_path / "a" / "stage")
    (tmp_path / "a").rename(tmp_path / "b")
    restored = models.create_model("mlp")
    train.compile_model(restored, 1e-3)
    state = train.fit_resumable(restored, *datasets, epochs=2, steps_per_epoch=1, stage_dir=tmp_path / "b" / "stage")
    assert state["epoch"] == 2
    for a, b in zip(trained.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_new_recipe_never_reuses_an_old_run(tmp_path, mnist_path):
    """The default run folder is keyed by recipe and data; a given --out of another recipe is refused."""
    def train_lenet(*args):
        return run_cli("train", "--model", "lenet5", "--limit", "1000", "--data", str(mnist_path), *args, cwd=tmp_path)

    assert train_lenet("--epochs", "1").returncode == 0
    assert train_lenet("--epochs", "2").returncode == 0
    result = train_lenet("--epochs", "1", "--seed", "1", "--lr", "0.0001")
    assert result.returncode == 0
    cards_by_recipe = {}
    for card_path in (tmp_path / "runs").glob("lenet5-*/card.json"):
        card = json.loads(card_path.read_text())
        cards_by_recipe[(card["recipe"]["epochs"], card["recipe"]["seed"], card["recipe"]["lr"])] = card
        assert card["epochs_run"] == card["recipe"]["epochs"], "the card says what ran"
    assert set(cards_by_recipe) == {(1, 0, 0.003), (2, 0, 0.003), (1, 1, 0.0001)}

    out = tmp_path / "mine"
    assert train_lenet("--epochs", "1", "--out", str(out)).returncode == 0
    refused = train_lenet("--epochs", "2", "--out", str(out))
    assert_one_line_error(refused, 2, f"{out} holds the run of another recipe or data (epochs 1 (now 2))")
