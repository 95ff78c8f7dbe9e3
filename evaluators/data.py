"""Image-classification datasets as numpy arrays, split into train and test by seed.

A loader (registered in ``DATASETS``) takes a seed and returns all its samples as
``(x, y)``: ``x`` float32 N×C×H×W in [0, 1], ``y`` int64 class indices; ``load_dataset``
makes the stratified train/test split. A loader may instead return a ``FixedSplit``,
its publishers' own train/test split, which ``load_dataset`` keeps as it is. Loads are
cached per process.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluators.errors import DatasetError
from search_spaces import InputSpec
from search_spaces.registry import Registry


@dataclass(frozen=True, eq=False)
class FixedSplit:
    """A loader's own train/test split, used as is (``test_fraction`` does not apply)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


DatasetLoader = Callable[[int], tuple[np.ndarray, np.ndarray] | FixedSplit]

DATASETS: Registry[DatasetLoader] = Registry("dataset", entry_point_group="paretonas.datasets")

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where the Debian package ``dataset-fashion-mnist`` installs its idx files."""

FASHION_MNIST_SAMPLES = 12_000
"""``fashion-mnist`` is subsampled (stratified, by seed) from its 70,000 images to this
many, so that one candidate trains in seconds on a CPU; ``fashion-mnist-full`` is all of
them, in the publishers' 60,000/10,000 train/test split."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split; the arrays are read-only because loads are shared (cached)."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    input_spec: InputSpec

    def __post_init__(self) -> None:
        for part, x, y in (("train", self.train_x, self.train_y),
                           ("test", self.test_x, self.test_y)):
            if x.dtype != np.float32 or y.dtype != np.int64:
                raise DatasetError(f"{self.name}: {part} arrays must be float32/int64, "
                                   f"got {x.dtype}/{y.dtype}")
            if x.shape[1:] != self.input_spec.shape or len(x) != len(y) or not len(x):
                raise DatasetError(f"{self.name}: {part} arrays have shapes {x.shape}/{y.shape}, "
                                   f"expected (N, {self.input_spec.shape}) and (N,) with N > 0")


def load_dataset(name: str, *, seed: int, test_fraction: float = 0.25) -> Dataset:
    """The dataset ``name`` split stratified into train/test by ``seed`` (cached per process);
    a dataset that comes with its own split (``FixedSplit``) keeps it."""
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if seed < 0:
        raise DatasetError(f"seed must be >= 0, got {seed}")
    return _load_cached(name, int(seed), float(test_fraction))


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, seed: int, test_fraction: float) -> Dataset:
    from sklearn.model_selection import train_test_split  # slow import, needed only here

    loaded = DATASETS.get(name)(seed)
    if isinstance(loaded, FixedSplit):
        train_x, train_y = _checked(name, loaded.train_x, loaded.train_y)
        test_x, test_y = _checked(name, loaded.test_x, loaded.test_y)
    else:
        x, y = _checked(name, *loaded)
        train_x, test_x, train_y, test_y = train_test_split(
            x, y, test_size=test_fraction, stratify=y, random_state=seed
        )
    for array in (train_x, test_x, train_y, test_y):
        array.flags.writeable = False
    classes = int(max(train_y.max(), test_y.max())) + 1
    return Dataset(name=name, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                   input_spec=InputSpec(shape=train_x.shape[1:], num_classes=classes))


def _checked(name: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.int64)
    if x.ndim < 2 or not len(x) or y.shape != (len(x),) or y.min() < 0:
        raise DatasetError(f"dataset {name!r} loader returned shapes {x.shape}/{y.shape}")
    return x, y


@DATASETS.decorator("digits")
def load_digits(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8×8 handwritten digits (bundled, no download), 10 classes."""
    from sklearn.datasets import load_digits as sklearn_digits

    del seed  # the whole set is used; only the split depends on the seed
    bunch = sklearn_digits()
    return (bunch.images / 16.0).astype(np.float32)[:, None], bunch.target.astype(np.int64)


@DATASETS.decorator("fashion-mnist")
def load_fashion_mnist(
    seed: int, *, root: Path = FASHION_MNIST_DIR
) -> tuple[np.ndarray, np.ndarray]:
    """Zalando's 28×28 clothing images, 10 classes, from the Debian package's idx files:
    ``FASHION_MNIST_SAMPLES`` of them, stratified by ``seed``."""
    split = _fashion_mnist_split(root)
    x = np.concatenate([split.train_x, split.test_x])
    y = np.concatenate([split.train_y, split.test_y])
    if len(x) > FASHION_MNIST_SAMPLES:
        from sklearn.model_selection import train_test_split

        x, _, y, _ = train_test_split(x, y, train_size=FASHION_MNIST_SAMPLES, stratify=y,
                                      random_state=seed)
    return x, y


@DATASETS.decorator("fashion-mnist-full")
def load_fashion_mnist_full(seed: int, *, root: Path = FASHION_MNIST_DIR) -> FixedSplit:
    """All of Fashion-MNIST in its own split: 60,000 images to train, 10,000 to test."""
    del seed  # the publishers' split
    return _fashion_mnist_split(root)


def _fashion_mnist_split(root: Path) -> FixedSplit:
    if not root.is_dir():
        raise DatasetError(f"fashion-mnist not found in {root}; install it with "
                           f"`apt-get install dataset-fashion-mnist`")
    parts = []
    for part in ("train", "t10k"):
        x = _read_idx(_idx_file(root, f"{part}-images-idx3-ubyte"))
        y = _read_idx(_idx_file(root, f"{part}-labels-idx1-ubyte"))
        if len(x) != len(y):
            raise DatasetError(f"fashion-mnist in {root}: {len(x)} {part} images but "
                               f"{len(y)} labels")
        parts.append(((x.astype(np.float32) / 255.0)[:, None], y.astype(np.int64)))
    (train_x, train_y), (test_x, test_y) = parts
    return FixedSplit(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)


def _idx_file(root: Path, stem: str) -> Path:
    for path in (root / f"{stem}.gz", root / stem):
        if path.is_file():
            return path
    raise DatasetError(f"{root} has no {stem}[.gz]; reinstall it with "
                       f"`apt-get install --reinstall dataset-fashion-mnist`")


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (the MNIST format, optionally gzipped) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            data = stream.read()
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error}") from error
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path} is not an idx file (bad magic number)")
    header = 4 + 4 * data[3]
    if len(data) < header:
        raise DatasetError(f"{path} is truncated: no room for its header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=data[3], offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    if len(data) != header + int(np.prod(shape)) * dtype.itemsize:
        raise DatasetError(f"{path} is truncated or corrupt: header says shape {shape}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
