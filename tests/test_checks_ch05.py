"""The checks of chapter 05 against right answers (the solutions notebook's) and the typical
wrong ones, each of which must be rejected with the message that names its mistake."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from dgm_course import losses
from dgm_course.checks import ExerciseError, ch05

# Exercise 1: the critic loss and the generator loss.


def critic_loss(real_scores, fake_scores):
    return ops.mean(fake_scores) - ops.mean(real_scores)


def generator_loss(fake_scores):
    return -ops.mean(fake_scores)


def test_losses_solution_passes(capsys):
    ch05.check_critic_loss(critic_loss)
    ch05.check_generator_loss(generator_loss)
    assert capsys.readouterr().out.count("✅") == 2


def test_the_package_losses_pass_too(capsys):
    ch05.check_critic_loss(losses.critic_loss)
    ch05.check_generator_loss(losses.critic_generator_loss)


@pytest.mark.parametrize("wrong, match", [
    (lambda r, f: -critic_loss(r, f), "flipped sign"),
    (lambda r, f: ops.mean(ops.softplus(-r)) + ops.mean(ops.softplus(f)), "standard GAN"),
    (lambda r, f: ops.mean(ops.log(ops.sigmoid(f))) - ops.mean(ops.log(ops.sigmoid(r))),
     "log of a sigmoid"),
    (lambda r, f: ops.sum(f) - ops.sum(r), "summed"),
    (lambda r, f: ops.mean(ops.concatenate([f, -r])), "one mean over both"),
    (lambda r, f: ops.mean(f) - ops.mean(r) + 1.0, "expected"),
    (lambda r, f: f, "scalar"),
])
def test_critic_loss_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch05.check_critic_loss(wrong)


@pytest.mark.parametrize("wrong, match", [
    (lambda f: ops.mean(f), "flipped sign"),
    (lambda f: ops.mean(ops.softplus(-f)), "non-saturating GAN loss"),
    (lambda f: ops.mean(ops.log(1.0 - ops.sigmoid(f))), "saturating GAN loss"),
    (lambda f: -ops.sum(f), "summed"),
    (lambda f: -ops.mean(f) * 2.0, "expected"),
])
def test_generator_loss_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch05.check_generator_loss(wrong)


# Exercise 2: the gradient penalty.


def gradient_penalty(critic, real, fake, seed, *, eps_shape="example", at="interpolates",
                     norm="example", penalty=lambda n: (n - 1.0) ** 2, reduce=ops.mean):
    real, fake = ops.convert_to_tensor(real), ops.convert_to_tensor(fake)
    batch, rest = ops.shape(real)[0], (1,) * (len(real.shape) - 1)
    shape = {"example": (batch, *rest), "batch": (1, *rest), "pixel": ops.shape(real)}[eps_shape]
    eps = keras.random.uniform(shape, seed=seed)
    x_hat = {"interpolates": eps * real + (1.0 - eps) * fake, "real": real, "fake": fake}[at]
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat, training=True)
    grads = ops.reshape(tape.gradient(scores, x_hat), (batch, -1))
    norms = (ops.sqrt(ops.sum(ops.square(grads), axis=1)) if norm == "example"
             else ops.sqrt(ops.sum(ops.square(grads))))
    return reduce(penalty(norms))


def test_gradient_penalty_solution_passes(capsys):
    ch05.check_gradient_penalty(gradient_penalty)
    assert capsys.readouterr().out.startswith("✅")


def test_the_package_gradient_penalty_passes_too(capsys):
    ch05.check_gradient_penalty(losses.gradient_penalty)


def eps_per_example_but_only_for_points(critic, real, fake, seed):
    eps = keras.random.uniform((ops.shape(real)[0], 1), seed=seed)  # fails to broadcast on images
    return gradient_penalty(critic, eps * real + (1 - eps) * fake, fake, seed, at="real")


@pytest.mark.parametrize("options, match", [
    ({"eps_shape": "batch"}, "one eps for the whole batch"),
    ({"eps_shape": "pixel"}, "eps differs within an example"),
    ({"norm": "batch"}, "whole batch at once"),
    ({"penalty": lambda n: (n**2 - 1.0) ** 2}, "squared norm"),
    ({"penalty": lambda n: ops.maximum(0.0, n - 1.0) ** 2}, "one-sided"),
    ({"penalty": lambda n: n**2}, "'- 1' is missing"),
    ({"penalty": lambda n: ops.abs(n - 1.0)}, "absolute value"),
    ({"reduce": ops.sum}, "summed"),
    ({"at": "real"}, "taken at the real data"),
    ({"at": "fake"}, "taken at the fakes"),
    ({"penalty": lambda n: (n - 0.5) ** 2}, "expected"),
])
def test_gradient_penalty_mistakes_are_named(options, match):
    def wrong(critic, real, fake, seed):
        return gradient_penalty(critic, real, fake, seed, **options)

    with pytest.raises(ExerciseError, match=match):
        ch05.check_gradient_penalty(wrong)


def test_gradient_penalty_that_fails_on_images_is_named():
    with pytest.raises(ExerciseError, match=r"shape \(16, 3, 3, 1\) your function raised"):
        ch05.check_gradient_penalty(eps_per_example_but_only_for_points)


def test_gradient_penalty_outside_the_segment_is_named():
    def wrong(critic, real, fake, seed):
        eps = keras.random.normal((ops.shape(real)[0],) + (1,) * (len(real.shape) - 1), seed=seed)
        return gradient_penalty(critic, eps * real + (1 - eps) * fake, fake, seed, at="real")

    with pytest.raises(ExerciseError, match="not between real and fake"):
        ch05.check_gradient_penalty(wrong)


# Exercise 3: the critic's step with weight clipping.


def critic_step(model, real, *, sign=1.0, both=False, seed=None, optimizer="d", clip="after",
                which=("kernel", "bias")):
    z = keras.random.normal((ops.shape(real)[0], model.latent_dim),
                            seed=model.seed_generator if seed is None else seed)
    weights = model.critic.trainable_weights
    c = model.clip_value

    def clip_weights():
        for weight in weights:
            if any(name in weight.path for name in which):
                weight.assign(ops.clip(weight, -c, c))

    if clip == "before":
        clip_weights()
    with tf.GradientTape() as tape:
        fake = model.generator(z, training=True)
        loss = losses.critic_loss(model.critic(real, training=True),
                                  model.critic(fake, training=True))
    variables = weights + (model.generator.trainable_weights if both else [])
    grads = [sign * g for g in tape.gradient(loss, variables)]
    (model.d_optimizer if optimizer == "d" else model.g_optimizer).apply(grads, variables)
    if clip == "after":
        clip_weights()
    return loss


def test_critic_step_solution_passes(capsys):
    ch05.check_critic_step(critic_step)
    assert capsys.readouterr().out.startswith("✅")


def test_the_package_critic_step_passes_too(capsys):
    ch05.check_critic_step(lambda model, real: model._critic_step(real)[0])


def no_update(model, real):
    return losses.critic_loss(model.critic(real), model.critic(real))


@pytest.mark.parametrize("options, match", [
    ({"both": True}, "generator's weights changed"),
    ({"optimizer": "g"}, "wrong optimizer"),
    ({"clip": "none"}, "not clipped after the update"),
    ({"clip": "before"}, "clipped \\*before\\*"),
    ({"which": ("kernel",)}, "only the kernels"),
    ({"which": ("bias",)}, "only the biases"),
    ({"sign": -1.0}, "uphill"),
    ({"seed": 0}, "SeedGenerator did not advance"),
])
def test_critic_step_mistakes_are_named(options, match):
    with pytest.raises(ExerciseError, match=match):
        ch05.check_critic_step(lambda model, real: critic_step(model, real, **options))


def test_critic_step_without_an_update_is_named():
    with pytest.raises(ExerciseError, match="did not change"):
        ch05.check_critic_step(no_update)


def test_critic_step_returning_the_wrong_loss_is_named():
    with pytest.raises(ExerciseError, match="returned loss"):
        ch05.check_critic_step(lambda model, real: -critic_step(model, real))


def test_checks_pass_not_implemented_through():
    def unwritten(*args, **kwargs):
        raise NotImplementedError()

    for check in (ch05.check_critic_loss, ch05.check_generator_loss,
                  ch05.check_gradient_penalty, ch05.check_critic_step):
        with pytest.raises(NotImplementedError):
            check(unwritten)


def test_answers_that_are_not_numbers_are_named():
    with pytest.raises(ExerciseError, match="not a number"):
        ch05.check_critic_loss(lambda r, f: "loss")
    with pytest.raises(ExerciseError, match="never called"):
        ch05.check_gradient_penalty(lambda critic, real, fake, seed: 0.0)
    assert np.isfinite(float(losses.critic_loss([1.0], [0.0])))
