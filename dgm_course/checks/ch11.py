"""Checks for the exercises of chapter 11, "Evaluating generative models"
(exercises/11_evaluating_generative_models.ipynb; the lecture is
notebooks/11_evaluating_generative_models.ipynb).

Each answer runs on small feature sets with known answers from `dgm_course.evaluation`; a wrong
value is compared with what each typical mistake gives on the same features (computed here in
NumPy), so the message can name the mistake.
"""

import numpy as np

from dgm_course import evaluation
from dgm_course.checks import fail, passed


def _cases():
    """Feature pairs: (n, d) sets with different means and correlated covariances, sizes that
    differ (so n and m cannot be swapped unnoticed) and a case with fewer samples than
    features (singular covariances)."""
    rng = np.random.default_rng(11)
    mixing = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 2.0]])
    return [
        (rng.normal(size=(8, 3)), rng.normal(size=(8, 3)) @ mixing + 0.5),
        (rng.normal(size=(9, 3)) * 0.7, rng.normal(size=(13, 3)) @ mixing.T - 0.2),
        (rng.normal(size=(5, 8)), 1.5 * rng.normal(size=(6, 8)) + 0.3),
    ]


def _number(value, exercise, name, hint):
    """The answer as a Python float, or a failure naming what came back instead."""
    array = np.asarray(value)
    if np.iscomplexobj(array):
        fail(exercise, f"{name} returned a complex number ({complex(array.reshape(-1)[0]):.4g}): "
             "the imaginary part of the matrix square root was kept. A covariance product "
             "has real eigenvalues >= 0, so that part is round-off; keep the real part "
             "(np.real / .real) or use a symmetric square root, and return a float.", hint)
    if array.size != 1:
        fail(exercise, f"{name} returned an array of shape {array.shape}; return one number "
             "(a float), e.g. float(np.trace(...)).", hint)
    return float(array.reshape(()))


def _call(function, name, args, exercise, hint):
    try:
        return function(*args)
    except NotImplementedError:
        raise
    except (ValueError, TypeError, IndexError, np.linalg.LinAlgError) as error:
        shapes = " and ".join(str(np.shape(arg)) for arg in args)
        fail(exercise, f"{name} raised {type(error).__name__} on features of shapes {shapes}: "
             f"{error}. If a covariance came out (n, n), np.cov treated the rows as "
             "variables: pass rowvar=False (rows are samples, columns features).", hint)


# Exercise 1: FID from features.


def _sqrt_psd(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _fid_parts(real, generated, ddof=1):
    """||mu_r - mu_g||^2, Tr(S_r + S_g), Tr (S_r S_g)^(1/2) and the covariances."""
    sigma_r = np.atleast_2d(np.cov(real, rowvar=False, ddof=ddof))
    sigma_g = np.atleast_2d(np.cov(generated, rowvar=False, ddof=ddof))
    root = _sqrt_psd(sigma_r)
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root @ sigma_g @ root), 0, None)))
    mean_term = np.sum((real.mean(axis=0) - generated.mean(axis=0)) ** 2)
    return mean_term, np.trace(sigma_r) + np.trace(sigma_g), trace_sqrt, sigma_r, sigma_g


def _fid_mistakes(real, generated):
    """{problem: value} of the typical wrong answers on one case."""
    mean_term, traces, trace_sqrt, sigma_r, sigma_g = _fid_parts(real, generated)
    right = mean_term + traces - 2 * trace_sqrt
    p_mean, p_traces, p_sqrt, _, _ = _fid_parts(real, generated, ddof=0)
    with np.errstate(invalid="ignore"):
        entrywise_product = np.trace(np.sqrt(sigma_r @ sigma_g))
        hadamard = np.trace(np.sqrt(sigma_r * sigma_g))
    return {
        "the covariances were divided by n (population covariance, np.cov(..., bias=True) or "
        "ddof=0); the course, like np.cov and the FID authors' code, divides by n - 1.":
            p_mean + p_traces - 2 * p_sqrt,
        "np.sqrt of the matrix product takes the square root of each entry, not the matrix "
        "square root (a matrix B with B @ B = sigma1 @ sigma2): use scipy.linalg.sqrtm, or "
        "eigenvalues.": mean_term + traces - 2 * entrywise_product,
        "the square root was taken entrywise of sigma1 * sigma2 (an elementwise product): "
        "that is right only for diagonal covariances. Take the matrix square root of the "
        "matrix product sigma1 @ sigma2.": mean_term + traces - 2 * hadamard,
        "the square roots of the two covariances were multiplied, sqrtm(sigma1) @ "
        "sqrtm(sigma2): the formula needs the square root of the product, (sigma1 sigma2)^(1/2)."
            : mean_term + traces - 2 * np.trace(_sqrt_psd(sigma_r) @ _sqrt_psd(sigma_g)),
        "only the mean term ||mu1 - mu2||^2: the trace term Tr(sigma1 + sigma2 - 2 (sigma1 "
        "sigma2)^(1/2)), which compares how the two sets spread, is missing.": mean_term,
        "only the trace term: the mean term ||mu1 - mu2||^2 is missing.": right - mean_term,
        "the factor 2 in front of the square root is missing: "
        "Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).": mean_term + traces - trace_sqrt,
        "this is the square root of FID: FID is the *squared* Frechet distance; do not take "
        "a square root at the end.": np.sqrt(max(right, 0.0)),
        "the squared norm of the mean difference was replaced by its mean over the features "
        "(np.mean instead of np.sum).": mean_term / real.shape[1] + traces - 2 * trace_sqrt,
    }


def check_fid(fid_from_features):
    """Exercise 1: `fid_from_features(features_real, features_generated)` -> FID, a float."""
    exercise = "Exercise 1"
    hint = ("mu = x.mean(axis=0), sigma = np.cov(x, rowvar=False); FID = sum((mu1 - mu2)**2) "
            "+ trace(sigma1 + sigma2 - 2 sqrtm(sigma1 @ sigma2)), real part.")
    for real, generated in _cases():
        value = _number(_call(fid_from_features, "fid_from_features", (real, generated),
                              exercise, hint), exercise, "fid_from_features", hint)
        right = evaluation.fid(real, generated)
        if np.isclose(value, right, rtol=1e-5, atol=1e-8):
            continue
        if np.isnan(value):
            fail(exercise, "the answer is NaN: a square root of negative numbers. np.sqrt of a "
                 "matrix takes each entry's root, and products of covariances have negative "
                 "entries; take the matrix square root (scipy.linalg.sqrtm).", hint)
        for problem, wrong in _fid_mistakes(real, generated).items():
            if np.isclose(value, wrong, rtol=1e-5, atol=1e-8):
                fail(exercise, problem, hint)
        fail(exercise, f"on features of shapes {real.shape} and {generated.shape} the answer "
             f"is {value:.6g}; FID is {right:.6g}.", hint)
    features = _cases()[0][0]
    same = _number(_call(fid_from_features, "fid_from_features", (features, features.copy()),
                         exercise, hint), exercise, "fid_from_features", hint)
    if not abs(same) < 1e-6:
        fail(exercise, f"two identical sets give {same:.3g}; FID must be 0 (up to round-off).",
             hint)
    passed("fid_from_features matches evaluation.fid: means, covariances (n - 1), the matrix "
           "square root of sigma1 sigma2 and both terms.")


# Exercise 2: KID's unbiased squared MMD.


def _mmd2(x, y, *, degree=3, scaled=True, offset=1.0, diagonal=False, over_m_squared=False,
          cross=2.0, cross_diagonal=False, one_size=False):
    """The squared MMD with the polynomial kernel, and the ways of getting it wrong."""
    (m, d), n = x.shape, len(y)
    scale = d if scaled else 1.0
    k_xx, k_yy, k_xy = ((a @ b.T / scale + offset) ** degree for a, b in ((x, x), (y, y), (x, y)))
    if one_size:
        n = m
    if diagonal:
        within = k_xx.sum() / m**2 + k_yy.sum() / n**2
    else:
        xx, yy = k_xx.sum() - np.trace(k_xx), k_yy.sum() - np.trace(k_yy)
        within = (xx / m**2 + yy / n**2 if over_m_squared
                  else xx / (m * (m - 1)) + yy / (n * (n - 1)))
    if cross_diagonal:
        size = min(m, len(y))
        between = (k_xy.sum() - np.trace(k_xy[:size, :size])) / (m * len(y) - size)
    else:
        between = k_xy.mean()
    return within - cross * between


_MMD_MISTAKES = {
    "the pairs i = j were kept (the biased V-statistic, sums over all i, j divided by m^2): "
    "leave out the diagonals of k(x, x) and k(y, y) and divide by m (m - 1).":
        {"diagonal": True},
    "the diagonals were left out but the sums still divided by m^2: with i != j there are "
    "m (m - 1) pairs.": {"over_m_squared": True},
    "the cross term k(x_i, y_j) must keep every pair (x and y are different samples): only "
    "the within-set sums leave out i = j.": {"cross_diagonal": True},
    "the cross term needs the factor 2: - 2/(m n) sum k(x_i, y_j).": {"cross": 1.0},
    "the kernel is quadratic; KID's is cubic, k(a, b) = (a.b / d + 1)^3.": {"degree": 2},
    "the kernel is linear; KID's is cubic, k(a, b) = (a.b / d + 1)^3.": {"degree": 1},
    "the dot product was not divided by the feature dimension d: k(a, b) = (a.b / d + 1)^3.":
        {"scaled": False},
    "the + 1 in the kernel is missing: k(a, b) = (a.b / d + 1)^3.": {"offset": 0.0},
    "the second set's sum was divided by m (m - 1), the size of the first set: y has its own "
    "size n, and its pairs number n (n - 1).": {"one_size": True},
}


def check_mmd2(mmd2_unbiased):
    """Exercise 2: `mmd2_unbiased(features_x, features_y)` -> KID's unbiased MMD^2, a float."""
    exercise = "Exercise 2"
    hint = ("k = (x @ y.T / d + 1) ** 3; (sum of k_xx off the diagonal) / (m (m-1)) + the same "
            "for y / (n (n-1)) - 2 * mean(k_xy).")
    for x, y in _cases():
        x, y = np.abs(x), np.abs(y)  # Non-negative, like ReLU features.
        value = _number(_call(mmd2_unbiased, "mmd2_unbiased", (x, y), exercise, hint),
                        exercise, "mmd2_unbiased", hint)
        right = evaluation.mmd2(x, y)
        if np.isclose(value, right, rtol=1e-6, atol=1e-10):
            continue
        for problem, mistake in _MMD_MISTAKES.items():
            if np.isclose(value, _mmd2(x, y, **mistake), rtol=1e-6, atol=1e-10):
                fail(exercise, problem, hint)
        fail(exercise, f"on features of shapes {x.shape} and {y.shape} the answer is "
             f"{value:.6g}; the unbiased MMD^2 is {right:.6g}.", hint)
    passed("mmd2_unbiased matches evaluation.mmd2: the cubic kernel, the pairs i = j left "
           "out, m (m - 1) and n (n - 1) pairs.")


__all__ = ["check_fid", "check_mmd2"]
