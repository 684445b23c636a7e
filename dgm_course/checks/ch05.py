"""Checks for the exercises of chapter 05, "Wasserstein GANs" (exercises/05_wasserstein.ipynb;
the lecture is notebooks/05_wasserstein.ipynb).

Each check runs the learner's function on cases whose answers are known: NumPy transcriptions
of the formulas, a critic whose gradient is known in closed form and that records where it was
called, and a WGAN whose critic step is predictable to the last digit; it names the typical
mistake behind a wrong answer.
"""

import numpy as np

from dgm_course.checks import fail, passed
from dgm_course.checks.ch03 import _numbers  # the same conversion of a returned value


def _scalar(value, exercise, what, hint):
    out = _numbers(value, exercise, what)
    if out.shape not in ((), (1,)):
        fail(exercise, f"{what} should return a scalar (the batch mean); got shape {out.shape}.",
             hint)
    return float(out.reshape(()))


def _softplus(x):
    return np.logaddexp(0.0, x)


def _first_mistake(out, right, mistakes, exercise, hint, tol=1e-5):
    """Fails with the first mistake whose value `out` equals, or if `out` is not `right`."""
    for problem, value in mistakes.items():
        if abs(value - right) > tol * max(1.0, abs(right)) and \
                abs(out - value) <= tol * max(1.0, abs(value)):
            fail(exercise, problem, hint)
    if abs(out - right) > tol * max(1.0, abs(right)):
        fail(exercise, f"expected {right:.6f}; got {out:.6f}.", hint)


def _scores():
    """Critic scores of two batches of different sizes (so means and sums differ)."""
    real = np.array([1.5, -0.3, 2.2, 0.8, 4.0], np.float32)
    fake = np.array([-1.0, 0.4, -2.5], np.float32)
    return real, fake


def check_critic_loss(critic_loss):
    """Exercise 1a: `critic_loss(real_scores, fake_scores)` -> mean(D(G(z))) - mean(D(x))."""
    exercise = "Exercise 1"
    hint = "critic_loss = mean(fake_scores) - mean(real_scores), no sigmoid."
    real, fake = _scores()
    r, f = real.astype(np.float64), fake.astype(np.float64)
    out = _scalar(critic_loss(real, fake), exercise, "critic_loss", hint)
    right = f.mean() - r.mean()
    mistakes = {
        "flipped sign: that is the Wasserstein estimate mean(D(x)) - mean(D(G(z))), which the "
        "critic maximises; its loss to minimise is the negative.": -right,
        "that is the standard GAN's discriminator loss (softplus / log of a sigmoid): the critic "
        "outputs an unbounded score, not a probability, and its loss is linear in the scores.":
            _softplus(-r).mean() + _softplus(f).mean(),
        "a log of a sigmoid crept in: the critic's scores are used as they are, not squashed "
        "into probabilities.": -(-_softplus(-r)).mean() + (-_softplus(-f)).mean(),
        "summed over each batch instead of averaged: the loss then grows with the batch size.":
            f.sum() - r.sum(),
        "one mean over both batches together: each expectation is averaged over its own batch.":
            np.concatenate([f, -r]).mean(),
    }
    _first_mistake(out, right, mistakes, exercise, hint)
    passed("critic_loss is mean(D(G(z))) - mean(D(x)): minimising it maximises the estimate of W.")


def check_generator_loss(generator_loss):
    """Exercise 1b: `generator_loss(fake_scores)` -> -mean(D(G(z)))."""
    exercise, hint = "Exercise 1", "generator_loss = -mean(fake_scores), no sigmoid, no log."
    _, fake = _scores()
    f = fake.astype(np.float64)
    out = _scalar(generator_loss(fake), exercise, "generator_loss", hint)
    right = -f.mean()
    mistakes = {
        "flipped sign: minimising mean(D(G(z))) pushes the fakes towards scores the critic "
        "gives fakes, away from the data.": f.mean(),
        "that is the non-saturating GAN loss -log sigmoid(D(G(z))): the critic's score is not "
        "a logit, and the Wasserstein generator loss is linear in it.": _softplus(-f).mean(),
        "that is the saturating GAN loss log(1 - sigmoid(D(G(z)))): the Wasserstein generator "
        "loss uses the score itself.": -_softplus(f).mean(),
        "summed over the batch instead of averaged.": -f.sum(),
    }
    _first_mistake(out, right, mistakes, exercise, hint)
    passed("generator_loss is -mean(D(G(z))): the generator raises the critic's score of its "
           "fakes.")


class _RecordingCritic:
    """The critic D(x) = 0.5 * a * sum(x**2) per example (gradient a * x), which remembers the
    points it was called on; called as critic(x) or critic(x, training=True)."""

    def __init__(self, a=0.7):
        self.a, self.calls = a, []

    def __call__(self, x, training=None):
        from keras import ops

        self.calls.append(np.asarray(ops.convert_to_numpy(x), np.float64))
        flat = ops.reshape(x, (ops.shape(x)[0], -1))
        return 0.5 * self.a * ops.sum(ops.square(flat), axis=1)  # (batch,)


def _penalty_data(shape):
    rng = np.random.default_rng(5)
    real = rng.normal(0.0, 1.2, shape).astype(np.float32)
    fake = rng.normal(0.5, 1.0, shape).astype(np.float32)
    return real, fake


def _interpolation_mistake(x_hat, real, fake):
    """Returns a sentence naming what is wrong with the points x_hat, or None."""
    batch = len(real)
    x_hat, real, fake = (a.reshape(batch, -1).astype(np.float64) for a in (x_hat, real, fake))
    if np.allclose(x_hat, real, atol=1e-6):
        return "the gradient is taken at the real data, not at interpolates between real and fake."
    if np.allclose(x_hat, fake, atol=1e-6):
        return "the gradient is taken at the fakes, not at interpolates between real and fake."
    eps = (x_hat - fake) / (real - fake)  # (batch, features); the data make real != fake
    if np.any(eps < -1e-4) or np.any(eps > 1 + 1e-4):
        return ("the points are not between real and fake: x_hat = eps * real + (1 - eps) * fake "
                "needs eps in [0, 1] (keras.random.uniform).")
    if np.any(np.ptp(eps, axis=1) > 1e-4):
        return ("eps differs within an example (one eps per pixel/feature): each x_hat must lie "
                "on the straight line between one real and one fake example.")
    if np.ptp(eps[:, 0]) < 1e-6:
        return ("one eps for the whole batch: every example should get its own eps, so the "
                "penalty sees points all along the lines between real and fake.")
    return None


def check_gradient_penalty(gradient_penalty):
    """Exercise 2: `gradient_penalty(critic, real, fake, seed)`, mean((||grad D(x_hat)|| - 1)^2)."""
    exercise = "Exercise 2"
    hint = ("eps ~ U(0, 1) of shape (batch, 1, ..., 1); x_hat = eps * real + (1 - eps) * fake; "
            "g = grad of critic(x_hat) w.r.t. x_hat; norm per example over every other axis; "
            "mean((norm - 1)**2).")
    for shape in ((64, 3), (16, 3, 3, 1)):
        real, fake = _penalty_data(shape)
        critic = _RecordingCritic()
        try:
            value = gradient_penalty(critic, real, fake, seed=7)
        except NotImplementedError:
            raise
        except Exception as error:  # noqa: BLE001 - the learner's code may fail in any way.
            fail(exercise, f"on a batch of shape {shape} your function raised "
                 f"{type(error).__name__}: {error}", hint)
        out = _scalar(value, exercise, "gradient_penalty", hint)
        if not critic.calls:
            fail(exercise, "the critic was never called: the penalty needs its gradient.", hint)
        x_hat = critic.calls[-1]
        if x_hat.shape != real.shape:
            fail(exercise, f"the critic was called on shape {x_hat.shape}, expected the batch's "
                 f"shape {real.shape}.", hint)
        problem = _interpolation_mistake(x_hat, real, fake)
        if problem:
            fail(exercise, problem, hint)
        grads = critic.a * x_hat.reshape(len(real), -1)  # grad D(x_hat) = a * x_hat
        norms = np.sqrt(np.sum(grads**2, axis=1))  # (batch,)
        right = np.mean((norms - 1.0) ** 2)
        mistakes = {
            "the squared norm ||g||^2 is used in place of the norm ||g||.":
                np.mean((norms**2 - 1.0) ** 2),
            "one-sided penalty max(0, ||g|| - 1)^2: WGAN-GP penalises norms below 1 too "
            "(two-sided).": np.mean(np.maximum(0.0, norms - 1.0) ** 2),
            "the '- 1' is missing: the penalty pulls the norm towards 1, not towards 0.":
                np.mean(norms**2),
            "the norm is taken over the whole batch at once; take it per example (sum the "
            "squares over every axis but the batch axis).":
                (np.sqrt(np.sum(grads**2)) - 1.0) ** 2,
            "summed over the batch instead of averaged.": np.sum((norms - 1.0) ** 2),
            "the absolute value |norm - 1| is used, not its square.": np.mean(np.abs(norms - 1)),
        }
        _first_mistake(out, right, mistakes, exercise, hint, tol=1e-4)
    passed("gradient_penalty interpolates with one eps per example and penalises "
           "(||grad D(x_hat)||_2 - 1)^2 per example, averaged, for points and for images.")


def _clipped_wgan(clip_value=0.05):
    """A small weight-clipping WGAN with fixed weights in [-2c, 2c] (as a fresh critic's are:
    clipping starts at the first step) and SGD optimizers of different rates, so that one
    critic step is exactly predictable, and big enough to leave [-c, c] in every weight
    tensor, so that a missing clip shows."""
    import keras

    from dgm_course import gan, wgan

    generator = gan.toy_generator(latent_dim=2, hidden=8)
    critic = gan.toy_discriminator(hidden=8)
    rng = np.random.default_rng(0)  # Fixed weights, without touching the global seeds.
    generator.set_weights([rng.normal(0, 0.5, w.shape).astype("float32")
                           for w in generator.weights])
    critic.set_weights([rng.uniform(-2 * clip_value, 2 * clip_value, w.shape).astype("float32")
                        for w in critic.weights])
    model = wgan.WGAN(generator, critic, latent_dim=2, n_critic=1, clip_value=clip_value, seed=3)
    model.compile(d_optimizer=keras.optimizers.SGD(_CRITIC_RATE),
                  g_optimizer=keras.optimizers.SGD(0.5))
    return model


_CRITIC_RATE = 200.0  # The critic's gradients are tiny with weights in [-0.05, 0.05].


def _reference_step(real, clip_first=False):
    """The critic step written out: returns (loss, weights before, gradients); with
    `clip_first`, the weights are clipped before the gradient is taken (a mistake)."""
    import keras
    import tensorflow as tf

    from dgm_course import losses

    model = _clipped_wgan()
    if clip_first:
        for weight in model.critic.trainable_weights:
            weight.assign(np.clip(weight.numpy(), -model.clip_value, model.clip_value))
    z = keras.random.normal((real.shape[0], model.latent_dim), seed=model.seed_generator)
    fake = model.generator(z, training=True)
    with tf.GradientTape() as tape:
        loss = losses.critic_loss(model.critic(real, training=True),
                                  model.critic(fake, training=True))
    grads = tape.gradient(loss, model.critic.trainable_weights)
    return float(loss), _weights(model.critic), [g.numpy() for g in grads]


def _weights(network):
    return [w.numpy().copy() for w in network.weights]


def _same(a, b, atol=0.0):
    return all(np.allclose(x, y, rtol=0.0, atol=atol) for x, y in zip(a, b, strict=True))


def check_critic_step(critic_step):
    """Exercise 3: `critic_step(model, real)`, one critic update of a weight-clipping WGAN."""
    exercise = "Exercise 3"
    hint = ("z from model.seed_generator; fakes from model.generator; tape over "
            "losses.critic_loss; model.d_optimizer.apply on model.critic.trainable_weights; "
            "then clip every critic weight: w.assign(ops.clip(w, -c, c)).")
    real = np.random.default_rng(0).normal(size=(32, 2)).astype("float32") * 2.0
    mine = _clipped_wgan()
    c = mine.clip_value
    d_before, g_before = _weights(mine.critic), _weights(mine.generator)
    state = mine.seed_generator.state.numpy().copy()
    loss = _numbers(critic_step(mine, real), exercise, "critic_step")
    reference_loss, start, grads = _reference_step(real)
    if not _same(g_before, _weights(mine.generator)):
        fail(exercise, "the generator's weights changed: the critic's step must update the "
             "critic only.", hint)
    d_after = _weights(mine.critic)
    if _same(d_before, d_after):
        fail(exercise, "the critic's weights did not change: no update was applied.", hint)
    if int(mine.g_optimizer.iterations) or not int(mine.d_optimizer.iterations):
        fail(exercise, "the wrong optimizer: the critic is updated with model.d_optimizer; "
             "model.g_optimizer (another learning rate, its own moments) is the generator's.",
             hint)
    if np.array_equal(state, mine.seed_generator.state.numpy()):
        fail(exercise, "the model's SeedGenerator did not advance: the noise is drawn with a "
             "fixed seed (or not at all).", "seed=model.seed_generator, not seed=0.")
    # w <- clip(w - rate * g, -c, c), and the ways to get it wrong.
    _, clipped_start, clipped_grads = _reference_step(real, clip_first=True)
    stepped = [w - _CRITIC_RATE * g for w, g in zip(start, grads, strict=True)]
    right = [np.clip(w, -c, c) for w in stepped]
    is_kernel = ["kernel" in v.path for v in mine.critic.weights]
    mistakes = {
        "the weights were not clipped after the update: some lie outside [-c, c]. Weight "
        "clipping keeps them in [-c, c] after every critic step.": stepped,
        "clipped *before* the update: the update then moves the weights out of [-c, c] again.":
            [w - _CRITIC_RATE * g for w, g in zip(clipped_start, clipped_grads, strict=True)],
        "only the kernels were clipped, not the biases: Arjovsky et al. clip every weight.":
            [r if k else s for r, s, k in zip(right, stepped, is_kernel, strict=True)],
        "only the biases were clipped, not the kernels: Arjovsky et al. clip every weight.":
            [s if k else r for r, s, k in zip(right, stepped, is_kernel, strict=True)],
        "the step went uphill: the critic minimises mean(D(G(z))) - mean(D(x)); you applied "
        "the gradient of the Wasserstein estimate (or flipped the loss's sign).":
            [np.clip(w + _CRITIC_RATE * g, -c, c) for w, g in zip(start, grads, strict=True)],
    }
    for problem, weights in mistakes.items():
        if _same(d_after, weights, 1e-5):
            fail(exercise, problem, hint)
    if not _same(d_after, right, 1e-5):
        fail(exercise, "the update differs from one step of model.d_optimizer on "
             "losses.critic_loss(critic(real), critic(generator(z))), followed by clipping.", hint)
    if loss.shape not in ((), (1,)) or abs(float(loss.reshape(())) - reference_loss) > 1e-4:
        fail(exercise, f"the returned loss is {loss.tolist()}, expected {reference_loss:.5f}: "
             "the critic loss before the update.", hint)
    passed("critic_step updates the critic alone with d_optimizer, downhill on the critic loss, "
           "and clips every weight to [-c, c] afterwards.")
