"""Dataset file formats and checks: bytes in, arrays out, and garbage never loads.

Readers for idx files (MNIST, Fashion-MNIST), Keras .npz files and CIFAR-10 python
batches, then the checks every loaded split passes: shapes, dtypes, labels, and for the
full published MNIST and Fashion-MNIST a content fingerprint. Private helpers of
`dgm_course.data`. Explained in notebooks/01_data_preprocessing.ipynb, section
"Load the data offline".
"""

import gzip
import hashlib
import math
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from dgm_course._validation import describe

# The four idx files, in the order (x_train, y_train, x_test, y_test).
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
CIFAR_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch")
IMAGE_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
# The published sizes (train, test); only arrays of exactly these sizes get a fingerprint check.
FULL_SIZES = {"mnist": (60000, 10000), "fashion_mnist": (60000, 10000), "cifar10": (50000, 10000)}
# Content fingerprints: SHA-256 of the decompressed arrays (the uint8 values after the idx
# header, in file order; images, then labels), not of any .gz file, so they hold for idx .gz,
# raw idx and Keras .npz alike. Computed once from the published files, whose decompressed
# idx files have the widely published MD5s (e.g. MNIST train images 6bbc9ace898e44ae57da46a3
# 24031adb, Fashion-MNIST train images f4a8712d7a061bf5bd6d2ca38dc4d50a). CIFAR-10 has none:
# its download is checked by Keras against the SHA-256 of cifar-10-python.tar.gz instead.
FINGERPRINTS = {
    "mnist": {
        "train": ("741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
                  "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13"),
        "test": ("6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
                 "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5"),
    },
    "fashion_mnist": {
        "train": ("2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
                  "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7"),
        "test": ("c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
                 "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9"),
    },
}
_AGAIN = "Fix: delete the file and download or copy it again."


def read_idx(path):
    """Reads one idx file (the format of MNIST and Fashion-MNIST), gzip-compressed or raw.

    An idx file is a magic number `00 00 <dtype code> <ndim>`, then `ndim` big-endian
    uint32 sizes, then the values in C order. The course's files hold uint8 (code 0x08):
    images (count, rows, columns) and labels (count,). Gzip is recognised from the first
    bytes, not from the file name. Explained in notebooks/01_data_preprocessing.ipynb,
    section "Load the data offline".

    Args:
        path: a `*-idx?-ubyte` file, optionally gzip-compressed (`.gz`).

    Returns:
        A writable uint8 NumPy array of the shape the header declares.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file is a truncated or corrupt gzip, has a bad magic number or a
            dtype other than uint8, or holds fewer or more bytes than its header declares.

    Example:
        >>> labels = read_idx("data/mnist/t10k-labels-idx1-ubyte.gz")
        >>> labels.shape, labels.dtype
        ((10000,), dtype('uint8'))
    """
    path = Path(path)
    data = _read_maybe_gzip(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[3] == 0:
        raise ValueError(
            f"{path} is not an idx file: it starts with bytes {data[:4].hex(' ') or '(none)'}, "
            f"expected the magic number 00 00 08 <ndim> of an MNIST-style idx file. {_AGAIN}")
    if data[2] != 0x08:
        raise ValueError(
            f"{path} has idx dtype code 0x{data[2]:02x}; expected 0x08 (uint8), the type of "
            f"every MNIST and Fashion-MNIST file. Fix: use the published file.")
    header = 4 + 4 * data[3]
    if len(data) < header:
        raise ValueError(f"{path} is truncated inside its idx header. {_AGAIN}")
    shape = tuple(int.from_bytes(data[at:at + 4], "big") for at in range(4, header, 4))
    size = math.prod(shape)  # Python ints: a forged header cannot overflow.
    if len(data) - header != size:
        problem = "is truncated" if len(data) - header < size else "has trailing bytes"
        raise ValueError(
            f"{path} {problem}: its header declares shape {shape}, i.e. {size:,} bytes of "
            f"values, but {len(data) - header:,} follow the header. {_AGAIN}")
    return np.frombuffer(data, np.uint8, count=size, offset=header).reshape(shape).copy()


def _read_maybe_gzip(path):
    """Returns the bytes of `path`, decompressed if they start with the gzip magic 1f 8b."""
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as error:  # gzip.BadGzipFile is an OSError.
        raise ValueError(
            f"{path} is a truncated or corrupt gzip file ({error}). {_AGAIN}") from None


def _idx_path(folder, stem):
    """Returns the path of idx file `stem` in `folder`, .gz or raw, or None."""
    dotted = stem.replace("-idx", ".idx")  # The original MNIST archives name files this way.
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx_folder(folder):
    """Returns (x_train, y_train, x_test, y_test) from the idx files in `folder`, or None."""
    paths = [_idx_path(Path(folder), stem) for stem in IDX_FILES]
    if not any(paths):
        return None
    missing = [stem for stem, path in zip(IDX_FILES, paths) if path is None]
    if missing:
        raise FileNotFoundError(
            f"{folder} holds only some of the four idx files: missing {', '.join(missing)} "
            f"(.gz or raw). Fix: put all four files ({', '.join(IDX_FILES)}) in that folder.")
    return tuple(read_idx(path) for path in paths)


def read_npz(path):
    """Returns (x_train, y_train, x_test, y_test) from a Keras-style .npz file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (EOFError, OSError, ValueError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"{path} is a truncated or corrupt .npz file "
                         f"({type(error).__name__}: {error}). {_AGAIN}") from None
    missing = [key for key in NPZ_KEYS if key not in arrays]
    if missing:
        raise ValueError(
            f"{path} holds arrays {sorted(arrays)}; expected {', '.join(NPZ_KEYS)} (the "
            f"layout of keras.datasets). Fix: save it with np.savez(path, x_train=x_train, "
            f"y_train=y_train, x_test=x_test, y_test=y_test).")
    return tuple(arrays[key] for key in NPZ_KEYS)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except those NumPy needs to rebuild an array, so that a
    tampered CIFAR-10 batch cannot run code when it is loaded (Keras does the same)."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"),  # Pickled by NumPy 1.
               ("numpy._core.multiarray", "_reconstruct")}  # Pickled by NumPy 2.

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load the global {module}.{name}")


def _read_cifar_batch(file, where):
    """Returns (images (N, 32, 32, 3) uint8, labels) from one open CIFAR-10 python batch."""
    fix = "Fix: delete it and extract cifar-10-python.tar.gz again."
    try:
        batch = _NumpyOnlyUnpickler(file, encoding="bytes").load()
        batch = {(key.decode() if isinstance(key, bytes) else key): value
                 for key, value in batch.items()}
        data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    except Exception as error:  # Any garbage: a refused global, a cut file, a wrong dict.
        raise ValueError(f"{where} is not a CIFAR-10 python batch "
                         f"({type(error).__name__}: {error}). {fix}") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{where}: `data` is {describe(data)}; expected uint8 of shape "
                         f"(N, 3072). {fix}")
    # Each row is the red, then the green, then the blue 32x32 plane:
    # (N, 3072) -> (N, 3, 32, 32) -> (N, 32, 32, 3).
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _join_cifar(batches):
    """Returns (x_train, y_train, x_test, y_test) from five training batches and the test batch."""
    return (np.concatenate([images for images, _ in batches[:-1]]),
            np.concatenate([labels for _, labels in batches[:-1]]), *batches[-1])


def read_cifar_folder(folder):
    """Returns CIFAR-10 from a `cifar-10-batches-py` folder, or None if it holds no batches."""
    paths = [Path(folder) / name for name in CIFAR_BATCHES]
    if not any(path.is_file() for path in paths):
        return None
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} holds only some CIFAR-10 batches: missing "
                                f"{', '.join(missing)}. Fix: extract cifar-10-python.tar.gz again.")
    batches = []
    for path in paths:
        with open(path, "rb") as file:
            batches.append(_read_cifar_batch(file, path))
    return _join_cifar(batches)


def read_cifar_tar(path):
    """Returns CIFAR-10 read straight from `cifar-10-python.tar.gz`, without extracting it."""
    try:
        with tarfile.open(path, "r:*") as archive:
            batches = [_read_cifar_batch(archive.extractfile(f"cifar-10-batches-py/{name}"),
                                         f"{path} (member {name})") for name in CIFAR_BATCHES]
    except (EOFError, KeyError, OSError, tarfile.TarError, zlib.error) as error:
        raise ValueError(f"{path} is a truncated or corrupt CIFAR-10 archive "
                         f"({type(error).__name__}: {error}). {_AGAIN}") from None
    return _join_cifar(batches)


def check_split(name, split, images, labels, where, num_classes=10):
    """Returns (images (N, H, W, C) uint8, labels (N,) int64), or raises a ValueError."""
    shape = IMAGE_SHAPES[name]
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 3 and shape[2] == 1:
        images = images[..., np.newaxis]  # The idx files have no channel axis.
    if images.dtype != np.uint8 or images.shape[1:] != shape or len(images) == 0:
        raise ValueError(
            f"{name} from {where}: x_{split} is {describe(images)}; expected uint8 images "
            f"of shape (N, {', '.join(map(str, shape))}) with N >= 1. Fix: use the published "
            f"{name} files, or save your own arrays in that shape and dtype.")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]  # keras.datasets.cifar10 gives labels of shape (N, 1).
    if labels.ndim != 1 or labels.dtype.kind not in "ui" or len(labels) != len(images):
        raise ValueError(
            f"{name} from {where}: y_{split} is {describe(labels)}, but x_{split} holds "
            f"{len(images):,} images; expected one integer label per image, shape "
            f"({len(images)},). Fix: use matching image and label files of the same split.")
    bad = np.unique(labels[(labels < 0) | (labels >= num_classes)])
    if bad.size:
        raise ValueError(
            f"{name} from {where}: y_{split} holds labels {bad[:5].tolist()} outside "
            f"0..{num_classes - 1} ({name} has {num_classes} classes). "
            f"Fix: use the published {name} label files.")
    return images, labels.astype(np.int64)


def fingerprint(images, labels):
    """Returns the SHA-256 hex digests of the images' and the labels' uint8 bytes."""
    return (hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes()).hexdigest(),
            hashlib.sha256(np.asarray(labels).astype(np.uint8).tobytes()).hexdigest())


def check_contents(name, splits, where, verify):
    """Compares full-size splits {"train": (x, y), "test": (x, y)} with the published
    fingerprints; returns a phrase for the source line, or raises a ValueError."""
    if name not in FINGERPRINTS:
        return f"shapes and labels checked (no content fingerprint is known for {name})"
    if tuple(len(x) for x, _ in splits.values()) != FULL_SIZES[name]:
        return "not the published size, so not compared with the published fingerprint"
    if not verify:
        return "NOT compared with the published fingerprint (verify=False)"
    for split, (images, labels) in splits.items():
        actual, expected = fingerprint(images, labels), FINGERPRINTS[name][split]
        if actual == expected:
            continue
        part = 0 if actual[0] != expected[0] else 1
        others = [other for other, known in FINGERPRINTS.items() if known[split] == actual]
        identity = f" They are the {others[0]} {split} files." if others else ""
        raise ValueError(
            f"{name} from {where}: the {split} {('images', 'labels')[part]} differ from the "
            f"published {name} (SHA-256 of the decompressed array {actual[part][:16]}..., "
            f"expected {expected[part][:16]}...).{identity} The files are corrupt, modified "
            f"or another dataset. Fix: delete them and download or copy them again, or pass "
            f"verify=False if you changed the data on purpose.")
    return "contents match the published dataset (SHA-256)"
