"""The checks of chapter 08 against right answers (as a learner might write them) and the
typical wrong ones, each of which must be rejected with the message that names its mistake."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers, ops

from dgm_course import conditional
from dgm_course.checks import ExerciseError, ch08

# Exercise 1: conditioning by embedding and concatenation.


def concat_right(z, labels, embedding):
    return ops.concatenate([z, embedding(labels)], axis=-1)


def concat_axis_one(z, labels, embedding):
    return keras.layers.Concatenate(axis=1)([z, embedding(labels)])


@pytest.mark.parametrize("right", [concat_right, concat_axis_one, conditional.conditional_input])
def test_conditional_input_right_answers_pass(right, capsys):
    ch08.check_conditional_input(right)
    assert capsys.readouterr().out.startswith("✅")


SHARED = layers.Embedding(10, 3)


@pytest.mark.parametrize("wrong, match", [
    (lambda z, y, e: ops.concatenate([z, e(y)], axis=0), "batch axis"),
    (lambda z, y, e: z + e(y), "added to z"),
    (lambda z, y, e: ops.concatenate([z, ops.cast(y, "float32")[:, None]], axis=-1),
     "one float number"),
    (lambda z, y, e: ops.concatenate([z, ops.one_hot(y, 10)], axis=-1), "one-hot, instead"),
    (lambda z, y, e: ops.concatenate([z, ops.one_hot(y, 12)], axis=-1), "wrong size"),
    (lambda z, y, e: ops.concatenate([e(y), z], axis=-1), "embedding comes first"),
    (lambda z, y, e: ops.concatenate([z, layers.Embedding(10, 3)(y)], axis=-1),
     "new layers.Embedding"),
    (lambda z, y, e: ops.concatenate([z, SHARED(y)], axis=-1), "another embedding"),
    (lambda z, y, e: ops.concatenate([z, e(y), e(y)], axis=-1), "expected 5 \\+ 3 = 8"),
])
def test_conditional_input_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch08.check_conditional_input(wrong)


# Exercise 2: the AC-GAN's auxiliary loss from the discriminator's outputs.


def cross_entropy(labels, logits, from_logits=True):
    return ops.mean(ops.sparse_categorical_crossentropy(labels, logits, from_logits=from_logits))


def auxiliary_right(real_outputs, real_labels, fake_outputs, fake_labels):
    return (cross_entropy(real_labels, real_outputs[1])
            + cross_entropy(fake_labels, fake_outputs[1]))


def auxiliary_keras(real_outputs, real_labels, fake_outputs, fake_labels):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    _, real_classes = real_outputs
    _, fake_classes = fake_outputs
    return loss(real_labels, real_classes) + loss(fake_labels, fake_classes)


def auxiliary_package(real_outputs, real_labels, fake_outputs, fake_labels):
    from dgm_course.conditional_gan import auxiliary_loss
    return auxiliary_loss(real_outputs[1], real_labels, fake_outputs[1], fake_labels)


@pytest.mark.parametrize("right", [auxiliary_right, auxiliary_keras, auxiliary_package])
def test_auxiliary_loss_right_answers_pass(right, capsys):
    ch08.check_auxiliary_loss(right)
    assert capsys.readouterr().out.startswith("✅")


def concatenated(r, ry, f, fy):
    return cross_entropy(ops.concatenate([ry, fy]), ops.concatenate([r[1], f[1]]))


@pytest.mark.parametrize("wrong, match", [
    (lambda r, ry, f, fy: cross_entropy(ry, r[1]), "only the real"),
    (lambda r, ry, f, fy: cross_entropy(fy, f[1]), "only the fake"),
    (lambda r, ry, f, fy: cross_entropy(ry, r[0]) + cross_entropy(fy, f[0]), "source logit"),
    (lambda r, ry, f, fy: cross_entropy(ry, r) + cross_entropy(fy, f), "whole outputs pair"),
    (lambda r, ry, f, fy: cross_entropy(ry, r[1]) + undefined_name, "raised NameError"),  # noqa: F821
    (lambda r, ry, f, fy: cross_entropy(ry, r[1], False) + cross_entropy(fy, f[1], False),
     "from_logits=False"),
    # tf.nn.softmax: after ops.softmax, Keras notices and uses the logits underneath.
    (lambda r, ry, f, fy: cross_entropy(ry, tf.nn.softmax(r[1])) + cross_entropy(
        fy, tf.nn.softmax(f[1])), "softmax was applied"),
    (lambda r, ry, f, fy: ops.sum(ops.sparse_categorical_crossentropy(ry, r[1], from_logits=True))
     + ops.sum(ops.sparse_categorical_crossentropy(fy, f[1], from_logits=True)), "summed"),
    (concatenated, "averaged together"),
    (lambda r, ry, f, fy: -auxiliary_right(r, ry, f, fy), "flipped sign"),
    (lambda r, ry, f, fy: cross_entropy(fy, r[1]) + cross_entropy(ry, f[1]), "swapped"),
    (lambda r, ry, f, fy: ops.sparse_categorical_crossentropy(ry, r[1], from_logits=True),
     "expected a scalar"),
    (lambda r, ry, f, fy: ops.mean(-ops.log(ops.take_along_axis(
        ops.softmax(r[1]), ry[:, None], axis=1))) + ops.mean(-ops.log(ops.take_along_axis(
            ops.softmax(f[1]), fy[:, None], axis=1))), "±100"),
    (lambda r, ry, f, fy: 2 * auxiliary_right(r, ry, f, fy), "expected -L_C"),
])
def test_auxiliary_loss_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch08.check_auxiliary_loss(wrong)


# Exercise 3: generate_class.


def generate_right(generator, label, n, *, latent_dim, seed):
    z = keras.random.normal((n, latent_dim), seed=seed)
    labels = ops.full((n,), label, dtype="int32")
    return ops.convert_to_numpy(generator([z, labels], training=False))


def generate_numpy_noise(generator, label, n, *, latent_dim, seed):
    z = np.random.default_rng(seed).standard_normal((n, latent_dim)).astype("float32")
    return generator.predict([z, np.full(n, label, "int32")], verbose=0)


@pytest.mark.parametrize("right", [generate_right, generate_numpy_noise])
def test_generate_class_right_answers_pass(right, capsys):
    ch08.check_generate_class(right)
    assert capsys.readouterr().out.startswith("✅")


def with_z(make_z, labels=None, training=False, to_numpy=True):
    def generate(generator, label, n, *, latent_dim, seed):
        y = ops.full((n,), label, dtype="int32") if labels is None else labels(label, n)
        out = generator([make_z(n, latent_dim, seed), y], training=training)
        return ops.convert_to_numpy(out) if to_numpy else out
    return generate


normal = lambda n, d, seed: keras.random.normal((n, d), seed=seed)


@pytest.mark.parametrize("wrong, match", [
    (with_z(lambda n, d, seed: keras.random.uniform((n, d), seed=seed)), "N\\(0, I\\)"),
    (with_z(lambda n, d, seed: keras.random.normal((n, d))), "not seeded"),
    (with_z(lambda n, d, seed: keras.random.normal((n, d), seed=0)), "seed argument is ignored"),
    (with_z(normal, labels=lambda label, n: ops.convert_to_tensor(label)), "one label per image"),
    (with_z(normal, labels=lambda label, n: ops.full((1,), label, "int32")), "one label per image"),
    (with_z(normal, labels=lambda label, n: ops.arange(n, dtype="int32") % 10), "not all"),
    (with_z(normal, training=True), "training=True"),
    (with_z(normal, to_numpy=False), "NumPy array"),
    (with_z(lambda n, d, seed: keras.random.normal((n, d + 1), seed=seed)), "z has shape"),
])
def test_generate_class_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch08.check_generate_class(wrong)


# An exercise not done yet raises NotImplementedError, which every check lets through.


@pytest.mark.parametrize("check", [ch08.check_conditional_input, ch08.check_auxiliary_loss,
                                   ch08.check_generate_class])
def test_unwritten_exercises_pass_through(check):
    def unwritten(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        check(unwritten)
