"""The Wasserstein-1 (earth mover's) distance computed exactly, to check what a WGAN's critic
estimates: in 1-D from sorted samples (the integral of |F_P - F_Q|), and between two equally
large point clouds in any dimension by an optimal assignment. NumPy and SciPy only.

    W1(P, Q) = inf over couplings gamma of E_(x, y)~gamma ||x - y||
Explained in chapter 05 (notebooks/05_wasserstein.ipynb), sections "The earth mover's distance"
and "Compute W1 exactly in 1-D".
"""

import numpy as np

from dgm_course._validation import describe, require_array


def _samples(value, name, ndim):
    """`value` as a float64 array with `ndim` dimensions and at least one sample, or raises."""
    shape = "(n,)" if ndim == 1 else "(n, d)"
    array = require_array(value, name, ndim=ndim, dtype_kinds="uif",
                          fix=f"Pass samples of shape {shape}.").astype(np.float64)
    if len(array) == 0 or not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must hold at least one sample, all finite; got "
                         f"{describe(array)}. Drop NaN/inf samples first.")
    return array


def wasserstein_1d(u, v):
    """Returns the exact W1 between the empirical distributions of two 1-D samples.

    In 1-D the optimal plan moves the k-th smallest of one sample onto the k-th smallest of
    the other, and W1 is the area between the two distribution functions:
    W1 = integral |F_u(t) - F_v(t)| dt, which for samples of equal size n is
    mean_k |u_(k) - v_(k)| of the sorted samples. Explained in notebooks/05_wasserstein.ipynb,
    section "Compute W1 exactly in 1-D".

    Args:
        u: (n,) samples of P. v: (m,) samples of Q (m may differ from n).

    Returns:
        A float >= 0, the same as `scipy.stats.wasserstein_distance(u, v)`.

    Raises:
        ValueError: if a sample is not 1-D, is empty or holds NaN/inf.

    Example:
        >>> wasserstein_1d([0.0, 1.0], [2.0, 3.0])  # move both points by 2
        2.0
    """
    u, v = _samples(u, "u", 1), _samples(v, "v", 1)
    u, v = np.sort(u), np.sort(v)
    points = np.sort(np.concatenate([u, v]))  # where either F jumps, (n + m,)
    # F_u(t), F_v(t) on each interval [points[i], points[i + 1])  # (n + m - 1,)
    cdf_u = np.searchsorted(u, points[:-1], side="right") / len(u)
    cdf_v = np.searchsorted(v, points[:-1], side="right") / len(v)
    # W1 = integral |F_u - F_v| dt, exact: both are constant on each interval.
    return float(np.sum(np.abs(cdf_u - cdf_v) * np.diff(points)))


def wasserstein_exact(x, y):
    """Returns the exact W1 between two equally large point clouds, with Euclidean cost.

    For two empirical distributions of n points each, an optimal coupling can be taken to be
    a permutation (Birkhoff's theorem), so W1 = min over permutations s of
    mean_i ||x_i - y_s(i)||, solved exactly by `scipy.optimize.linear_sum_assignment`
    (O(n^3): keep n to a few thousand). Explained in notebooks/05_wasserstein.ipynb, section
    "The earth mover's distance".

    Args:
        x: (n, d) points of P. y: (n, d) points of Q, as many as `x`.

    Returns:
        A float >= 0.

    Raises:
        ValueError: if the shapes differ or are not (n, d).

    Example:
        >>> wasserstein_exact([[0.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 3.0]])
        1.5
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    x, y = _samples(x, "x", 2), _samples(y, "y", 2)
    if x.shape != y.shape:
        raise ValueError(f"`x` and `y` must have the same shape (n, d); got {describe(x)} and "
                         f"{describe(y)}. Draw as many points of each, e.g. y[:len(x)].")
    cost = cdist(x, y)  # ||x_i - y_j||, (n, n)
    rows, columns = linear_sum_assignment(cost)  # the optimal permutation
    return float(cost[rows, columns].mean())
