"""Digit datasets from disk, numpy only.

Finds MNIST (explicit path, then $EDGEDIGITS_DATA, then the keras cache), parses a
keras-layout `.npz` or a folder of IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST-digits) or
your own labelled images as a test set (`firmware_harness.labelled`: class folders 0-9, a CSV),
refuses a copy of MNIST whose arrays do not match the published checksums, and
validates any other set for shape, dtype and label range. Sizes are checked from the
file headers before anything large is read. Shared by training and the device harness.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import tokenize
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware_harness.errors import UserError

ENV_VAR = "EDGEDIGITS_DATA"
SPLITS = ("train", "test")
# sha256 of each array's bytes, from the MNIST copy's README (keras layout, IDX order).
MNIST_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
MAX_ARRAY_BYTES = 1 << 30  # EMNIST-digits, the largest set we load, is ~190 MB
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)


@dataclass(frozen=True)
class DigitData:
    """Images (N, 28, 28) uint8, white ink on black, and labels (N,) uint8 in 0-9."""

    x_test: np.ndarray
    y_test: np.ndarray
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    source: str = ""
    is_mnist: bool = False
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "mnist" if self.is_mnist else Path(self.source).name


def keras_cache() -> Path:
    """Where `keras.datasets.mnist.load_data()` keeps its copy."""
    home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(home) / "datasets" / "mnist.npz"


def locate(explicit: str | os.PathLike | None = None) -> Path | None:
    """The data path in lookup order: `explicit`, $EDGEDIGITS_DATA, the keras cache; else None."""
    for origin, value in (("--data", explicit), (ENV_VAR, os.environ.get(ENV_VAR))):
        if value:
            path = Path(value).expanduser()
            if not path.exists():
                raise UserError(f"data not found: {path} (from {origin}); point it at mnist.npz, a folder of IDX files "
                                f"or a folder of class folders 0-9")
            return path
    cache = keras_cache()
    return cache if cache.is_file() else None


def load(path: str | os.PathLike, splits: tuple[str, ...] = SPLITS) -> DigitData:
    """Load `splits` from a keras-layout `.npz` or a folder of IDX files, validated; a labelled folder or CSV
    is one test split (training splits it itself: edgedigits.training.data)."""
    path = Path(path)
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}")
    from firmware_harness import labelled

    if labelled.is_labelled(path):
        if "train" in splits:
            raise ValueError("a labelled folder is split by edgedigits.training.data")
        own = labelled.load(path)
        return DigitData(own.x, own.y, source=str(path), sha256={"x_test": own.sha256})
    if path.is_dir():
        arrays = _read_idx_folder(path, splits)
    elif path.is_file():
        arrays = _read_npz(path, splits)
    else:
        raise UserError(f"data not found: {path}; point --data or ${ENV_VAR} at mnist.npz or a folder of IDX files")
    for split in splits:
        _validate_split(path, split, arrays[f"x_{split}"], arrays[f"y_{split}"])
    digests = {key: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for key, a in arrays.items()}
    is_mnist = _check_mnist(path, digests)
    return DigitData(source=str(path), is_mnist=is_mnist, sha256=digests, **arrays)


def _check_mnist(path: Path, digests: dict[str, str]) -> bool:
    """True for verified MNIST; refuse a file that claims to be MNIST but differs from it."""
    matches = {key: MNIST_SHA256[key] == digest for key, digest in digests.items()}
    if all(matches.values()):
        return True
    if path.name == "mnist.npz" or any(matches.values()):
        bad = [key for key, ok in matches.items() if not ok]
        raise UserError(
            f"{path}: {', '.join(bad)} {'does' if len(bad) == 1 else 'do'} not match the MNIST checksums "
            f"(corrupt or modified copy); "
            f"download MNIST again, or rename the file if it is another dataset"
        )
    return False


def _validate_split(path: Path, split: str, x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise UserError(f"{path}: x_{split} has shape {x.shape}, expected (N, 28, 28) images")
    if x.dtype != np.uint8:
        raise UserError(f"{path}: x_{split} is {x.dtype}, expected uint8 pixels 0-255")
    if y.ndim != 1 or len(y) != len(x):
        raise UserError(f"{path}: y_{split} has shape {y.shape}, expected ({len(x)},) labels, one per image")
    if len(y) == 0:
        raise UserError(f"{path}: the {split} split is empty")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= NUM_CLASSES:
        raise UserError(f"{path}: y_{split} must hold digit labels 0-9 (found {y.min()}..{y.max()}, {y.dtype})")


def _read_npz(path: Path, splits: tuple[str, ...]) -> dict[str, np.ndarray]:
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = {name.removesuffix(".npy"): name for name in zf.namelist()}
            for split in splits:
                for key in (f"x_{split}", f"y_{split}"):
                    if key not in members:
                        have = ", ".join(sorted(members)) or "nothing"
                        raise UserError(f"{path}: no array '{key}' (has {have}); expected the keras MNIST layout")
                    with zf.open(members[key]) as f:
                        arrays[key] = _read_npy(path, key, f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: not a readable .npz file ({e}); download it again or check the path") from e
    return {k: (v[..., 0] if v.ndim == 4 and v.shape[-1] == 1 else v) for k, v in arrays.items()}


def _read_npy(path: Path, key: str, f) -> np.ndarray:
    """Read one .npy member, checking its header before reading its data."""
    try:
        version = np.lib.format.read_magic(f)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise UserError(f"{path}: '{key}' is a .npy version {version} array; save it with numpy's np.savez")
        shape, fortran, dtype = readers[version](f)
    except (ValueError, SyntaxError, TypeError, tokenize.TokenError) as e:  # numpy parses the header as Python
        raise UserError(f"{path}: '{key}' has a damaged .npy header; download the file again") from e
    if dtype.hasobject:
        raise UserError(f"{path}: '{key}' holds Python objects; only numeric arrays are accepted")
    nbytes = _declared_bytes(path, f"'{key}'", shape, dtype.itemsize)
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise UserError(f"{path}: '{key}' is truncated ({len(data)} of {nbytes} bytes); download it again")
    order = "F" if fortran else "C"
    return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy()


def _declared_bytes(path: Path, what: str, shape: tuple, itemsize: int) -> int:
    """The bytes a header's shape declares, refused before any read if a dimension is negative or the
    total (in Python integers: no overflow) is over MAX_ARRAY_BYTES."""
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise UserError(f"{path}: {what} declares shape {tuple(shape)}, with a negative dimension; the file is corrupt")
    nbytes = math.prod(shape) * itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise UserError(f"{path}: {what} declares {nbytes / 2**20:,.0f} MiB; the limit is {MAX_ARRAY_BYTES >> 20} MiB")
    return nbytes


def _idx_file(folder: Path, split: str, kind: str) -> Path:
    """The IDX file for `split` ('train'/'test') and `kind` ('images'/'labels') in `folder`."""
    dim = 3 if kind == "images" else 1
    stems = ("train",) if split == "train" else ("t10k", "test")
    found = []
    for candidate in sorted(folder.iterdir()):
        name = candidate.name.removesuffix(".gz")
        if any(name.endswith(f"{stem}-{kind}-idx{dim}-ubyte") or name.endswith(f"{stem}-{kind}.idx{dim}-ubyte")
               for stem in stems):
            found.append(candidate)
    if not found:
        raise UserError(
            f"{folder}: no {split} {kind} IDX file (expected e.g. {stems[0]}-{kind}-idx{dim}-ubyte[.gz]); "
            f"point --data at mnist.npz or a folder of IDX files"
        )
    found.sort(key=lambda p: p.suffix == ".gz")  # prefer the uncompressed file
    return found[0]


def _read_idx_folder(folder: Path, splits: tuple[str, ...]) -> dict[str, np.ndarray]:
    arrays = {}
    for split in splits:
        images = _idx_file(folder, split, "images")
        arrays[f"x_{split}"] = _read_idx(images, ndim=3)
        arrays[f"y_{split}"] = _read_idx(_idx_file(folder, split, "labels"), ndim=1)
        if images.name.startswith("emnist"):  # EMNIST stores images transposed relative to MNIST
            arrays[f"x_{split}"] = np.ascontiguousarray(arrays[f"x_{split}"].transpose(0, 2, 1))
    return arrays


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse one IDX file of unsigned bytes (optionally gzipped), header checked first."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if len(magic) != 4 or magic[:2] != b"\0\0" or magic[2] != 0x08 or magic[3] != ndim:
                raise UserError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s)")
            dims = struct.unpack(f">{ndim}I", f.read(4 * ndim))
            nbytes = _declared_bytes(path, "the header", dims, 1)
            data = f.read(nbytes)
            extra = f.read(1)
    except (OSError, EOFError, struct.error) as e:
        raise UserError(f"{path}: not a readable IDX file ({e}); download it again") from e
    if len(data) != nbytes:
        raise UserError(f"{path}: truncated ({len(data)} of {nbytes} data bytes); download it again")
    if extra:
        raise UserError(f"{path}: has bytes after the {nbytes} its header declares; the file is corrupt")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims).copy()
