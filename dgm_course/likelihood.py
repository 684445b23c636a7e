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
`binarized_dataset(..., perturb_rate=mu)` and `likelihood_ratio`.
Measured in both directions by benchmarks/rejection.py (results in benchmarks/results/).
"""

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
    model, background = (require_array(values, name, ndim=1, dtype_kinds="fi",
                                       fix="Pass one log-likelihood per image.")
                         for values, name in ((log_p_model, "log_p_model"),
                                              (log_p_background, "log_p_background")))
    if len(model) != len(background):
        raise ValueError(f"`log_p_model` has {len(model)} entries and `log_p_background` "
                         f"{len(background)}; pass both for the same images.")
    if not (np.all(np.isfinite(model)) and np.all(np.isfinite(background))):
        raise ValueError("the log-likelihoods must be finite; got NaN or infinity. Check that "
                         "the images are binary and the models trained without diverging.")
    # LLR(x) = log p_theta(x) - log p_theta0(x)  # (n,)
    return model.astype(np.float64) - background.astype(np.float64)


__all__ = ["binarized_dataset", "likelihood_ratio"]
