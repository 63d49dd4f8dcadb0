"""Finding the digit in real scans and photos (#43): digits that fill their image, ruled paper, form boxes, a sheet
on a desk, digit-free photos, and the phone's EXIF orientation. No TensorFlow; the development set is ../shared's."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from conftest import REPO, assert_one_line_error, run_cli
from edgedigits.training import scenes
from firmware_harness import images, orientation, preprocess
from firmware_harness.reader import DigitReader

sys.path.insert(0, str(REPO / "benchmarks"))
import handwriting  # noqa: E402  the benchmark's loader and MNIST framing

DEV_SET = REPO.parent / "shared" / "data" / "handwriting"
needs_dev_set = pytest.mark.skipif(not (DEV_SET / "semeion.npz").is_file(), reason="no ../shared/data/handwriting")


@pytest.fixture(scope="module")
def reader(shipped_model):
    return DigitReader(shipped_model)


@needs_dev_set
@pytest.mark.parametrize("name", ["semeion", "optdigits_32x32"])
def test_a_digit_that_fills_its_scan_is_read_as_well_as_when_framed(reader, name):
    """The 16x16 and 32x32 scans touch every edge; raw, in paper polarity, they read within 2.5 points of the
    model on the same digits framed as MNIST (before #43: semeion 24 %, three in five "no digit"). The two framings
    differ by a fraction of a pixel on a few ambiguous digits, and which way those go depends on the kernel: the
    semeion gap is 1.4 points on LiteRT's XNNPACK and 1.6 on tflite-runtime 2.14's."""
    bright, y = handwriting.load(DEV_SET, name)
    framed = reader.classify(np.stack([handwriting.mnist_frame(im) for im in bright])).argmax(axis=1)
    read = [reader.read(255 - im).digits for im in bright]
    classify_accuracy = float(np.mean(framed == y))
    read_accuracy = float(np.mean([r == str(t) for r, t in zip(read, y)]))
    assert read_accuracy >= classify_accuracy - 0.025, (read_accuracy, classify_accuracy)
    assert sum(r == "" for r in read) <= 0.01 * len(read)


@needs_dev_set
def test_a_crop_holding_part_of_its_answer_box_reads_the_digit(reader):
    """NIST form digits cropped with their box's border along one to four edges (before: the border read as a 1 or
    merged into the digit, 77 % right; with the border lines taken out, 95 %)."""
    bright, y = handwriting.load(DEV_SET, "optdigits_32x32")
    read = [reader.read(handwriting.in_a_box(255 - im, k)).digits for k, im in enumerate(bright[:400])]
    assert np.mean([r == str(t) for r, t in zip(read, y)]) >= 0.9


def test_polarity_follows_the_strokes_when_ink_covers_much_of_the_image(test_images):
    """A fat digit filling a small frame is over a third ink: the thinner side is still the ink, both ways round."""
    x, _ = test_images
    digit = cv2.dilate(cv2.resize(x[3], (16, 16), interpolation=cv2.INTER_AREA), np.ones((2, 2), np.uint8))
    paper = 255 - digit
    assert (digit > 127).mean() > 0.3
    assert np.array_equal(preprocess.bright_ink(paper), digit)
    assert np.array_equal(preprocess.bright_ink(digit), digit)


@pytest.mark.parametrize("on,least", [("ruled", 0.85), ("desk", 0.75)])
def test_digits_on_notebook_paper_and_on_a_desk_are_read(reader, test_images, on, least):
    """Tilted rules with a margin line crossing the digits' feet, and a sheet smaller than the frame on a darker
    desk (before #43: 15 % and 35 % of these rows read exactly, the sheet itself read as one digit; 85 % on the
    desk once the sheet is found)."""
    x, y = test_images
    sample = scenes.scenes(x, y, 20, seed=7, on=on)
    exact = np.mean([reader.read(s.image).digits == s.text for s in sample])
    assert exact >= least, exact


def test_digit_free_photos_show_no_digit(reader):
    """Blank, ruled and squared paper, empty form boxes, paper grain, a blank sheet on a desk and the desk alone: at
    most one digit over 0.5 in 140 photos (before the sheet was found and faint grain dropped, the benchmark's
    photos showed 14 per 100 on a desk and 19 on the desk alone)."""
    rng = np.random.default_rng(4)
    kinds = ("plain", "ruled", "squared", "boxes", "texture", "desk", "desk_only")
    photos = [scenes.blank_scene(on, rng) for on in kinds for _ in range(20)]
    shown = [c for photo in photos for c in reader.read(photo).confidences if c >= 0.5]
    assert len(shown) <= 1, shown


def test_a_sheet_under_a_shadow_is_found_to_its_shaded_corner():
    """A hand's shadow darkens the sheet's far corner below the desk's lit side: the whole sheet is still the
    sheet (its shaded corner kept as it is), and the desk round it is painted over (before, one split of the whole
    photo cut the corner off, the sheet's edge there was no step, and the desk's grain was read)."""
    height, width = 480, 640
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    desk = 110 + 12 * np.sin(xx / 3.0)  # grain along the desk
    sheet = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(sheet, np.int32([[130, 60], [580, 70], [620, 420], [110, 400]]), 1)
    shade = 1 - 0.5 * np.clip((1 - xx / width + yy / height) / 2, 0, 1)  # darkest towards the lower left
    photo = np.clip(np.where(sheet > 0, 190.0, desk) * shade, 0, 255).astype(np.uint8)
    assert photo[390, 125] < photo[sheet == 0].max()  # the sheet's shaded corner is darker than the lit desk
    seen = preprocess.on_the_sheet(photo)
    assert seen[390, 125] == photo[390, 125] and seen[240, 320] == photo[240, 320]  # the sheet, corner included
    assert abs(int(seen[240, 20]) - int(photo[240, 140])) < 20  # the desk in the sheet's tone near it


def test_a_sliver_cut_by_the_frame_edge_is_not_a_digit_and_a_cut_digit_is():
    """A streak of grain running out of the picture is a thin mark cut by the edge, as the stem of a 4 or a 7
    whose rest is out of the picture would be: not read. A digit of the row cut by the same edge still is."""
    photo = np.full((480, 640), 200, np.uint8)
    cv2.line(photo, (320, 425), (322, 479), 60, 6)  # 6 px wide, 55 px long, into the bottom edge
    assert preprocess.find_digits(photo) == []
    cv2.line(photo, (0, 300), (60, 300), 60, 8)  # a 4 whose stem and bar run into the left edge, 80 px tall
    cv2.line(photo, (40, 240), (40, 320), 60, 8)
    cv2.line(photo, (0, 300), (25, 240), 60, 8)
    assert [d.box[0] for d in preprocess.find_digits(photo)] == [0]


def test_long_tilted_lines_are_removed_and_the_digit_strokes_kept():
    """A rule at 7° and a margin at 97° across a drawn 1 and 7: the lines go, the strokes stay."""
    binary = np.zeros((300, 400), np.uint8)
    turn = cv2.getRotationMatrix2D((200, 150), 7, 1.0)
    lines = np.zeros_like(binary)
    cv2.line(lines, (-200, 180), (600, 180), 255, 2)
    cv2.line(lines, (60, -200), (60, 500), 255, 2)
    lines = cv2.warpAffine(lines, turn, (400, 300), flags=cv2.INTER_NEAREST)
    strokes = np.zeros_like(binary)
    cv2.line(strokes, (150, 110), (150, 200), 255, 9)  # a 1 standing on the rule
    cv2.line(strokes, (220, 110), (280, 110), 255, 9)  # a 7's bar and stem
    cv2.line(strokes, (280, 110), (245, 200), 255, 9)
    kept = preprocess.remove_ruled_lines(cv2.bitwise_or(lines, strokes))
    assert cv2.countNonZero(cv2.bitwise_and(kept, cv2.bitwise_not(strokes))) < 0.05 * cv2.countNonZero(lines)
    assert cv2.countNonZero(cv2.bitwise_and(kept, strokes)) > 0.9 * cv2.countNonZero(strokes)


def test_form_boxes_are_removed_and_the_digits_in_them_kept():
    """Two boxes side by side sharing a side, turned 5°, a 7 and a 1 touching them: the boxes go, the strokes
    stay; a thick 0 drawn square (no box, nothing inside) stays whole."""
    boxes, strokes = np.zeros((200, 300), np.uint8), np.zeros((200, 300), np.uint8)
    cv2.rectangle(boxes, (60, 50), (150, 150), 255, 2)
    cv2.rectangle(boxes, (150, 50), (240, 150), 255, 2)
    cv2.line(strokes, (75, 52), (135, 52), 255, 9)  # a 7's bar along the box's top
    cv2.line(strokes, (135, 52), (95, 148), 255, 9)
    cv2.line(strokes, (195, 60), (195, 148), 255, 9)  # a 1 standing on the box's floor
    turn = cv2.getRotationMatrix2D((150, 100), 5, 1.0)
    boxes, strokes = (cv2.warpAffine(m, turn, (300, 200), flags=cv2.INTER_NEAREST) for m in (boxes, strokes))
    kept = preprocess.remove_form_boxes(cv2.bitwise_or(boxes, strokes))
    assert cv2.countNonZero(cv2.bitwise_and(kept, cv2.bitwise_not(strokes))) < 0.05 * cv2.countNonZero(boxes)
    assert cv2.countNonZero(cv2.bitwise_and(kept, strokes)) > 0.9 * cv2.countNonZero(strokes)
    zero = np.zeros((200, 300), np.uint8)
    cv2.rectangle(zero, (100, 50), (180, 150), 255, 14)
    assert np.array_equal(preprocess.remove_form_boxes(zero), zero)


@pytest.mark.parametrize("tag", range(1, 9))
def test_exif_orientation_is_applied_as_a_browser_shows_it(tag):
    """All eight EXIF orientations come out as the upright picture, as OpenCV's own EXIF-aware decoding does."""
    upright = cv2.GaussianBlur(np.random.default_rng(tag).integers(0, 255, (40, 70, 3), dtype=np.uint8), (0, 0), 3)
    data = scenes.phone_jpeg(upright, tag)
    assert orientation.exif_orientation(data) == tag
    decoded = images.decode(data, "photo.jpg")
    assert np.array_equal(decoded, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    assert decoded.shape == upright.shape and np.abs(decoded.astype(int) - upright).mean() < 3


def test_a_sideways_phone_photo_reads_upright(reader, test_images, tmp_path):
    """A portrait photo stored sideways with Orientation 6 reads as the upright copy does (before: `7 / 4 / 7`)."""
    x, y = test_images
    scene = scenes.scenes(x, y, 1, seed=5, min_digits=3, max_digits=3)[0]
    photo = tmp_path / "portrait.jpg"
    photo.write_bytes(scenes.phone_jpeg(scene.image, 6))
    stored = cv2.imdecode(np.fromfile(photo, np.uint8), cv2.IMREAD_UNCHANGED)
    assert stored.shape[:2] == scene.image.shape[1::-1], "the file holds the picture sideways"
    assert reader.read(photo).digits == reader.read(scene.image).digits == scene.text


def test_predict_annotate_draws_what_was_found_and_keeps_to_its_own_folder(test_images, tmp_path, shipped_model):
    """`predict --annotate DIR`: DIR/NAME.png is the image (turned upright) with a box per digit read; run again
    it rewrites its own folder; a folder of someone else's files is refused in one line."""
    x, y = test_images
    scene = scenes.scenes(x, y, 1, seed=5, min_digits=3, max_digits=3)[0]
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "portrait.jpg").write_bytes(scenes.phone_jpeg(scene.image, 6))
    out = tmp_path / "seen"
    for _ in range(2):
        done = run_cli("predict", str(photos), "--annotate", str(out), "--model", str(shipped_model))
        assert done.returncode == 0 and scene.text in done.stdout, done.stderr[-2000:]
    drawn = cv2.imread(str(out / "portrait.png"))
    assert drawn.shape == scene.image.shape, "drawn on the upright picture"
    green = (drawn[..., 1] > 150) & (drawn[..., 0] < 80) & (drawn[..., 2] < 80)
    assert green.sum() > 200, "the boxes of the three digits"
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    assert_one_line_error(run_cli("predict", str(photos), "--annotate", str(theirs), "--model", str(shipped_model)),
                          2, "not written by `edgedigits predict --annotate`")
    assert (theirs / "notes.txt").read_text() == "mine" and len(list(theirs.iterdir())) == 1
