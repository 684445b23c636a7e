"""Checks for the exercises of chapter 03, "GAN theory" (exercises/03_gan_theory.ipynb; the
lecture is notebooks/03_gan_theory.ipynb).

Each check runs the learner's function on cases whose answers are known (NumPy transcriptions
of the formulas, in float64) and names the typical mistake behind a wrong answer.
"""

import numpy as np

from dgm_course._validation import describe
from dgm_course.checks import fail, passed


def _numbers(value, exercise, what):
    """Returns `value` (NumPy, Keras or TensorFlow) as a float64 NumPy array."""
    try:
        return np.asarray(getattr(value, "numpy", lambda: value)(), dtype=np.float64)
    except (TypeError, ValueError):
        fail(exercise, f"{what} returned {describe(value)}, which is not a number or an array.")


def _softplus(x):
    return np.logaddexp(0.0, x)  # log(1 + e^x) without overflow


def _close(a, b, tol=1e-4):
    return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=tol, atol=tol)


def check_optimal_discriminator(optimal_discriminator):
    """Exercise 1: `optimal_discriminator(log_p_data, log_p_g)` -> D*(x) on a grid."""
    exercise = "Exercise 1"
    log_p_data = np.log(np.array([0.3, 0.05, 0.2, 0.0001, 0.5]))
    log_p_g = np.log(np.array([0.1, 0.45, 0.2, 0.0003, 0.5]))
    p, q = np.exp(log_p_data), np.exp(log_p_g)
    out = _numbers(optimal_discriminator(log_p_data, log_p_g), exercise, "optimal_discriminator")
    if out.shape != p.shape:
        fail(exercise,
             f"expected one value per grid point, shape {p.shape}; got shape {out.shape}.")
    if _close(out, q / (p + q)):
        fail(exercise, "flipped: that is p_g / (p_data + p_g), the probability of *fake*. "
             "D(x) is the probability that x is real.", "D*(x) = p_data(x) / (p_data(x) + p_g(x)).")
    if _close(out, p / q):
        fail(exercise, "that is the density ratio p_data / p_g, which is not a probability "
             "(here it reaches 6).", "Divide by the sum p_data + p_g, not by p_g.")
    if _close(out, p):
        fail(exercise, "the denominator is missing: you returned p_data(x).",
             "D*(x) = p_data(x) / (p_data(x) + p_g(x)).")
    if not _close(out, p / (p + q)):
        fail(exercise, f"on densities {p.tolist()} and {q.tolist()} expected "
             f"{np.round(p / (p + q), 4).tolist()}; got {np.round(out, 4).tolist()}.")
    tails = optimal_discriminator(np.array([-900.0, -1000.0]), np.array([-1000.0, -900.0]))
    tails = _numbers(tails, exercise, "optimal_discriminator")
    if not np.all(np.isfinite(tails)):
        fail(exercise, "far in the tails both densities underflow: exp(-900) is 0 in float64, "
             "so p_data / (p_data + p_g) is 0 / 0 = nan.",
             "Work with logs: D* = sigmoid(log p_data - log p_g) "
             "= 1 / (1 + exp(log p_g - log p_data)).")
    if not _close(tails, np.array([1.0, 0.0])):
        fail(exercise, f"with log p_data - log p_g = +100 and -100, D* should be 1 and 0; got "
             f"{tails.tolist()}.")
    passed("optimal_discriminator gives p_data / (p_data + p_g), and stays finite in the tails.")


def _logits():
    return np.array([-200.0, -8.0, -2.0, -0.5, 0.0, 0.7, 3.0, 200.0], np.float32)


def check_generator_loss(generator_loss):
    """Exercise 2: `generator_loss(fake_logits)` -> mean of -log D(G(z)), from logits."""
    exercise = "Exercise 2"
    logits = _logits()
    moderate = logits[1:-1]
    out = _numbers(generator_loss(moderate), exercise, "generator_loss")
    if out.shape not in ((), (1,)):
        fail(exercise, f"expected a scalar (the batch mean); got shape {out.shape}.",
             "Take the mean over the batch: ops.mean(...).")
    out = float(out.reshape(()))
    right = np.mean(_softplus(-moderate.astype(np.float64)))
    mistakes = {
        "flipped sign: that is log D(G(z)), which the generator should make large, not small.":
            -right,
        "that is the saturating loss log(1 - D(G(z))): its gradient vanishes when D rejects the "
        "fakes, so early training stalls.": np.mean(-_softplus(moderate.astype(np.float64))),
        "that is -log(1 - D(G(z))), the discriminator's term for fakes: minimising it makes the "
        "fakes look *more* fake.": np.mean(_softplus(moderate.astype(np.float64))),
        "summed over the batch instead of averaged: the loss (and the step size) then grows "
        "with the batch size.": right * len(moderate),
    }
    for problem, value in mistakes.items():
        if abs(out - value) < 1e-4 * max(1.0, abs(value)):
            fail(exercise, problem, "-log D(G(z)) = -log sigmoid(l) = softplus(-l); average it.")
    if abs(out - right) > 1e-4:
        fail(exercise, f"on logits {moderate.tolist()} expected {right:.5f}; got {out:.5f}.",
             "-log sigmoid(l) = softplus(-l).")
    extreme = _numbers(generator_loss(logits), exercise, "generator_loss").reshape(())
    if not np.isfinite(extreme):
        fail(exercise, "with a logit of -200 the loss is infinite: sigmoid(-200) rounds to 0 in "
             "float32 and log(0) = -inf. That happens whenever D is sure a fake is fake.",
             "Never take log(sigmoid(l)); use the identity -log sigmoid(l) = softplus(-l).")
    expected = np.mean(_softplus(-logits.astype(np.float64)))
    if abs(float(extreme) - expected) > 1e-3 * expected:
        fail(exercise, f"with logits down to -200 expected {expected:.4f}; got "
             f"{float(extreme):.4f} "
             "(clipping the probability changes the loss and kills its gradient).",
             "Use softplus(-l), exact for every logit.")
    passed("generator_loss is the non-saturating -log D(G(z)), from logits, finite for any logit.")


def check_discriminator_loss(discriminator_loss):
    """Exercise 3: `discriminator_loss(real_logits, fake_logits, label_smoothing=0.0)`."""
    exercise = "Exercise 3"
    real = np.array([2.0, -0.5, 1.0, 4.0, 0.3], np.float32)
    fake = np.array([-1.0, 0.5, -3.0], np.float32)  # Another batch size: means, not a sum.
    r, f = real.astype(np.float64), fake.astype(np.float64)

    def reference(s, *, real_target=None, fake_target=0.0, reduce=np.mean):
        t = 1.0 - s if real_target is None else real_target
        real_term = t * _softplus(-r) + (1 - t) * _softplus(r)
        fake_term = fake_target * _softplus(-f) + (1 - fake_target) * _softplus(f)
        return reduce(real_term) + reduce(fake_term)

    for s in (0.0, 0.1):
        out = _numbers(discriminator_loss(real, fake, label_smoothing=s), exercise,
                       "discriminator_loss")
        if out.shape not in ((), (1,)):
            fail(exercise, f"expected a scalar; got shape {out.shape}.",
                 "Average each term over its own batch, then add them.")
        out, right = float(out.reshape(())), reference(s)
        mistakes = {
            "flipped sign: that is V(D, G), which D maximises; the loss to minimise is -V.":
                -right,
            "real and fake are swapped: real data should get target 1, fakes target 0.":
                reference(0.0, real_target=0.0, fake_target=1.0 - s),
            "summed over the batch instead of averaged.": reference(s, reduce=np.sum),
        }
        if s:
            mistakes.update({
                "label_smoothing is ignored: the real target should be 1 - s = 0.9.":
                    reference(0.0),
                "the real target is s = 0.1 instead of 1 - s = 0.9.": reference(0.0, real_target=s),
                "the real target is 1 + s: a probability target above 1.":
                    reference(0.0, real_target=1.0 + s),
                "two-sided smoothing: the fakes' target moved to s too. Smooth only the real "
                "labels (Salimans et al., 2016): a fake target above 0 rewards D for believing "
                "fakes.": reference(s, fake_target=s),
            })
        for problem, value in mistakes.items():
            if abs(out - value) < 1e-4 * max(1.0, abs(value)):
                fail(exercise, problem, "t softplus(-l_real) + (1 - t) softplus(l_real) with "
                     "t = 1 - s, plus softplus(l_fake); each averaged over its batch.")
        if abs(out - right) > 1e-4 * max(1.0, right):
            fail(exercise, f"with label_smoothing={s} expected {right:.5f}; got {out:.5f}.")
    extreme = _numbers(discriminator_loss(np.array([-200.0, 200.0], np.float32),
                                          np.array([200.0, -200.0], np.float32),
                                          label_smoothing=0.1), exercise, "discriminator_loss")
    if not np.all(np.isfinite(extreme)):
        fail(exercise, "with logits of ±200 the loss is not finite: sigmoid rounds to exactly 0 "
             "or 1 in float32, and log(0) = -inf.",
             "-log sigmoid(l) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l).")
    passed("discriminator_loss is -V(D, G) from logits, with one-sided label smoothing.")


def _grid_densities():
    """Two 1-D densities on a grid, with regions where one of them is exactly 0."""
    x = np.linspace(-6.0, 6.0, 2401)
    dx = x[1] - x[0]
    p = np.where(np.abs(x + 1) < 2, np.exp(-0.5 * ((x + 1) / 0.7) ** 2), 0.0)
    q = np.exp(-0.5 * ((x - 1.5) / 1.2) ** 2)
    return x, p / (p.sum() * dx), q / (q.sum() * dx), dx


def _kl(a, b, dx):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(np.where(a > 0, a * np.log(a / b), 0.0)) * dx


def check_jensen_shannon(jensen_shannon):
    """Exercise 4: `jensen_shannon(p, q, dx)` -> JSD(p || q) in nats from densities on a grid."""
    exercise = "Exercise 4"
    _, p, q, dx = _grid_densities()
    with np.errstate(all="ignore"):
        out = _numbers(jensen_shannon(p, q, dx), exercise, "jensen_shannon")
    if out.shape not in ((), (1,)):
        fail(exercise, f"expected one number; got shape {out.shape}.",
             "Sum over the grid (times dx) to integrate.")
    out = float(out.reshape(()))
    if np.isnan(out):
        fail(exercise, "the result is nan: where p(x) = 0 the term p log(p / m) is 0 * log 0.",
             "By convention 0 log 0 = 0: use np.where(p > 0, p * np.log(p / m), 0.0).")
    if np.isinf(out):
        fail(exercise, "the result is infinite: log(a / m) is infinite where m = 0 but a > 0. "
             "With the right mixture that never happens: m = (p + q) / 2 is positive wherever "
             "p or q is (a product p * q, for one, is not).",
             "m = 0.5 * (p + q).")
    m = 0.5 * (p + q)
    right = 0.5 * _kl(p, m, dx) + 0.5 * _kl(q, m, dx)
    mistakes = {
        "the 1/2 in front of the two KL terms is missing: you get 2 JSD.": 2 * right,
        "the mixture m is p + q, without the 1/2: it is not a density, and the result is off "
        "by log 2.": 0.5 * _kl(p, p + q, dx) + 0.5 * _kl(q, p + q, dx),
        "that is KL(p || q) + KL(q || p) symmetrised, not the Jensen-Shannon divergence: "
        "each density is compared with the mixture m = (p + q) / 2.":
            0.5 * _kl(p, q + 1e-300, dx) + 0.5 * _kl(q, p + 1e-300, dx),
        "dx is missing: a sum over grid points is not an integral.": right / dx,
        "the logarithm is in base 2 (bits); the course measures in nats (natural log), "
        "where the bound is log 2.": right / np.log(2),
    }
    for problem, value in mistakes.items():
        if np.isfinite(value) and abs(out - value) < 1e-6 * max(1.0, abs(value)):
            fail(exercise, problem, "JSD = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2, "
                 "KL(a || m) = sum a log(a / m) dx.")
    if abs(out - right) > 1e-6:
        fail(exercise, f"expected {right:.6f} nats; got {out:.6f}.")
    same = float(_numbers(jensen_shannon(q, q, dx), exercise, "jensen_shannon").reshape(()))
    if abs(same) > 1e-9:
        fail(exercise, f"JSD(q || q) should be 0; got {same:.3g}.")
    passed(f"jensen_shannon is right ({right:.4f} nats here; between 0 and log 2 = 0.6931).")


def _reference_discriminator_step(model, real):
    """One discriminator step as in dgm_course.gan.GAN.train_step."""
    import keras
    import tensorflow as tf

    from dgm_course import losses

    z = keras.random.normal((real.shape[0], model.latent_dim), seed=model.seed_generator)
    fake = model.generator(z, training=True)
    with tf.GradientTape() as tape:
        d_loss = losses.discriminator_loss(model.discriminator(real, training=True),
                                           model.discriminator(fake, training=True))
    weights = model.discriminator.trainable_weights
    model.d_optimizer.apply(tape.gradient(d_loss, weights), weights)
    return d_loss


def _fresh_gan():
    """A small GAN with fixed weights and SGD, so that one step is exactly predictable."""
    import keras

    from dgm_course import gan

    generator = gan.toy_generator(latent_dim=2, hidden=8)
    discriminator = gan.toy_discriminator(hidden=8)
    rng = np.random.default_rng(0)  # Fixed weights, without touching the global seeds.
    for network in (generator, discriminator):
        network.set_weights([rng.normal(0, 0.5, w.shape).astype("float32")
                             for w in network.weights])
    model = gan.GAN(generator, discriminator, latent_dim=2, seed=3)
    model.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1))
    return model


def _weights(network):
    return [w.numpy().copy() for w in network.weights]


def check_discriminator_step(discriminator_step):
    """Exercise 5: `discriminator_step(model, real)`, one discriminator update of a gan.GAN."""
    exercise = "Exercise 5"
    real = np.random.default_rng(0).normal(size=(16, 2)).astype("float32")
    mine, reference = _fresh_gan(), _fresh_gan()
    d_before, g_before = _weights(mine.discriminator), _weights(mine.generator)
    state = mine.seed_generator.state.numpy().copy()
    loss = _numbers(discriminator_step(mine, real), exercise, "discriminator_step")
    reference_loss = float(_reference_discriminator_step(reference, real))
    if any(not np.array_equal(a, b) for a, b in zip(g_before, _weights(mine.generator))):
        fail(exercise, "the generator's weights changed: the discriminator's step must update "
             "the discriminator only.",
             "Take gradients with respect to model.discriminator.trainable_weights only.")
    d_after = _weights(mine.discriminator)
    if all(np.array_equal(a, b) for a, b in zip(d_before, d_after)):
        fail(exercise, "the discriminator's weights did not change: no update was applied.",
             "model.d_optimizer.apply(gradients, model.discriminator.trainable_weights).")
    expected = _weights(reference.discriminator)
    step = [a - b for a, b in zip(d_after, d_before)]
    right_step = [a - b for a, b in zip(expected, d_before)]
    if all(np.allclose(s, -r, atol=1e-5) for s, r in zip(step, right_step)):
        fail(exercise, "the step went uphill: the discriminator *maximises* V, so it minimises "
             "-V; you applied the gradient of V (or flipped the loss's sign).",
             "Minimise losses.discriminator_loss(real_logits, fake_logits).")
    if np.array_equal(state, mine.seed_generator.state.numpy()):
        fail(exercise, "the model's SeedGenerator did not advance: the noise is drawn with a "
             "fixed seed (or elsewhere), so every step would see the same z.",
             "seed=model.seed_generator, not seed=0.")
    if loss.shape not in ((), (1,)) or abs(float(loss.reshape(())) - reference_loss) > 1e-4:
        fail(exercise, f"the returned loss is {loss.tolist()}, expected {reference_loss:.5f}: "
             "the loss of the real batch and of a fake batch as large, from the generator's "
             "noise drawn with model.seed_generator.")
    if not all(np.allclose(a, b, atol=1e-5) for a, b in zip(d_after, expected)):
        fail(exercise, "the update differs from one gradient step on "
             "losses.discriminator_loss with noise z drawn as "
             "keras.random.normal((batch, model.latent_dim), seed=model.seed_generator).",
             "Draw z with the model's own SeedGenerator, one z per real example.")
    passed("discriminator_step updates the discriminator alone, downhill on -V, with the model's "
           "own noise.")
