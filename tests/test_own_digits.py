"""Your own digits (#42): class folders and CSVs as data for evaluate and bench, `collect` building such a folder,
bad folders ending in one line, and a fine-tuning export on a tiny slice (the benchmark runs the real one)."""

from __future__ import annotations

import importlib.util
import json

import cv2
import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from edgedigits.training import scenes
from firmware_harness import labelled


def _folder(root, images, labels, paper=True):
    for i, (image, label) in enumerate(zip(images, labels)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        big = cv2.resize(image, (64, 64), interpolation=cv2.INTER_LINEAR)  # not 28x28: framed by the finder
        cv2.imwrite(str(root / str(label) / f"{i:03d}.png"), 255 - big if paper else big)
    return root


@pytest.fixture
def own(tmp_path, test_images):
    x, y = test_images
    return _folder(tmp_path / "mine", x[:60], y[:60])


def test_a_class_folder_is_framed_by_the_finder_in_either_polarity(tmp_path, test_images):
    x, y = test_images
    dark = labelled.load(_folder(tmp_path / "dark", x[:30], y[:30], paper=True))
    light = labelled.load(_folder(tmp_path / "light", x[:30], y[:30], paper=False))
    assert len(dark.files) == len(light.files) >= 29 and np.array_equal(dark.y, light.y)
    assert np.abs(dark.x.astype(int) - light.x.astype(int)).mean() < 8  # the same digits, found both ways round


def test_evaluate_and_bench_read_a_class_folder(own, tmp_path, shipped_model):
    (own / "notes.txt").write_text("not a digit")
    result = run_cli("evaluate", "--data", str(own), "--out", str(tmp_path / "ev"))
    assert result.returncode == 0, result.stderr
    assert "skipped 1 of 61 files: 1 file not in a class folder (notes.txt)" in result.stderr
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert report["n_eval"] == 60 and report["accuracy"] > 0.9 and len(report["per_class"]) == 10
    assert np.array(report["confusion"]).sum() == 60
    bench = run_cli("bench", str(shipped_model), "--data", str(own), "--runs", "20", "--warmup", "2",
                    "--instances", "1", "--json", str(tmp_path / "b.json"))
    assert bench.returncode == 0, bench.stderr
    assert json.loads((tmp_path / "b.json").read_text())["rows"][0]["n_eval"] == 60


def test_a_csv_of_paths_and_labels_is_read_relative_to_itself(own, tmp_path):
    rows = ["path,label"] + [f"mine/{p.parent.name}/{p.name},{p.parent.name}" for p in sorted(own.glob("*/*.png"))]
    (tmp_path / "set.csv").write_text("\n".join(rows) + "\n")
    read = labelled.load(tmp_path / "set.csv")
    assert len(read.files) + len(read.skipped) == 60 and len(read.files) >= 58


@pytest.mark.parametrize("make,fragments", [
    (lambda root: (root / "x").mkdir(), ("a class folder must be named 0-9",)),
    (lambda root: (root / "3").mkdir(), ("no image files in",)),
    (lambda root: ((root / "3").mkdir(), (root / "3" / "a.png").write_bytes(b"not a png")),
     ("skipped 1 of 1 files: 1 file unreadable or too large (3/a.png); nothing left to read",)),
    (lambda root: ((root / "3").mkdir(), (root / "3" / "out.png").symlink_to(root.parent / "elsewhere.png")),
     ("linked in from outside the folder",)),
])
def test_bad_folders_end_in_one_line(tmp_path, make, fragments):
    root = tmp_path / "bad"
    root.mkdir()
    cv2.imwrite(str(tmp_path / "elsewhere.png"), np.full((64, 64), 255, np.uint8))
    make(root)
    assert_one_line_error(run_cli("evaluate", "--data", str(root)), 2, *fragments)


def test_more_images_than_the_bound_is_one_line_before_any_is_read(tmp_path):
    root = tmp_path / "many"
    (root / "3").mkdir(parents=True)
    for i in range(labelled.MAX_IMAGES + 1):  # empty files: listing them must stop before reading one
        (root / "3" / f"{i}.png").touch()
    assert_one_line_error(run_cli("evaluate", "--data", str(root)), 2, "more than 50,000 images", "CSV")
    rows = "path,label\n" + "".join(f"3/{i}.png,3\n" for i in range(labelled.MAX_IMAGES + 1))
    (root / "set.csv").write_text(rows)
    assert_one_line_error(run_cli("evaluate", "--data", str(root / "set.csv")), 2, "more than 50,000 rows")


def test_huge_and_crowded_images_in_a_folder_are_skipped_and_named(own):
    import hostile

    hostile.deep_png(own / "3")  # 40 MP at 16 bits: 320 MB decoded, over the reader's budget
    hostile.grid_png(own / "4")  # ten thousand marks
    read = labelled.load(own)
    assert ("3/deep.png", "unreadable or too large") in read.skipped
    assert ("4/grid1024.png", "with too many marks") in read.skipped
    assert len(read.files) >= 58 and "3/deep.png" not in read.files


def test_one_class_and_strict_are_refused_before_training(own, tmp_path, mnist_path):
    pytest.importorskip("tensorflow")  # the training commands' stack
    only = _folder(tmp_path / "only", *[a[:5] for a in (np.load(mnist_path)["x_test"][:1].repeat(5, 0),
                                                         np.full(5, 7, np.uint8))])
    env = {"EDGEDIGITS_DATA": str(mnist_path)}
    assert_one_line_error(run_cli("train", "--data", str(only), env=env), 2, "every image is a 7")
    (own / "3" / "blank.png").write_bytes(cv2.imencode(".png", np.full((64, 64), 255, np.uint8))[1].tobytes())
    assert_one_line_error(run_cli("export", "--data", str(own), "--strict", "--out", str(tmp_path / "e"), env=env),
                          2, "with no digit found (3/blank.png)", "--strict")
    assert not (tmp_path / "e").exists()
    if importlib.util.find_spec("optuna"):
        assert_one_line_error(run_cli("tune", "--quick", "--data", str(own), "--strict", "--out", str(tmp_path / "t"),
                                      env=env), 2, "with no digit found (3/blank.png)", "--strict")
        assert not (tmp_path / "t").exists()


def test_collect_saves_each_digit_read_and_its_folder_reads_back_the_same(tmp_path, test_images):
    x, y = test_images
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, scene in enumerate(scenes.scenes(x, y, 4, seed=3)):
        cv2.imwrite(str(photos / f"p{i}.png"), scene.image)
    out = tmp_path / "crops"
    first = run_cli("collect", "--source", str(photos), "--out", str(out))
    assert first.returncode == 0, first.stderr
    crops = sorted(out.glob("*/*.png"))
    assert len(crops) >= 10 and "then: edgedigits export --int8 --data" in first.stdout
    again = labelled.load(out)  # the labels are what was read: reading the crops again gives them back
    reread = run_cli("evaluate", "--data", str(out), "--out", str(tmp_path / "ev"))
    assert reread.returncode == 0 and len(again.files) == len(crops)
    assert json.loads((tmp_path / "ev" / "evaluation.json").read_text())["accuracy"] >= 0.98
    run_cli("collect", "--source", str(photos), "--out", str(out))
    assert len(list(out.glob("*/*.png"))) == 2 * len(crops)  # added beside, none written over
    assert_one_line_error(run_cli("collect", "--source", str(photos), "--out", str(photos)), 2, "not empty")


def test_export_fine_tunes_the_shipped_float_model_and_its_card_says_before_and_after(own, tmp_path, mnist_path):
    pytest.importorskip("tensorflow")
    result = run_cli("export", "--int8", "--data", str(own), "--out", str(tmp_path / "e"), "--epochs", "1",
                     "--prune-epochs", "1", "--qat-epochs", "1", "--limit", "1000",
                     env={"EDGEDIGITS_DATA": str(mnist_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fine-tuned from edgedigits_float.keras" in result.stderr and "[own digits] your digits" in result.stderr
    card = json.loads((tmp_path / "e" / "edgedigits_int8.json").read_text())
    figures = card["own_digits"]
    assert figures["validation_files"] == card["n_eval"] and 10 <= card["n_eval"] <= 14  # about a fifth of 60
    assert 0.95 < figures["mnist_test"]["before"] <= 1 and 0.5 < figures["mnist_test"]["after"] <= 1
    assert card["source"]["float_card"]["recipe"]["start"]["file"] == "edgedigits_float.keras"
    assert str(tmp_path) not in json.dumps(card["data"])  # the data by identity, not by where it lay
