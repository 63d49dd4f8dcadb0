"""The MNIST / IDX loader: real files, real corruption, one-line errors."""

from __future__ import annotations

import gzip
import shutil
import struct
import zipfile

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli, write_npz
from firmware_harness import mnist
from firmware_harness.errors import UserError


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(blob)
    else:
        path.write_bytes(blob)


def test_shared_copy_verifies_as_mnist(mnist_data):
    assert mnist_data.is_mnist
    assert mnist_data.x_train.shape == (60000, 28, 28) and mnist_data.x_test.shape == (10000, 28, 28)
    assert np.bincount(mnist_data.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_lookup_order(tmp_path, monkeypatch, mnist_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    assert mnist.locate(None) is None
    cache = tmp_path / "keras" / "datasets" / "mnist.npz"
    cache.parent.mkdir(parents=True)
    shutil.copy(mnist_path, cache)
    assert mnist.locate(None) == cache
    monkeypatch.setenv(mnist.ENV_VAR, str(mnist_path))
    assert mnist.locate(None) == mnist_path
    explicit = tmp_path / "explicit.npz"
    explicit.write_bytes(b"x")
    assert mnist.locate(explicit) == explicit
    with pytest.raises(UserError, match="from --data"):
        mnist.locate(tmp_path / "missing.npz")


def test_idx_folder_with_gzip_loads_and_verifies(tmp_path, mnist_data):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", mnist_data.x_train, compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", mnist_data.y_train)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", mnist_data.x_test)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", mnist_data.y_test, compress=True)
    loaded = mnist.load(tmp_path)
    assert loaded.is_mnist
    np.testing.assert_array_equal(loaded.x_test, mnist_data.x_test)


def test_other_idx_set_is_validated_not_checksummed(tmp_path, mnist_data):
    """A Fashion-MNIST-like set (same layout, other content) loads as a custom dataset."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("t10k", 100)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))
    loaded = mnist.load(tmp_path)
    assert not loaded.is_mnist and len(loaded.x_train) == 300


def test_emnist_images_are_transposed(tmp_path):
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 2, 20] = 255  # EMNIST stores columns as rows
    for split in ("train", "test"):
        write_idx(tmp_path / f"emnist-digits-{split}-images-idx3-ubyte", image)
        write_idx(tmp_path / f"emnist-digits-{split}-labels-idx1-ubyte", np.array([3]))
    assert mnist.load(tmp_path).x_test[0, 20, 2] == 255


@pytest.mark.parametrize("case", ["checksum", "truncated", "shape", "labels", "missing_key", "dtype"])
def test_bad_data_is_refused(tmp_path, mnist_data, mnist_path, case):
    x, y = mnist_data.x_test[:50], mnist_data.y_test[:50]
    if case == "checksum":
        path = tmp_path / "mnist.npz"
        shutil.copy(mnist_path, path)
        bad = dict(np.load(path))
        bad["x_test"] = bad["x_test"].copy()
        bad["x_test"][0, 0, 0] ^= 1
        np.savez(path, **bad)
        match = "not match the MNIST checksums"
    elif case == "truncated":
        path = tmp_path / "cut.npz"
        path.write_bytes(mnist_path.read_bytes()[:3_000_000])
        match = "not a readable .npz"
    elif case == "shape":
        path = write_npz(tmp_path / "s.npz", x_test=x[:, :27], y_test=y)
        match = "expected (N, 28, 28)"
    elif case == "labels":
        path = write_npz(tmp_path / "l.npz", x_test=x, y_test=y + 5)
        match = "labels 0-9"
    elif case == "missing_key":
        path = write_npz(tmp_path / "k.npz", images=x, y_test=y)
        match = "no array 'x_test'"
    else:
        path = write_npz(tmp_path / "d.npz", x_test=x.astype(np.float32), y_test=y)
        match = "expected uint8"
    with pytest.raises(UserError, match=match.replace("(", r"\(").replace(")", r"\)")):
        mnist.load(path, splits=("test",))


def test_npz_header_is_checked_before_reading(tmp_path):
    """A member that declares a huge array is refused from its header, without reading it."""
    path = tmp_path / "huge.npz"
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 28, 28), np.uint8))
    header["shape"] = (3_000_000, 28, 28)
    with zipfile.ZipFile(path, "w") as zf, zf.open("x_test.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 100)
    with pytest.raises(UserError, match="the limit is"):
        mnist.load(path, splits=("test",))


@pytest.mark.parametrize("case", ["missing", "labels", "truncated_idx"])
def test_cli_bad_data_exits_2_with_one_line(tmp_path, mnist_data, case):
    if case == "missing":
        path, fragment = tmp_path / "nope.npz", "data not found"
    elif case == "labels":
        path = write_npz(tmp_path / "bad.npz", x_train=mnist_data.x_test[:6000], y_train=mnist_data.y_test[:6000] * 3,
                         x_test=mnist_data.x_test[:10], y_test=mnist_data.y_test[:10])
        fragment = "labels 0-9"
    else:
        path = tmp_path / "idx"
        path.mkdir()
        write_idx(path / "train-images-idx3-ubyte", mnist_data.x_test[:100])
        (path / "train-images-idx3-ubyte").write_bytes((path / "train-images-idx3-ubyte").read_bytes()[:5000])
        fragment = "truncated"
    result = run_cli("train", "--data", str(path), "--epochs", "1", env={"EDGEDIGITS_DATA": ""})
    assert_one_line_error(result, 2, fragment)
