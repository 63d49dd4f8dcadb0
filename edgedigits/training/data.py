"""Training data: MNIST found and verified, a validation split, augmentation, calibration, and your own
labelled digits mixed with MNIST for fine-tuning.

Lookup order for the data: `--data PATH`, $EDGEDIGITS_DATA, the keras cache, then a
download through keras. Parsing and checksums live in `firmware_harness.mnist` (the
device side loads test sets too); this module adds what only training needs. A labelled
folder or CSV (`firmware_harness.labelled`) is split by file into training and validation
images; each epoch is its training images, repeated, beside a share of MNIST's.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from firmware_harness import labelled, mnist
from firmware_harness.errors import UserError

VAL_SIZE = 5000  # carved from the training set; the test set is never used for tuning
SPLIT_SEED = 0  # fixed, so every model and every --seed is tuned on the same images
ROTATION_DEG = 10.0  # augmentation as in the seed tutorials: rotation, shift, zoom
SHIFT = 0.10
ZOOM = 0.10
CALIBRATION_SIZE = 500
MNIST_MIX = 0.5  # of an epoch on your own digits: the share of MNIST training images, so MNIST is not forgotten
MAX_MNIST_MIX = 0.95
OWN_EPOCH_IMAGES = 20_000  # an epoch on your own digits: a few hundred images repeated, augmented each time
OWN_VAL_FRACTION = 0.2  # of each class's files, held out (at least one where a class has two or more)


@dataclass(frozen=True)
class OwnDigits:
    """What a labelled folder brings to a run besides its images: where they came from, which files were held
    out for validation, and MNIST's test set, to show what fine-tuning cost on MNIST."""

    source: str
    sha256: str
    train_files: list[str]
    val_files: list[str]
    skipped: int
    mnist_mix: float
    mnist_images: int
    x_mnist_test: np.ndarray
    y_mnist_test: np.ndarray


@dataclass(frozen=True)
class Splits:
    """uint8 images (N, 28, 28), white ink on black, and uint8 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    is_mnist: bool
    own: OwnDigits | None = None  # a labelled folder: x_val and x_test are both its validation split

    @property
    def test_name(self) -> str:
        """What the test split is, for a progress line: 'test images', or 'validation images of yours'."""
        return "validation images of yours" if self.own else "test images"

    @cached_property
    def sha256(self) -> str:
        """The sha256 of the arrays as split: train, validation and test images and labels, in that order
        (hashed once: every card of an export names it)."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def describe(self) -> dict:
        """The data by identity, never by where it lies on one disk: the dataset, its sha256 and the split sizes."""
        described = {
            "dataset": "mnist" if self.is_mnist else Path(self.source).name,
            "sha256": self.sha256,
            "train": len(self.x_train),
            "val": len(self.x_val),
            "test": len(self.x_test),
        }
        if self.own:
            described["own"] = {"images_sha256": self.own.sha256, "train_files": len(self.own.train_files),
                                "val_files": len(self.own.val_files), "skipped": self.own.skipped,
                                "mnist_mix": self.own.mnist_mix, "mnist_images_per_epoch": self.own.mnist_images}
        return described


def load_splits(path: str | os.PathLike | None = None, *, val_size: int = VAL_SIZE, limit: int | None = None,
                mnist_mix: float = MNIST_MIX, strict: bool = False) -> Splits:
    """Find, load and split the data; `limit` keeps the first N train and test images (tests, smoke runs).
    A labelled folder or CSV is your own digits: see `own_splits`."""
    if path is not None and labelled.is_labelled(path):
        return own_splits(Path(path), mnist_mix=mnist_mix, strict=strict, limit=limit)
    source = mnist.locate(path) or _download()
    data = mnist.load(source)
    x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    if len(x_train) <= val_size:
        raise UserError(f"{source}: {len(x_train)} training images leave nothing after a {val_size}-image validation split")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x_train))
    val, train = order[:val_size], order[val_size:]
    if limit:
        train, val = train[:limit], val[: max(limit // 5, 1)]
        x_test, y_test = x_test[:limit], y_test[:limit]
    return Splits(
        x_train[train], y_train[train], x_train[val], y_train[val], x_test, y_test,
        source=str(source), is_mnist=data.is_mnist,
    )


def own_splits(path: Path, *, mnist_mix: float = MNIST_MIX, strict: bool = False, limit: int | None = None) -> Splits:
    """Your own digits split by file, stratified and seeded: OWN_VAL_FRACTION of each class held out (validation
    and test alike). Each epoch is OWN_EPOCH_IMAGES (`limit` if given): the training files repeated, and a
    `mnist_mix` share of MNIST training images."""
    if not 0 <= mnist_mix <= MAX_MNIST_MIX:
        raise UserError(f"--mnist-mix must be between 0 and {MAX_MNIST_MIX} (got {mnist_mix})")
    base = load_splits(None)  # MNIST, for the mix and the before/after figure
    own = labelled.load(path, strict=strict)
    classes = np.unique(own.y)
    if len(classes) < 2:
        raise UserError(f"{path}: every image is a {classes[0]}; a model learns digits from at least two classes "
                        f"(put the others in {path / '0'}, ..., {path / '9'})")
    rng = np.random.default_rng(SPLIT_SEED)
    val = []
    for digit in classes:
        files = rng.permutation(np.flatnonzero(own.y == digit))
        held = max(1, round(OWN_VAL_FRACTION * len(files))) if len(files) > 1 else 0
        val += files[:held].tolist()
    val = np.sort(np.array(val, np.int64))
    if len(val) == 0:
        raise UserError(f"{path}: one image per class leaves none to validate on; add a few more of each digit")
    train = np.setdiff1d(np.arange(len(own.y)), val)
    total = limit or max(OWN_EPOCH_IMAGES, math.ceil(len(train) / (1 - mnist_mix)))
    n_mnist = round(mnist_mix * total)
    mine = np.resize(rng.permutation(train), total - n_mnist)  # repeated to fill its share
    theirs = rng.choice(len(base.x_train), size=min(n_mnist, len(base.x_train)), replace=False)
    x_train = np.concatenate([own.x[mine], base.x_train[theirs]])
    y_train = np.concatenate([own.y[mine], base.y_train[theirs]])
    details = OwnDigits(source=str(path), sha256=own.sha256, train_files=[own.files[i] for i in train],
                        val_files=[own.files[i] for i in val], skipped=len(own.skipped), mnist_mix=mnist_mix,
                        mnist_images=len(theirs), x_mnist_test=base.x_test, y_mnist_test=base.y_test)
    return Splits(x_train, y_train, own.x[val], own.y[val], own.x[val], own.y[val], source=str(path), is_mnist=False,
                  own=details)


def _download() -> Path:
    """Download MNIST into the keras cache; offline, say which variable to set."""
    from edgedigits.training.tf_stack import keras

    try:
        keras.datasets.mnist.load_data()
    except Exception as e:  # keras.utils.get_file raises a bare Exception for network errors
        reason = str(e).splitlines()[0].split(" -- ")[-1].strip()[:120]  # "URL fetch failure on URL: code -- reason"
        raise UserError(
            f"no MNIST found and the download failed ({reason}); "
            f"set {mnist.ENV_VAR}=/path/to/mnist.npz or pass --data PATH"
        ) from e
    return mnist.keras_cache()


def to_model_input(x: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]: the model's input contract."""
    return (x.astype(np.float32) / 255.0)[..., None]


STYLES = {  # what a recipe's `styles` may add to the augmentation, for writers MNIST lacks
    "shear": "slant: a horizontal shear of up to SHEAR_DEG either way",
    "aspect": "width and height scaled apart (ASPECT), as writers make narrow and wide digits",
    "fill": "a share (FILL_SHARE) stretched to fill the 20x20 box, as scans size-normalised without aspect",
    "stroke": "strokes made bolder or thinner (STROKE_SHARE of the digits)",
    "fonts": "digits in handwriting fonts (font_digits' bank), FONT_SHARE of the training images",
    "flags": "copies of a share (FLAG_SHARE) of MNIST's 1s with a flag (and a foot) and of its 7s with a bar",
}


def check_styles(styles: tuple[str, ...]) -> None:
    """A one-line error for a name that is not in STYLES."""
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise UserError(f"unknown style '{unknown[0]}'; choose from: {', '.join(STYLES)}")


SHEAR_DEG = 25.0
ASPECT = (0.7, 1.4)  # width over height, drawn log-uniformly, area kept
FILL_SHARE = 0.15
FILL_MAX = 5.0  # the most a side is stretched: a 1 four pixels wide becomes a bar, not a square
STROKE_SHARE = 0.4  # split evenly between bolder and thinner
FONT_SHARE = 0.1
FLAG_SHARE = 0.5


def random_affine(images, seed, strength: float = 1.0, styles: tuple[str, ...] = ()):
    """Rotate, shift and zoom a batch (B, 28, 28, 1) with one bilinear resample per image; with `styles`
    also shear, aspect and fill (see STYLES), in the same resample.

    `seed` is a shape-[2] integer tensor; the same seed gives the same transforms. `strength`
    scales the ranges (ROTATION_DEG, ZOOM, SHIFT).
    """
    from edgedigits.training.tf_stack import tf

    n = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    s_rot, s_zoom, s_shift = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    rotation, zoom, shift_range = ROTATION_DEG * strength, ZOOM * strength, SHIFT * strength
    angle = tf.random.stateless_uniform([n], s_rot, -rotation, rotation) * (np.pi / 180.0)
    scale = tf.random.stateless_uniform([n], s_zoom, 1.0 - zoom, 1.0 + zoom)
    shift = tf.random.stateless_uniform([n, 2], s_shift, -shift_range, shift_range) * [width, height]
    # The op maps each output pixel back to an input pixel: p_in = b + L (p_out - c - shift), where L is the
    # inverse of the forward map (rotation, zoom, then the styles) and b the centre it is taken about.
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    rows = [[cos, sin], [-sin, cos]]
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    bx, by = cx, cy
    if styles:
        rows, bx, by = _styled_inverse(images, tf.random.experimental.stateless_fold_in(seed, 1), rows, styles)
    (a0, a1), (b0, b1) = rows
    ox, oy = cx + shift[:, 0], cy + shift[:, 1]
    transforms = tf.stack(
        [a0, a1, bx - a0 * ox - a1 * oy, b0, b1, by - b0 * ox - b1 * oy, tf.zeros([n]), tf.zeros([n])],
        axis=1,
    )
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=[height, width],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT",
    )


def _styled_inverse(images, seed, rows, styles):
    """The inverse map's rows with shear, aspect and fill composed in, and the centre it maps about."""
    from edgedigits.training.tf_stack import tf

    n = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    s_shear, s_aspect, s_fill = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    (a0, a1), (b0, b1) = rows
    if "shear" in styles:  # forward x += k y: the inverse subtracts k times the second row
        k = tf.tan(tf.random.stateless_uniform([n], s_shear, -SHEAR_DEG, SHEAR_DEG) * (np.pi / 180.0))
        a0, a1 = a0 - k * b0, a1 - k * b1
    if "aspect" in styles:
        ratio = tf.exp(tf.random.stateless_uniform([n], s_aspect, np.log(ASPECT[0]), np.log(ASPECT[1])))
        sx, sy = tf.sqrt(ratio), 1.0 / tf.sqrt(ratio)
        a0, a1, b0, b1 = a0 / sx, a1 / sx, b0 / sy, b1 / sy
    bx, by = (width - 1) / 2.0, (height - 1) / 2.0
    if "fill" in styles:  # the digit's box is stretched to 20x20 about its centre
        ink = images[..., 0] > 0.2
        (x0, x1), (y0, y1) = (_extent(tf.reduce_any(ink, axis=axis)) for axis in (1, 2))
        chosen = tf.random.stateless_uniform([n], s_fill) < FILL_SHARE
        fx = tf.where(chosen, tf.minimum(20.0 / (x1 - x0 + 1.0), FILL_MAX), 1.0)
        fy = tf.where(chosen, tf.minimum(20.0 / (y1 - y0 + 1.0), FILL_MAX), 1.0)
        a0, a1, b0, b1 = a0 / fx, a1 / fx, b0 / fy, b1 / fy
        bx, by = tf.where(chosen, (x0 + x1) / 2.0, bx), tf.where(chosen, (y0 + y1) / 2.0, by)
    return [[a0, a1], [b0, b1]], bx, by


def _extent(any_ink):
    """First and last index (float) of True along the last axis of (B, L); 0 and L-1 where there is none."""
    from edgedigits.training.tf_stack import tf

    length = any_ink.shape[-1]
    first = tf.cast(tf.argmax(tf.cast(any_ink, tf.int32), axis=1), tf.float32)
    last = (length - 1) - tf.cast(tf.argmax(tf.cast(any_ink[:, ::-1], tf.int32), axis=1), tf.float32)
    empty = tf.logical_not(tf.reduce_any(any_ink, axis=1))
    return tf.where(empty, 0.0, first), tf.where(empty, length - 1.0, last)


def random_stroke(images, seed):
    """STROKE_SHARE of a batch's digits made bolder (dilated) or thinner (half-eroded), the rest unchanged."""
    from edgedigits.training.tf_stack import tf

    pick = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed)
    bolder = tf.nn.max_pool2d(images, 3, 1, "SAME")
    thinner = (images - tf.nn.max_pool2d(-images, 3, 1, "SAME")) / 2.0
    return tf.where(pick < STROKE_SHARE / 2, bolder, tf.where(pick < STROKE_SHARE, thinner, images))


def training_images(x: np.ndarray, y: np.ndarray, styles: tuple[str, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training images with what `styles` adds to them ("flags", "fonts"); the others act per batch."""
    if "flags" in styles:
        x, y = with_flagged_digits(x, y, seed)
    if "fonts" in styles:
        x, y = with_font_digits(x, y)
    return x, y


def with_font_digits(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MNIST training images with the font bank's training fonts repeated to FONT_SHARE of the whole."""
    from edgedigits.training import font_digits

    fx, fy = font_digits.load()
    copies = max(1, round(FONT_SHARE * len(x) / (1 - FONT_SHARE) / len(fx)))
    return np.concatenate([x, np.tile(fx, (copies, 1, 1))]), np.concatenate([y, np.tile(fy, copies)])


def with_flagged_digits(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training images and, added, FLAG_SHARE of the 1s and 7s written as Europe writes them
    (`font_digits.styled`): a flag and sometimes a foot on the 1, a bar across the 7."""
    from edgedigits.training import font_digits

    rng = np.random.default_rng(seed)
    picked = np.flatnonzero(np.isin(y, (1, 7)) & (rng.random(len(y)) < FLAG_SHARE))
    copies = np.stack([font_digits.styled(x[i], int(y[i]), rng) for i in picked])
    return np.concatenate([x, copies]), np.concatenate([y, y[picked]])


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, train: bool, seed: int = 0,
                 augment: float = 1.0, styles: tuple[str, ...] = ()):
    """A tf.data pipeline of (float images, labels).

    For training it shuffles, repeats forever and augments on the fly at strength `augment`
    and `styles` (pass `steps_per_epoch` to fit); otherwise it yields the data once, in order.
    """
    from edgedigits.training.tf_stack import tf

    def to_float(images, labels):
        return tf.cast(images, tf.float32)[..., None] / 255.0, labels

    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    if not train:
        return ds.batch(batch_size).map(to_float).prefetch(tf.data.AUTOTUNE)
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size).map(to_float)
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    geometry = tuple(s for s in styles if s in ("shear", "aspect", "fill"))

    def augmented(batch, s):
        images = random_affine(batch[0], s, augment, geometry)
        if "stroke" in styles:
            images = random_stroke(images, tf.random.experimental.stateless_fold_in(s, 2))
        return images, batch[1]

    ds = tf.data.Dataset.zip((ds, seeds)).map(augmented, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def calibration_samples(x: np.ndarray, n: int = CALIBRATION_SIZE, seed: int = 0) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A `representative_dataset` for int8 conversion: `n` training images, one at a time."""
    picks = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    samples = to_model_input(x[np.sort(picks)])

    def generate() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [sample[None]]

    return generate
