"""Toy distributions with exact densities: Gaussian mixtures in any dimension, rings and grids
of Gaussians (the GAN chapter's mode-collapse test), and labelled 2-D classification problems
whose Bayes-optimal posterior p(y | x) is known exactly. Everything is NumPy (float64 inside,
float32 samples), so that a notebook can compare a trained model with the truth.
Explained in notebooks/02_generative_vs_discriminative.ipynb, sections "Latent-variable models"
and "A toy problem with a known answer".
"""

import numpy as np

from dgm_course._validation import describe, require_array, require_int

_LOG_2PI = np.log(2.0 * np.pi)


def _logsumexp(a, axis):
    """log(sum(exp(a), axis)) without overflow: the largest term is taken out first."""
    peak = np.max(a, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)  # All -inf: keep -inf, avoid inf - inf.
    return np.squeeze(peak, axis) + np.log(np.sum(np.exp(a - peak), axis=axis))


def _rng(seed):
    """A NumPy Generator from an int seed (or an existing Generator, used as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(require_int(seed, "seed", minimum=0))


class GaussianMixture:
    """A mixture of K Gaussians with diagonal covariances in d dimensions.

    p(x) = sum_k pi_k N(x; mu_k, diag(sigma_k^2)): a latent-variable model whose latent
    z in {0..K-1} is the component. Sampling is ancestral (z first, then x given z); the
    density is exact, summed over z with log-sum-exp.

    Args:
        means: (K, d) component means. A 1-D array (K,) is read as K components in d = 1.
        stds: (K,) one standard deviation per component, or (K, d) one per coordinate.
        weights: (K,) positive mixture weights pi_k, normalised to sum to 1; None for uniform.

    Raises:
        ValueError: if shapes disagree, a std is not positive or a weight is negative.

    Example:
        >>> mixture = GaussianMixture([[-2.0], [2.0]], stds=[0.5, 0.5], weights=[0.3, 0.7])
        >>> x, component = mixture.sample(1000, seed=0)   # (1000, 1) float32, (1000,) int64
        >>> mixture.log_prob(x).shape
        (1000,)
    """

    def __init__(self, means, stds, weights=None):
        means = require_array(means, "means", ndim=(1, 2), dtype_kinds="uif",
                              fix="Pass means of shape (K, d), e.g. [[0.0, 0.0], [2.0, 1.0]].")
        self.means = means.astype(np.float64).reshape(len(means), -1)  # (K, d)
        n_components, dim = self.means.shape
        stds = require_array(stds, "stds", ndim=(0, 1, 2), dtype_kinds="uif").astype(np.float64)
        if stds.ndim < 2:
            stds = stds.reshape(-1, 1)  # One std per component (or one for all), every coordinate.
        if stds.shape[0] not in (1, n_components) or stds.shape[1] not in (1, dim):
            raise ValueError(
                f"`stds` must have shape ({n_components},) or ({n_components}, {dim}) to match "
                f"`means` of shape {self.means.shape}; got {describe(stds)}.")
        self.stds = np.broadcast_to(stds, (n_components, dim)).copy()  # (K, d)
        if not np.all(self.stds > 0):
            raise ValueError(f"every std must be positive; got {self.stds.min()}.")
        if weights is None:
            weights = np.full(n_components, 1.0 / n_components)
        weights = require_array(weights, "weights", ndim=1, dtype_kinds="uif").astype(np.float64)
        if weights.shape != (n_components,) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(
                f"`weights` must be {n_components} non-negative numbers, one per component, "
                f"not all zero; got {describe(weights)}: {weights.tolist()[:8]}.")
        self.weights = weights / weights.sum()  # (K,)

    @property
    def n_components(self):
        return self.means.shape[0]

    @property
    def dim(self):
        return self.means.shape[1]

    def sample(self, n, seed):
        """Draws n points by ancestral sampling: z ~ Categorical(pi), then x ~ N(mu_z, sigma_z^2).

        Returns:
            x of shape (n, d) float32 and the component z of each point, (n,) int64.
        """
        n = require_int(n, "n", minimum=0)
        rng = _rng(seed)
        component = rng.choice(self.n_components, size=n, p=self.weights).astype(np.int64)
        noise = rng.standard_normal((n, self.dim))
        x = self.means[component] + self.stds[component] * noise  # (n, d)
        return x.astype(np.float32), component

    def _points(self, x):
        """`x` as a float64 (n, d) array; (n,) is accepted when d = 1."""
        x = require_array(x, "x", ndim=(1, 2), dtype_kinds="uif").astype(np.float64)
        if x.ndim == 1 and self.dim == 1:
            x = x[:, np.newaxis]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"`x` must have shape (n, {self.dim}) for this {self.dim}-D mixture; "
                             f"got {describe(x)}.")
        return x

    def component_log_prob(self, x):
        """log pi_k + log N(x; mu_k, sigma_k^2) for every point and component: (n, K) float64."""
        x = self._points(x)
        z = (x[:, np.newaxis, :] - self.means) / self.stds  # (n, K, d)
        log_normal = -0.5 * np.sum(z**2 + _LOG_2PI + 2.0 * np.log(self.stds), axis=-1)  # (n, K)
        with np.errstate(divide="ignore"):  # A zero weight gives log 0 = -inf: fine.
            return np.log(self.weights) + log_normal

    def log_prob(self, x):
        """The exact log p(x) = logsumexp_k(log pi_k + log N(x; mu_k, sigma_k^2)), (n,)."""
        return _logsumexp(self.component_log_prob(x), axis=-1)

    def prob(self, x):
        """The exact density p(x), (n,) float64."""
        return np.exp(self.log_prob(x))

    def responsibilities(self, x):
        """The posterior over components p(z = k | x), (n, K): Bayes' rule inside the mixture."""
        joint = self.component_log_prob(x)
        return np.exp(joint - _logsumexp(joint, axis=-1)[:, np.newaxis])

    def __repr__(self):
        return f"GaussianMixture(K={self.n_components}, d={self.dim})"


class Gaussian:
    """One Gaussian N(mu, Sigma) with a full covariance matrix, and its maximum-likelihood fit.

    Args:
        mean: (d,) the mean mu.
        cov: (d, d) a symmetric positive-definite covariance Sigma.

    Example:
        >>> g = Gaussian.fit(np.random.default_rng(0).normal(size=(500, 2)))
        >>> g.log_prob(np.zeros((1, 2))).shape
        (1,)
    """

    def __init__(self, mean, cov):
        self.mean = require_array(mean, "mean", ndim=1, dtype_kinds="uif").astype(np.float64)
        self.cov = require_array(cov, "cov", ndim=2, dtype_kinds="uif").astype(np.float64)
        d = len(self.mean)
        if self.cov.shape != (d, d):
            raise ValueError(f"`cov` must have shape ({d}, {d}) to match `mean`; got "
                             f"{describe(self.cov)}.")
        try:
            self._cholesky = np.linalg.cholesky(self.cov)  # Sigma = L L^T
        except np.linalg.LinAlgError:
            raise ValueError("`cov` is not positive definite (e.g. fitted to fewer distinct "
                             "points than dimensions); add a ridge: cov + 1e-6 * I.") from None
        self.dim = d

    @classmethod
    def fit(cls, x, *, ridge=1e-6):
        """The maximum-likelihood fit: the sample mean and the biased (1/n) covariance.

        mu = (1/n) sum_i x_i;  Sigma = (1/n) sum_i (x_i - mu)(x_i - mu)^T, plus `ridge` * I so
        that two points in 2-D still give an invertible matrix (np.cov divides by n - 1: not ML).
        """
        x = require_array(x, "x", ndim=2, dtype_kinds="uif").astype(np.float64)
        mean = x.mean(axis=0)  # (d,)
        centred = x - mean  # (n, d)
        cov = centred.T @ centred / len(x) + ridge * np.eye(x.shape[1])  # (d, d)
        return cls(mean, cov)

    def log_prob(self, x):
        """log N(x; mu, Sigma) = -0.5 (d log 2pi + log det Sigma + (x-mu)^T Sigma^-1 (x-mu))."""
        x = require_array(x, "x", ndim=2, dtype_kinds="uif").astype(np.float64)
        solved = np.linalg.solve(self._cholesky, (x - self.mean).T)  # L^-1 (x - mu), (d, n)
        log_det = 2.0 * np.sum(np.log(np.diag(self._cholesky)))
        return -0.5 * (self.dim * _LOG_2PI + log_det + np.sum(solved**2, axis=0))

    def sample(self, n, seed):
        """x = mu + L epsilon with Sigma = L L^T, epsilon ~ N(0, I): (n, d) float32."""
        noise = _rng(seed).standard_normal((require_int(n, "n", minimum=0), self.dim))
        return (self.mean + noise @ self._cholesky.T).astype(np.float32)


def fit_gaussian_classifier(x, y, *, shared_covariance=False):
    """A generative classifier: a Gaussian p(x | y) per class, fitted by maximum likelihood,
    and priors p(y) = n_y / n; it classifies with Bayes' rule (`.posterior`, `.predict`).

    With shared_covariance=True every class gets the pooled covariance (linear discriminant
    analysis: a linear decision boundary); otherwise each class has its own (quadratic).

    Returns:
        A ClassificationProblem, the same kind of object as the true problem.
    """
    x = require_array(x, "x", ndim=2, dtype_kinds="uif").astype(np.float64)
    y = require_array(y, "y", ndim=1, dtype_kinds="ui")
    classes = np.arange(int(y.max()) + 1)
    if len(x) != len(y) or np.any(np.bincount(y, minlength=len(classes)) == 0):
        raise ValueError(f"need one label per point and every class 0..{classes[-1]} present; got "
                         f"{len(x)} points, class counts {np.bincount(y).tolist()}.")
    fits = [Gaussian.fit(x[y == c]) for c in classes]
    if shared_covariance:
        pooled = sum(np.mean(y == c) * fit.cov for c, fit in zip(classes, fits))
        fits = [Gaussian(fit.mean, pooled) for fit in fits]
    return ClassificationProblem(fits, np.bincount(y) / len(y))


def kl_on_grid(p, q, x):
    """KL(p || q) = integral p(x) (log p(x) - log q(x)) dx as a Riemann sum on an even 1-D grid.

    Args:
        p, q: 1-D distributions with `log_prob`. x: (m,) evenly spaced points covering p's mass.
    """
    x = require_array(x, "x", ndim=1, dtype_kinds="uif").astype(np.float64)
    log_p, log_q = p.log_prob(x[:, np.newaxis]), q.log_prob(x[:, np.newaxis])
    terms = np.where(log_p > -np.inf, np.exp(log_p) * (log_p - log_q), 0.0)  # 0 log 0 = 0
    return float(np.sum(terms) * (x[1] - x[0]))


def ring(n_modes=8, radius=2.0, std=0.05):
    """n_modes equal Gaussians evenly spaced on a circle of `radius` (the classic GAN toy).

    Example:
        >>> x, mode = ring().sample(512, seed=0)   # (512, 2), (512,)
    """
    n_modes = require_int(n_modes, "n_modes", minimum=1)
    angles = 2.0 * np.pi * np.arange(n_modes) / n_modes
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (n_modes, 2)
    return GaussianMixture(means, np.full(n_modes, std))


def grid(side=5, spacing=2.0, std=0.05):
    """side x side equal Gaussians on a square grid centred at the origin.

    Example:
        >>> grid().n_components
        25
    """
    side = require_int(side, "side", minimum=1)
    ticks = (np.arange(side) - (side - 1) / 2.0) * spacing
    means = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2)
    return GaussianMixture(means, np.full(side * side, std))


class ClassificationProblem:
    """Labelled data from known class-conditional densities p(x | y) and priors p(y).

    Everything about it is exact: p(x | y) from each class's GaussianMixture, the marginal
    p(x) = sum_y p(x | y) p(y), and the Bayes-optimal posterior p(y | x) by Bayes' rule.

    Args:
        class_densities: a list of C GaussianMixture objects of the same dimension.
        priors: (C,) class probabilities p(y), normalised to sum to 1.
    """

    def __init__(self, class_densities, priors):
        self.class_densities = list(class_densities)
        priors = require_array(priors, "priors", ndim=1, dtype_kinds="uif").astype(np.float64)
        if priors.shape != (len(self.class_densities),) or np.any(priors <= 0):
            raise ValueError(f"`priors` must be {len(self.class_densities)} positive numbers, one "
                             f"per class; got {describe(priors)}.")
        self.priors = priors / priors.sum()  # (C,)

    @property
    def n_classes(self):
        return len(self.class_densities)

    def sample(self, n, seed):
        """Draws y ~ p(y), then x ~ p(x | y). Returns x (n, d) float32 and y (n,) int64."""
        n = require_int(n, "n", minimum=0)
        rng = _rng(seed)
        y = rng.choice(self.n_classes, size=n, p=self.priors).astype(np.int64)
        x = np.zeros((n, self.class_densities[0].dim), np.float32)
        for c, density in enumerate(self.class_densities):
            drawn = density.sample(int(np.sum(y == c)), seed=rng)
            x[y == c] = drawn[0] if isinstance(drawn, tuple) else drawn  # A mixture adds z.
        return x, y

    def class_log_prob(self, x):
        """log p(x | y) for every class: (n, C) float64."""
        return np.stack([density.log_prob(x) for density in self.class_densities], axis=-1)

    def log_prob(self, x):
        """The marginal log p(x) = logsumexp_y(log p(x | y) + log p(y)), (n,)."""
        return _logsumexp(self.class_log_prob(x) + np.log(self.priors), axis=-1)

    def posterior(self, x):
        """The Bayes-optimal p(y | x) = p(x | y) p(y) / p(x), (n, C) float64."""
        joint = self.class_log_prob(x) + np.log(self.priors)  # (n, C)
        return np.exp(joint - _logsumexp(joint, axis=-1)[:, np.newaxis])

    def predict(self, x):
        """The Bayes-optimal decision argmax_y p(y | x), (n,) int64."""
        return np.argmax(self.class_log_prob(x) + np.log(self.priors), axis=-1).astype(np.int64)


_KINDS = ("gaussian", "outliers", "three")


def two_classes(kind="gaussian"):
    """A 2-D classification problem with exact class densities (each a GaussianMixture).

    Args:
        kind: "gaussian": two elongated Gaussians with the same covariance and priors 0.6/0.4
            (a generative Gaussian classifier's assumptions hold, the Bayes boundary is a line);
            "outliers": the same, but 20% of class 0 sits in a far-away cluster, so class 0 is
            not Gaussian (a Gaussian fit is misspecified; the boundary hardly changes);
            "three": three classes, one of them a two-component mixture.

    Returns:
        A ClassificationProblem with `.sample(n, seed)`, `.class_log_prob(x)`, `.posterior(x)`.

    Example:
        >>> problem = two_classes("gaussian")
        >>> x, y = problem.sample(200, seed=0)
        >>> problem.posterior(x).shape
        (200, 2)
    """
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {_KINDS}; got {kind!r}.")
    stds = [[1.0, 0.5]]  # Shared by the two main classes: elongated along the first axis.
    class_0 = GaussianMixture([[-1.0, -0.5]], stds)
    class_1 = GaussianMixture([[1.0, 0.5]], stds)
    if kind == "gaussian":
        return ClassificationProblem([class_0, class_1], [0.6, 0.4])
    if kind == "outliers":
        class_0 = GaussianMixture([[-1.0, -0.5], [-3.0, -7.0]], [[1.0, 0.5], [0.5, 0.5]],
                                  weights=[0.8, 0.2])
        return ClassificationProblem([class_0, class_1], [0.6, 0.4])
    class_2 = GaussianMixture([[-2.0, 2.0], [2.0, -2.0]], [0.5, 0.5])
    return ClassificationProblem([class_0, class_1, class_2], [0.4, 0.3, 0.3])


def kl_monte_carlo(p, q, n, *, seed):
    """A Monte Carlo estimate of KL(p || q) = E_{x~p}[log p(x) - log q(x)].

    The samples come from p, the first argument; swapping p and q estimates KL(q || p),
    which is a different number (KL is not symmetric).

    Args:
        p, q: objects with `sample(n, seed)` (returning x, or a tuple whose first item is x)
            and `log_prob(x)`, e.g. GaussianMixture.
        n: the number of samples.
        seed: an int seed.

    Returns:
        A float. Its standard error is std(log p - log q) / sqrt(n).

    Example:
        >>> p = GaussianMixture([[0.0]], [1.0]); q = GaussianMixture([[1.0]], [1.0])
        >>> round(kl_monte_carlo(p, q, 100_000, seed=0), 2)   # closed form: 0.5
        0.5
    """
    n = require_int(n, "n", minimum=1)
    x = p.sample(n, seed=seed)
    if isinstance(x, tuple):
        x = x[0]
    return float(np.mean(np.asarray(p.log_prob(x)) - np.asarray(q.log_prob(x))))


def evaluate_on_grid(fn, limits, resolution=200):
    """Evaluates fn on a regular 2-D grid, for density plots and decision boundaries.

    Args:
        fn: maps points (m, 2) float32 to values (m,) or (m, C), e.g. `problem.posterior`,
            `mixture.prob`, or a Keras model's `predict`.
        limits: (low, high) for both axes, or ((x_low, x_high), (y_low, y_high)).
        resolution: points per axis.

    Returns:
        xx, yy of shape (resolution, resolution) (as from np.meshgrid, x along the columns)
        and the values, (resolution, resolution) or (resolution, resolution, C).

    Example:
        >>> xx, yy, density = evaluate_on_grid(ring().prob, (-3, 3), 100)
        >>> density.shape
        (100, 100)
    """
    resolution = require_int(resolution, "resolution", minimum=2)
    limits = np.asarray(limits, np.float64)
    if limits.shape == (2,):
        limits = np.stack([limits, limits])
    if limits.shape != (2, 2) or np.any(limits[:, 0] >= limits[:, 1]):
        raise ValueError("`limits` must be (low, high) or ((x_low, x_high), (y_low, y_high)) with "
                         f"low < high; got {limits.tolist()}.")
    xx, yy = np.meshgrid(np.linspace(*limits[0], resolution), np.linspace(*limits[1], resolution))
    points = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)  # (m, 2)
    values = np.asarray(fn(points))
    return xx, yy, values.reshape((resolution, resolution) + values.shape[1:])
