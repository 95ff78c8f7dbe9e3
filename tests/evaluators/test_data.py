from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from evaluators import DATASETS, DatasetError, load_dataset
from evaluators.data import (
    FASHION_MNIST_DIR,
    FixedSplit,
    load_fashion_mnist,
    load_fashion_mnist_full,
)
from search_spaces import InputSpec, UnknownNameError


def test_digits_shapes_and_ranges() -> None:
    data = load_dataset("digits", seed=0)
    assert data.train_x.shape == (1347, 1, 8, 8) and data.test_x.shape == (450, 1, 8, 8)
    assert data.train_x.dtype == np.float32 and data.train_y.dtype == np.int64
    assert data.train_x.min() >= 0.0 and data.train_x.max() == 1.0
    assert data.input_spec == InputSpec(shape=(1, 8, 8), num_classes=10)


def test_digits_split_is_stratified() -> None:
    data = load_dataset("digits", seed=3)
    train, test = np.bincount(data.train_y), np.bincount(data.test_y)
    expected = (train + test) * 0.25
    assert np.all(np.abs(test - expected) <= 1)


def test_digits_split_depends_only_on_seed() -> None:
    first, again = load_dataset("digits", seed=1), load_dataset("digits", seed=1)
    assert again is first  # cached per process
    other = load_dataset("digits", seed=2)
    assert not np.array_equal(first.test_y, other.test_y)
    half = load_dataset("digits", seed=1, test_fraction=0.5)
    assert len(half.test_y) == 899


def test_loaded_arrays_are_read_only() -> None:
    data = load_dataset("digits", seed=0)
    with pytest.raises(ValueError, match="read-only"):
        data.train_x[0, 0, 0, 0] = 1.0


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(UnknownNameError, match="known: digits, fashion-mnist"):
        load_dataset("cifar-1000", seed=0)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_test_fraction(fraction: float) -> None:
    with pytest.raises(DatasetError, match="test_fraction"):
        load_dataset("digits", seed=0, test_fraction=fraction)


def test_registry_holds_builtins() -> None:
    assert {"digits", "fashion-mnist", "fashion-mnist-full"} <= set(DATASETS.names())


def test_a_loaders_own_split_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    split = FixedSplit(train_x=rng.random((20, 1, 4, 4)), train_y=np.arange(20) % 3,  # float64
                       test_x=rng.random((6, 1, 4, 4)), test_y=np.arange(6) % 4)
    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))  # undone after the test
    DATASETS.register("fixed-split-test", lambda seed: split)
    data = load_dataset("fixed-split-test", seed=5, test_fraction=0.5)
    assert np.array_equal(data.train_y, split.train_y)
    assert np.allclose(data.test_x, split.test_x, atol=1e-7)
    assert data.train_x.dtype == np.float32 and data.test_y.dtype == np.int64
    assert data.input_spec == InputSpec(shape=(1, 4, 4), num_classes=4)  # classes of both parts


def _write_idx(path: Path, array: np.ndarray) -> None:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + array.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as stream:
            stream.write(payload)
    else:
        path.write_bytes(payload)


def test_fashion_mnist_reads_idx_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for part, count, suffix in (("train", 30, ".gz"), ("t10k", 10, "")):
        _write_idx(tmp_path / f"{part}-images-idx3-ubyte{suffix}",
                   rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        _write_idx(tmp_path / f"{part}-labels-idx1-ubyte{suffix}",
                   (np.arange(count) % 10).astype(np.uint8))
    x, y = load_fashion_mnist(0, root=tmp_path)
    assert x.shape == (40, 1, 28, 28) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [4] * 10
    split = load_fashion_mnist_full(0, root=tmp_path)  # the files' own split, in file order
    assert split.train_x.shape == (30, 1, 28, 28) and split.test_x.shape == (10, 1, 28, 28)
    assert split.train_y.tolist() == [i % 10 for i in range(30)]


def test_fashion_mnist_rejects_a_corrupt_idx_file(tmp_path: Path) -> None:
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"\0\0\x08\x03\0\0\0\x05")
    with pytest.raises(DatasetError, match="truncated"):
        load_fashion_mnist(0, root=tmp_path)


def test_fashion_mnist_missing_gives_install_hint(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(0, root=tmp_path / "absent")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_the_debian_package() -> None:
    data = load_dataset("fashion-mnist", seed=0)
    assert data.input_spec == InputSpec(shape=(1, 28, 28), num_classes=10)
    assert len(data.train_y) + len(data.test_y) == 12_000


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_full_fashion_mnist_keeps_the_publishers_split() -> None:
    data = load_dataset("fashion-mnist-full", seed=0)
    assert data.input_spec == InputSpec(shape=(1, 28, 28), num_classes=10)
    assert (len(data.train_y), len(data.test_y)) == (60_000, 10_000)
    assert np.bincount(data.test_y).tolist() == [1_000] * 10
