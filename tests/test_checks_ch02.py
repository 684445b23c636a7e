"""The checks of chapter 02 against right answers (the solutions notebook's) and the typical
wrong ones, each of which must be rejected with the message that names its mistake."""

import numpy as np
import pytest

from dgm_course.checks import ExerciseError, ch02

# Exercise 1: Bayes' rule with log-sum-exp.


def bayes_posterior(class_log_densities, log_priors):
    joint = class_log_densities + log_priors  # log p(x | y) + log p(y), (n, C)
    peak = joint.max(axis=1, keepdims=True)
    log_evidence = peak + np.log(np.exp(joint - peak).sum(axis=1, keepdims=True))  # log p(x)
    return np.exp(joint - log_evidence)


def naive(class_log_densities, log_priors):
    joint = np.exp(class_log_densities + log_priors)
    return joint / joint.sum(axis=1, keepdims=True)


def test_bayes_posterior_solution_passes(capsys):
    ch02.check_bayes_posterior(bayes_posterior)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize(
    "wrong, match",
    [
        (naive, "underflows"),
        (lambda d, p: np.log(bayes_posterior(d, p)), "returned log p"),
        (lambda d, p: bayes_posterior(d, 0 * p), "priors are ignored"),
        (lambda d, p: bayes_posterior(d, -p), "flipped sign"),
        (lambda d, p: bayes_posterior((d + p).T, 0).T, "over the points"),
        (lambda d, p: np.exp(d + p), "not normalised"),
        (lambda d, p: bayes_posterior(d, p).sum(axis=1), "shape"),
        (lambda d, p: bayes_posterior(d, np.exp(p)), "expected"),
    ],
)
def test_bayes_posterior_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch02.check_bayes_posterior(wrong)


def test_unfinished_exercises_raise_not_implemented():
    def unfinished(*args):
        raise NotImplementedError()

    for check in (ch02.check_bayes_posterior, ch02.check_fit_gaussian, ch02.check_sample_mixture,
                  ch02.check_kl_estimate, ch02.check_moment_match):
        with pytest.raises(NotImplementedError):
            check(unfinished)


# Exercise 2: the maximum-likelihood Gaussian.


def fit_gaussian(x):
    mean = x.mean(axis=0)
    centred = x - mean
    return mean, centred.T @ centred / len(x)


def test_fit_gaussian_solution_passes_and_matches_numpy(capsys):
    ch02.check_fit_gaussian(fit_gaussian)
    assert capsys.readouterr().out.startswith("✅")
    x = np.random.default_rng(0).normal(size=(50, 4))
    np.testing.assert_allclose(fit_gaussian(x)[1], np.cov(x, rowvar=False, bias=True))


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda x: (x.mean(axis=0), np.cov(x, rowvar=False)), "n - 1"),
        (lambda x: (x.mean(axis=0), x.T @ x / len(x)), "not centred"),
        (lambda x: (x.mean(axis=0), np.diag(x.var(axis=0))), "only the variances"),
        (lambda x: (x.mean(axis=0), np.diag(x.std(axis=0))), "standard deviations"),
        (lambda x: (x.mean(axis=1), np.cov(x, rowvar=False, bias=True)), "axis=1"),
        (lambda x: (x.mean(axis=0), (x - x.mean(0)) @ (x - x.mean(0)).T / len(x)), "wrong axis"),
        (lambda x: x.mean(axis=0), "pair"),
        (lambda x: (np.median(x, axis=0), fit_gaussian(x)[1]), "sample mean"),
    ],
)
def test_fit_gaussian_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch02.check_fit_gaussian(wrong)


# Exercise 3: ancestral sampling from a mixture.


def sample_mixture(weights, means, stds, n, seed):
    rng = np.random.default_rng(seed)
    z = rng.choice(len(weights), size=n, p=weights)
    x = means[z] + stds[z, None] * rng.standard_normal((n, means.shape[1]))
    return x, z


def test_sample_mixture_solution_passes(capsys):
    ch02.check_sample_mixture(sample_mixture)
    assert capsys.readouterr().out.startswith("✅")


def _variant(draw_z=None, scale=None, seed_offset=0, separate=False):
    """sample_mixture with one thing done wrong."""

    def wrong(weights, means, stds, n, seed):
        rng = np.random.default_rng(seed + seed_offset)
        z = draw_z(rng, weights, n) if draw_z else rng.choice(len(weights), size=n, p=weights)
        used = rng.choice(len(weights), size=n, p=weights) if separate else z
        spread = scale(stds) if scale else stds
        return means[used] + spread[used, None] * rng.standard_normal((n, means.shape[1])), z

    return wrong


@pytest.mark.parametrize(
    "wrong, match",
    [
        (_variant(draw_z=lambda rng, w, n: np.full(n, rng.choice(len(w), p=w))), "same z"),
        (_variant(draw_z=lambda rng, w, n: rng.choice(len(w), size=n)), "weights .* were ignored"),
        (_variant(draw_z=lambda rng, w, n: rng.choice(len(w), size=n, p=w[::-1])), "frequencies"),
        (_variant(separate=True), "drawn separately"),
        (_variant(scale=lambda s: s**2), "variance"),
        (_variant(scale=np.sqrt), "square root"),
        (_variant(scale=lambda s: np.full_like(s, s[0])), "first component"),
        (lambda w, m, s, n, seed: sample_mixture(w, m, s, n, None), "different samples"),
        (lambda w, m, s, n, seed: sample_mixture(w, m, s, n, 0), "seed is ignored"),
        (lambda w, m, s, n, seed: sample_mixture(w, m, s, n, seed)[0], "pair"),
    ],
)
def test_sample_mixture_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch02.check_sample_mixture(wrong)


# Exercise 4: a Monte Carlo KL estimate.


def kl_estimate(p, q, n, seed):
    x, _ = p.sample(n, seed=seed)
    return np.mean(p.log_prob(x) - q.log_prob(x))


def test_kl_estimate_solution_passes(capsys):
    ch02.check_kl_estimate(kl_estimate)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda p, q, n, seed: kl_estimate(q, p, n, seed), "flipped arguments"),
        (lambda p, q, n, seed: -kl_estimate(q, p, n, seed), "samples come from q"),
        (lambda p, q, n, seed: -kl_estimate(p, q, n, seed), "flipped sign"),
        (lambda p, q, n, seed: n * kl_estimate(p, q, n, seed), "summed"),
        (lambda p, q, n, seed: kl_estimate(p, q, n, 0), "seed is ignored"),
        (lambda p, q, n, seed: kl_estimate(p, q, 30, seed), "closed form"),
        (lambda p, q, n, seed: p.log_prob(p.sample(n, seed=seed)[0]), "one number"),
    ],
)
def test_kl_estimate_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch02.check_kl_estimate(wrong)


# Exercise 5: moment matching, the forward-KL Gaussian.


def moment_match(weights, means, stds):
    mean = weights @ means
    return mean, np.sqrt(weights @ (stds**2 + means**2) - mean**2)


def test_moment_match_solution_passes(capsys):
    ch02.check_moment_match(moment_match)
    assert capsys.readouterr().out.startswith("✅")


def test_moment_match_equals_the_moments_of_many_samples():
    from dgm_course import toy

    weights, means, stds = np.array([0.4, 0.6]), np.array([-2.0, 2.0]), np.array([0.6, 1.0])
    x, _ = toy.GaussianMixture(means[:, None], stds, weights).sample(400_000, seed=0)
    mean, std = moment_match(weights, means, stds)
    assert x.mean() == pytest.approx(mean, abs=0.01)
    assert x.std() == pytest.approx(std, abs=0.01)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda w, m, s: (w @ m, moment_match(w, m, s)[1] ** 2), "variance"),
        (lambda w, m, s: (w @ m, np.sqrt(w @ s**2)), "spread of their means"),
        (lambda w, m, s: (w @ m, w @ s), "weighted average of the stds"),
        (lambda w, m, s: (w @ m, np.sqrt(w @ (s**2 + m**2))), "squared mean"),
        (lambda w, m, s: (m.mean(), moment_match(w, m, s)[1]), "ignores the weights"),
        (lambda w, m, s: w @ m, "pair"),
    ],
)
def test_moment_match_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch02.check_moment_match(wrong)
