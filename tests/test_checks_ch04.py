"""The checks of chapter 04 against right answers (two of each, as a learner might write them)
and the typical wrong ones, each of which must be rejected with the message that names its
mistake."""

import functools

import keras
import pytest
import tensorflow as tf
from keras import layers, ops

from dgm_course import dcgan, losses
from dgm_course.checks import ExerciseError, ch04

bce = keras.losses.BinaryCrossentropy(from_logits=True)

# Exercise 1: the discriminator loss with a Keras BCE object.


def discriminator_loss(real_logits, fake_logits):
    return bce(ops.ones_like(real_logits), real_logits) + bce(ops.zeros_like(fake_logits),
                                                              fake_logits)


def discriminator_loss_softplus(real_logits, fake_logits):
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


@pytest.mark.parametrize("right", [discriminator_loss, discriminator_loss_softplus,
                                   losses.discriminator_loss])
def test_discriminator_loss_right_answers_pass(right, capsys):
    ch04.check_discriminator_loss(right)
    assert capsys.readouterr().out.startswith("✅")


def concatenated(r, f):
    logits = ops.concatenate([r, f], axis=0)
    return bce(ops.concatenate([ops.ones_like(r), ops.zeros_like(f)], axis=0), logits)


def from_probabilities(r, f):
    probabilities = keras.losses.BinaryCrossentropy(from_logits=False)
    return probabilities(ops.ones_like(r), r) + probabilities(ops.zeros_like(f), f)


def per_example(r, f):
    each = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)
    return each(ops.ones_like(r), r) + each(ops.zeros_like(f), f)


@pytest.mark.parametrize("wrong, match", [
    (lambda r, f: discriminator_loss(f, r), "swapped"),
    (lambda r, f: bce(ops.ones_like(r), r), "fake term is missing"),
    (concatenated, "concatenated"),
    (lambda r, f: concatenated(r, f) * 2 if r.shape == f.shape else concatenated(r, f),
     "concatenated"),
    (from_probabilities, "from_logits=False"),
    (lambda r, f: discriminator_loss(tf.sigmoid(r), tf.sigmoid(f)), "sigmoid was applied"),
    (lambda r, f: ops.sum(ops.softplus(-r)) + ops.sum(ops.softplus(f)), "summed"),
    (lambda r, f: -discriminator_loss(r, f), "flipped sign"),
    (per_example, "expected a scalar"),
    (lambda r, f: ops.mean(-ops.log(ops.sigmoid(r))) + ops.mean(-ops.log(1 - ops.sigmoid(f))),
     "not finite"),
    (lambda r, f: keras.losses.BinaryCrossentropy()(ops.ones_like(r), tf.sigmoid(r))
     + keras.losses.BinaryCrossentropy()(ops.zeros_like(f), tf.sigmoid(f)), "clipped"),
    (lambda r, f: bce(ops.ones_like(f), r) + bce(ops.zeros_like(f), f), "targets of its own"),
    (lambda r, f: discriminator_loss(r, f) * 1.5, "expected 1.66265; got 2.49398"),
])
def test_discriminator_loss_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch04.check_discriminator_loss(wrong)


# Exercise 2: the non-saturating generator loss.


def generator_loss(fake_logits):
    return bce(ops.ones_like(fake_logits), fake_logits)


def generator_loss_softplus(fake_logits):
    return ops.mean(ops.softplus(-fake_logits))


@pytest.mark.parametrize("right", [generator_loss, generator_loss_softplus,
                                   functools.partial(losses.generator_loss, saturating=False)])
def test_generator_loss_right_answers_pass(right, capsys):
    ch04.check_generator_loss(right)
    assert capsys.readouterr().out.startswith("✅")


GENERATOR_LOSS_MISTAKES = [
    (lambda l: bce(ops.zeros_like(l), l), "look \\*fake\\*"),
    (lambda l: ops.mean(-ops.softplus(l)), "saturating"),
    (lambda l: ops.mean(ops.log(1.0 - ops.sigmoid(l))), "saturating"),
    (lambda l: keras.losses.BinaryCrossentropy()(ops.ones_like(l), l), "from_logits=False"),
    (lambda l: generator_loss(tf.sigmoid(l)), "sigmoid was applied"),
    (lambda l: ops.sum(ops.softplus(-l)), "summed"),
    (lambda l: -generator_loss(l), "flipped sign"),
    (lambda l: ops.softplus(-l), "expected a scalar"),
    (lambda l: ops.mean(-ops.log(ops.sigmoid(l))), "not finite"),
]


@pytest.mark.parametrize("wrong, match", GENERATOR_LOSS_MISTAKES)
def test_generator_loss_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=f"Exercise 2: .*{match}"):
        ch04.check_generator_loss(wrong)


def test_undone_exercise_passes_through():
    def undone(fake_logits):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        ch04.check_generator_loss(undone)


# Exercise 3: the generator's half of train_step.


def generator_step(model, batch_size, *, loss=losses.generator_loss, seed="model", size=None,
                   optimizer="g", both=False, sign=1.0, outside=False, returns=True):
    seed = model.seed_generator if seed == "model" else seed
    z = keras.random.normal((size or batch_size, model.latent_dim), seed=seed)
    fake = model.generator(z, training=True) if outside else None
    with tf.GradientTape() as tape:
        fake = model.generator(z, training=True) if fake is None else fake
        g_loss = loss(model.discriminator(fake, training=True))
    weights = model.generator.trainable_weights
    if both:  # The mistake: the discriminator is updated too.
        weights = weights + model.discriminator.trainable_weights
    gradients = [sign * g for g in tape.gradient(g_loss, weights)] if not outside else \
        tape.gradient(g_loss, weights)
    getattr(model, f"{optimizer}_optimizer").apply(gradients, weights)
    return g_loss if returns else None


def generator_step_keras(model, batch_size):
    z = keras.random.normal((batch_size, model.latent_dim), seed=model.seed_generator)
    with tf.GradientTape() as tape:
        fake_logits = model.discriminator(model(z, training=True), training=True)
        g_loss = bce(ops.ones_like(fake_logits), fake_logits)
    grads = tape.gradient(g_loss, model.generator.trainable_weights)
    model.g_optimizer.apply(grads, model.generator.trainable_weights)
    return g_loss


@pytest.mark.parametrize("right", [generator_step, generator_step_keras])
def test_generator_step_right_answers_pass(right, capsys):
    ch04.check_generator_step(right)
    assert capsys.readouterr().out.startswith("✅")


def twice(model, batch_size):
    generator_step(model, batch_size)
    return generator_step(model, batch_size)


@pytest.mark.parametrize("wrong, match", [
    (lambda m, b: generator_step(m, b, both=True), "discriminator's weights changed"),
    (lambda m, b: generator_step(m, b, optimizer="d"), "d_optimizer was used"),
    (lambda m, b: generator_step(m, b, loss=lambda l: losses.generator_loss(l, saturating=True)),
     "saturating"),
    (lambda m, b: generator_step(m, b, loss=lambda l: bce(ops.zeros_like(l), l)), "more fake"),
    (lambda m, b: generator_step(m, b, seed=None), "did not advance"),
    (lambda m, b: generator_step(m, b, seed=0), "did not advance"),
    (lambda m, b: (keras.random.normal((1, 2), seed=m.seed_generator), generator_step(m, b))[1],
     "more than once"),
    (twice, "2 steps"),
    (lambda m, b: generator_step(m, b, size=32), "batch size \\[32\\]"),
    (lambda m, b: generator_step(m, b, returns=False), "returned nothing"),
    (lambda m, b: (generator_step(m, b), m.generator.trainable_weights)[1], "not a number"),
    (lambda m, b: ops.stack([generator_step(m, b)] * 2), "not the loss"),
    (lambda m, b: generator_step(m, b, outside=True), "inside the `with tf.GradientTape"),
    (lambda m, b: m.generator_network(b), "raised AttributeError"),
    (lambda m, b: generator_step(m, b, sign=-1.0), "uphill"),
    (lambda m, b: generator_step(m, b, loss=lambda l: 2 * losses.generator_loss(l)), "expected"),
])
def test_generator_step_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch04.check_generator_step(wrong)


# Exercise 4: debug this GAN.


def build_generator(latent_dim):
    return dcgan.build_generator((28, 28, 1), latent_dim=latent_dim, width=8)


def build_discriminator():
    return dcgan.build_discriminator((28, 28, 1), width=8)


def build_dense_generator(latent_dim):
    return keras.Sequential([keras.Input((latent_dim,)), layers.Dense(32, activation="relu"),
                             layers.Dense(28 * 28, activation="tanh"),
                             layers.Reshape((28, 28, 1))])


def build_dense_discriminator():
    return keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(32),
                             layers.LeakyReLU(0.2), layers.Dense(1)])


def test_debugged_gan_right_answers_pass(capsys):
    ch04.check_debugged_gan(build_generator, build_discriminator, generator_loss)
    ch04.check_debugged_gan(build_dense_generator, build_dense_discriminator,
                            generator_loss_softplus)
    assert capsys.readouterr().out.count("✅") == 2


def generator_ending(*last, latent_dim=None):
    """A dense generator whose last layers are `last` (built for `latent_dim` if given)."""
    return lambda d: keras.Sequential([keras.Input((latent_dim or d,)),
                                       layers.Dense(32, activation="relu"), *last])


def discriminator_of(*stack):
    return lambda: keras.Sequential([*stack])


@pytest.mark.parametrize("generator, discriminator, match", [
    (generator_ending(layers.Dense(10, activation="softmax")), build_dense_discriminator,
     "shape \\(None, 10\\).*classifier"),
    (generator_ending(layers.Dense(784, activation="tanh")), build_dense_discriminator,
     "shape \\(None, 784\\), not images"),
    (generator_ending(layers.Dense(784, activation="softmax"), layers.Reshape((28, 28, 1))),
     build_dense_discriminator, "softmax is left in"),
    (generator_ending(layers.Dense(784, activation="sigmoid"), layers.Reshape((28, 28, 1))),
     build_dense_discriminator, "all lie in \\[0, 1\\]"),
    (generator_ending(layers.Dense(784), layers.Reshape((28, 28, 1))),
     build_dense_discriminator, "outside \\[-1, 1\\]"),
    (generator_ending(layers.Dense(784, activation="tanh"), layers.Reshape((28, 28, 1)),
                      latent_dim=100), build_dense_discriminator, "ignores latent_dim"),
    (build_generator(100), build_dense_discriminator, "not a function"),
    (lambda d: [build_generator(d)], build_dense_discriminator, "not a keras.Model"),
    (build_dense_generator, discriminator_of(keras.Input((784,)), layers.Dense(1)),
     "takes inputs of shape \\(None, 784\\): flat vectors"),
    (build_dense_generator, discriminator_of(keras.Input((28, 28, 1)), layers.Dense(1)),
     "outputs shape \\(None, 28, 28, 1\\)"),
    (build_dense_generator, discriminator_of(keras.Input((28, 28, 1)), layers.Flatten(),
                                             layers.Dense(1, activation="sigmoid")),
     "ends in a sigmoid"),
    (build_dense_generator, discriminator_of(keras.Input((28, 28, 1)), layers.Flatten(),
                                             layers.Dense(1), layers.Lambda(ops.sigmoid)),
     "ends in a sigmoid"),
])
def test_debugged_gan_network_mistakes_are_named(generator, discriminator, match):
    with pytest.raises(ExerciseError, match=f"Exercise 4: .*{match}"):
        ch04.check_debugged_gan(generator, discriminator, generator_loss)


@pytest.mark.parametrize("wrong, match", [
    (lambda l: bce(ops.zeros_like(l), l), "discriminator's label 0"),
    (lambda l: ops.mean(-ops.softplus(l)), "saturating"),
])
def test_debugged_gan_loss_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=f"Exercise 4: .*{match}"):
        ch04.check_debugged_gan(build_dense_generator, build_dense_discriminator, wrong)
