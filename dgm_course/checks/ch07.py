"""Checks for the exercises of chapter 07, "Convolutional VAE"
(exercises/07_conv_vae.ipynb; the lecture is notebooks/07_conv_vae.ipynb).

Each check runs the learner's answer on cases whose answers are known from a NumPy
transcription of the formula (or from the statistics of many draws), and names the typical
mistake behind a wrong answer. The statistics of the sampling layer reuse chapter 06's checks
of `reparameterize`, the same formula.
"""

import numpy as np

from dgm_course._validation import describe
from dgm_course.checks import fail, passed
from dgm_course.checks.ch06 import (
    _check_sampler_gradient,
    _check_spread,
    _close,
    _numpy,
    _sampler_case,
)

# Exercise 1: the encoder's sampling layer.


def _sampling_layer(sampling_class, seed, exercise):
    import keras

    layer = sampling_class(seed=seed)
    if not isinstance(layer, keras.layers.Layer):
        fail(exercise, f"Sampling(seed={seed}) made {describe(layer)}, not a Keras layer.",
             "class Sampling(keras.layers.Layer): ... with super().__init__(**kwargs).")
    return layer


def _draw(layer, z_mean, z_log_var, exercise):
    return _numpy(layer([z_mean, z_log_var]), exercise, "Sampling()([z_mean, z_log_var])")


def _check_in_a_functional_encoder(sampling_class, exercise):
    """The layer must work on symbolic tensors, after convolutional features, (batch, latent)."""
    import keras
    from keras import layers

    images = keras.Input((8, 8, 1))
    features = layers.Flatten()(layers.Conv2D(4, 3, strides=2, padding="same")(images))
    z_mean, z_log_var = layers.Dense(2)(features), layers.Dense(2)(features)
    try:
        z = sampling_class(seed=0)([z_mean, z_log_var])
        encoder = keras.Model(images, [z_mean, z_log_var, z])
    except NotImplementedError:
        raise
    except Exception as error:  # NumPy in call(), for example, fails on symbolic tensors.
        fail(exercise, f"the layer fails inside a functional encoder ({type(error).__name__}: "
             f"{str(error)[:200]}).", "Write call() with keras.ops and keras.random only, so "
             "that it also runs on the symbolic tensors of keras.Input.")
    outputs = encoder(np.random.default_rng(0).uniform(size=(5, 8, 8, 1)).astype("float32"))
    if tuple(outputs[2].shape) != (5, 2):
        fail(exercise, f"after convolutional features z has shape {tuple(outputs[2].shape)}; "
             "expected (batch, latent_dim) = (5, 2).", "Draw epsilon with ops.shape(z_mean).")


def check_sampling(sampling_class):
    """Exercise 1: `Sampling(seed=...)`, a layer [z_mean, z_log_var] -> z with its own seed."""
    exercise = "Exercise 1"
    z_mean, z_log_var = _sampler_case()
    layer = _sampling_layer(sampling_class, 0, exercise)
    first = _draw(layer, z_mean, z_log_var, exercise)
    if first.shape != z_mean.shape:
        fail(exercise, f"z has shape {first.shape}; expected that of z_mean, {z_mean.shape}.",
             "Draw epsilon with ops.shape(z_mean).")
    _check_spread(first, exercise)
    if np.array_equal(first, _draw(layer, z_mean, z_log_var, exercise)):
        fail(exercise, "two calls of the same layer drew the same z: with an int seed, "
             "keras.random.normal returns the same epsilon every time, so every training step "
             "would reuse one noise draw per position.",
             "Make a keras.random.SeedGenerator(seed) in __init__ and pass it as seed=.")
    again = _draw(_sampling_layer(sampling_class, 0, exercise), z_mean, z_log_var, exercise)
    if not np.array_equal(first, again):
        fail(exercise, "two new layers made with seed=0 drew different z: the noise comes from "
             "a global random state (seed=None, or NumPy), so a re-run changes the results.",
             "self.seed_generator = keras.random.SeedGenerator(seed) in __init__; "
             "keras.random.normal(..., seed=self.seed_generator) in call().")
    other = _draw(_sampling_layer(sampling_class, 1, exercise), z_mean, z_log_var, exercise)
    if np.array_equal(first, other):
        fail(exercise, "layers made with seed=0 and seed=1 drew the same z: the seed is ignored.",
             "Pass the seed argument to keras.random.SeedGenerator.")
    gradient_layer = _sampling_layer(sampling_class, 0, exercise)
    _check_sampler_gradient(lambda m, v, seed=0: gradient_layer([m, v]), exercise)
    _check_in_a_functional_encoder(sampling_class, exercise)
    passed("Sampling draws z = z_mean + exp(0.5 * z_log_var) * epsilon, fresh noise at every "
           "call from its own seed generator, and works inside a functional encoder.")


# Exercise 2: the Bernoulli reconstruction term on a batch of images.


def _image_case(shape, seed):
    rng = np.random.default_rng(seed)
    x = (rng.uniform(size=shape) < 0.3).astype(np.float32)
    logits = rng.normal(0, 3, shape).astype(np.float32)
    logits.reshape(len(x), -1)[0, 0], x.reshape(len(x), -1)[0, 0] = 150.0, 0.0  # -log p = 150
    return x, logits


def _softplus(values):
    return np.logaddexp(0.0, values)


def _reconstruction_mistakes(x, logits, expected, pixels):
    l, batch = logits.astype(np.float64), len(x)
    per_pixel = _softplus(l) - x * l
    p = 1 / (1 + np.exp(-l))
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    return [
        (expected / pixels, (f"the term is averaged over the {pixels} pixels instead of summed (as "
         "keras.losses.binary_crossentropy does): that divides -log p(x | z) by "
         f"{pixels}, the same as multiplying beta by {pixels}; the code then collapses to the "
         "prior."), "Sum over every axis but the batch, then average over the batch."),
        (-expected, ("the sign is flipped: that is log p(x | z), the reconstruction term is "
         "-log p(x | z) (a number of nats to pay, >= 0)."), "sum(softplus(l) - x * l)."),
        (expected * batch, (f"the term is summed over the batch of {batch}: it then grows with the "
         "batch size."), "Average over the batch axis."),
        (np.mean(np.sum((_softplus(p) - x * p).reshape(batch, -1), axis=1)),
         ("a sigmoid was applied before a from-logits formula: the probabilities sigmoid(l) in "
         "[0, 1] were treated as logits, so no pixel can be predicted with confidence."),
         "Use the decoder's logits directly: softplus(l) - x * l."),
        (np.mean(np.sum(-(x * np.log(clipped) + (1 - x) * np.log(1 - clipped)).reshape(batch, -1),
                        axis=1)),
         ("the probabilities were clipped (binary_crossentropy(from_logits=False) on sigmoid(l)): "
         "a confident wrong pixel with logit 150 costs about 16 nats instead of 150."),
         "Work from the logits: softplus(l) - x * l."),
        (np.mean(per_pixel.reshape(batch, -1)), "the term is a mean over pixels and images.",
         "Sum over the pixels of each image, then average over the batch."),
    ]


def check_bernoulli_reconstruction(bernoulli_reconstruction):
    """Exercise 2: `bernoulli_reconstruction(x, logits)`: mean over images of
    sum over pixels of -log p(x_i | z), from logits, a scalar."""
    exercise = "Exercise 2"
    for shape in ((5, 28, 28, 1), (3, 8, 8, 3)):
        x, logits = _image_case(shape, seed=len(shape) + shape[-1])
        try:
            out = _numpy(bernoulli_reconstruction(x, logits), exercise, "bernoulli_reconstruction")
        except NotImplementedError:
            raise
        except Exception as error:  # A hard-coded 784 fails on other image shapes.
            fail(exercise, f"for images of shape {shape} the function fails "
                 f"({type(error).__name__}: {str(error)[:160]}). Is 28 * 28 = 784 written into it?",
                 "Sum over axes 1, 2 and 3 (every axis but the batch) instead of reshaping to 784.")
        if not np.all(np.isfinite(out)):
            fail(exercise, "the result is not finite for a pixel x = 0 with logit 150: "
                 "log(sigmoid(l)) overflows once sigmoid rounds to 1.",
                 "-log p(x | z) = softplus(l) - x * l per pixel: never take the log of a sigmoid.")
        if out.shape == (shape[0],):
            fail(exercise, f"one value per image, shape {out.shape}; the loss is their mean over "
                 "the batch, a scalar.", "Take ops.mean over the batch axis at the end.")
        if out.shape != ():
            fail(exercise, f"for images of shape {shape} the result has shape {out.shape}; "
                 "expected a scalar. Sum over every axis but the batch (height, width and "
                 "channels), not only the last one.", "ops.sum(..., axis=(1, 2, 3)), then ops.mean.")
        pixels = int(np.prod(shape[1:]))
        expected = np.mean(np.sum((_softplus(logits.astype(np.float64)) - x * logits).reshape(
            shape[0], -1), axis=1))
        for wrong, problem, hint in _reconstruction_mistakes(x, logits, expected, pixels):
            if not _close(out, expected, 1e-3) and _close(out, wrong, 1e-3):
                fail(exercise, problem, hint)
        if not _close(out, expected, 1e-3):
            fail(exercise, f"for images of shape {shape} got {float(out):.3f}; expected "
                 f"{expected:.3f}.", "mean over images of sum over pixels of softplus(l) - x * l.")
    passed("bernoulli_reconstruction sums softplus(l) - x * l over the pixels of each image and "
           "averages over the batch, stable for extreme logits, for any image shape.")


# Exercise 3: linear interpolation between two codes.


def check_interpolate(interpolate):
    """Exercise 3: `interpolate(z_a, z_b, steps)` -> (steps, latent_dim), z_a first, z_b last."""
    exercise = "Exercise 3"
    z_a, z_b, steps = np.array([1.0, -2.0, 0.5]), np.array([-1.0, 2.0, 3.0]), 5
    out = _numpy(interpolate(z_a.astype(np.float32), z_b.astype(np.float32), steps), exercise,
                 "interpolate")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    expected = (1 - t) * z_a + t * z_b  # z_t = (1 - t) z_a + t z_b  # (steps, latent_dim)
    if out.shape == (3, steps):
        fail(exercise, "the result is transposed: shape (latent_dim, steps) = (3, 5).",
             "Return one code per row: shape (steps, latent_dim), e.g. t[:, None] * z_b.")
    if out.shape != (steps, 3):
        fail(exercise, f"expected shape (steps, latent_dim) = ({steps}, 3); got {out.shape}.",
             "t = np.linspace(0, 1, steps)[:, None]; return (1 - t) * z_a + t * z_b.")
    arange = np.arange(steps)[:, None] / steps
    inner = np.linspace(0, 1, steps + 2)[1:-1, None]
    named = [
        (expected[::-1], "the path runs backwards: the first row is z_b, the last z_a.",
         "At t = 0 the code is z_a: z_t = (1 - t) z_a + t z_b."),
        ((1 - arange) * z_a + arange * z_b, ("the last row is not z_b: t stops short of 1 "
         "(np.arange(steps) / steps, or linspace with endpoint=False)."),
         "t = np.linspace(0, 1, steps) includes both ends."),
        ((1 - inner) * z_a + inner * z_b, ("neither end is included: the first and last rows "
         "should be z_a and z_b themselves."), "t = np.linspace(0, 1, steps)."),
        ((1 - np.arange(steps)[:, None]) * z_a + np.arange(steps)[:, None] * z_b,
         "t runs over 0, 1, ..., steps - 1 instead of [0, 1]: the codes leave the segment.",
         "t = np.linspace(0, 1, steps)."),
    ]
    for wrong, problem, hint in named:
        if _close(out, wrong) and not _close(out, expected):
            fail(exercise, problem, hint)
    if not _close(out, expected):
        fail(exercise, f"got {np.round(out, 3).tolist()}; expected {np.round(expected, 3).tolist()}.",
             "z_t = (1 - t) z_a + t z_b for t = np.linspace(0, 1, steps).")
    ends = _numpy(interpolate(z_a.astype(np.float32), z_b.astype(np.float32), 2), exercise, "")
    if not _close(ends, np.stack([z_a, z_b])):
        fail(exercise, "with steps = 2 the result must be exactly [z_a, z_b].")
    passed("interpolate walks from z_a to z_b in equal steps, both ends included.")


__all__ = ["check_bernoulli_reconstruction", "check_interpolate", "check_sampling"]
