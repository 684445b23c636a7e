"""Preprocessing: normalisation for the generator's output range, augmentation, tf.data pipelines.

TensorFlow and Keras are imported inside the functions that need them, so that
`normalize`/`denormalize` stay cheap to import.
Explained in notebooks/01_data_preprocessing.ipynb, sections "Normalise", "Augment" and
"Build a tf.data pipeline".
"""

import numpy as np

from dgm_course._validation import describe, require_array, require_int, require_labels
from dgm_course.data import canonical_name

# The two ranges the course's generators produce: tanh outputs and Bernoulli means.
VALUE_RANGES = ((-1.0, 1.0), (0.0, 1.0))


def _check_value_range(value_range):
    """Returns `value_range` as a tuple of floats if it is one of `VALUE_RANGES`, else raises."""
    try:
        pair = tuple(float(bound) for bound in value_range)
    except (TypeError, ValueError):
        pair = None
    if pair not in VALUE_RANGES:
        raise ValueError(
            f"`value_range` must be (-1, 1) (for tanh generators) or (0, 1) (for Bernoulli / "
            f"sigmoid decoders); got {describe(value_range)}."
        )
    return pair


def _scale_offset(value_range):
    """Returns `(scale, offset)` as float32 so that normalised = pixel * scale + offset."""
    if _check_value_range(value_range) == (-1.0, 1.0):
        return np.float32(1 / 127.5), np.float32(-1.0)
    return np.float32(1 / 255.0), np.float32(0.0)


def normalize(images, value_range=(-1.0, 1.0)):
    """Maps uint8 pixels 0..255 linearly onto float32 `value_range`.

    Use (-1, 1) when the generator ends in `tanh` (GANs) and (0, 1) when the decoder
    ends in a sigmoid and is read as Bernoulli means (VAEs).
    `x = pixel * (1 / 127.5) - 1` computed in float32, exactly what
    `keras.layers.Rescaling(1 / 127.5, offset=-1)` computes, or `x = pixel * (1 / 255)`.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Normalise".

    Args:
        images: a uint8 array of any shape, e.g. (N, H, W, C).
        value_range: (-1, 1) or (0, 1).

    Returns:
        A float32 array of the same shape with values in `value_range`.

    Raises:
        TypeError: if `images` is not uint8 (normalising twice is a common mistake).
        ValueError: if `value_range` is not one of the two ranges.

    Example:
        >>> normalize(np.array([0, 255], dtype="uint8"))
        array([-1.,  1.], dtype=float32)
    """
    scale, offset = _scale_offset(value_range)
    array = np.asarray(images)
    if array.dtype != np.uint8:
        raise TypeError(
            f"`normalize` expects uint8 pixels 0..255; got {describe(array)}. If the images "
            "are already floats they were probably normalised once already; otherwise "
            "convert with images.astype('uint8') first."
        )
    # x = pixel * scale + offset, both in float32 (as keras.layers.Rescaling does).
    return array.astype(np.float32) * scale + offset


def denormalize(x, value_range=(-1.0, 1.0)):
    """Maps floats in `value_range` back to uint8 pixels 0..255: the inverse of `normalize`.

    Values are rounded to the nearest pixel value, so `denormalize(normalize(u)) == u` for
    every uint8 `u`. Values outside `value_range` (a generator can overshoot slightly) are
    clipped to 0 or 255 instead of wrapping around.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Normalise".

    Args:
        x: a float array (or tensor) of any shape.
        value_range: the range `x` was normalised to: (-1, 1) or (0, 1).

    Returns:
        A uint8 NumPy array of the same shape.

    Raises:
        TypeError: if `x` is not a float array.
        ValueError: if `x` holds NaN or infinity, or `value_range` is not one of the two.

    Example:
        >>> denormalize(np.array([-1.0, 0.0, 1.0, 1.2], dtype="float32"))
        array([  0, 128, 255, 255], dtype=uint8)
    """
    low, high = _check_value_range(value_range)
    array = require_array(
        x, "x", dtype_kinds="f",
        fix="`denormalize` expects floats in value_range; uint8 images need no denormalising.",
    )
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"`x` holds NaN or infinity ({describe(array)}); they have no pixel value. "
            "Check the model output (a diverged GAN produces NaN) before denormalising."
        )
    # pixel = (x - low) / (high - low) * 255, rounded to the nearest integer, clipped to 0..255.
    pixels = np.rint((array.astype(np.float64) - low) / (high - low) * 255)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _augmentation_layers(name, seed, background):
    """Returns the list of seeded Keras preprocessing layers used for dataset `name`."""
    from keras import layers

    # Pixels shifted in from outside the image get the background value (black: the low end
    # of the value range), never a copy of the edge, which would smear items touching it.
    fill = {"fill_mode": "constant", "fill_value": background}
    if name == "mnist":
        # Digits: no flips, a mirrored 7 or 2 is not a digit.
        return [
            layers.RandomRotation(0.03, seed=seed, **fill),  # up to 0.03 turn: about 11 degrees
            layers.RandomTranslation(0.1, 0.1, seed=seed + 1, **fill),
            layers.RandomZoom(0.1, seed=seed + 2, **fill),
        ]
    if name == "fashion_mnist":
        return [
            layers.RandomFlip("horizontal", seed=seed),  # A mirrored shirt is still a shirt.
            layers.RandomTranslation(0.1, 0.1, seed=seed + 1, **fill),
        ]
    return [
        layers.RandomFlip("horizontal", seed=seed),
        # Up to 4 pixels of 32 with reflected borders: the usual pad-and-crop augmentation.
        layers.RandomTranslation(0.125, 0.125, fill_mode="reflect", seed=seed + 1),
    ]


def augmentation(dataset_name, *, seed=0, value_range=(-1.0, 1.0)):
    """Returns a seeded `keras.Sequential` of augmentation layers suited to a dataset.

    mnist: small rotation, translation and zoom, never a flip. fashion_mnist: horizontal
    flip and small translation. cifar10: horizontal flip and translation by up to 4 pixels.
    The layers work on normalised float images; pixels shifted in from outside the image
    are filled with the background (the low end of `value_range`; cifar10 reflects its
    borders instead). They are active when called with `training=True` (as in `fit()` or
    `make_dataset`) and the identity with `training=False`.
    Each layer owns a seed derived from `seed`: a fresh model with the same seed produces the
    same augmentations on the same batches.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Augment".

    Args:
        dataset_name: "mnist", "fashion_mnist" (or "fashion-mnist") or "cifar10".
        seed: integer seed of the first layer; later layers use seed + 1, seed + 2.
        value_range: the range of the images it will see, (-1, 1) or (0, 1).

    Returns:
        A `keras.Sequential` named "augmentation_<dataset_name>".

    Raises:
        ValueError: if `dataset_name` is not one of the known names, or `value_range`
            is not (-1, 1) or (0, 1).

    Example:
        >>> augment = augmentation("fashion_mnist", seed=0)
        >>> augmented = augment(normalize(x_train[:8]), training=True)
    """
    import keras

    name = canonical_name(dataset_name)
    seed = require_int(seed, "seed", minimum=0)
    background = _check_value_range(value_range)[0]
    layers = _augmentation_layers(name, seed, background)
    return keras.Sequential(layers, name=f"augmentation_{name}")


def _check_pipeline_inputs(images, labels, batch_size):
    """Checks `make_dataset`'s arrays; returns them as NumPy arrays."""
    images = require_array(images, "images", ndim=4, fix="Pass uint8 images of shape (N, H, W, C).")
    if images.dtype != np.uint8:
        raise TypeError(
            f"`images` must be uint8 pixels 0..255 (make_dataset normalises them itself); got "
            f"{describe(images)}. Pass the raw images, e.g. data.x_train."
        )
    if labels is not None:
        labels = require_labels(labels, len(images),
                                fix="or labels=None for an unlabelled pipeline")
    require_int(batch_size, "batch_size", minimum=1)
    return images, labels


def make_dataset(images, labels=None, *, batch_size, shuffle=True, seed=0, augment=None,
                 value_range=(-1.0, 1.0), cache=True, drop_remainder=False):
    """Builds the input pipeline: normalise, cache, shuffle, batch, augment, prefetch.

    The deterministic, per-image work (normalising) is cached after the first epoch; the
    random work (shuffling, augmenting) happens every epoch, differently each epoch and the
    same way for the same seed. Augmenting whole batches is much faster than single images.
    `prefetch` overlaps preparing the next batch with training on the current one.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Build a tf.data pipeline".

    Args:
        images: uint8 array (N, H, W, C).
        labels: optional (N,) integer labels; then the dataset yields `(images, labels)`.
        batch_size: images per batch.
        shuffle: shuffle all N images anew every epoch (seeded).
        seed: seed of the shuffle (the augmentation carries its own seeds).
        augment: optional callable applied to each float batch, e.g. `augmentation(...)`;
            Keras layers are called with `training=True`. None: no augmentation. Its seed
            generators advance as it is used: build a fresh one to repeat a run exactly.
        value_range: (-1, 1) or (0, 1), passed to `normalize`.
        cache: keep the normalised float32 images in memory (4 bytes per pixel) after the
            first epoch. Pass False when memory is short.
        drop_remainder: drop the last, smaller batch (useful for GAN training steps).

    Returns:
        A `tf.data.Dataset` of float32 image batches, or of `(images, labels)` with int64 labels.

    Raises:
        TypeError: if `images` is not uint8 or `augment` is not callable.
        ValueError: on mismatched lengths, bad shapes or a bad `value_range`.

    Example:
        >>> train_ds = make_dataset(x_train, y_train, batch_size=128, augment=augmentation("mnist"))
        >>> model.fit(train_ds, epochs=EPOCHS)
    """
    import tensorflow as tf

    images, labels = _check_pipeline_inputs(images, labels, batch_size)
    scale, offset = _scale_offset(value_range)
    if augment is not None and not callable(augment):
        raise TypeError(
            f"`augment` must be callable, e.g. augmentation('mnist'); got {describe(augment)}."
        )
    labelled = labels is not None
    dataset = tf.data.Dataset.from_tensor_slices((images, labels) if labelled else images)

    def rescale(pixels):
        # x = pixel * scale + offset, the same float32 arithmetic as `normalize`.
        return tf.cast(pixels, tf.float32) * scale + offset

    dataset = _map_images(dataset, rescale, labelled, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if augment is not None:
        # No num_parallel_calls: the random layers draw from their seed generators in turn,
        # and a sequential map keeps which batch gets which draw deterministic.
        dataset = _map_images(dataset, _training_call(augment), labelled)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _map_images(dataset, fn, labelled, **map_kwargs):
    """Applies `fn` to the images of every element of `dataset`, passing labels through."""
    if labelled:
        return dataset.map(lambda x, y: (fn(x), y), **map_kwargs)
    return dataset.map(fn, **map_kwargs)


def _training_call(augment):
    """Returns `augment` as a function of a batch; Keras layers get `training=True`."""
    import keras

    if isinstance(augment, keras.Layer):
        return lambda x: augment(x, training=True)
    return augment
