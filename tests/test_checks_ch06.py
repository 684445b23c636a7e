"""The checks of chapter 06 against right answers (the solutions notebook's) and the typical
wrong ones, each of which must be rejected with the message that names its mistake."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from dgm_course.checks import ExerciseError, ch06

# Exercise 1: the reparameterised sampler.


def reparameterize(z_mean, z_log_var, seed=0):
    epsilon = keras.random.normal(ops.shape(z_mean), seed=seed)
    return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def test_reparameterize_solution_passes(capsys):
    ch06.check_reparameterize(reparameterize)
    assert capsys.readouterr().out.startswith("✅")


def _numpy_sampler(z_mean, z_log_var, seed=0):
    mean, log_var = np.asarray(z_mean), np.asarray(z_log_var)
    return np.random.default_rng(seed).normal(mean, np.exp(0.5 * log_var)).astype(np.float32)


def _normal(shape, seed):
    return keras.random.normal(shape, seed=seed)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda m, v, seed=0: m + ops.exp(v) * _normal(ops.shape(m), seed), "exp\\(log_var\\) is sigma\\^2"),
        (lambda m, v, seed=0: m + _normal(ops.shape(m), seed), "not scaled by sigma"),
        (lambda m, v, seed=0: m + ops.exp(0.5 * v) * _normal(ops.shape(m)[1:], seed), "shared across the batch"),
        (lambda m, v, seed=0: m + ops.exp(0.5 * v) * _normal((ops.shape(m)[0], 1), seed), "share one"),
        (lambda m, v, seed=0: ops.exp(0.5 * v) * _normal(ops.shape(m), seed), "sample means"),
        (lambda m, v, seed=0: m + ops.exp(0.5 * v) * math.sqrt(3) * keras.random.uniform(
            ops.shape(m), -1, 1, seed=seed), "not standard normal"),
        (lambda m, v, seed=0: reparameterize(m, v, seed=None), "not reproducible"),
        (lambda m, v, seed=0: reparameterize(m, v, seed=0), "seed is ignored"),
        (_numpy_sampler, "sampling blocks the gradient"),
        (lambda m, v, seed=0: tf.stop_gradient(reparameterize(m, v, seed)), "sampling blocks the gradient"),
        (lambda m, v, seed=0: m + tf.stop_gradient(ops.exp(0.5 * v)) * _normal(ops.shape(m), seed),
         "reaches z_log_var"),
        (lambda m, v, seed=0: reparameterize(m, v, seed)[:, :2], "shape"),
    ],
)
def test_reparameterize_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch06.check_reparameterize(wrong)


# Exercise 2: the Gaussian KL.


def gaussian_kl(z_mean, z_log_var):
    return -0.5 * ops.sum(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def test_gaussian_kl_solution_passes(capsys):
    ch06.check_gaussian_kl(gaussian_kl)
    assert capsys.readouterr().out.startswith("✅")


def test_gaussian_kl_solution_agrees_with_monte_carlo():
    """The closed form the check accepts is the KL itself: E_q[log q(z) - log p(z)] by sampling."""
    rng = np.random.default_rng(0)
    mean, log_var = np.array([[0.7, -1.2]]), np.array([[-0.5, 0.8]])
    z = mean + np.exp(0.5 * log_var) * rng.standard_normal((400_000, 2))
    log_q = -0.5 * (np.log(2 * np.pi) + log_var + (z - mean) ** 2 / np.exp(log_var))
    log_p = -0.5 * (np.log(2 * np.pi) + z**2)
    samples = np.sum(log_q - log_p, axis=1)
    closed = float(gaussian_kl(mean, log_var)[0])
    assert abs(samples.mean() - closed) < 4 * samples.std() / np.sqrt(len(samples))


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda m, v: -gaussian_kl(m, v), "sign is flipped"),
        (lambda m, v: 2 * gaussian_kl(m, v), "factor 1/2 is missing"),
        (lambda m, v: -0.5 * ops.sum(1 + v - m**2 - ops.exp(v), axis=0), "summed over the batch axis"),
        (lambda m, v: -0.5 * ops.sum(1 + v - m**2 - ops.exp(v)), r"shape \(4,\)"),
        (lambda m, v: -0.5 * ops.mean(1 + v - m**2 - ops.exp(v), axis=-1), "mean over the 3 latent"),
        (lambda m, v: -0.5 * ops.sum(1 + v - m**2 - ops.exp(0.5 * v), axis=-1), "which is sigma"),
        (lambda m, v: -0.5 * ops.sum(1 + v - m**2 - v, axis=-1), "log_var stands where"),
        (lambda m, v: -0.5 * ops.sum(1 + v - m - ops.exp(v), axis=-1), "unsquared"),
        (lambda m, v: 0.5 * ops.sum(m**2 + ops.exp(v), axis=-1), "must be 0"),
    ],
)
def test_gaussian_kl_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch06.check_gaussian_kl(wrong)


# Exercise 3: the beta-VAE loss.


def beta_vae_loss(x, logits, z_mean, z_log_var, beta=1.0):
    reconstruction = ops.sum(ops.softplus(logits) - x * logits, axis=-1)
    return ops.mean(reconstruction + beta * gaussian_kl(z_mean, z_log_var))


def test_beta_vae_loss_solution_passes(capsys):
    ch06.check_beta_vae_loss(beta_vae_loss)
    assert capsys.readouterr().out.startswith("✅")


def _reconstruction(x, logits):
    return ops.sum(ops.softplus(logits) - x * logits, axis=-1)


def _log_sigmoid_loss(x, logits, m, v, beta=1.0):
    p = ops.sigmoid(logits)
    rec = -ops.sum(x * ops.log(p) + (1 - x) * ops.log(1 - p), axis=-1)
    return ops.mean(rec + beta * gaussian_kl(m, v))


def _clipped_loss(x, logits, m, v, beta=1.0):
    p = ops.clip(ops.sigmoid(logits), 1e-7, 1 - 1e-7)
    rec = -ops.sum(x * ops.log(p) + (1 - x) * ops.log(1 - p), axis=-1)
    return ops.mean(rec + beta * gaussian_kl(m, v))


def _keras_bce_loss(x, logits, m, v, beta=1.0):
    rec = 6 * keras.losses.binary_crossentropy(x, logits, from_logits=True)
    return ops.mean(rec + beta * gaussian_kl(m, v))


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda x, l, m, v, beta=1.0: -beta_vae_loss(x, l, m, v, beta), "sign is flipped"),
        (lambda x, l, m, v, beta=1.0: ops.mean(beta * _reconstruction(x, l) + gaussian_kl(m, v)),
         "multiplies the reconstruction"),
        (lambda x, l, m, v, beta=1.0: beta_vae_loss(x, l, m, v, 1.0), "beta is ignored"),
        (lambda x, l, m, v, beta=1.0: ops.mean(ops.mean(ops.softplus(l) - x * l, axis=-1)
                                               + beta * gaussian_kl(m, v)), "averaged over the 6 pixels"),
        (lambda x, l, m, v, beta=1.0: ops.sum(_reconstruction(x, l) + beta * gaussian_kl(m, v)),
         "summed over the batch"),
        (lambda x, l, m, v, beta=1.0: _reconstruction(x, l) + beta * gaussian_kl(m, v), r"shape \(5,\)"),
        (lambda x, l, m, v, beta=1.0: ops.mean(_reconstruction(x, l) - beta * gaussian_kl(m, v)),
         "KL enters with the wrong sign"),
        (_log_sigmoid_loss, "overflow to -inf"),
        (_clipped_loss, "probabilities were clipped"),
    ],
)
def test_beta_vae_loss_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch06.check_beta_vae_loss(wrong)


def test_keras_binary_crossentropy_from_logits_times_pixels_passes(capsys):
    ch06.check_beta_vae_loss(_keras_bce_loss)
    assert "✅" in capsys.readouterr().out


# Exercise 4: the importance-weighted bound.


def importance_weighted_bound(log_weights):
    k = ops.shape(log_weights)[0]
    return ops.logsumexp(log_weights, axis=0) - math.log(k)


def test_importance_weighted_bound_solution_passes(capsys):
    ch06.check_importance_weighted_bound(importance_weighted_bound)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda w: ops.mean(w, axis=0), "mean of the log-weights"),
        (lambda w: ops.mean(ops.exp(w), axis=0), "mean of the weights w_i, not its log"),
        (lambda w: ops.logsumexp(w, axis=0), "log k is missing"),
        (lambda w: ops.logsumexp(w, axis=0) - math.log(ops.shape(w)[1]), "batch size"),
        (lambda w: ops.max(w, axis=0), "largest log-weight"),
        (lambda w: ops.logsumexp(w, axis=1) - math.log(ops.shape(w)[1]), "batch axis"),
        (lambda w: ops.log(ops.mean(ops.exp(w), axis=0)), "underflows"),
        (lambda w: ops.logsumexp(w) - math.log(ops.shape(w)[0]), "shape \\(4,\\)"),
    ],
)
def test_importance_weighted_bound_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch06.check_importance_weighted_bound(wrong)


def test_importance_weighted_bound_matches_the_course_helper():
    from dgm_course import losses

    log_weights = np.random.default_rng(1).normal(-500, 30, (7, 3)).astype(np.float32)
    np.testing.assert_allclose(ops.convert_to_numpy(importance_weighted_bound(log_weights)),
                               ops.convert_to_numpy(losses.importance_weighted_bound(log_weights)),
                               rtol=1e-6)


def test_not_implemented_passes_through():
    def todo(*args, **kwargs):
        raise NotImplementedError()

    for check in (ch06.check_reparameterize, ch06.check_gaussian_kl, ch06.check_beta_vae_loss,
                  ch06.check_importance_weighted_bound):
        with pytest.raises(NotImplementedError):
            check(todo)
