"""Checks for the exercises of chapter 10, "Generative classification"
(exercises/10_generative_classification.ipynb; the lecture is
notebooks/10_generative_classification.ipynb).

The K + 1 unsupervised loss is compared with a NumPy transcription in float64 and with the
values each typical mistake gives on the same logits, then run on logits of +-100 and -200
where exp overflows or underflows; Bayes' rule likewise, with log-likelihoods of -100 and
-1000 nats, where a plain exp gives 0 for every class.
"""

import keras
import numpy as np

from dgm_course.checks import fail, passed

# _numbers: an answer's value as a float64 NumPy array, or fail() if it is none.
from dgm_course.checks.ch08 import _numbers

_K = 10


def _logsumexp(values, axis=-1):
    peak = values.max(axis=axis, keepdims=True)
    return np.squeeze(peak, axis) + np.log(np.exp(values - peak).sum(axis=axis))


def _softplus(values):
    # softplus(a) = log(1 + e^a) = max(a, 0) + log(1 + e^-|a|), exact for any a
    return np.maximum(values, 0.0) + np.log1p(np.exp(-np.abs(values)))


# Exercise 1: the unsupervised loss of the K + 1-class discriminator.


def _unsupervised_right(real, fake):
    """mean softplus(-lse(real)) + mean softplus(lse(fake)), float64."""
    return _softplus(-_logsumexp(real)).mean() + _softplus(_logsumexp(fake)).mean()


def _unsupervised_mistakes(real, fake):
    """{problem: the value that mistake gives} for one pair of logit batches."""
    real_lse, fake_lse = _logsumexp(real), _logsumexp(fake)
    real_term, fake_term = _softplus(-real_lse), _softplus(fake_lse)
    return {
        "only the real images' term -log D(x): the fakes' term -log(1 - D(G(z))) is what makes "
        "the discriminator tell generated images apart.": real_term.mean(),
        "only the fakes' term: the real images' -log D(x) is missing; without it the "
        "discriminator learns to call everything fake.": fake_term.mean(),
        "the signs are swapped: real images must have a large Z(x) (D(x) near 1), so their "
        "loss is softplus(-lse); fakes pay softplus(+lse).":
            _softplus(real_lse).mean() + _softplus(-fake_lse).mean(),
        "flipped sign: that is what the discriminator maximises, log D(x) + log(1 - D(G(z))); "
        "the loss is its negative.": -(real_term.mean() + fake_term.mean()),
        "the last logit was treated as a learned 'fake' logit (K + 1 outputs): here all K "
        "logits are classes and the fake logit is the fixed 0, so D(x) = Z / (Z + 1) with Z "
        "summing over all K.": (real_lse - _logsumexp(real[:, :-1])).mean()
            + (fake_lse - fake[:, -1]).mean(),
        "summed over the batch instead of averaged: the loss then grows with the batch size.":
            real_term.sum() + fake_term.sum(),
        "the real and fake images were averaged together: L_unsupervised is the sum of two "
        "batch means, one per expectation.":
            (real_term.sum() + fake_term.sum()) / (len(real_term) + len(fake_term)),
        "max_k l_k was used instead of logsumexp_k l_k: log Z(x) sums the exponentials of all K "
        "logits.": _softplus(-real.max(axis=1)).mean() + _softplus(fake.max(axis=1)).mean(),
        "D(x) was taken as sigmoid of each logit (K binary real/fake decisions) instead of "
        "sigmoid(logsumexp(l)).": _softplus(-real).mean() + _softplus(fake).mean(),
    }


def _logits(seed, n):
    """n rows of K random logits of scale 3, float32 values held in float64."""
    return np.random.default_rng(seed).normal(0, 3, (n, _K)).astype("float32").astype(np.float64)


def _name_unsupervised_mistake(out, real, fake, exercise, hint):
    right = _unsupervised_right(real, fake)
    for problem, value in _unsupervised_mistakes(real, fake).items():
        if abs(out - value) < 1e-4 * max(1.0, abs(value)) and abs(value - right) > 1e-3:
            fail(exercise, problem, hint)
    if abs(out - right) > 1e-4 * max(1.0, abs(right)):
        fail(exercise, f"with {len(real)} real and {len(fake)} fake images expected "
             f"L_unsupervised = {right:.5f}; got {out:.5f}.", hint)


def _unsupervised_value(unsupervised_loss, real, fake, exercise, hint):
    try:
        out = unsupervised_loss(keras.ops.convert_to_tensor(real.astype("float32")),
                                keras.ops.convert_to_tensor(fake.astype("float32")))
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001  (TensorFlow raises its own error classes)
        fail(exercise, f"unsupervised_loss raised {type(error).__name__}: {str(error)[:200]}. It "
             "gets two float tensors of class logits, (batch_real, K) and (batch_fake, K).", hint)
    out = _numbers(out, exercise, "unsupervised_loss")
    if out.shape == (len(real),) or out.shape == (len(fake),):
        fail(exercise, f"unsupervised_loss returned one value per image, shape {out.shape}: "
             "average each term over its batch and add the two means.", hint)
    if out.shape not in ((), (1,)):
        fail(exercise, f"unsupervised_loss returned shape {out.shape}; expected a scalar.", hint)
    return float(out.reshape(()))


def check_unsupervised_loss(unsupervised_loss):
    """Exercise 1: `unsupervised_loss(real_logits, fake_logits)` -> -E log D(x) - E log(1 -
    D(G(z))) with D = sigmoid(logsumexp(l)), as batch means, stable for any logits."""
    exercise = "Exercise 1"
    hint = ("lse = ops.logsumexp(logits, axis=-1); return ops.mean(ops.softplus(-lse_real)) + "
            "ops.mean(ops.softplus(lse_fake)).")
    for real, fake in (_logits(0, 6), _logits(1, 4)), (_logits(2, 5), _logits(3, 5)):
        out = _unsupervised_value(unsupervised_loss, real, fake, exercise, hint)
        _name_unsupervised_mistake(out, real, fake, exercise, hint)
    real = np.full((3, _K), -200.0)
    fake = np.concatenate([np.full((3, 1), 100.0), np.full((3, _K - 1), -100.0)], axis=1)
    out = _unsupervised_value(unsupervised_loss, real, fake, exercise, hint)
    right = _unsupervised_right(real, fake)  # (200 - log 10) + 100
    if not np.isfinite(out) or abs(out - right) > 1e-3 * right:
        fail(exercise, f"with real logits of -200 and fake logits of 100 expected {right:.3f}; "
             f"got {out}: Z = sum exp(l) overflows (e^100) or underflows (e^-200) in float32, "
             "and log(sigmoid(.)) or log(1 - D) then gives log 0. Work with lse = logsumexp(l) "
             "and softplus: -log D = softplus(-lse), -log(1 - D) = softplus(lse).", hint)
    passed("unsupervised_loss is -E log D(x) - E log(1 - D(G(z))) with D = sigmoid(logsumexp l), "
           "two batch means, finite for any logits.")


# Exercise 2: Bayes' rule over class log-likelihoods.


def _posterior_right(log_likelihoods, log_prior):
    joint = log_likelihoods + log_prior
    return np.exp(joint - _logsumexp(joint)[:, None])


def _posterior_mistakes(log_likelihoods, log_prior):
    """{problem: the (n, K) array that mistake gives}."""
    joint = log_likelihoods + log_prior
    right = _posterior_right(log_likelihoods, log_prior)
    shifted = np.exp(joint - joint.max())
    return {
        "the prior is missing: p(y | x) is proportional to p(x | y) p(y), so add log_prior to "
        "every row before normalising.": _posterior_right(log_likelihoods, 0.0),
        "the prior was subtracted: Bayes' rule multiplies by p(y), i.e. adds log p(y).":
            _posterior_right(log_likelihoods, -log_prior),
        "returned log p(y | x); the exercise asks for the probabilities themselves (np.exp "
        "of it).": np.log(right),
        "normalised over the wrong axis (over the images, axis 0): each image's row must sum "
        "to 1 over the K classes (axis=1).": shifted / shifted.sum(axis=0, keepdims=True),
    }


def _posterior_value(bayes_posterior, log_likelihoods, log_prior, exercise, hint):
    try:
        with np.errstate(all="ignore"):
            out = bayes_posterior(log_likelihoods.copy(), log_prior.copy())
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001  (whatever NumPy or Keras raise)
        fail(exercise, f"bayes_posterior raised {type(error).__name__}: {str(error)[:200]}. It "
             f"gets log_likelihoods of shape {log_likelihoods.shape} and log_prior of shape "
             f"{log_prior.shape}.", hint)
    out = _numbers(out, exercise, "bayes_posterior")
    if out.shape != log_likelihoods.shape:
        fail(exercise, f"expected one row of K = {log_likelihoods.shape[1]} probabilities per "
             f"image, shape {log_likelihoods.shape}; got shape {out.shape}.", hint)
    return out


def _name_posterior_mistake(out, log_likelihoods, log_prior, exercise, hint):
    right = _posterior_right(log_likelihoods, log_prior)
    with np.errstate(all="ignore"):
        mistakes = _posterior_mistakes(log_likelihoods, log_prior)
    for problem, value in mistakes.items():
        if np.allclose(out, value, atol=1e-5) and not np.allclose(value, right, atol=1e-5):
            fail(exercise, problem, hint)
    if not np.allclose(out, right, atol=1e-5):
        rows = out.sum(axis=1)
        detail = ("rows that do not sum to 1" if not np.allclose(rows, 1.0, atol=1e-4)
                  else "the wrong probabilities")
        fail(exercise, f"got {detail}: for log p(x | y) = {np.round(log_likelihoods[0], 2)} and "
             f"log p(y) = {np.round(log_prior, 2)} expected p(y | x) = {np.round(right[0], 4)}, "
             f"got {np.round(out[0], 4)}.", hint)


def check_bayes_posterior(bayes_posterior):
    """Exercise 2: `bayes_posterior(log_likelihoods, log_prior)` -> p(y | x), (n, K), rows
    summing to 1, from (n, K) log p(x | y) and (K,) log p(y), for any size of log-likelihood."""
    exercise = "Exercise 2"
    hint = ("joint = log_likelihoods + log_prior; joint = joint - joint.max(axis=1, "
            "keepdims=True); p = np.exp(joint); return p / p.sum(axis=1, keepdims=True).")
    rng = np.random.default_rng(0)
    log_prior = np.log(np.array([0.5, 0.3, 0.2]))
    for offset in (-5.0, -100.0, -1000.0):  # Real images: -100 nats and below.
        log_likelihoods = offset + rng.normal(0, 2, (7, 3))
        out = _posterior_value(bayes_posterior, log_likelihoods, log_prior, exercise, hint)
        if not np.all(np.isfinite(out)) or np.allclose(out, 0.0):
            fail(exercise, f"with log-likelihoods around {offset:g} nats the result holds "
                 f"{'NaN' if np.any(np.isnan(out)) else 'only zeros'}: exp({offset:g}) is 0 "
                 "in floating point, for every class, and 0 / 0 is NaN. Subtract each row's "
                 "largest log p(x | y) + log p(y) before exp (the log-sum-exp shift): it "
                 "changes nothing after normalising.", hint)
        _name_posterior_mistake(out, log_likelihoods, log_prior, exercise, hint)
    passed("bayes_posterior normalises p(x | y) p(y) over the classes, stably, for any "
           "log-likelihood.")


__all__ = ["check_bayes_posterior", "check_unsupervised_loss"]
