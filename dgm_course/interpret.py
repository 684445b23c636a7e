"""Looking inside trained models: latent traversals of a VAE (what one coordinate of z
controls), the KL of each latent coordinate (which coordinates are used at all), and
input-gradient saliency (which pixels move a classifier's or a discriminator's score).
Explained in notebooks/12_outlook.ipynb, section "Interpretability".
"""

import numpy as np
import tensorflow as tf
from keras import ops

from dgm_course._validation import describe, require_array, require_int


def latent_traversal(decode, z, *, dims, values):
    """Decodes copies of one code z in which a single coordinate is swept over `values`.

    Row i of the result changes only coordinate dims[i] of z, to values[0], values[1], ...:
    what the decoder draws as that one number moves while all others stay fixed.
    Explained in notebooks/12_outlook.ipynb, section "Interpretability".

    Args:
        decode: a callable codes (n, latent_dim) -> images, e.g. `vae.VAE.decode`.
        z: one code (latent_dim,), e.g. an image's posterior mean.
        dims: the coordinates to sweep, one row each.
        values: the values each swept coordinate takes, one column each.

    Returns:
        A NumPy array (len(dims) * len(values), ...) of images, row by row (ready for
        `plotting.image_grid(..., ncols=len(values))`).

    Raises:
        ValueError: if `z` is not 1-D, a dim is out of range, or dims/values are empty.

    Example:
        >>> grid = latent_traversal(vae.decode, z_mean[0], dims=[0, 1], values=[-2, 0, 2])
        >>> plotting.image_grid(grid, ncols=3)
    """
    z = require_array(z, "z", ndim=1, dtype_kinds="fi",
                      fix="Pass one code, e.g. z_mean[0], not a batch.").astype(np.float32)
    dims = [require_int(dim, "dims", minimum=0, maximum=len(z) - 1) for dim in dims]
    values = require_array(values, "values", ndim=1, dtype_kinds="fi").astype(np.float32)
    if not dims or not values.size:
        raise ValueError(f"`dims` and `values` must be non-empty; got {len(dims)} dims and "
                         f"{values.size} values. Example: dims=[0, 1], values=[-2, 0, 2].")
    codes = np.repeat(z[None, :], len(dims) * values.size, axis=0)  # (rows * columns, latent_dim)
    for row, dim in enumerate(dims):
        codes[row * values.size:(row + 1) * values.size, dim] = values
    return ops.convert_to_numpy(decode(codes))


def kl_per_dimension(z_mean, z_log_var):
    """Returns each latent coordinate's KL(q(z_j | x) || N(0, 1)), averaged over the examples.

    A coordinate whose average KL is near 0 carries no information about x: the encoder
    outputs the prior for it whatever the image (an "inactive unit", Burda et al. 2016), and
    traversing it changes nothing. The sum over coordinates is the VAE's KL term.
    Explained in notebooks/12_outlook.ipynb, section "Interpretability".

    Args:
        z_mean: (N, latent_dim) posterior means.
        z_log_var: (N, latent_dim) posterior log-variances.

    Returns:
        A float64 NumPy array (latent_dim,) of KLs in nats.

    Raises:
        ValueError: if the two arrays differ in shape or are not 2-D.
    """
    z_mean = require_array(z_mean, "z_mean", ndim=2, dtype_kinds="f").astype(np.float64)
    z_log_var = require_array(z_log_var, "z_log_var", ndim=2, dtype_kinds="f").astype(np.float64)
    if z_mean.shape != z_log_var.shape:
        raise ValueError(f"`z_mean` and `z_log_var` must have the same shape; got "
                         f"{describe(z_mean)} and {describe(z_log_var)}. Pass both outputs "
                         "of the encoder.")
    # kl_j = mean_n 0.5 * (z_mean**2 + exp(z_log_var) - 1 - z_log_var)  # (latent_dim,)
    return np.mean(0.5 * (z_mean**2 + np.exp(z_log_var) - 1.0 - z_log_var), axis=0)


def _score(model, images, class_index):
    """The scalar per image whose gradient is taken (batch,)."""
    outputs = model(images, training=False)
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[0]  # E.g. [class logits, features] of a semi-supervised discriminator.
    outputs = ops.reshape(outputs, (ops.shape(outputs)[0], -1))  # (batch, outputs)
    if outputs.shape[-1] == 1:
        return outputs[:, 0]  # A discriminator's one logit.
    if class_index is None:
        class_index = ops.argmax(outputs, axis=-1)  # The predicted class.
    class_index = ops.broadcast_to(ops.cast(class_index, "int32"), (ops.shape(outputs)[0],))
    return ops.take_along_axis(outputs, class_index[:, None], axis=1)[:, 0]


def input_gradients(model, images, *, class_index=None):
    """Returns d score / d image for each image: how each pixel moves the model's score.

    The score is the model's output before any sigmoid or softmax: a discriminator's logit
    (one output), or for a classifier the logit of `class_index` (default: the predicted
    class). Simonyan et al. (2014) call |gradient| a saliency map.
    Explained in notebooks/12_outlook.ipynb, section "Interpretability".

    Args:
        model: a Keras model images -> logits (batch, K) or (batch, 1); a model with several
            outputs is scored on its first.
        images: float images (batch, H, W, C), as the model takes them.
        class_index: None, an int, or one int per image (classifiers only).

    Returns:
        A float32 NumPy array shaped like `images`.

    Raises:
        TypeError: for integer images (normalise them first, as for training).

    Example:
        >>> gradients = input_gradients(classifier, x_test[:8])
        >>> plotting.image_pairs(x_test[:8], saliency_map(gradients))
    """
    images = require_array(images, "images", ndim=4, dtype_kinds="f",
                           fix="Pass normalised float images (batch, H, W, C).")
    x = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        # Each image's score depends on that image only: the gradient of the sum is per image.
        total = ops.sum(_score(model, x, class_index))  # scalar
    return tape.gradient(total, x).numpy()


def saliency_map(gradients):
    """Returns |gradient|, its maximum over colour channels, scaled to [0, 1] per image.

    Explained in notebooks/12_outlook.ipynb, section "Interpretability".

    Args:
        gradients: (batch, H, W, C) from `input_gradients`.

    Returns:
        A float32 NumPy array (batch, H, W, 1) whose largest value per image is 1 (or all 0).
    """
    gradients = require_array(gradients, "gradients", ndim=4, dtype_kinds="f")
    magnitude = np.max(np.abs(gradients), axis=-1, keepdims=True)  # (batch, H, W, 1)
    peak = magnitude.max(axis=(1, 2, 3), keepdims=True)
    return (magnitude / np.where(peak > 0, peak, 1.0)).astype(np.float32)
