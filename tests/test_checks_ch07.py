"""The checks of chapter 07 against right answers (the solutions notebook's) and the typical
wrong ones, each of which must be rejected with the message that names its mistake."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers, ops

from dgm_course import losses
from dgm_course.checks import ExerciseError, ch07

# Exercise 1: the encoder's sampling layer.


class Sampling(layers.Layer):
    def __init__(self, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def test_sampling_solution_passes(capsys):
    ch07.check_sampling(Sampling)
    assert capsys.readouterr().out.startswith("✅")


def _sampling_with(draw):
    """A Sampling layer whose call() is `draw(layer, z_mean, z_log_var)`."""

    class Wrong(Sampling):
        def call(self, inputs):
            return draw(self, *inputs)

    return Wrong


def _normal(shape, seed):
    return keras.random.normal(shape, seed=seed)


class NumpySampling(Sampling):
    def __init__(self, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.rng = np.random.default_rng(seed)  # Seeded and advancing, but outside autodiff.

    def call(self, inputs):
        z_mean, z_log_var = (np.asarray(t) for t in inputs)
        epsilon = self.rng.normal(size=z_mean.shape).astype("float32")
        return z_mean + np.exp(0.5 * z_log_var) * epsilon


class GlobalNumpySampling(Sampling):
    def call(self, inputs):
        z_mean, z_log_var = (np.asarray(t) for t in inputs)
        return z_mean + np.exp(0.5 * z_log_var) * np.random.normal(size=z_mean.shape)


class NotALayer:
    def __init__(self, seed=0):
        self.seed = seed


@pytest.mark.parametrize(
    "wrong, match",
    [
        (_sampling_with(lambda s, m, v: m + ops.exp(v) * _normal(ops.shape(m), s.seed_generator)),
         "exp\\(log_var\\) is sigma\\^2"),
        (_sampling_with(lambda s, m, v: m + ops.exp(0.5 * v) * _normal(ops.shape(m)[1:], s.seed_generator)),
         "shared across the batch"),
        (_sampling_with(lambda s, m, v: m + ops.exp(0.5 * v) * _normal(ops.shape(m), 0)),
         "int seed"),
        (_sampling_with(lambda s, m, v: m + ops.exp(0.5 * v) * _normal(ops.shape(m), None)),
         "global random state"),
        (_sampling_with(lambda s, m, v: m + ops.exp(0.5 * v) * _normal(
            ops.shape(m), keras.random.SeedGenerator(7) if not hasattr(s, "g") else s.g)),
         "int seed|seed is ignored"),
        (_sampling_with(lambda s, m, v: tf.stop_gradient(m + ops.exp(0.5 * v) * _normal(
            ops.shape(m), s.seed_generator))), "sampling blocks the gradient"),
        (NumpySampling, "sampling blocks the gradient"),
        (GlobalNumpySampling, "global random state"),
        (NotALayer, "not a Keras layer"),
    ],
)
def test_sampling_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch07.check_sampling(wrong)


def test_ignored_seed_is_named():
    class IgnoresSeed(Sampling):
        def __init__(self, seed=0, **kwargs):
            super().__init__(seed=0, **kwargs)

    with pytest.raises(ExerciseError, match="seed is ignored"):
        ch07.check_sampling(IgnoresSeed)


def test_not_implemented_passes_through():
    class Unwritten(Sampling):
        def __init__(self, seed=0, **kwargs):
            super().__init__(**kwargs)
            raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        ch07.check_sampling(Unwritten)


# Exercise 2: the Bernoulli reconstruction term.


def bernoulli_reconstruction(x, logits):
    per_image = ops.sum(ops.softplus(logits) - x * logits, axis=tuple(range(1, len(x.shape))))
    return ops.mean(per_image)


def test_reconstruction_solution_passes(capsys):
    ch07.check_bernoulli_reconstruction(bernoulli_reconstruction)
    assert capsys.readouterr().out.startswith("✅")


def test_reconstruction_solution_is_minus_the_packages_log_likelihood():
    """An independent reference: losses.bernoulli_log_likelihood, and a NumPy Bernoulli pmf."""
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(4, 6, 6, 1)) < 0.5).astype("float32")
    logits = rng.normal(0, 2, x.shape).astype("float32")
    expected = -float(ops.mean(losses.bernoulli_log_likelihood(x, logits)))
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    pmf = np.where(x == 1, p, 1 - p)
    np.testing.assert_allclose(float(bernoulli_reconstruction(x, logits)), expected, rtol=1e-5)
    np.testing.assert_allclose(expected, -np.mean(np.sum(np.log(pmf), axis=(1, 2, 3))), rtol=1e-5)


def _bce(x, logits, from_logits):
    return keras.losses.binary_crossentropy(x, logits, from_logits=from_logits)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda x, l: ops.mean(_bce(x, l, True)), "averaged over the 784 pixels"),
        (lambda x, l: -bernoulli_reconstruction(x, l), "sign is flipped"),
        (lambda x, l: 5 * bernoulli_reconstruction(x, l), "summed over the batch"),
        (lambda x, l: bernoulli_reconstruction(x, ops.sigmoid(l)), "sigmoid was applied"),
        (lambda x, l: ops.mean(ops.sum(ops.reshape(_bce(x[..., None], ops.sigmoid(l)[..., None], False),
                                                   (x.shape[0], -1)), axis=1)), "clipped"),
        (lambda x, l: ops.sum(ops.softplus(l) - x * l, axis=(1, 2, 3)), "one value per image"),
        (lambda x, l: ops.mean(ops.sum(ops.softplus(l) - x * l, axis=-1), axis=0), "not only the last"),
        (lambda x, l: ops.mean(ops.sum(ops.reshape(ops.softplus(l) - x * l, (-1, 784)), axis=1)),
         "shape \\(3, 8, 8, 3\\)"),
        (lambda x, l: ops.mean(ops.sum(-ops.log(ops.where(x == 1, ops.sigmoid(l), 1 - ops.sigmoid(l))),
                                       axis=(1, 2, 3))), "not finite"),
    ],
)
def test_reconstruction_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch07.check_bernoulli_reconstruction(wrong)


# Exercise 3: interpolation.


def interpolate(z_a, z_b, steps):
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return (1 - t) * z_a + t * z_b


def test_interpolate_solution_passes(capsys):
    ch07.check_interpolate(interpolate)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda a, b, n: interpolate(a, b, n).T, "transposed"),
        (lambda a, b, n: interpolate(b, a, n), "backwards"),
        (lambda a, b, n: (1 - np.arange(n)[:, None] / n) * a + np.arange(n)[:, None] / n * b,
         "stops short of 1"),
        (lambda a, b, n: interpolate(a, b, n + 2)[1:-1], "neither end"),
        (lambda a, b, n: (1 - np.arange(n)[:, None]) * a + np.arange(n)[:, None] * b, "leave the segment"),
        (lambda a, b, n: interpolate(a, b, n)[:, :2], "expected shape"),
        (lambda a, b, n: interpolate(a, b, n) ** 2, "expected"),
    ],
)
def test_interpolate_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch07.check_interpolate(wrong)
