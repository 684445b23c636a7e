"""Honest likelihoods for Bernoulli image models, and scores for refusing unknown images.

A Bernoulli decoder defines a probability distribution over *binary* images: summed over all
2^D of them, p(x | z) is 1. Fed grey levels in [0, 1], the same formula is no longer the log of a
normalised density, so neither are the ELBOs and class likelihoods built on it. The remedy of
Burda et al. (2016) for MNIST: binarise. Training draws a new binarisation every epoch (dynamic
binarisation, `binarized_dataset`); the test set is binarised once, with a fixed seed
(`conv_vae.binarize`), so that every model is scored on the same binary images.

A likelihood alone does not say whether an image is of a known kind: Nalisnick et al. (2019)
found models of Fashion-MNIST giving MNIST digits a *higher* likelihood. Ren et al. (2019)
divide the likelihood by that of a background model trained on perturbed images (`perturb`),
which learns the low-level statistics (how many pixels are background) and little else:
`binarized_dataset(..., perturb_rate=mu)` and `likelihood_ratio`. Serra et al. (2020) subtract
the image's complexity instead, the length in bits of a lossless compression of it:
`complexity_bits` and `complexity_corrected`.
Measured in both directions by benchmarks/rejection.py (results in benchmarks/results/).
"""

import io

import numpy as np
import tensorflow as tf

from dgm_course._validation import (
    describe,
    require_array,
    require_fraction,
    require_int,
)


def _uint8_images(images):
    """Returns `images` as a non-empty uint8 array, or raises saying what to pass."""
    images = require_array(images, "images", dtype_kinds="u",
                           fix="Pass the raw uint8 images in [0, 255] (dataset.x_train).")
    if images.dtype != np.uint8 or images.ndim < 2 or len(images) == 0:
        raise TypeError(f"`images` must be a non-empty batch of uint8 images in [0, 255]; got "
                        f"{describe(images)}. Pass the raw images (dataset.x_train), before any "
                        "normalisation.")
    return images


def binarized_dataset(images, labels=None, *, batch_size, seed, shuffle=True, perturb_rate=None):
    """Returns a `tf.data.Dataset` of batches binarised anew every epoch (dynamic binarisation).

    Each pixel is 1 with probability its grey level / 255, drawn again at every pass over the
    dataset, as `conv_vae.binarize` draws it once. Two datasets made with the same seed give
    the same sequence of epochs, so runs repeat. With `perturb_rate` mu, each binary pixel is
    then replaced with probability mu by a fair coin: the training images of Ren et al.'s
    background model (they give a replaced pixel a random value; mu = 0.1 to 0.3).

    Args:
        images: (n, ...) raw uint8 images.
        labels: None, or (n,) integer labels that travel with their images.
        batch_size: images per batch; the last batch may be smaller.
        seed: an int for the order, the binarisations and the perturbations.
        shuffle: whether to shuffle every epoch.
        perturb_rate: None, or the share mu of pixels replaced, strictly between 0 and 1.

    Returns:
        A dataset of float32 binary image batches, or of (images, labels) pairs.

    Raises:
        TypeError, ValueError: for images that are not uint8, labels that do not match them,
            or bad settings.
    """
    images = _uint8_images(images)
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    seed = require_int(seed, "seed", minimum=0)
    rate = None if perturb_rate is None else require_fraction(perturb_rate, "perturb_rate")
    parts = (images,)
    if labels is not None:
        labels = require_array(labels, "labels", ndim=1, dtype_kinds="ui",
                               fix="Pass one integer label per image, e.g. y_train.")
        if len(labels) != len(images):
            raise ValueError(f"`labels` has {len(labels)} entries and `images` {len(images)}; "
                             "pass one label per image.")
        parts = (images, labels.astype(np.int32))
    dataset = tf.data.Dataset.from_tensor_slices(parts)
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    # One stateless seed per batch, from a seeded stream that changes every epoch.
    batch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    dataset = tf.data.Dataset.zip((dataset.batch(batch_size), batch_seeds))

    def draw(batch, batch_seed):
        x = tf.cast(batch[0], tf.float32) / 255.0
        u = tf.random.stateless_uniform(tf.concat([[3], tf.shape(x)], 0),
                                        seed=batch_seed % (2**31 - 1))  # (3, batch, ...)
        x_binary = tf.cast(u[0] < x, tf.float32)  # P(x_b = 1) = x / 255
        if rate is not None:
            coins = tf.cast(u[2] < 0.5, tf.float32)
            x_binary = tf.where(u[1] < rate, coins, x_binary)  # replaced with probability mu
        return (x_binary, batch[1]) if labels is not None else x_binary

    return dataset.map(draw, num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True).prefetch(tf.data.AUTOTUNE)


def _per_image(first, first_name, second, second_name):
    """Returns two equally long, finite float64 arrays (n,) of per-image values, or raises."""
    first, second = (require_array(values, name, ndim=1, dtype_kinds="fi",
                                   fix="Pass one value per image.").astype(np.float64)
                     for values, name in ((first, first_name), (second, second_name)))
    if len(first) != len(second):
        raise ValueError(f"`{first_name}` has {len(first)} entries and `{second_name}` "
                         f"{len(second)}; pass both for the same images.")
    if not (np.all(np.isfinite(first)) and np.all(np.isfinite(second))):
        raise ValueError(f"`{first_name}` and `{second_name}` must be finite; got NaN or "
                         "infinity. Check that the images are binary and the models trained "
                         "without diverging.")
    return first, second


def likelihood_ratio(log_p_model, log_p_background):
    """Returns Ren et al.'s score log p_model(x) - log p_background(x), one per image: high for
    images whose likelihood the model explains beyond their low-level statistics.

    Args:
        log_p_model: (n,) log-likelihoods (or bounds) of the images under the model.
        log_p_background: (n,) the same images' log-likelihoods under the background model.

    Returns:
        A float64 array (n,).

    Raises:
        TypeError, ValueError: for arrays that are not 1-D, differ in length, or are not finite.

    Example:
        >>> likelihood_ratio([-80.0, -120.0], [-100.0, -110.0])
        array([ 20., -10.])
    """
    model, background = _per_image(log_p_model, "log_p_model", log_p_background,
                                   "log_p_background")
    # LLR(x) = log p_theta(x) - log p_theta0(x)  # (n,)
    return model - background


def complexity_bits(images):
    """Returns L(x), the length in bits of each image compressed as a PNG file (lossless): how
    complex it is, the input complexity of Serra et al. (2020), who used PNG among others.

    Args:
        images: (n, H, W) or (n, H, W, 1) binary images (0.0 and 1.0) or uint8 images.

    Returns:
        A float64 array (n,): 8 x the PNG file's bytes (the same header for every image).

    Raises:
        TypeError, ValueError: for images of another shape, or floats other than 0 and 1.
    """
    from PIL import Image

    images = require_array(images, "images", ndim=(3, 4), dtype_kinds="uf",
                           fix="Pass grey images (n, H, W, 1): uint8, or binary floats.")
    if images.ndim == 4 and images.shape[-1] != 1:
        raise ValueError(f"`images` must have one channel; got {describe(images)}.")
    if images.dtype.kind == "f":
        if not np.all((images == 0.0) | (images == 1.0)):
            raise ValueError("float `images` must be binary (0.0 and 1.0); got other values. "
                             "Binarise them (conv_vae.binarize) or pass the uint8 images.")
        images = (images * 255).astype(np.uint8)
    lengths = []
    for image in images.reshape(images.shape[:3]).astype(np.uint8):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", optimize=True)
        lengths.append(8 * buffer.tell())  # L(x) in bits
    return np.asarray(lengths, np.float64)


def complexity_corrected(log_p, bits):
    """Returns Serra et al.'s score with the sign of a likelihood: log2 p(x) + L(x), one per image.

    Their S(x) = -log2 p(x) - L(x) is high for images the model explains *less* well than a
    generic compressor does; this returns -S(x), so that, like log p(x), low means "unknown".

    Args:
        log_p: (n,) log-likelihoods in nats (e.g. conv_vae.estimate_log_likelihood).
        bits: (n,) complexities in bits (complexity_bits).

    Returns:
        A float64 array (n,), in bits.

    Raises:
        TypeError, ValueError: for arrays that are not 1-D, differ in length, or are not finite.

    Example:
        >>> complexity_corrected([-np.log(2.0) * 100], [300.0])
        array([200.])
    """
    log_p, bits = _per_image(log_p, "log_p", bits, "bits")
    # -S(x) = log2 p(x) + L(x) = log p(x) / ln 2 + L(x)  # (n,)
    return log_p / np.log(2.0) + bits


__all__ = ["binarized_dataset", "complexity_bits", "complexity_corrected", "likelihood_ratio"]
