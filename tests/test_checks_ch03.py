"""The checks of chapter 03 against right answers (the solutions notebook's) and the typical
wrong ones, each of which must be rejected with the message that names its mistake."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from dgm_course import losses
from dgm_course.checks import ExerciseError, ch03

# Exercise 1: the optimal discriminator.


def optimal_discriminator(log_p_data, log_p_g):
    return 1.0 / (1.0 + np.exp(np.asarray(log_p_g) - np.asarray(log_p_data)))


def test_optimal_discriminator_solution_passes(capsys):
    ch03.check_optimal_discriminator(optimal_discriminator)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize("wrong, match", [
    (lambda a, b: np.exp(b) / (np.exp(a) + np.exp(b)), "flipped"),
    (lambda a, b: np.exp(a - b), "density ratio"),
    (lambda a, b: np.exp(a), "denominator is missing"),
    (lambda a, b: np.exp(a) / (np.exp(a) + np.exp(b)), "0 / 0 = nan"),
    (lambda a, b: np.exp(a) / (np.exp(a) + 2 * np.exp(b)), "expected"),
    (lambda a, b: optimal_discriminator(a, b)[:-1], "one value per grid point"),
])
def test_optimal_discriminator_mistakes_are_named(wrong, match):
    with np.errstate(all="ignore"), pytest.raises(ExerciseError, match=match):
        ch03.check_optimal_discriminator(wrong)


# Exercise 2: the non-saturating generator loss.


def generator_loss(fake_logits):
    return ops.mean(ops.softplus(-ops.convert_to_tensor(fake_logits)))


def test_generator_loss_solution_passes(capsys):
    ch03.check_generator_loss(generator_loss)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize("wrong, match", [
    (lambda l: -generator_loss(l), "flipped sign"),
    (lambda l: ops.mean(-ops.softplus(l)), "saturating loss"),
    (lambda l: ops.mean(ops.log(1.0 - ops.sigmoid(l))), "saturating loss"),
    (lambda l: ops.mean(ops.softplus(l)), "discriminator's term for fakes"),
    (lambda l: ops.sum(ops.softplus(-ops.convert_to_tensor(l))), "summed over the batch"),
    (lambda l: ops.mean(-ops.log(ops.sigmoid(l))), "sigmoid\\(-200\\) rounds to 0"),
    (lambda l: ops.mean(-ops.log(ops.clip(ops.sigmoid(l), 1e-7, 1.0))), "clipping"),
    (lambda l: ops.softplus(-ops.convert_to_tensor(l)), "expected a scalar"),
])
def test_generator_loss_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch03.check_generator_loss(wrong)


# Exercise 3: the discriminator loss with one-sided label smoothing.


def discriminator_loss(real_logits, fake_logits, label_smoothing=0.0):
    t = 1.0 - label_smoothing
    real_logits = ops.convert_to_tensor(real_logits)
    fake_logits = ops.convert_to_tensor(fake_logits)
    real_term = t * ops.softplus(-real_logits) + (1.0 - t) * ops.softplus(real_logits)
    return ops.mean(real_term) + ops.mean(ops.softplus(fake_logits))


def smoothed(real_target, fake_target):
    def loss(real_logits, fake_logits, label_smoothing=0.0):
        t, u = real_target(label_smoothing), fake_target(label_smoothing)
        real_term = t * ops.softplus(-real_logits) + (1 - t) * ops.softplus(real_logits)
        fake_term = u * ops.softplus(-fake_logits) + (1 - u) * ops.softplus(fake_logits)
        return ops.mean(real_term) + ops.mean(fake_term)
    return loss


def test_discriminator_loss_solution_passes(capsys):
    ch03.check_discriminator_loss(discriminator_loss)
    assert capsys.readouterr().out.startswith("✅")


def test_the_package_loss_passes_too(capsys):
    ch03.check_discriminator_loss(losses.discriminator_loss)
    ch03.check_generator_loss(losses.generator_loss)


@pytest.mark.parametrize("wrong, match", [
    (lambda r, f, label_smoothing=0.0: -discriminator_loss(r, f, label_smoothing), "flipped sign"),
    (smoothed(lambda s: 0.0, lambda s: 1.0 - s), "swapped"),
    (lambda r, f, label_smoothing=0.0: ops.sum(ops.softplus(-r)) + ops.sum(ops.softplus(f)),
     "summed"),
    (lambda r, f, label_smoothing=0.0: discriminator_loss(r, f), "ignored"),
    (smoothed(lambda s: s if s else 1.0, lambda s: 0.0), "target is s"),
    (smoothed(lambda s: 1.0 + s, lambda s: 0.0), "1 \\+ s"),
    (smoothed(lambda s: 1.0 - s, lambda s: s), "two-sided smoothing"),
    (lambda r, f, label_smoothing=0.0: ops.mean(
        -(1 - label_smoothing) * ops.log(ops.sigmoid(r))
        - label_smoothing * ops.log(1 - ops.sigmoid(r)))
     + ops.mean(-ops.log(1 - ops.sigmoid(f))), "not finite"),
    (lambda r, f, label_smoothing=0.0: ops.mean(ops.softplus(-r)) + ops.mean(ops.softplus(f)) * 2,
     "expected"),
])
def test_discriminator_loss_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch03.check_discriminator_loss(wrong)


# Exercise 4: the Jensen-Shannon divergence on a grid.


def kl(a, b, dx):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(np.where(a > 0, a * np.log(a / b), 0.0)) * dx


def jensen_shannon(p, q, dx):
    m = 0.5 * (p + q)
    return 0.5 * kl(p, m, dx) + 0.5 * kl(q, m, dx)


def test_jensen_shannon_solution_passes(capsys):
    ch03.check_jensen_shannon(jensen_shannon)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize("wrong, match", [
    (lambda p, q, dx: 2 * jensen_shannon(p, q, dx), "1/2 in front"),
    (lambda p, q, dx: 0.5 * kl(p, p + q, dx) + 0.5 * kl(q, p + q, dx), "without the 1/2"),
    (lambda p, q, dx: 0.5 * kl(p, p * q, dx) + 0.5 * kl(q, p * q, dx), "infinite"),
    (lambda p, q, dx: jensen_shannon(p, q, dx) / dx, "dx is missing"),
    (lambda p, q, dx: jensen_shannon(p, q, dx) / np.log(2), "base 2"),
    (lambda p, q, dx: 0.5 * np.sum(p * np.log(p / (0.5 * (p + q)))) * dx
     + 0.5 * kl(q, 0.5 * (p + q), dx), "0 log 0"),
    (lambda p, q, dx: 0.5 * kl(p, q + 1e-300, dx) + 0.5 * kl(q, p + 1e-300, dx), "symmetrised"),
    (lambda p, q, dx: np.full(3, jensen_shannon(p, q, dx)), "one number"),
])
def test_jensen_shannon_mistakes_are_named(wrong, match):
    with np.errstate(all="ignore"), pytest.raises(ExerciseError, match=match):
        ch03.check_jensen_shannon(wrong)


# Exercise 5: the discriminator's half of train_step.


def discriminator_step(model, real, *, sign=1.0, both=False, seed=None, apply=True):
    z = keras.random.normal((real.shape[0], model.latent_dim),
                            seed=model.seed_generator if seed is None else seed)
    with tf.GradientTape() as tape:
        fake = model.generator(z, training=True)
        d_loss = losses.discriminator_loss(model.discriminator(real, training=True),
                                           model.discriminator(fake, training=True))
    weights = model.discriminator.trainable_weights
    if both:  # The mistake: the generator is updated too.
        weights = weights + model.generator.trainable_weights
    if apply:
        model.d_optimizer.apply([sign * g for g in tape.gradient(d_loss, weights)], weights)
    return d_loss


def uses_generator_noise_batch(model, real):
    z = keras.random.normal((4, model.latent_dim), seed=model.seed_generator)  # too few fakes
    fake = model.generator(z, training=True)
    with tf.GradientTape() as tape:
        d_loss = losses.discriminator_loss(model.discriminator(real), model.discriminator(fake))
    weights = model.discriminator.trainable_weights
    model.d_optimizer.apply(tape.gradient(d_loss, weights), weights)
    return d_loss


def test_discriminator_step_solution_passes(capsys):
    ch03.check_discriminator_step(discriminator_step)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize("wrong, match", [
    (lambda m, r: discriminator_step(m, r, both=True), "generator's weights changed"),
    (lambda m, r: discriminator_step(m, r, apply=False), "did not change"),
    (lambda m, r: discriminator_step(m, r, sign=-1.0), "uphill"),
    (lambda m, r: discriminator_step(m, r, seed=0), "SeedGenerator"),
    (uses_generator_noise_batch, "returned loss"),
])
def test_discriminator_step_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch03.check_discriminator_step(wrong)
