"""Convolutional encoders and decoders for a VAE on images, and the binarisation that gives
MNIST a Bernoulli likelihood. Train them with `dgm_course.vae.VAE`, which owns the loss
(-ELBO with weight beta on the KL), `train_step`, `test_step` and the importance-weighted
estimate of log p(x).
Explained in notebooks/07_conv_vae.ipynb.
"""

import keras
import numpy as np
from keras import layers

from dgm_course._progress import progress
from dgm_course._validation import describe, require_array, require_choice, require_int
from dgm_course.dcgan import _stages
from dgm_course.vae import LIKELIHOODS


def build_encoder(image_shape=(28, 28, 1), *, latent_dim=16, width=32):
    """Returns an encoder images (batch, *image_shape) -> [z_mean, z_log_var] (batch, latent_dim).

    Stride-2 convolutions (width, 2 * width, ...) with ReLU halve the side at each stage
    (28 -> 14 -> 7, or 32 -> 16 -> 8 -> 4), then a dense layer of 8 * width units, then two
    linear heads: the mean and the log-variance of q(z | x) = N(z_mean, exp(z_log_var)).
    No batch norm: the VAE's loss is per example, and batch norm would make each example's
    code depend on the rest of its batch.
    Explained in notebooks/07_conv_vae.ipynb, section "Build the encoder and the decoder".

    Args:
        image_shape: (28, 28, 1) or (32, 32, 3).
        latent_dim: size of z.
        width: channels of the first convolution.

    Returns:
        A functional `keras.Model` named "encoder" with two outputs.

    Raises:
        ValueError: for an unsupported `image_shape` or a size below 1.
        TypeError: for a size that is not an integer.

    Example:
        >>> [tuple(t.shape) for t in build_encoder(latent_dim=2).outputs]
        [(None, 2), (None, 2)]
    """
    shape, stages = _stages(image_shape)
    latent_dim = require_int(latent_dim, "latent_dim", minimum=1)
    width = require_int(width, "width", minimum=1)
    x = keras.Input(shape, name="x")
    h = x
    for stage in range(stages):
        h = layers.Conv2D(width * 2**stage, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Dense(8 * width, activation="relu")(layers.Flatten()(h))
    z_mean = layers.Dense(latent_dim, name="z_mean")(h)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(h)  # Linear: any real log-variance.
    return keras.Model(x, [z_mean, z_log_var], name="encoder")


def build_decoder(latent_dim=16, image_shape=(28, 28, 1), *, likelihood="bernoulli", width=32):
    """Returns a decoder z (batch, latent_dim) -> (batch, *image_shape), the encoder's mirror.

    A dense layer makes the smallest feature map (7x7 or 4x4) with width * 2**(stages - 1)
    channels; stride-2 transposed convolutions with ReLU double its side; a last 3x3
    convolution makes one linear output per pixel and channel:
    - `likelihood="bernoulli"`: the logits of p(x | z) (`VAE.decode` applies the sigmoid;
      the loss works from the logits, stable for any size);
    - `likelihood="gaussian"`: the mean of p(x | z), unbounded (the VAE learns the variance).
    Explained in notebooks/07_conv_vae.ipynb, section "Build the encoder and the decoder".

    Args:
        latent_dim: size of z.
        image_shape: (28, 28, 1) or (32, 32, 3).
        likelihood: "bernoulli" or "gaussian"; pass the same to `vae.VAE`.
        width: channels of the last hidden feature map (the encoder's first convolution).

    Returns:
        A `keras.Sequential` named "decoder".

    Raises:
        ValueError: for an unsupported `image_shape`, likelihood, or a size below 1.
        TypeError: for a size that is not an integer.

    Example:
        >>> build_decoder(2).output_shape
        (None, 28, 28, 1)
    """
    (height, _, channels), stages = _stages(image_shape)
    latent_dim = require_int(latent_dim, "latent_dim", minimum=1)
    width = require_int(width, "width", minimum=1)
    require_choice(likelihood, "likelihood", LIKELIHOODS)
    side, filters = height // 2**stages, width * 2 ** (stages - 1)
    stack = [keras.Input((latent_dim,), name="z"),
             layers.Dense(side * side * filters, activation="relu"),
             layers.Reshape((side, side, filters))]
    for stage in range(stages):
        stack.append(layers.Conv2DTranspose(max(width, filters // 2 ** (stage + 1)), 3, strides=2,
                                            padding="same", activation="relu"))
    # No activation: logits (bernoulli) or the mean (gaussian); see the docstring.
    stack.append(layers.Conv2D(channels, 3, padding="same", name=f"{likelihood}_output"))
    return keras.Sequential(stack, name="decoder")


def binarize(images, *, seed):
    """Samples binary images: each pixel is 1 with probability its grey level / 255.

    This is the stochastic binarisation of MNIST used for Bernoulli likelihoods (Salakhutdinov
    & Murray 2008); with a fixed seed the binary set is fixed, and a different seed per
    epoch gives dynamic binarisation. Explained in notebooks/07_conv_vae.ipynb, section
    "Binarised MNIST".

    Args:
        images: uint8 images in [0, 255], any shape.
        seed: an int seed for NumPy's generator.

    Returns:
        A float32 array of 0s and 1s, of the images' shape.

    Raises:
        TypeError: if the images are not uint8 or the seed not an integer.

    Example:
        >>> binarize(np.array([[0, 255]], np.uint8), seed=0)
        array([[0., 1.]], dtype=float32)
    """
    images = require_array(images, "images", dtype_kinds="u",
                           fix="Pass the raw uint8 images in [0, 255] (dataset.x_train).")
    if images.dtype != np.uint8:
        raise TypeError(f"`images` must be uint8 in [0, 255]; got {describe(images)}. Pass the "
                        "raw images (dataset.x_train), before any normalisation.")
    seed = require_int(seed, "seed", minimum=0)
    uniform = np.random.default_rng(seed).random(images.shape, dtype=np.float32)
    return (uniform * 255.0 < images).astype(np.float32)  # P(1) = grey level / 255


def estimate_log_likelihood(model, x, *, k, seed, batch_size=100):
    """Estimates log p(x) of each image with the importance-weighted bound L_k, batch by batch.

    `VAE.log_likelihood_bound` decodes k * batch images at once; for convolutional decoders
    that is gigabytes of feature maps, so this helper feeds it `batch_size` images at a time
    (k * batch_size decoder rows), with one seed generator across batches and a progress bar.
    Explained in notebooks/07_conv_vae.ipynb, section "Test log-likelihood".

    Args:
        model: a trained `vae.VAE`.
        x: images (n, *image_shape), as the model was trained on.
        k: importance samples per image (1 gives a one-sample ELBO estimate).
        seed: an int seed.
        batch_size: images per call.

    Returns:
        A float64 NumPy array (n,): one estimate of L_k per image, in nats.

    Raises:
        ValueError: if k, seed or batch_size is below its minimum.

    Example:
        >>> -estimate_log_likelihood(model, x_test[:100], k=100, seed=0).mean()  # NLL in nats
    """
    k = require_int(k, "k", minimum=1)
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    generator = keras.random.SeedGenerator(require_int(seed, "seed", minimum=0))
    x = np.asarray(x, np.float32)
    bounds = [keras.ops.convert_to_numpy(model.log_likelihood_bound(x[start:start + batch_size],
                                                                   k=k, seed=generator))
              for start in progress(range(0, len(x), batch_size), enabled=True,
                                    description=f"L_k, k = {k}")]
    return np.concatenate(bounds).astype(np.float64)


__all__ = ["binarize", "build_decoder", "build_encoder", "estimate_log_likelihood"]
