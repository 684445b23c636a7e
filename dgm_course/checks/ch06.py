"""Checks for the exercises of chapter 06, "VAE theory"
(exercises/06_vae_theory.ipynb; the lecture is notebooks/06_vae_theory.ipynb).

Each check runs the learner's function on small cases whose answers are known from a NumPy
transcription of the formula, and names the typical mistake behind a wrong answer.
"""

import numpy as np

from dgm_course._validation import describe
from dgm_course.checks import fail, passed


def _numpy(value, exercise, what):
    """Returns `value` (a NumPy array, Keras or TensorFlow tensor) as a float64 array."""
    try:
        import keras

        return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)
    except (TypeError, ValueError):
        fail(exercise, f"{what} returned {describe(value)}, which is not an array of numbers.")


def _close(a, b, tolerance=1e-4):
    return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=tolerance, atol=tolerance)


# Exercise 1: the reparameterised sampler.

_MEAN = np.array([-1.0, 0.0, 2.0])
_STD = np.array([2.0, 1.0, 0.5])  # log_var = log 4, 0, log 0.25


def _sampler_case(n=20_000):
    z_mean = np.tile(_MEAN, (n, 1)).astype(np.float32)
    z_log_var = np.tile(np.log(_STD**2), (n, 1)).astype(np.float32)
    return z_mean, z_log_var


def _check_spread(z, exercise):
    """Names the usual mistakes in the scale of the noise from the sample's statistics."""
    spread = z.std(axis=0)
    if np.all(spread < 1e-6):
        fail(exercise, "every row of z is the same: the noise epsilon is shared across the batch "
             "(or missing).", "Draw epsilon with the full shape of z_mean: "
             "keras.random.normal(ops.shape(z_mean), seed=seed).")
    if np.allclose(spread, _STD**2, rtol=0.05):
        fail(exercise, f"the standard deviations are {np.round(spread, 2).tolist()}, the variances "
             f"sigma^2 = {(_STD**2).tolist()}: exp(log_var) is sigma^2, not sigma.",
             "Scale epsilon by sigma = exp(0.5 * z_log_var).")
    if np.allclose(spread, 1.0, rtol=0.05):
        fail(exercise, "every dimension has standard deviation 1: epsilon is not scaled by sigma.",
             "z = z_mean + exp(0.5 * z_log_var) * epsilon.")
    if not np.allclose(spread, _STD, rtol=0.05):
        fail(exercise, f"the standard deviations are {np.round(spread, 2).tolist()}; expected "
             f"sigma = {_STD.tolist()} for log_var = log sigma^2.",
             "z = z_mean + exp(0.5 * z_log_var) * epsilon with epsilon ~ N(0, 1).")
    mean = z.mean(axis=0)
    if np.any(np.abs(mean - _MEAN) > 5 * _STD / np.sqrt(len(z))):
        fail(exercise, f"the sample means are {np.round(mean, 2).tolist()}; expected "
             f"{_MEAN.tolist()}.", "Add z_mean: z = z_mean + sigma * epsilon.")
    correlation = np.corrcoef(z.T)[0, 1]
    if abs(correlation) > 0.1:
        fail(exercise, f"dimensions 0 and 1 are correlated ({correlation:.2f}): they share one "
             "epsilon.", "Draw one epsilon per element, with the shape of z_mean.")
    inside = np.mean(np.abs(z - _MEAN) < _STD)
    if abs(inside - 0.6827) > 0.02:
        fail(exercise, f"{inside:.1%} of the draws lie within one sigma of the mean; a normal "
             "distribution has 68.3%: epsilon is not standard normal.",
             "Use keras.random.normal, not keras.random.uniform.")


def _check_sampler_gradient(reparameterize, exercise):
    """The gradient of sum(z) must reach z_mean (1 each) and z_log_var (0.5 (z - mean) each)."""
    import tensorflow as tf

    z_mean, z_log_var = (tf.constant(a[:64]) for a in _sampler_case())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([z_mean, z_log_var])
        z = tf.convert_to_tensor(reparameterize(z_mean, z_log_var, seed=0))
        total = tf.reduce_sum(z)
    grad_mean, grad_log_var = tape.gradient(total, [z_mean, z_log_var])
    blocked = [name for name, grad in (("z_mean", grad_mean), ("z_log_var", grad_log_var))
               if grad is None or not np.any(grad.numpy())]
    if blocked:
        fail(exercise, f"sampling blocks the gradient: no gradient reaches {' and '.join(blocked)}. "
             "A sample drawn with NumPy, or behind stop_gradient, is a constant to autodiff, so "
             "the encoder would never learn.",
             "Draw only epsilon at random and compute z = z_mean + exp(0.5 * z_log_var) * "
             "epsilon with keras.ops.")
    expected = 0.5 * (z.numpy() - z_mean.numpy())  # d z / d log_var = 0.5 sigma epsilon
    if not np.allclose(grad_mean.numpy(), 1.0, atol=1e-5) or not np.allclose(
            grad_log_var.numpy(), expected, atol=1e-4):
        fail(exercise, "the gradient of z is not that of z_mean + exp(0.5 z_log_var) epsilon "
             "(dz/dmean = 1, dz/dlog_var = 0.5 sigma epsilon).",
             "Compute z from z_mean, z_log_var and epsilon with keras.ops only.")


def check_reparameterize(reparameterize):
    """Exercise 1: `reparameterize(z_mean, z_log_var, seed)` draws z ~ N(mean, exp(log_var))."""
    exercise = "Exercise 1"
    z_mean, z_log_var = _sampler_case()
    z = _numpy(reparameterize(z_mean, z_log_var, seed=0), exercise, "reparameterize")
    if z.shape != z_mean.shape:
        fail(exercise, f"z has shape {z.shape}; expected that of z_mean, {z_mean.shape}.",
             "Draw epsilon with ops.shape(z_mean).")
    _check_spread(z, exercise)
    if not np.array_equal(z, _numpy(reparameterize(z_mean, z_log_var, seed=0), exercise, "")):
        fail(exercise, "two calls with seed=0 gave different z: the draw is not reproducible.",
             "Pass seed=seed to keras.random.normal.")
    if np.array_equal(z, _numpy(reparameterize(z_mean, z_log_var, seed=1), exercise, "")):
        fail(exercise, "seeds 0 and 1 give the same z: the seed is ignored.",
             "Pass seed=seed to keras.random.normal.")
    _check_sampler_gradient(reparameterize, exercise)
    passed("reparameterize draws z ~ N(mean, exp(log_var)), seeded, and passes the gradient on to "
           "z_mean and z_log_var.")


# Exercise 2: the Gaussian KL.


def _kl_case():
    """4 examples with 3 latent dimensions (batch != latent, so that a wrong axis shows)."""
    rng = np.random.default_rng(6)
    z_mean = rng.normal(0, 1.5, (4, 3)).astype(np.float32)
    z_log_var = rng.normal(0, 1.0, (4, 3)).astype(np.float32)
    z_mean[0], z_log_var[0] = 0.0, 0.0  # q = p: KL = 0.
    return z_mean, z_log_var


def _reference_kl(z_mean, z_log_var):
    m, v = z_mean.astype(np.float64), z_log_var.astype(np.float64)
    return -0.5 * np.sum(1 + v - m**2 - np.exp(v), axis=-1)  # (batch,)


def check_gaussian_kl(gaussian_kl):
    """Exercise 2: `gaussian_kl(z_mean, z_log_var)`, KL(N(mean, exp(log_var)) || N(0, I)) (batch,)."""
    exercise = "Exercise 2"
    z_mean, z_log_var = _kl_case()
    kl = _numpy(gaussian_kl(z_mean, z_log_var), exercise, "gaussian_kl")
    per_element = -0.5 * (1 + z_log_var - z_mean**2 - np.exp(z_log_var))
    expected = _reference_kl(z_mean, z_log_var)
    if kl.shape == (3,) and _close(kl, per_element.sum(axis=0)):
        fail(exercise, "the KL is summed over the batch axis (axis 0) instead of the latent axis: "
             "it has one value per latent dimension, shape (3,), not one per example, shape (4,).",
             "Sum over the last axis: ops.sum(..., axis=-1).")
    if kl.shape != (4,):
        fail(exercise, f"expected one KL per example, shape (4,), for z_mean of shape (4, 3); got "
             f"shape {kl.shape}.", "Sum over the latent axis only (axis=-1); do not average the "
             "batch here.")
    named = [
        (-expected, "the sign is flipped: a KL divergence is never negative.",
         "kl = -0.5 * sum(1 + log_var - mean**2 - exp(log_var))."),
        (2 * expected, "every value is twice the KL: the factor 1/2 is missing.",
         "Multiply the sum by -0.5."),
        (expected / 3, "every value is a third of the KL: that is a mean over the 3 latent "
         "dimensions, not a sum (the dimensions are independent, their KLs add).",
         "ops.sum(..., axis=-1), not ops.mean."),
        (-0.5 * np.sum(1 + z_log_var - z_mean**2 - np.exp(0.5 * z_log_var), axis=-1),
         "the variance is written exp(0.5 log_var), which is sigma, not sigma^2.",
         "sigma^2 = exp(log_var)."),
        (-0.5 * np.sum(1 + z_log_var - z_mean**2 - z_log_var, axis=-1),
         "log_var stands where the variance exp(log_var) belongs.", "sigma^2 = exp(log_var)."),
        (-0.5 * np.sum(1 + z_log_var - z_mean - np.exp(z_log_var), axis=-1),
         "the mean enters unsquared: the term is mean**2.", "Use ops.square(z_mean)."),
    ]
    for wrong, problem, hint in named:
        if not _close(kl, expected) and _close(kl, wrong):
            fail(exercise, problem, hint)
    if not _close(kl, expected):
        fail(exercise, f"got {np.round(kl, 4).tolist()}; expected {np.round(expected, 4).tolist()} "
             "(example 0 has mean 0 and log_var 0, so its KL must be 0).",
             "kl = -0.5 * sum(1 + log_var - mean**2 - exp(log_var), axis=-1).")
    passed("gaussian_kl matches -0.5 * sum(1 + log_var - mean^2 - exp(log_var)) per example, and "
           "is 0 where q = p.")


# Exercise 3: the beta-VAE loss with a Bernoulli decoder.


def _loss_case():
    rng = np.random.default_rng(8)
    x = (rng.uniform(size=(5, 6)) < 0.5).astype(np.float32)
    logits = rng.normal(0, 3, (5, 6)).astype(np.float32)
    logits[0, 0], x[0, 0] = 150.0, 0.0  # A confident wrong pixel: -log p = 150, finite.
    logits[1, 0], x[1, 0] = -150.0, 1.0
    z_mean, z_log_var = (rng.normal(0, 1, (5, 2)).astype(np.float32) for _ in range(2))
    return x, logits, z_mean, z_log_var


def _reference_terms(x, logits, z_mean, z_log_var):
    """(-log p(x | z), KL) per example, from softplus, in float64 (batch,) each."""
    l = logits.astype(np.float64)
    softplus = np.logaddexp(0.0, l)
    return np.sum(softplus - x * l, axis=1), _reference_kl(z_mean, z_log_var)


def check_beta_vae_loss(beta_vae_loss):
    """Exercise 3: `beta_vae_loss(x, logits, z_mean, z_log_var, beta)`, mean of -ELBO_beta."""
    exercise = "Exercise 3"
    x, logits, z_mean, z_log_var = _loss_case()
    beta = 4.0
    loss = _numpy(beta_vae_loss(x, logits, z_mean, z_log_var, beta=beta), exercise, "beta_vae_loss")
    if not np.all(np.isfinite(loss)):
        fail(exercise, "the loss is not finite for a pixel x = 0 with logit 150: log(sigmoid(l)) "
             "and log(1 - sigmoid(l)) overflow to -inf once sigmoid rounds to 0 or 1.",
             "-log p(x | z) = sum(softplus(l) - x * l): never take the log of a sigmoid.")
    rec, kl = _reference_terms(x, logits, z_mean, z_log_var)
    expected = np.mean(rec + beta * kl)
    if loss.shape == (5,):
        fail(exercise, "the loss has one value per example, shape (5,); fit() needs one number.",
             "Take ops.mean over the batch.")
    if loss.shape != ():
        fail(exercise, f"expected a scalar loss; got shape {loss.shape}.",
             "Sum over the pixels and the latent axis, then average over the batch.")
    probabilities = np.clip(1 / (1 + np.exp(-logits.astype(np.float64))), 1e-7, 1 - 1e-7)
    clipped = -np.sum(x * np.log(probabilities) + (1 - x) * np.log(1 - probabilities), axis=1)
    named = [
        (-expected, "the sign is flipped: that is the ELBO, which training must maximise; "
         "the loss is -ELBO.", "loss = mean(-log p(x | z) + beta * KL)."),
        (np.mean(beta * rec + kl), "beta multiplies the reconstruction term instead of the KL.",
         "loss = mean(-log p(x | z) + beta * KL)."),
        (np.mean(rec + kl), "beta is ignored: with beta = 4 the KL counts four times.",
         "loss = mean(-log p(x | z) + beta * KL)."),
        (np.mean(rec / 6 + beta * kl), "the reconstruction term is averaged over the 6 pixels "
         "instead of summed, as keras.losses.binary_crossentropy does: that is beta * 6 in "
         "disguise.", "Sum -log p(x_i | z) over the pixels: ops.sum(..., axis=-1)."),
        (np.sum(rec + beta * kl), "the loss is summed over the batch: it then grows with the "
         "batch size, and so does the learning rate in effect.", "Average over the batch."),
        (np.mean(clipped + beta * kl), "the probabilities were clipped (as in "
         "binary_crossentropy(from_logits=False)): a confident wrong pixel with logit 150 "
         "costs about 16 instead of 150.", "Work from the logits: sum(softplus(l) - x * l)."),
        (np.mean(rec - beta * kl), "the KL enters with the wrong sign.",
         "-ELBO = -log p(x | z) + beta * KL: the KL is added."),
    ]
    for wrong, problem, hint in named:
        # 1e-2: clipping at 1e-7 in float32 or float64 differs in the third digit.
        if not _close(loss, expected) and _close(loss, wrong, 1e-2):
            fail(exercise, problem, hint)
    if not _close(loss, expected):
        fail(exercise, f"got {float(loss):.4f}; expected {expected:.4f}.",
             "loss = mean over the batch of sum(softplus(l) - x * l) + beta * KL.")
    if not _close(_numpy(beta_vae_loss(x, logits, z_mean, z_log_var, beta=0.0), exercise, ""),
                  np.mean(rec)):
        fail(exercise, "with beta = 0 the loss should be the reconstruction term alone.")
    passed("beta_vae_loss = mean(-log p(x | z) + beta * KL), stable for extreme logits.")


# Exercise 4: the importance-weighted bound.


def _reference_bound(log_weights):
    top = log_weights.max(axis=0)
    return top + np.log(np.mean(np.exp(log_weights - top), axis=0))  # (batch,)


def check_importance_weighted_bound(importance_weighted_bound):
    """Exercise 4: `importance_weighted_bound(log_weights)`, (k, batch) -> (batch,)."""
    exercise = "Exercise 4"
    log_weights = np.random.default_rng(9).normal(-2.0, 1.0, (6, 4)).astype(np.float32)
    bound = _numpy(importance_weighted_bound(log_weights), exercise, "importance_weighted_bound")
    expected = _reference_bound(log_weights.astype(np.float64))
    if bound.shape == (6,):
        fail(exercise, "the result has one value per sample, shape (6,): it reduces over the batch "
             "axis (axis 1). log_weights has shape (k, batch) = (6, 4).",
             "Reduce over axis 0, the k samples.")
    if bound.shape != (4,):
        fail(exercise, f"expected one bound per example, shape (4,); got shape {bound.shape}.")
    named = [
        (log_weights.mean(axis=0), "that is the mean of the log-weights: the average of k ELBO "
         "estimates, no tighter than k = 1. The bound is the log of the mean of the weights.",
         "L_k = logsumexp(log_weights, axis=0) - log k."),
        (np.exp(expected), "that is the mean of the weights w_i, not its log.",
         "Return log((1/k) sum w_i), computed as logsumexp(log_weights, axis=0) - log k."),
        (expected + np.log(6), "every value is log k = log 6 too large: the log k is missing "
         "(that is log sum w_i, not log mean w_i).", "Subtract log k."),
        (expected + np.log(6) - np.log(4), "log k is taken from the batch size (4), not from the "
         "number of samples (6).", "k = ops.shape(log_weights)[0]."),
        (log_weights.max(axis=0), "that is the largest log-weight, not log-mean-exp.",
         "L_k = logsumexp(log_weights, axis=0) - log k."),
    ]
    for wrong, problem, hint in named:
        if not _close(bound, expected) and _close(bound, wrong):
            fail(exercise, problem, hint)
    if not _close(bound, expected):
        fail(exercise, f"got {np.round(bound, 4).tolist()}; expected "
             f"{np.round(expected, 4).tolist()}.", "L_k = logsumexp(log_weights, axis=0) - log k.")
    extreme = np.array([[-1000.0, 800.0], [-1001.0, 801.0], [-1002.0, 799.0]], np.float32)
    bound = _numpy(importance_weighted_bound(extreme), exercise, "importance_weighted_bound")
    if not np.all(np.isfinite(bound)) or not _close(bound, _reference_bound(extreme.astype(np.float64)),
                                                    1e-3):
        fail(exercise, f"for log-weights near -1000 and 800 it returns {bound.tolist()}: exp() "
             "underflows to 0 or overflows to inf. Real log-weights of images are in the "
             "thousands.", "Subtract the maximum before exp (ops.logsumexp does this).")
    single = _numpy(importance_weighted_bound(log_weights[:1]), exercise, "")
    if not _close(single, log_weights[0]):
        fail(exercise, "with k = 1 the bound must equal the one log-weight (the ELBO estimate).")
    passed("importance_weighted_bound = logsumexp(log_weights, axis=0) - log k, stable for "
           "log-weights in the thousands.")
