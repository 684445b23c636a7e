"""Label conditioning: the pieces that turn a generator p(x) into p(x | y).

A label y in 0..K-1 enters a network through a learned embedding: concatenated to the latent
vector z in a generator (Mirza & Osindero, 2014), reshaped to one extra image channel in a
discriminator or an encoder, or projected onto a discriminator's features (Miyato & Koyama,
2018). Also the convolutional builders of the conditional GAN and the AC-GAN (Odena et al., 2017), following the DCGAN rules of `dgm_course.dcgan`, and the checks
every conditional model shares. The models are in `conditional_gan` and `conditional_vae`.
Explained in notebooks/08_conditional.ipynb, section "Condition on a label".
"""

import keras
import numpy as np
from keras import layers, ops

from dgm_course import dcgan
from dgm_course._validation import describe, require_array, require_int


def check_labels(labels, num_classes, *, n=None):
    """Returns `labels` as an int32 NumPy array (N,), or raises a clear error.

    Args:
        labels: integer class labels, shape (N,).
        num_classes: K; every label must lie in 0..K-1.
        n: if given, the number of labels expected (one per image).

    Raises:
        TypeError: for float or non-numeric labels (one-hot rows, say).
        ValueError: for labels of the wrong shape, count or range.
    """
    labels = require_array(labels, "labels", ndim=1, dtype_kinds="ui",
                           fix="Pass integer class labels of shape (N,), e.g. y_train, not "
                               "one-hot rows or floats.")
    if n is not None and len(labels) != n:
        raise ValueError(f"`labels` has {len(labels)} entries but there are {n} images; pass "
                         "one label per image (e.g. x_train with y_train).")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"`labels` must lie in 0..{num_classes - 1} (num_classes="
                         f"{num_classes}); got values in {labels.min()}..{labels.max()}. "
                         "Build the model with the data's number of classes.")
    return labels.astype(np.int32)


def conditional_input(z, labels, embedding):
    """Returns concat(z, embedding(labels)): the latent vector with the label's embedding.

    Explained in notebooks/08_conditional.ipynb, section "Condition on a label".

    Args:
        z: latent vectors (batch, latent_dim).
        labels: integer labels (batch,).
        embedding: a `layers.Embedding(num_classes, embedding_dim)` owned by *this* network.

    Returns:
        A tensor (batch, latent_dim + embedding_dim).

    Example:
        >>> conditional_input(ops.zeros((4, 64)), np.arange(4), layers.Embedding(10, 16)).shape
        (4, 80)
    """
    # h = [z, e_y], e_y = E[y] a learned row per class  # (batch, latent_dim + embedding_dim)
    return ops.concatenate([z, embedding(labels)], axis=-1)


def label_channel(labels, embedding, image_shape):
    """Returns each label's embedding reshaped to one (H, W, 1) channel: a learned image per
    class, to concatenate to the images (`embedding` must have H * W outputs)."""
    height, width = image_shape[:2]
    return layers.Reshape((height, width, 1))(embedding(labels))  # (batch, H, W, 1)


def _inputs(image_shape, *, with_labels):
    images = keras.Input(image_shape, name="images")
    return (images, keras.Input((), dtype="int32", name="labels")) if with_labels else (images,)


def _features(x, stages, width):
    """The DCGAN discriminator's convolutions (dcgan.build_discriminator), on any channels."""
    for stage in range(stages):
        x = layers.Conv2D(width * 2**stage, 4, strides=2, padding="same")(x)
        if stage > 0:  # No batch norm at the input (Radford et al.).
            x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(0.2)(x)
    return layers.Flatten()(x)


def build_conditional_generator(image_shape=(28, 28, 1), *, num_classes=10, latent_dim=64,
                                embedding_dim=16, width=32):
    """Returns a generator [z (batch, latent_dim), labels (batch,)] -> images in [-1, 1].

    G(z, y) = DCGAN generator(concat(z, embed(y))): `dcgan.build_generator` on the longer input.
    Explained in notebooks/08_conditional.ipynb, section "Condition on a label".

    Args:
        image_shape: (28, 28, 1) or (32, 32, 3).
        num_classes: K, the number of labels.
        latent_dim: size of z ~ N(0, I).
        embedding_dim: size of the label's embedding.
        width: as in `dcgan.build_generator`.

    Returns:
        A functional `keras.Model` named "conditional_generator".

    Example:
        >>> build_conditional_generator().output_shape
        (None, 28, 28, 1)
    """
    num_classes = require_int(num_classes, "num_classes", minimum=2)
    latent_dim = require_int(latent_dim, "latent_dim", minimum=1)
    embedding_dim = require_int(embedding_dim, "embedding_dim", minimum=1)
    z = keras.Input((latent_dim,), name="z")
    labels = keras.Input((), dtype="int32", name="labels")
    body = dcgan.build_generator(image_shape, latent_dim=latent_dim + embedding_dim, width=width)
    embedding = layers.Embedding(num_classes, embedding_dim, name="label_embedding")
    images = body(conditional_input(z, labels, embedding))
    return keras.Model([z, labels], images, name="conditional_generator")


def build_conditional_discriminator(image_shape=(28, 28, 1), *, num_classes=10, width=32):
    """Returns a discriminator [images, labels (batch,)] -> logit (batch, 1) of D(x, y).

    The label enters as one more image channel, a learned H x W map per class, so that every
    convolution sees the image and the class it is claimed to be (Mirza & Osindero, 2014,
    concatenate y to the input). Then DCGAN convolutions and one logit.
    Explained in notebooks/08_conditional.ipynb, section "The conditional GAN".

    Args:
        image_shape: (28, 28, 1) or (32, 32, 3).
        num_classes: K, the number of labels.
        width: channels of the first convolution.

    Returns:
        A functional `keras.Model` named "conditional_discriminator".
    """
    shape, stages = dcgan._stages(image_shape)
    num_classes = require_int(num_classes, "num_classes", minimum=2)
    images, labels = _inputs(shape, with_labels=True)
    embedding = layers.Embedding(num_classes, shape[0] * shape[1], name="label_embedding")
    x = ops.concatenate([images, label_channel(labels, embedding, shape)], axis=-1)  # (b,H,W,C+1)
    features = _features(x, stages, require_int(width, "width", minimum=1))
    logit = layers.Dense(1, name="logit")(features)
    return keras.Model([images, labels], logit, name="conditional_discriminator")


def build_projection_discriminator(image_shape=(28, 28, 1), *, num_classes=10, width=32):
    """Returns a discriminator [images, labels (batch,)] -> logit (batch, 1) with a projection.

    D's logit = w . phi(x) + b + e_y . phi(x): phi the DCGAN convolutions (flattened features),
    w and b one dense unit, e_y a learned vector per class (Miyato & Koyama, 2018). The label does not enter
    the convolutions; it picks the direction in feature space along which the image must score.
    Where the label channel asks every filter to learn the classes, the projection term is the
    log-ratio log p_data(y | x) / p_G(y | x) the optimal discriminator needs, in one inner product.
    Explained in notebooks/08_conditional.ipynb, section "The conditional GAN".

    Args:
        image_shape: (28, 28, 1) or (32, 32, 3).
        num_classes: K, the number of labels.
        width: channels of the first convolution.

    Returns:
        A functional `keras.Model` named "projection_discriminator".

    Example:
        >>> build_projection_discriminator().output_shape
        (None, 1)
    """
    shape, stages = dcgan._stages(image_shape)
    num_classes = require_int(num_classes, "num_classes", minimum=2)
    images, labels = _inputs(shape, with_labels=True)
    features = _features(images, stages, require_int(width, "width", minimum=1))  # (batch, F)
    embedding = layers.Embedding(num_classes, features.shape[-1], name="class_projection")
    unconditional = layers.Dense(1, name="logit")(features)  # w . phi(x) + b  # (batch, 1)
    # e_y . phi(x)  # (batch, 1)
    projection = ops.sum(embedding(labels) * features, axis=-1, keepdims=True)
    return keras.Model([images, labels], unconditional + projection,
                       name="projection_discriminator")


def build_auxiliary_discriminator(image_shape=(28, 28, 1), *, num_classes=10, width=32):
    """Returns the AC-GAN discriminator images -> [source logit (batch, 1), class logits (batch, K)].

    It does not see the label: one convolutional body, two heads, P(S = real | x) and
    P(C = c | x) (Odena et al., 2017). Explained in notebooks/08_conditional.ipynb, section
    "The AC-GAN".

    Args:
        image_shape: (28, 28, 1) or (32, 32, 3).
        num_classes: K, the number of classes of the auxiliary classifier.
        width: channels of the first convolution.

    Returns:
        A functional `keras.Model` named "auxiliary_discriminator".
    """
    shape, stages = dcgan._stages(image_shape)
    num_classes = require_int(num_classes, "num_classes", minimum=2)
    (images,) = _inputs(shape, with_labels=False)
    features = _features(images, stages, require_int(width, "width", minimum=1))
    source_logit = layers.Dense(1, name="source_logit")(features)
    class_logits = layers.Dense(num_classes, name="class_logits")(features)
    return keras.Model(images, [source_logit, class_logits], name="auxiliary_discriminator")


def class_noise(label, n, *, latent_dim, num_classes, seed):
    """Returns (z (n, latent_dim) ~ N(0, I) drawn with `seed`, labels (n,) all equal to `label`),
    the inputs of n samples of one class, after checking the arguments."""
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise TypeError(f"`label` must be one integer class in 0..{num_classes - 1}; got "
                        f"{describe(label)}. For several classes call generate_class once per class.")
    if not 0 <= int(label) < num_classes:
        raise ValueError(f"`label` must lie in 0..{num_classes - 1}; got {label}.")
    n = require_int(n, "n", minimum=1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer, keras.random.SeedGenerator)):
        raise TypeError(f"`seed` must be an int or a keras.random.SeedGenerator; got "
                        f"{describe(seed)}. Example: generate_class(3, 16, seed=0).")
    z = keras.random.normal((n, latent_dim), seed=seed)  # z ~ N(0, I)  # (n, latent_dim)
    return z, ops.full((n,), int(label), dtype="int32")  # (n,)


def check_image_shape(shape, expected, what):
    """Raises a ValueError if a batch's per-example `shape` is not the model's `expected`."""
    passed = tuple(shape)
    if len(passed) != len(expected) or any(p is not None and p != e
                                            for p, e in zip(passed, expected)):
        raise ValueError(f"{what} has per-example shape {passed} but the model is built for "
                         f"{tuple(expected)} images. Build the networks for the data's shape, "
                         "or add the channel axis to greyscale images (x[..., None]).")


def check_training_data(x, y, *, image_shape, num_classes):
    """Checks what a conditional model's `fit(x, y)` got: images of the model's shape with one
    label in 0..K-1 each (arrays), or a dataset of (images, labels) tuples; raises otherwise."""
    spec = getattr(x, "element_spec", None)
    if spec is not None:  # A tf.data.Dataset: shapes are checked, values only at run time.
        if not isinstance(spec, (tuple, list)) or len(spec) < 2:
            split_batch(spec)
        check_image_shape(spec[0].shape[1:], image_shape, "The dataset's images")
        return
    if y is None:
        split_batch(x)
    check_image_shape(np.shape(x)[1:], image_shape, "`x`")
    check_labels(y, num_classes, n=len(x))


def split_batch(data):
    """Returns (images, labels) of a batch from fit(); raises if the labels are missing."""
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        raise ValueError("A conditional model trains on (images, labels) pairs; the batch holds "
                         "no labels. Call fit(x_train, y_train, ...) or pass a dataset of "
                         "(images, labels) tuples.")
    return data[0], data[1]


__all__ = ["build_auxiliary_discriminator", "build_conditional_discriminator",
           "build_conditional_generator", "build_projection_discriminator", "check_image_shape", "check_labels", "check_training_data",
           "class_noise",
           "conditional_input", "label_channel", "split_batch"]
