"""Convolutional generators, discriminators and critics for 28x28x1 and 32x32x3 images, following
the DCGAN guidelines (Radford et al., 2015): strided convolutions instead of pooling, batch norm
except at the generator's output and the discriminator's input, ReLU in the generator with a
tanh output (images scaled to [-1, 1]), LeakyReLU(0.2) in the discriminator.

Train them with `dgm_course.gan.GAN` (non-saturating loss) or `dgm_course.wgan.WGAN` (critic).
Explained in chapter 04 (DCGAN) and chapter 05 (Wasserstein GANs).
"""

import keras
from keras import layers

from dgm_course._validation import describe, require_int
from dgm_course.gan import MinibatchStdDev

# image_shape -> how many stride-2 stages take the smallest feature map to the image.
SUPPORTED_SHAPES = {(28, 28, 1): 2, (32, 32, 3): 3}  # 7 -> 14 -> 28; 4 -> 8 -> 16 -> 32


def _stages(image_shape):
    """Returns (image_shape as a tuple, number of stride-2 stages), or raises a ValueError."""
    try:
        shape = tuple(int(size) for size in image_shape)
    except (TypeError, ValueError):
        shape = None
    if shape not in SUPPORTED_SHAPES:
        supported = " or ".join(str(s) for s in SUPPORTED_SHAPES)
        raise ValueError(f"`image_shape` must be {supported} (height, width, channels); got "
                         f"{describe(image_shape)}. Add a channel axis to greyscale images "
                         "(x[..., None]), or resize/pad other sizes to one of these.")
    return shape, SUPPORTED_SHAPES[shape]


def build_generator(image_shape=(28, 28, 1), *, latent_dim=64, width=64):
    """Returns a DCGAN generator z (batch, latent_dim) -> images (batch, *image_shape) in [-1, 1].

    A dense layer makes a small feature map (7x7 for 28x28, 4x4 for 32x32) with
    width * 2**(stages - 1) channels; each stride-2 transposed convolution doubles its side
    and halves its channels; the last one makes the image, with tanh and no batch norm.

    Args:
        image_shape: (28, 28, 1) or (32, 32, 3).
        latent_dim: size of z ~ N(0, I).
        width: channels of the largest hidden feature map.

    Returns:
        A `keras.Sequential` named "generator".

    Raises:
        ValueError: for an unsupported `image_shape`.

    Example:
        >>> build_generator((28, 28, 1), latent_dim=64).output_shape
        (None, 28, 28, 1)
    """
    (height, _, channels), stages = _stages(image_shape)
    latent_dim = require_int(latent_dim, "latent_dim", minimum=1)
    width = require_int(width, "width", minimum=1)
    side, filters = height // 2**stages, width * 2 ** (stages - 1)
    stack = [keras.Input((latent_dim,)),
             layers.Dense(side * side * filters, use_bias=False),  # Bias is redundant before BN.
             layers.Reshape((side, side, filters)),
             layers.BatchNormalization(), layers.ReLU()]  # Batch norm per channel.
    for stage in range(stages - 1):
        stack += [layers.Conv2DTranspose(filters // 2 ** (stage + 1), 4, strides=2,
                                         padding="same", use_bias=False),
                  layers.BatchNormalization(), layers.ReLU()]
    # No batch norm at the output: it would pin every image's statistics.
    stack.append(layers.Conv2DTranspose(channels, 4, strides=2, padding="same",
                                        activation="tanh"))
    return keras.Sequential(stack, name="generator")


def _convolutional_scorer(image_shape, width, normalization, minibatch_std, name):
    """Strided convolutions with LeakyReLU(0.2), then one raw score per image (batch, 1)."""
    shape, stages = _stages(image_shape)
    width = require_int(width, "width", minimum=1)
    stack = [keras.Input(shape)]
    for stage in range(stages):
        stack.append(layers.Conv2D(width * 2**stage, 4, strides=2, padding="same"))
        if stage > 0 and normalization == "batch":  # None at the input (Radford et al.).
            stack.append(layers.BatchNormalization())
        elif stage > 0 and normalization == "layer":  # Per example, so WGAN-GP's penalty holds.
            stack.append(layers.LayerNormalization(axis=(1, 2, 3)))
        stack.append(layers.LeakyReLU(0.2))
    stack.append(layers.Flatten())
    if minibatch_std:
        stack.append(MinibatchStdDev())  # Before the last layer, as in Karras et al. (2018).
    stack.append(layers.Dense(1))  # A logit or a critic score: no activation.
    return keras.Sequential(stack, name=name)


def build_discriminator(image_shape=(28, 28, 1), *, width=64, minibatch_std=False):
    """Returns a DCGAN discriminator images (batch, *image_shape) -> logit (batch, 1).

    Stride-2 convolutions (width, 2 * width, ...) with LeakyReLU(0.2) and batch norm on every
    block but the first, then one dense logit (the losses apply the sigmoid stably).

    Args:
        image_shape: (28, 28, 1) or (32, 32, 3).
        width: channels of the first convolution.
        minibatch_std: if True, a `gan.MinibatchStdDev` feature joins the flattened features
            before the logit (a remedy for mode collapse).

    Returns:
        A `keras.Sequential` named "discriminator".

    Raises:
        ValueError: for an unsupported `image_shape`.

    Example:
        >>> build_discriminator((32, 32, 3)).output_shape
        (None, 1)
    """
    return _convolutional_scorer(image_shape, width, "batch", minibatch_std, "discriminator")


def build_critic(image_shape=(28, 28, 1), *, width=64, layer_norm=True):
    """Returns a Wasserstein critic images (batch, *image_shape) -> score (batch, 1).

    The discriminator's architecture without batch norm: the gradient penalty is taken per
    example, and batch norm makes each score depend on the whole batch (Gulrajani et al.,
    2017, section 4). Layer norm (per example) or nothing takes its place.

    Args:
        image_shape: (28, 28, 1) or (32, 32, 3).
        width: channels of the first convolution.
        layer_norm: if True, layer norm on every block but the first; use False with
            weight clipping, which would also clip layer norm's scales to +-c.

    Returns:
        A `keras.Sequential` named "critic".

    Raises:
        ValueError: for an unsupported `image_shape`.
    """
    normalization = "layer" if layer_norm else None
    return _convolutional_scorer(image_shape, width, normalization, False, "critic")
