"""Checks for the exercises of chapter 02, "Generative vs discriminative"
(exercises/02_generative_vs_discriminative.ipynb; the lecture is
notebooks/02_generative_vs_discriminative.ipynb).

Each check runs the learner's function on small cases whose answers are known, and names
the typical mistake behind a wrong answer. NumPy only.
"""

import numpy as np

from dgm_course import toy
from dgm_course._validation import describe
from dgm_course.checks import fail, passed


def _as_array(value, exercise, what):
    """Returns `value` as a float64 NumPy array (Keras and TensorFlow tensors included)."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):  # A ragged list or a tuple of arrays, for example.
        fail(exercise, f"{what} returned {describe(value)}, which is not an array of numbers.")


def _softmax(a, axis):
    a = a - a.max(axis=axis, keepdims=True)
    return np.exp(a) / np.exp(a).sum(axis=axis, keepdims=True)


def check_bayes_posterior(bayes_posterior):
    """Exercise 1: `bayes_posterior(class_log_densities (n, C), log_priors (C,))` -> p(y | x)."""
    exercise = "Exercise 1"
    log_densities = np.random.default_rng(0).normal(-3.0, 1.5, size=(6, 3))
    log_priors = np.log([0.5, 0.3, 0.2])
    expected = _softmax(log_densities + log_priors, axis=1)
    out = _as_array(bayes_posterior(log_densities.copy(), log_priors.copy()), exercise,
                    "bayes_posterior")
    if out.shape != expected.shape:
        fail(exercise, f"6 points and 3 classes gave {describe(out)}; expected shape (6, 3), one "
             "probability per point and class.", "Keep the class axis: do not sum it away.")
    mistakes = [
        (np.log(expected), "returned log p(y | x), not p(y | x).", "Exponentiate at the end."),
        (_softmax(log_densities, axis=1), ("the priors are ignored: this is p(x | y) normalised, "
         "not p(x | y) p(y) normalised."), "Add log_priors to the log-densities, then normalise."),
        (_softmax(log_densities - log_priors, axis=1), ("the log-priors are subtracted: flipped "
         "sign. p(x | y) p(y) is log p(x | y) + log p(y) in logs."), "Add log_priors."),
        (_softmax(log_densities + log_priors, axis=0), ("each column sums to 1: normalised over "
         "the points (axis 0) instead of over the classes."),
         "Normalise each row: logsumexp over axis=1, with keepdims=True."),
        (np.exp(log_densities + log_priors), ("not normalised: these are p(x | y) p(y), whose rows "
         "do not sum to 1."), ("Divide by p(x) = sum over y of p(x | y) p(y), i.e. subtract "
         "logsumexp in logs.")),
    ]
    for wrong, problem, hint in mistakes:
        if np.allclose(out, wrong, rtol=1e-6, atol=1e-9):
            fail(exercise, problem, hint)
    if not np.allclose(out, expected, rtol=1e-6, atol=1e-9):
        fail(exercise, f"for log-densities {np.round(log_densities[0], 3).tolist()} and priors "
             f"[0.5, 0.3, 0.2] it gave {np.round(out[0], 4).tolist()}; expected "
             f"{np.round(expected[0], 4).tolist()}.",
             "p(y | x) = exp(a_y - logsumexp(a)) with a_y = log p(x | y) + log p(y).")
    _check_extreme_log_densities(bayes_posterior, exercise)
    passed("bayes_posterior adds log-priors, normalises over the classes with log-sum-exp, and "
           "stays finite for log-densities of -1000 and +800.")


def _check_extreme_log_densities(bayes_posterior, exercise):
    """Far from the data log p(x | y) is -1000 (exp gives 0); narrow densities give +800 (inf)."""
    log_densities = np.array([[-1000.0, -1002.0, -1010.0], [800.0, 790.0, -50.0]])
    log_priors = np.log([0.5, 0.3, 0.2])
    expected = _softmax(log_densities + log_priors, axis=1)
    with np.errstate(all="ignore"):
        out = _as_array(bayes_posterior(log_densities, log_priors), exercise, "bayes_posterior")
    if not np.all(np.isfinite(out)):
        fail(exercise, f"log-densities of -1000 and +800 gave {out.tolist()}: exp(-1000) "
             "underflows to 0 (then 0 / 0 = nan) and exp(800) overflows to inf (inf / inf = nan).",
             "Use log-sum-exp: subtract each row's maximum before exponentiating "
             "(or scipy.special.logsumexp / keras.ops.logsumexp).")
    if not np.allclose(out, expected, atol=1e-9):
        fail(exercise, f"log-densities [-1000, -1002, -1010] gave {np.round(out[0], 4).tolist()}; "
             f"expected {np.round(expected[0], 4).tolist()}.")


def check_fit_gaussian(fit_gaussian):
    """Exercise 2: `fit_gaussian(x (n, d))` -> (mean (d,), cov (d, d)), the ML estimates."""
    exercise = "Exercise 2"
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 3)) @ np.array([[2.0, 0.5, 0.0], [0.0, 1.0, -0.4], [0.0, 0.0, 0.3]])
    x += np.array([1.0, -2.0, 0.5])
    result = fit_gaussian(x.copy())
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        fail(exercise, f"expected a pair (mean, cov); got {describe(result)}.",
             "return mean, cov")
    mean, cov = (_as_array(part, exercise, "fit_gaussian") for part in result)
    if mean.shape == (10,):
        fail(exercise, "the mean has one entry per point (shape (10,)): it averages each point's "
             "coordinates (axis=1).", "Average over the points: x.mean(axis=0), shape (d,).")
    if mean.shape != (3,) or not np.allclose(mean, x.mean(axis=0)):
        fail(exercise, f"10 points in 3-D gave the mean {describe(mean)}; expected the sample "
             f"mean {np.round(x.mean(axis=0), 3).tolist()}.", "mu = x.mean(axis=0).")
    _check_covariance(cov, x, exercise)
    passed("fit_gaussian returns the sample mean and the maximum-likelihood (1/n) covariance.")


def _check_covariance(cov, x, exercise):
    """The second half of Exercise 2: the 1/n covariance, and the usual ways to get it wrong."""
    n = len(x)
    centred = x - x.mean(axis=0)
    expected = centred.T @ centred / n
    if cov.shape == (n, n):
        fail(exercise, f"the covariance has shape ({n}, {n}), one row per point: the outer product "
             "runs over the wrong axis ((x - mu) @ (x - mu).T).",
             "Sum over the points: (x - mu).T @ (x - mu) / n, shape (d, d).")
    if cov.shape != expected.shape:
        fail(exercise, f"expected a (3, 3) covariance; got {describe(cov)}.")
    mistakes = [
        (centred.T @ centred / (n - 1), ("the covariance divides by n - 1 (np.cov's default, the "
         "unbiased estimate); the maximum-likelihood estimate divides by n."),
         "Divide by n, or use np.cov(x, rowvar=False, bias=True)."),
        (x.T @ x / n, "the covariance is not centred: this is E[x x^T], not E[(x - mu)(x - mu)^T].",
         "Subtract the mean first."),
        (np.diag(np.diag(expected)), ("only the variances are there: the off-diagonal covariances "
         "(the correlations between coordinates) are zero."),
         "Use the outer product (x - mu).T @ (x - mu) / n, not np.var per coordinate."),
        (np.diag(np.sqrt(np.diag(expected))), ("the diagonal holds standard deviations, not "
         "variances, and the off-diagonal covariances are missing."),
         "Sigma = (x - mu).T @ (x - mu) / n."),
    ]
    for wrong, problem, hint in mistakes:
        if np.allclose(cov, wrong):
            fail(exercise, problem, hint)
    if not np.allclose(cov, expected):
        fail(exercise, f"the covariance {np.round(cov, 3).tolist()} differs from the "
             f"maximum-likelihood {np.round(expected, 3).tolist()}.",
             "Sigma = (1/n) sum_i (x_i - mu)(x_i - mu)^T.")


_WEIGHTS = np.array([0.2, 0.5, 0.3])
_MEANS = np.array([[-20.0, 0.0], [0.0, 20.0], [20.0, 0.0]])
_STDS = np.array([0.5, 1.0, 2.0])


def check_sample_mixture(sample_mixture):
    """Exercise 3: `sample_mixture(weights (K,), means (K, d), stds (K,), n, seed)` -> x, z."""
    exercise = "Exercise 3"
    n = 20_000
    result = sample_mixture(_WEIGHTS, _MEANS, _STDS, n, 0)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        fail(exercise, f"expected a pair (x, z); got {describe(result)}.", "return x, z")
    x, z = (_as_array(part, exercise, "sample_mixture") for part in result)
    if x.shape != (n, 2) or z.shape != (n,):
        fail(exercise, f"n=20,000 samples in 2-D gave x {describe(x)} and z {describe(z)}; "
             "expected shapes (20000, 2) and (20000,).")
    if not np.all(np.isin(z, [0, 1, 2])):
        fail(exercise, f"z holds values other than the components 0, 1, 2: {np.unique(z)[:6]}.")
    z = z.astype(np.int64)
    _check_components(z, exercise)
    nearest = np.argmin(np.linalg.norm(x[:, np.newaxis] - _MEANS, axis=-1), axis=1)
    if np.mean(nearest != z) > 0.01:
        fail(exercise, f"{np.mean(nearest != z):.0%} of the points lie at another component than "
             "their z says: x and z were drawn separately.",
             "Draw z once; then x = means[z] + stds[z, None] * epsilon with that same z.")
    _check_spread(x, z, exercise)
    again = _as_array(sample_mixture(_WEIGHTS, _MEANS, _STDS, n, 0)[0], exercise, "sample_mixture")
    if not np.array_equal(x, again):
        fail(exercise, "two calls with seed=0 gave different samples.",
             "Draw everything from rng = np.random.default_rng(seed).")
    other = _as_array(sample_mixture(_WEIGHTS, _MEANS, _STDS, n, 1)[0], exercise, "sample_mixture")
    if np.array_equal(x, other):
        fail(exercise, "seeds 0 and 1 gave the same samples: the seed is ignored.",
             "rng = np.random.default_rng(seed).")
    passed("sample_mixture draws z ~ Categorical(weights), then x ~ N(means[z], stds[z]^2), "
           "reproducibly.")


def _check_components(z, exercise):
    """Component frequencies against the weights (standard error about 0.004)."""
    frequencies = np.bincount(z, minlength=3) / len(z)
    if np.max(frequencies) == 1.0:
        fail(exercise, "every sample has the same z: one component was drawn for all of them.",
             "Draw one z per sample: rng.choice(K, size=n, p=weights).")
    if np.allclose(frequencies, 1 / 3, atol=0.015):
        fail(exercise, f"the components come with frequencies {np.round(frequencies, 3).tolist()}, "
             "about a third each: the weights [0.2, 0.5, 0.3] were ignored.",
             "rng.choice(K, size=n, p=weights).")
    if not np.allclose(frequencies, _WEIGHTS, atol=0.015):
        fail(exercise, f"the components come with frequencies {np.round(frequencies, 3).tolist()}; "
             "expected the weights [0.2, 0.5, 0.3].", "rng.choice(K, size=n, p=weights).")


def _check_spread(x, z, exercise):
    """Per-component means and standard deviations; names std-vs-variance mix-ups."""
    centres = np.array([x[z == k].mean(axis=0) for k in range(3)])
    spreads = np.array([x[z == k].std(axis=0).mean() for k in range(3)])
    if not np.allclose(centres, _MEANS, atol=0.15):
        fail(exercise, "the points of each component are centred at "
             f"{np.round(centres, 2).tolist()}; expected the means {_MEANS.tolist()}.",
             "x = means[z] + ...")
    for wrong, problem, hint in (
        (_STDS**2, ("the noise is scaled by the variance: stds [0.5, 1, 2] came out as "
         f"{np.round(spreads, 2).tolist()}."), "Multiply epsilon by stds[z], not stds[z]**2."),
        (np.sqrt(_STDS), "the noise is scaled by the square root of the standard deviation.",
         "stds are standard deviations already: multiply epsilon by stds[z]."),
        (np.full(3, _STDS[0]), "every component has the first component's spread.",
         "Index the stds with z: stds[z, None]."),
    ):
        if np.allclose(spreads, wrong, rtol=0.05) and not np.allclose(spreads, _STDS, rtol=0.05):
            fail(exercise, problem, hint)
    if not np.allclose(spreads, _STDS, rtol=0.05):
        fail(exercise, f"the components' standard deviations came out as "
             f"{np.round(spreads, 2).tolist()}; expected {_STDS.tolist()}.",
             "x = means[z] + stds[z, None] * rng.standard_normal((n, d)).")


def check_kl_estimate(kl_estimate):
    """Exercise 4: `kl_estimate(p, q, n, seed)`, a Monte Carlo estimate of KL(p || q)."""
    exercise = "Exercise 4"
    p = toy.GaussianMixture([[0.0]], [1.0])
    q = toy.GaussianMixture([[1.0]], [2.0])
    forward = np.log(2.0) + (1.0 + 1.0) / 8.0 - 0.5  # KL(N(0, 1) || N(1, 4)) = 0.443
    reverse = np.log(0.5) + (4.0 + 1.0) / 2.0 - 0.5  # KL(N(1, 4) || N(0, 1)) = 1.307
    n = 20_000
    value = _as_array(kl_estimate(p, q, n, 0), exercise, "kl_estimate")
    if value.size != 1:
        fail(exercise, f"expected one number; got {describe(value)}.",
             "Average over the samples: np.mean(...).")
    value = float(value)
    mistakes = [
        (reverse, 0.1, "flipped arguments: this is KL(q || p) (samples from q, log q - log p).",
         "KL(p || q) = E over x ~ p of [log p(x) - log q(x)]: sample from p, the first argument."),
        (-reverse, 0.1, "negative, which a KL never is: the samples come from q, not p.",
         "Draw x from p: x, _ = p.sample(n, seed=seed)."),
        (-forward, 0.05, "flipped sign: this is E_p[log q - log p] = -KL(p || q).",
         "Average log p(x) - log q(x)."),
        (n * forward, 0.05 * n, ("summed over the samples instead of averaged: the estimate grows "
         "with n."), "Use np.mean, not np.sum."),
    ]
    for wrong, tolerance, problem, hint in mistakes:
        if abs(value - wrong) < tolerance:
            fail(exercise, f"KL(N(0, 1) || N(1, 2^2)) = {forward:.3f}; your estimate "
                 f"{value:.3f} is " + problem, hint)
    if abs(value - forward) > 0.05:
        fail(exercise, f"KL(N(0, 1) || N(1, 2^2)) = {forward:.3f} in closed form; your estimate "
             f"with n=20,000 is {value:.3f}.",
             "np.mean(p.log_prob(x) - q.log_prob(x)) with x drawn from p.")
    if float(np.asarray(kl_estimate(p, q, n, 0))) != value:
        fail(exercise, "two calls with seed=0 gave different estimates.", "Pass seed to p.sample.")
    if float(np.asarray(kl_estimate(p, q, n, 1))) == value:
        fail(exercise, "seeds 0 and 1 gave the same estimate: the seed is ignored.",
             "p.sample(n, seed=seed).")
    passed(f"kl_estimate samples from p and averages log p - log q: {value:.3f} against "
           f"{forward:.3f} in closed form.")


def check_moment_match(moment_match):
    """Exercise 5: `moment_match(weights, means, stds)` of a 1-D mixture -> (mean, std)."""
    exercise = "Exercise 5"
    weights, means, stds = np.array([0.4, 0.6]), np.array([-2.0, 2.0]), np.array([0.6, 1.0])
    mean = weights @ means
    variance = weights @ (stds**2 + means**2) - mean**2
    result = moment_match(weights.copy(), means.copy(), stds.copy())
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        fail(exercise, f"expected a pair (mean, std); got {describe(result)}.", "return mean, std")
    got_mean, got_std = (float(np.asarray(part)) for part in result)
    if np.isclose(got_mean, means.mean()) and not np.isclose(got_mean, mean):
        fail(exercise, f"the mean {got_mean:.3f} ignores the weights.", "E[x] = sum_k pi_k mu_k.")
    if not np.isclose(got_mean, mean):
        fail(exercise, f"the mean is {got_mean:.4f}; expected {mean:.4f}.",
             "E[x] = sum_k pi_k mu_k.")
    mistakes = [
        (variance, "this is the variance; the function returns the standard deviation.",
         "Return np.sqrt(variance)."),
        (np.sqrt(weights @ stds**2), ("only the spread within the components: the spread of their "
         "means is missing (Var[x] = E[Var(x | z)] + Var(E[x | z]))."),
         "Var[x] = sum_k pi_k (sigma_k^2 + mu_k^2) - E[x]^2."),
        (weights @ stds, ("the weighted average of the stds is not the mixture's std: the spread "
         "of the means is missing and stds do not add."),
         "Var[x] = sum_k pi_k (sigma_k^2 + mu_k^2) - E[x]^2."),
        (np.sqrt(weights @ (stds**2 + means**2)), ("this is sqrt(E[x^2]): the squared mean is not "
         "subtracted."), "Var[x] = E[x^2] - E[x]^2."),
    ]
    for wrong, problem, hint in mistakes:
        if np.isclose(got_std, wrong):
            fail(exercise, f"the std {got_std:.4f} is wrong: {problem}", hint)
    if not np.isclose(got_std, np.sqrt(variance)):
        fail(exercise, f"the std is {got_std:.4f}; expected {np.sqrt(variance):.4f}.",
             "Var[x] = sum_k pi_k (sigma_k^2 + mu_k^2) - E[x]^2.")
    passed(f"moment_match gives mean {mean:.3f} and std {np.sqrt(variance):.4f} for weights "
           "[0.4, 0.6], means [-2, 2], stds [0.6, 1.0]: the Gaussian that minimises KL(p || q).")
