"""dgm_course.toy against independent references: densities against a transcription of the
multivariate normal formula, integrals on a grid, Bayes' rule computed by hand, Monte Carlo KL
against the closed form for Gaussians, sample statistics against the mixture's moments."""

import numpy as np
import pytest

from dgm_course import toy


def _normal_pdf(x, mean, cov):
    """The textbook N(x; mean, cov) = exp(-0.5 (x-mean)^T cov^-1 (x-mean)) / sqrt((2pi)^d |cov|)."""
    diff = x - mean
    quad = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    return np.exp(-0.5 * quad) / np.sqrt((2 * np.pi) ** len(mean) * np.linalg.det(cov))


def _gaussian_kl(mean_p, var_p, mean_q, var_q):
    """Closed-form KL(N(mean_p, diag var_p) || N(mean_q, diag var_q))."""
    return 0.5 * np.sum(np.log(var_q / var_p) + (var_p + (mean_p - mean_q) ** 2) / var_q - 1)


@pytest.fixture
def mixture():
    return toy.GaussianMixture([[0.0, 0.0], [3.0, 1.0], [-2.0, 2.0]],
                               [[1.0, 0.5], [0.3, 0.3], [0.7, 1.2]], weights=[2.0, 1.0, 1.0])


def test_sample_shapes_dtypes_and_seeds(mixture):
    x, component = mixture.sample(500, seed=3)
    assert x.shape == (500, 2) and x.dtype == np.float32
    assert component.shape == (500,) and component.dtype == np.int64
    again, _ = mixture.sample(500, seed=3)
    other, _ = mixture.sample(500, seed=4)
    np.testing.assert_array_equal(x, again)
    assert not np.allclose(x, other)
    np.testing.assert_allclose(mixture.weights, [0.5, 0.25, 0.25])


def test_samples_have_the_mixture_moments(mixture):
    x, component = mixture.sample(200_000, seed=0)
    np.testing.assert_allclose(np.bincount(component) / len(component), mixture.weights, atol=0.005)
    mean = mixture.weights @ mixture.means  # E[x] = sum_k pi_k mu_k
    second = mixture.weights @ (mixture.stds**2 + mixture.means**2)  # E[x^2] per coordinate
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=0.02)
    np.testing.assert_allclose(x.var(axis=0), second - mean**2, rtol=0.02)
    # Given its component, each point is N(mu_k, sigma_k^2).
    for k in range(3):
        np.testing.assert_allclose(x[component == k].std(axis=0), mixture.stds[k], rtol=0.03)


def test_log_prob_matches_the_textbook_formula(mixture):
    x = np.random.default_rng(1).normal(0, 3, size=(50, 2))
    expected = sum(
        w * _normal_pdf(x, m, np.diag(s**2))
        for w, m, s in zip(mixture.weights, mixture.means, mixture.stds, strict=True)
    )
    np.testing.assert_allclose(mixture.prob(x), expected, rtol=1e-10)
    np.testing.assert_allclose(mixture.log_prob(x), np.log(expected), rtol=1e-10)
    np.testing.assert_allclose(mixture.responsibilities(x).sum(axis=1), 1.0)


def test_density_integrates_to_one_on_a_grid(mixture):
    xx, yy, density = toy.evaluate_on_grid(mixture.prob, ((-8, 8), (-6, 9)), 400)
    cell = (xx[0, 1] - xx[0, 0]) * (yy[1, 0] - yy[0, 0])
    assert density.sum() * cell == pytest.approx(1.0, abs=1e-3)
    one_d = toy.GaussianMixture([-2.0, 2.0], stds=[0.5, 1.0], weights=[0.3, 0.7])
    t = np.linspace(-10, 10, 20001)
    assert one_d.prob(t).sum() * (t[1] - t[0]) == pytest.approx(1.0, abs=1e-6)


def test_log_prob_is_finite_far_from_every_component(mixture):
    far = np.array([[1e3, -1e3], [60.0, 60.0]])
    log_p = mixture.log_prob(far)
    assert np.all(np.isfinite(log_p))  # exp underflows here; log-sum-exp does not.
    single = toy.GaussianMixture([[0.0, 0.0]], [1.0])
    assert single.log_prob(far[:1])[0] == pytest.approx(-0.5 * 2e6 - np.log(2 * np.pi))
    # Where exp does not underflow, log-sum-exp equals the log of the plain sum.
    near = np.array([[4.0, -3.0]])
    plain = sum(w * _normal_pdf(near, m, np.diag(s**2))[0]
                for w, m, s in zip(mixture.weights, mixture.means, mixture.stds, strict=True))
    assert mixture.log_prob(near)[0] == pytest.approx(np.log(plain), rel=1e-10)


def test_ring_and_grid_place_their_modes():
    ring = toy.ring(n_modes=8, radius=2.0, std=0.05)
    np.testing.assert_allclose(np.linalg.norm(ring.means, axis=1), 2.0)
    assert ring.n_components == 8 and np.allclose(ring.weights, 1 / 8)
    grid = toy.grid(side=5, spacing=2.0)
    assert grid.n_components == 25
    np.testing.assert_allclose(np.unique(grid.means[:, 0]), [-4, -2, 0, 2, 4])
    _, mode = ring.sample(8000, seed=0)
    assert np.bincount(mode, minlength=8).min() > 850


@pytest.mark.parametrize("kind, n_classes", [("gaussian", 2), ("outliers", 2), ("three", 3)])
def test_posterior_is_bayes_rule(kind, n_classes):
    problem = toy.two_classes(kind)
    x, y = problem.sample(20_000, seed=0)
    assert x.shape == (20_000, 2) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(np.bincount(y) / len(y), problem.priors, atol=0.01)
    likelihood = np.stack([d.prob(x) for d in problem.class_densities], axis=1)  # p(x | y)
    joint = likelihood * problem.priors  # p(x, y)
    np.testing.assert_allclose(problem.posterior(x), joint / joint.sum(axis=1, keepdims=True),
                               rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(problem.class_log_prob(x).shape, (20_000, n_classes))
    np.testing.assert_allclose(problem.log_prob(x), np.log(joint.sum(axis=1)), rtol=1e-8)
    # The Bayes decision beats the decision that ignores the priors.
    bayes = np.mean(problem.predict(x) == y)
    ignoring_priors = np.mean(np.argmax(likelihood, axis=1) == y)
    assert bayes >= ignoring_priors


def test_class_samples_follow_their_class_density():
    problem = toy.two_classes("gaussian")
    x, y = problem.sample(50_000, seed=1)
    for c, density in enumerate(problem.class_densities):
        np.testing.assert_allclose(x[y == c].mean(axis=0), density.means[0], atol=0.03)
        np.testing.assert_allclose(x[y == c].std(axis=0), density.stds[0], rtol=0.03)


@pytest.mark.parametrize(
    "mean_p, std_p, mean_q, std_q",
    [([0.0], [1.0], [1.0], [1.0]), ([0.0, 1.0], [1.0, 0.5], [0.5, -1.0], [2.0, 0.7])],
)
def test_kl_monte_carlo_matches_the_closed_form(mean_p, std_p, mean_q, std_q):
    p = toy.GaussianMixture([mean_p], [std_p])
    q = toy.GaussianMixture([mean_q], [std_q])
    var_p, var_q = np.square(std_p), np.square(std_q)
    exact = _gaussian_kl(np.array(mean_p), var_p, np.array(mean_q), var_q)
    assert toy.kl_monte_carlo(p, q, 200_000, seed=0) == pytest.approx(exact, abs=0.01)
    reverse = _gaussian_kl(np.array(mean_q), var_q, np.array(mean_p), var_p)
    assert toy.kl_monte_carlo(q, p, 200_000, seed=0) == pytest.approx(reverse, abs=0.02)


def test_kl_is_zero_for_equal_distributions_and_positive_otherwise():
    p = toy.ring()
    assert toy.kl_monte_carlo(p, toy.ring(), 1000, seed=0) == 0.0
    assert toy.kl_monte_carlo(p, toy.ring(std=0.1), 1000, seed=0) > 0


def test_evaluate_on_grid_puts_x_along_the_columns():
    xx, yy, values = toy.evaluate_on_grid(lambda p: p[:, 0] + 10 * p[:, 1], (-1, 1), 5)
    assert xx.shape == yy.shape == values.shape == (5, 5)
    np.testing.assert_allclose(values, xx + 10 * yy, atol=1e-6)
    _, _, posterior = toy.evaluate_on_grid(toy.two_classes("three").posterior, (-3, 3), 7)
    assert posterior.shape == (7, 7, 3)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: toy.GaussianMixture([[0.0, 0.0]], [1.0, 2.0, 3.0]), "stds"),
        (lambda: toy.GaussianMixture([[0.0], [1.0]], [1.0, -1.0]), "positive"),
        (lambda: toy.GaussianMixture([[0.0], [1.0]], [1.0, 1.0], weights=[1.0]), "weights"),
        (lambda: toy.GaussianMixture([[0.0, 0.0]], [1.0]).log_prob(np.zeros((3, 3))), r"\(n, 2\)"),
        (lambda: toy.two_classes("moons"), "kind"),
        (lambda: toy.evaluate_on_grid(np.sum, (1, -1), 10), "limits"),
        (lambda: toy.ClassificationProblem([toy.ring()], [0.5, 0.5]), "priors"),
    ],
)
def test_bad_input_says_what_is_wrong(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_gaussian_fit_is_the_maximum_likelihood_estimate():
    mixing = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 2.0]])
    x = np.random.default_rng(2).normal(size=(40, 3)) @ mixing
    fit = toy.Gaussian.fit(x, ridge=0.0)
    np.testing.assert_allclose(fit.mean, x.mean(axis=0))
    np.testing.assert_allclose(fit.cov, np.cov(x, rowvar=False, bias=True))  # 1/n, not 1/(n-1)
    # The ML estimate has the largest log-likelihood: nudging either parameter lowers it.
    best = fit.log_prob(x).sum()
    for nudged in (toy.Gaussian(fit.mean + 0.05, fit.cov), toy.Gaussian(fit.mean, 1.05 * fit.cov),
                   toy.Gaussian(fit.mean, np.cov(x, rowvar=False))):
        assert nudged.log_prob(x).sum() < best


def test_gaussian_log_prob_and_sample_match_the_textbook():
    mean, cov = np.array([1.0, -1.0]), np.array([[2.0, 0.8], [0.8, 0.5]])
    gaussian = toy.Gaussian(mean, cov)
    x = np.random.default_rng(3).normal(size=(30, 2))
    np.testing.assert_allclose(np.exp(gaussian.log_prob(x)), _normal_pdf(x, mean, cov), rtol=1e-10)
    samples = gaussian.sample(200_000, seed=0)
    assert samples.dtype == np.float32 and samples.shape == (200_000, 2)
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.01)
    np.testing.assert_allclose(np.cov(samples, rowvar=False), cov, atol=0.01)
    with pytest.raises(ValueError, match="positive definite"):
        toy.Gaussian(mean, np.zeros((2, 2)))


@pytest.mark.parametrize("shared", [False, True])
def test_gaussian_classifier_fits_classes_and_applies_bayes_rule(shared):
    problem = toy.two_classes("gaussian")
    x, y = problem.sample(2_000, seed=5)
    model = toy.fit_gaussian_classifier(x, y, shared_covariance=shared)
    np.testing.assert_allclose(model.priors, np.bincount(y) / len(y))
    fits = [toy.Gaussian.fit(x[y == c]) for c in (0, 1)]
    if shared:  # The pooled covariance: the class covariances weighted by class frequency.
        pooled = sum(np.mean(y == c) * fits[c].cov for c in (0, 1))
        fits = [toy.Gaussian(fit.mean, pooled) for fit in fits]
    joint = np.stack([f.log_prob(x) for f in fits], axis=1) + np.log(model.priors)
    expected = np.exp(joint) / np.exp(joint).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.posterior(x), expected, rtol=1e-8, atol=1e-12)
    # The assumptions hold, so with 2,000 points it decides almost exactly like Bayes.
    x_test, _ = problem.sample(5_000, seed=6)
    assert np.mean(model.predict(x_test) == problem.predict(x_test)) > 0.98


def test_kl_on_grid_matches_the_closed_form():
    p, q = toy.GaussianMixture([[0.0]], [1.0]), toy.GaussianMixture([[1.0]], [2.0])
    grid = np.linspace(-15, 15, 6001)
    assert toy.kl_on_grid(p, q, grid) == pytest.approx(_gaussian_kl(0.0, 1.0, 1.0, 4.0), abs=1e-6)
    assert toy.kl_on_grid(q, p, grid) == pytest.approx(_gaussian_kl(1.0, 4.0, 0.0, 1.0), abs=1e-6)
    assert toy.kl_on_grid(p, p, grid) == pytest.approx(0.0, abs=1e-12)


def test_forward_kl_is_minimised_by_moment_matching():
    p = toy.GaussianMixture([[-2.0], [2.0]], [0.6, 0.6], weights=[0.4, 0.6])
    mean = p.weights @ p.means[:, 0]
    std = np.sqrt(p.weights @ (p.stds[:, 0] ** 2 + p.means[:, 0] ** 2) - mean**2)
    grid = np.linspace(-10, 10, 4001)
    best = toy.kl_on_grid(p, toy.GaussianMixture([[mean]], [std]), grid)
    for dm, ds in [(0.1, 1.0), (-0.1, 1.0), (0.0, 1.05), (0.0, 0.95)]:
        assert toy.kl_on_grid(p, toy.GaussianMixture([[mean + dm]], [std * ds]), grid) > best
