"""The checks of chapter 11 against right answers (as a learner might write them) and the
typical wrong ones, each of which must be rejected with the message that names its mistake."""

import numpy as np
import pytest
import scipy.linalg

from dgm_course import evaluation
from dgm_course.checks import ExerciseError, ch11

# Exercise 1: FID from features.


def _moments(real, generated, ddof=1):
    return (real.mean(axis=0), np.cov(real, rowvar=False, ddof=ddof),
            generated.mean(axis=0), np.cov(generated, rowvar=False, ddof=ddof))


def fid_sqrtm(real, generated):
    """The FID authors' way: scipy's matrix square root of the product, real part."""
    mu1, sigma1, mu2, sigma2 = _moments(real, generated)
    root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * root))


def fid_eigenvalues(real, generated):
    """Tr (sigma1 sigma2)^(1/2) = sum of the square roots of the product's eigenvalues."""
    mu1, sigma1, mu2, sigma2 = _moments(real, generated)
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2).real
    trace_sqrt = np.sum(np.sqrt(np.clip(eigenvalues, 0, None)))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


@pytest.mark.parametrize("right", [fid_sqrtm, fid_eigenvalues, evaluation.fid])
def test_fid_right_answers_pass(right, capsys):
    ch11.check_fid(right)
    assert capsys.readouterr().out.startswith("✅")


def _wrong_fid(mean_term=1.0, trace_factor=2.0, root="sqrtm", ddof=1, finish=float):
    def fid(real, generated):
        mu1, sigma1, mu2, sigma2 = _moments(real, generated, ddof)
        roots = {"sqrtm": lambda: scipy.linalg.sqrtm(sigma1 @ sigma2).real,
                 "entrywise": lambda: np.sqrt(np.abs(sigma1 @ sigma2)),
                 "entrywise_nan": lambda: _entrywise_sqrt(sigma1 @ sigma2),
                 "hadamard": lambda: _entrywise_sqrt(sigma1 * sigma2),
                 "separate": lambda: (scipy.linalg.sqrtm(sigma1) @ scipy.linalg.sqrtm(sigma2)).real,
                 "complex": lambda: _complex_sqrt(sigma1 @ sigma2)}
        value = (mean_term * np.sum((mu1 - mu2) ** 2)
                 + np.trace(sigma1 + sigma2 - trace_factor * roots[root]()))
        return finish(value)
    return fid


def _entrywise_sqrt(matrix):
    """np.sqrt of each entry, NaN for the negative ones (off the diagonal here)."""
    with np.errstate(invalid="ignore"):
        return np.sqrt(matrix)


def _complex_sqrt(matrix):
    """A square root through np.linalg.eig in complex numbers, imaginary round-off kept."""
    values, vectors = np.linalg.eig(matrix)
    return vectors @ np.diag(np.sqrt(values.astype(complex))) @ np.linalg.inv(vectors)


def fid_population(real, generated):
    return _wrong_fid(ddof=0)(real, generated)


def fid_mean_over_features(real, generated):
    mu1, sigma1, mu2, sigma2 = _moments(real, generated)
    return float(np.mean((mu1 - mu2) ** 2)
                 + np.trace(sigma1 + sigma2 - 2 * scipy.linalg.sqrtm(sigma1 @ sigma2).real))


def fid_transposed(real, generated):
    sigma1, sigma2 = np.cov(real), np.cov(generated)  # rowvar=True: rows as variables
    return float(np.sum((real.mean(0) - generated.mean(0)) ** 2)
                 + np.trace(sigma1 + sigma2 - 2 * scipy.linalg.sqrtm(sigma1 @ sigma2).real))


def fid_vector(real, generated):
    return np.full(3, fid_sqrtm(real, generated))


@pytest.mark.parametrize("wrong, match", [
    (fid_population, "divided by n \\(population"),
    (_wrong_fid(root="entrywise"), "square root of each entry"),
    (_wrong_fid(root="entrywise_nan"), "square root of each entry"),
    (lambda real, generated: float("nan"), "NaN"),
    (_wrong_fid(root="hadamard"), "elementwise product"),
    (_wrong_fid(root="separate"), "square roots of the two covariances were multiplied"),
    (_wrong_fid(trace_factor=0.0, root="sqrtm"), None),  # Tr(S1 + S2) without the root: generic
    (lambda r, g: float(np.sum((r.mean(0) - g.mean(0)) ** 2)), "only the mean term"),
    (_wrong_fid(mean_term=0.0), "only the trace term"),
    (_wrong_fid(trace_factor=1.0), "factor 2"),
    (_wrong_fid(finish=lambda value: float(np.sqrt(value))), "square root of FID"),
    (_wrong_fid(root="complex", finish=lambda value: value), "imaginary part"),
    (fid_mean_over_features, "np.mean instead of np.sum"),
    (fid_transposed, "rowvar=False"),
    (fid_vector, "return one number"),
])
def test_fid_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match or "FID is"):
        ch11.check_fid(wrong)


def test_fid_check_passes_not_implemented_through():
    def unwritten(real, generated):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        ch11.check_fid(unwritten)


# Exercise 2: the unbiased squared MMD of KID.


def mmd2_loops(x, y):
    """The U-statistic written with explicit sums over pairs."""
    (m, d), n = x.shape, len(y)
    kernel = lambda a, b: (a @ b / d + 1) ** 3
    xx = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(kernel(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    xy = sum(kernel(x[i], y[j]) for i in range(m) for j in range(n))
    return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)


def mmd2_masked(x, y):
    d = x.shape[1]
    k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    off = lambda k: k[~np.eye(len(k), dtype=bool)].mean()
    return off(k_xx) + off(k_yy) - 2 * k_xy.mean()


@pytest.mark.parametrize("right", [mmd2_loops, mmd2_masked, evaluation.mmd2])
def test_mmd2_right_answers_pass(right, capsys):
    ch11.check_mmd2(right)
    assert capsys.readouterr().out.startswith("✅")


def _kernels(x, y, degree=3, scaled=True, offset=1.0):
    d = x.shape[1] if scaled else 1.0
    return [(a @ b.T / d + offset) ** degree for a, b in ((x, x), (y, y), (x, y))]


def _unbiased(degree=3, scaled=True, offset=1.0, cross=2.0):
    def mmd2(x, y):
        k_xx, k_yy, k_xy = _kernels(x, y, degree, scaled, offset)
        m, n = len(x), len(y)
        return ((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
                + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1)) - cross * k_xy.mean())
    return mmd2


def mmd2_biased(x, y):
    k_xx, k_yy, k_xy = _kernels(x, y)
    return k_xx.mean() + k_yy.mean() - 2 * k_xy.mean()


def mmd2_over_m_squared(x, y):
    k_xx, k_yy, k_xy = _kernels(x, y)
    return ((k_xx.sum() - np.trace(k_xx)) / len(x) ** 2
            + (k_yy.sum() - np.trace(k_yy)) / len(y) ** 2 - 2 * k_xy.mean())


def mmd2_cross_diagonal(x, y):
    k_xx, k_yy, k_xy = _kernels(x, y)
    m = len(x)
    off = lambda k: (k.sum() - np.trace(k)) / (m * (m - 1))
    return off(k_xx) + off(k_yy) - 2 * off(k_xy)


def mmd2_one_size(x, y):
    k_xx, k_yy, k_xy = _kernels(x, y)
    m = len(x)
    return ((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
            + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1)) - 2 * k_xy.mean())


@pytest.mark.parametrize("wrong, match", [
    (mmd2_biased, "biased V-statistic"),
    (mmd2_over_m_squared, "still divided by m\\^2"),
    (mmd2_cross_diagonal, "cross term k\\(x_i, y_j\\) must keep every pair"),
    (_unbiased(cross=1.0), "factor 2"),
    (_unbiased(degree=2), "quadratic"),
    (_unbiased(degree=1), "linear"),
    (_unbiased(scaled=False), "feature dimension d"),
    (_unbiased(offset=0.0), "\\+ 1 in the kernel"),
    (mmd2_one_size, "its own size n"),
    (lambda x, y: _unbiased()(x, y) + 1.0, "the unbiased MMD\\^2 is"),
])
def test_mmd2_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch11.check_mmd2(wrong)
