"""dgm_course.wasserstein: exact W1 in 1-D against SciPy and closed forms, exact W1 of point
clouds against brute force over every permutation, Arjovsky et al.'s parallel lines, errors."""

import itertools

import numpy as np
import pytest
from scipy import stats

from dgm_course import gan, wasserstein

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("n, m", [(50, 50), (37, 80), (1, 5)])
def test_wasserstein_1d_matches_scipy(n, m):
    u, v = RNG.normal(0, 1, n), RNG.standard_t(3, m) + 0.4
    assert wasserstein.wasserstein_1d(u, v) == pytest.approx(stats.wasserstein_distance(u, v),
                                                             rel=1e-10, abs=1e-12)


def test_wasserstein_1d_of_equal_sizes_is_the_mean_gap_of_sorted_samples():
    u, v = RNG.exponential(size=200), RNG.normal(size=200)
    expected = np.mean(np.abs(np.sort(u) - np.sort(v)))
    assert wasserstein.wasserstein_1d(u, v) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("mu_1, mu_2, sigma", [(0.0, 3.0, 1.0), (-1.0, 0.5, 0.3)])
def test_wasserstein_1d_of_gaussians_with_equal_variance_is_the_mean_gap(mu_1, mu_2, sigma):
    u = RNG.normal(mu_1, sigma, 200_000)
    v = RNG.normal(mu_2, sigma, 200_000)
    assert wasserstein.wasserstein_1d(u, v) == pytest.approx(abs(mu_1 - mu_2), abs=0.01)


def test_wasserstein_1d_of_uniform_and_point_mass_is_the_mean_distance():
    # W1(U[0, 1], delta_0) = E|X| = 1/2, and W1 is symmetric and 0 on identical samples.
    u = (np.arange(1000) + 0.5) / 1000
    assert wasserstein.wasserstein_1d(u, [0.0]) == pytest.approx(0.5)
    assert wasserstein.wasserstein_1d([0.0], u) == pytest.approx(0.5)
    assert wasserstein.wasserstein_1d(u, u) == 0.0


def brute_force(x, y):
    """min over all permutations s of mean ||x_i - y_s(i)||."""
    return min(np.mean(np.linalg.norm(x - y[list(s)], axis=1))
               for s in itertools.permutations(range(len(x))))


def test_wasserstein_exact_matches_brute_force_over_permutations():
    for seed in range(3):
        rng = np.random.default_rng(seed)
        x, y = rng.normal(size=(6, 2)), rng.normal(1.0, 2.0, size=(6, 2))
        assert wasserstein.wasserstein_exact(x, y) == pytest.approx(brute_force(x, y), rel=1e-12)


def test_wasserstein_exact_of_a_shifted_cloud_is_the_shift_and_agrees_in_1d():
    x = RNG.normal(size=(300, 3))
    shift = np.array([0.3, -1.2, 0.4])
    assert wasserstein.wasserstein_exact(x, x + shift) == pytest.approx(np.linalg.norm(shift))
    u, v = RNG.normal(size=(200, 1)), RNG.gamma(2.0, size=(200, 1))
    assert wasserstein.wasserstein_exact(u, v) == pytest.approx(
        wasserstein.wasserstein_1d(u[:, 0], v[:, 0]), rel=1e-10)


@pytest.mark.parametrize("theta", [0.05, 0.5, -1.0])
def test_parallel_lines_js_is_log_2_and_w1_is_theta(theta):
    """Arjovsky et al. (2017), example 1: P_0 = (0, Z), P_theta = (theta, Z), Z ~ U[0, 1]."""
    z = (np.arange(200) + 0.5) / 200
    p0 = np.stack([np.zeros_like(z), z], axis=1)
    p_theta = np.stack([np.full_like(z, theta), z], axis=1)
    assert wasserstein.wasserstein_exact(p0, p_theta) == pytest.approx(abs(theta))
    bins = [np.linspace(-1.5, 1.5, 301), np.linspace(0, 1, 11)]
    h0, h_theta = (np.histogram2d(*p.T, bins=bins)[0] / len(z) for p in (p0, p_theta))
    assert gan.jensen_shannon(h0, h_theta, 1.0) == pytest.approx(np.log(2))
    assert gan.jensen_shannon(h0, h0, 1.0) == 0.0


def test_docstring_examples():
    assert wasserstein.wasserstein_1d([0.0, 1.0], [2.0, 3.0]) == 2.0
    assert wasserstein.wasserstein_exact([[0.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 3.0]]) == 1.5


@pytest.mark.parametrize("call, error, message", [
    (lambda: wasserstein.wasserstein_1d(np.zeros((3, 2)), [0.0]), ValueError, "1 dimensions"),
    (lambda: wasserstein.wasserstein_1d([], [0.0]), ValueError, "at least one sample"),
    (lambda: wasserstein.wasserstein_1d([np.nan], [0.0]), ValueError, "NaN/inf"),
    (lambda: wasserstein.wasserstein_1d(["a"], [0.0]), TypeError, "dtype"),
    (lambda: wasserstein.wasserstein_exact(np.zeros((3, 2)), np.zeros((4, 2))), ValueError,
     "same shape"),
    (lambda: wasserstein.wasserstein_exact(np.zeros(3), np.zeros(3)), ValueError, r"\(n, d\)"),
])
def test_bad_input_says_what_and_how_to_fix(call, error, message):
    with pytest.raises(error, match=message):
        call()
