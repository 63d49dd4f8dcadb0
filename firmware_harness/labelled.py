"""Your own labelled digits: a folder `DIR/0/` ... `DIR/9/` of image files, or a CSV of `path,label` rows.

Each image (any size, gray or colour, either polarity) is framed by the digit finder, so a model
learns and is measured on what the device will see; an image in which no single digit is found is
skipped and listed (or refused, with `strict`). A 28x28 image whose digit is about 20 px long is taken
as framed already (`collect`'s crops, MNIST-style sets): finding it again would lose its faint strokes. Bounded: at most MAX_IMAGES files, each within the
image reader's pixel and byte limits; a file that a symbolic link brings in from outside the folder
is skipped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware_harness.errors import UserError, printable

MAX_IMAGES = 50_000  # a folder of your own digits holds hundreds or thousands; more is a dataset for an npz
MAX_CSV_BYTES = 16 << 20
HEADER_NAMES = {"label", "labels", "class", "digit", "y", "target"}  # a first row path,label is a header
CLASSES = tuple(str(d) for d in range(10))
SHOWN_SKIPS = 3  # names listed in the one-line skip note
FRAMED_SLACK = 2  # px either side of MNIST's 20 px digit box: a 28x28 image framed so is used as it is


@dataclass(frozen=True)
class LabelledImages:
    """Framed digits (N, 28, 28) uint8, white ink on black, their labels, the files they came from (relative
    to the folder or CSV), and the files skipped with the reason."""

    x: np.ndarray
    y: np.ndarray
    files: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    source: str = ""

    @property
    def sha256(self) -> str:
        """The set by identity: its framed images and labels."""
        return hashlib.sha256(np.ascontiguousarray(self.x).tobytes() + self.y.tobytes()).hexdigest()

    def skip_note(self) -> str:
        """One line on what was skipped ('' if nothing)."""
        if not self.skipped:
            return ""
        reasons: dict[str, list[str]] = {}
        for name, reason in self.skipped:
            reasons.setdefault(reason, []).append(name)
        parts = [f"{len(names)} file{'s' * (len(names) > 1)} {reason} "
                 f"({', '.join(names[:SHOWN_SKIPS])}{', ...' if len(names) > SHOWN_SKIPS else ''})"
                 for reason, names in reasons.items()]
        total = len(self.files) + len(self.skipped)
        return f"{self.source}: skipped {len(self.skipped)} of {total} files: " + "; ".join(parts)


def is_labelled(path: str | os.PathLike) -> bool:
    """True for a CSV file or a folder of folders (class folders; an IDX folder holds only files)."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() == ".csv"
    return path.is_dir() and any(entry.is_dir() and not entry.name.startswith(".") for entry in path.iterdir())


def load(path: str | os.PathLike, *, strict: bool = False, max_pixels: int | None = None) -> LabelledImages:
    """Read, frame and label every image of a class folder or CSV; the skips are printed as one note on stderr."""
    path = Path(path)
    listed, skipped = (_csv_rows(path) if path.is_file() else _class_folders(path))
    if not listed:
        where = ("no rows" if path.is_file() else
                 f"no image files in {path / '0'}, ..., {path / '9'} (or list them in a CSV of path,label rows)")
        found = LabelledImages(np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8), [], skipped, str(path))
        raise UserError(printable(found.skip_note(), one_line=True) + "; nothing left to read" if skipped
                        else f"{path}: {where}")
    x, y, files = _framed(listed, skipped, max_pixels)
    found = LabelledImages(x, y, files, skipped, source=str(path))
    if not files:
        raise UserError(printable(found.skip_note(), one_line=True) + "; nothing left to read (each image should "
                        "show one digit: docs/own-digits.md)")
    if skipped and strict:
        raise UserError(printable(found.skip_note(), one_line=True) + " (--strict)")
    if skipped:
        print(f"note: {printable(found.skip_note(), one_line=True)}", file=sys.stderr)
    return found


def _class_folders(root: Path) -> tuple[list[tuple[Path, str, int]], list[tuple[str, str]]]:
    """(file, name shown, label) of the images in root/0 ... root/9, and the entries skipped."""
    from firmware_harness.images import IMAGE_SUFFIXES

    listed, skipped = [], []
    inside = root.resolve()
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and entry.name not in CLASSES:
            raise UserError(f"{entry}: a class folder must be named 0-9; move it out of {root} or rename it")
        if not entry.is_dir():
            skipped.append((entry.name, "not in a class folder"))
    for label, name in enumerate(CLASSES):
        folder = root / name
        if not folder.is_dir():
            continue
        for file in sorted(folder.iterdir()):
            shown = f"{name}/{file.name}"
            if file.name.startswith("."):
                continue
            if not file.resolve().is_relative_to(inside):
                skipped.append((shown, "linked in from outside the folder"))
            elif not file.is_file() or file.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((shown, "with no image suffix"))
            else:
                listed.append((file, shown, label))
                if len(listed) > MAX_IMAGES:
                    raise UserError(f"{root}: more than {MAX_IMAGES:,} images; a set of your own digits needs "
                                    f"hundreds to thousands: list the ones to use in a CSV of path,label rows")
    return listed, skipped


def _csv_rows(path: Path) -> tuple[list[tuple[Path, str, int]], list[tuple[str, str]]]:
    """(file, name shown, label) per `path,label` row (paths relative to the CSV's folder); a header is allowed."""
    if path.stat().st_size > MAX_CSV_BYTES:
        raise UserError(f"{path}: over {MAX_CSV_BYTES >> 20} MiB; a CSV of path,label rows for at most "
                        f"{MAX_IMAGES:,} images is far smaller")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a readable UTF-8 CSV ({e}); save it as CSV UTF-8") from e
    listed, skipped = [], []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise UserError(f"{path}: line {number} has {len(row)} fields; each row is path,label")
        name, label = row[0].strip(), row[1].strip()
        if label not in CLASSES:
            if number == 1 and label.lower() in HEADER_NAMES:
                continue
            raise UserError(f"{path}: line {number}: label {printable(label, one_line=True)!r} is not a digit 0-9")
        file = Path(name) if Path(name).is_absolute() else path.parent / name
        if not file.is_file():
            skipped.append((name, "missing"))
            continue
        listed.append((file, name, int(label)))
        if len(listed) > MAX_IMAGES:
            raise UserError(f"{path}: more than {MAX_IMAGES:,} rows; a set of your own digits needs hundreds to "
                            f"thousands of images")
    return listed, skipped


def _as_framed(image: np.ndarray) -> np.ndarray | None:
    """A 28x28 digit in MNIST's form (ink in either polarity, its longest side about the 20 px MNIST fits a digit
    to) as white ink on black; None for any other image."""
    from firmware_harness import preprocess

    if image.shape[:2] != (preprocess.MNIST_SIZE,) * 2:
        return None
    bright = preprocess.bright_ink(preprocess.to_gray(image))
    ys, xs = np.nonzero(bright >= preprocess.MIN_CONTRAST)
    if len(ys) == 0:
        return None
    side = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
    return bright if abs(side - preprocess.MNIST_BOX) <= FRAMED_SLACK else None


def _framed(listed: list[tuple[Path, str, int]], skipped: list[tuple[str, str]],
            max_pixels: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each listed image read and framed by the digit finder; an unreadable one or one without a single digit
    is added to `skipped`."""
    from firmware_harness import images, preprocess, progress

    framed, labels, files = [], [], []
    bar = progress.Bar("frame", len(listed), unit="images")
    for file, shown, label in listed:
        bar.advance()
        try:
            image = images.read(file, max_pixels=max_pixels)
            framed_already = _as_framed(image)
            digits = [framed_already] if framed_already is not None else preprocess.find_digits(image)
        except preprocess.TooManyMarks:
            skipped.append((shown, "with too many marks"))
            continue
        except UserError:
            skipped.append((shown, "unreadable or too large"))
            continue
        if len(digits) != 1:
            skipped.append((shown, "with no digit found" if not digits else "with several marks"))
            continue
        framed.append(digits[0] if framed_already is not None else digits[0].image)
        labels.append(label)
        files.append(shown)
    bar.close()
    x = np.stack(framed) if framed else np.zeros((0, 28, 28), np.uint8)
    return x, np.array(labels, np.uint8), files
