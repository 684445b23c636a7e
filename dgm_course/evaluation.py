"""How close generated images are to real ones. In a feature space (`feature_extractor`): the
Frechet Inception Distance (Heusel et al. 2017), the Kernel Inception Distance (Binkowski et al.
2018), precision and recall (Kynkaanniemi et al. 2019); from class probabilities: the Inception
Score (Salimans et al. 2016); and the Classification Accuracy Score (Ravuri & Vinyals 2019),
train on generated, test on real. NumPy in float64, batched where n^2 numbers would not fit.
Explained in notebooks/11_evaluating_generative_models.ipynb.
"""

import typing

import numpy as np

from dgm_course import _evaluation_checks as checks
from dgm_course import metrics
from dgm_course._validation import require_int
from dgm_course.feature_space import feature_extractor

__all__ = ["feature_extractor", "frechet_distance", "fid", "mmd2", "kid", "precision_recall",
           "inception_score", "classification_accuracy_score", "Estimate", "PrecisionRecall",
           "ClassificationAccuracyScore"]


class Estimate(typing.NamedTuple):
    """A score averaged over random subsets (KID) or splits (Inception Score), and its
    standard deviation over them."""

    mean: float
    std: float


class PrecisionRecall(typing.NamedTuple):
    """Precision (share of generated samples that look real) and recall (share of real
    samples the generator can produce), both in [0, 1]."""

    precision: float
    recall: float


class ClassificationAccuracyScore(typing.NamedTuple):
    """Accuracy on real test images of a classifier trained on generated images, overall and
    per class (NaN for a class with no test image)."""

    accuracy: float
    class_accuracies: tuple


def _sqrt_psd(matrix):
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    # Rounding leaves the zero eigenvalues of a singular covariance a hair below 0.
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Returns the squared Frechet (Wasserstein-2) distance of N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)). The matrix square
    root is taken of the symmetric sigma1^(1/2) sigma2 sigma1^(1/2), which has the same
    eigenvalues as sigma1 sigma2: no complex round-off to discard and no `eps` offset needed
    for singular covariances, where the TTUR code's `scipy.linalg.sqrtm(sigma1 @ sigma2)` needs
    both. Explained in notebooks/11_evaluating_generative_models.ipynb, section "FID".

    Args:
        mu1: (d,) mean. sigma1: (d, d) covariance. mu2, sigma2: the other Gaussian's.

    Returns:
        A float >= 0.

    Raises:
        ValueError: for mismatched or non-finite shapes, or a covariance that is not symmetric.

    Example:
        >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))  # 2 + 2 * 1
        4.0
    """
    mu1, sigma1, mu2, sigma2 = checks.gaussians(mu1, sigma1, mu2, sigma2)
    sqrt_sigma1 = _sqrt_psd(sigma1)
    # Tr (sigma1 sigma2)^(1/2) = Tr (sigma1^(1/2) sigma2 sigma1^(1/2))^(1/2) = sum_i sqrt(lambda_i)
    eigenvalues = np.linalg.eigvalsh(sqrt_sigma1 @ sigma2 @ sqrt_sigma1)  # (d,)
    trace_sqrt = np.sum(np.sqrt(np.clip(eigenvalues, 0, None)))
    # d^2 = ||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr (sigma1 sigma2)^(1/2)
    distance = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(distance, 0.0))  # Rounding can leave -1e-13 for identical Gaussians.


def fid(features_real, features_generated):
    """Returns the Frechet Inception Distance of two feature sets (Heusel et al. 2017).

    Fits a Gaussian to each set (mean and covariance, divided by n - 1 like `np.cov` and the
    TTUR code) and returns `frechet_distance` between them. FID is biased upwards by finite
    samples: compare models with the same number of samples, and show real against real.
    Explained in notebooks/11_evaluating_generative_models.ipynb, section "FID".

    Args:
        features_real: (n, d) features of real images.
        features_generated: (m, d) features of generated images.

    Returns:
        A float >= 0; 0 for identical sets.

    Raises:
        ValueError: for fewer than 2 samples, NaN, or different feature dimensions.

    Example:
        >>> features = feature_extractor(classifier)
        >>> fid(features(x_real), features(gan.generate(5000, seed=1)))
    """
    real, generated = checks.feature_pair(features_real, features_generated, 2, "a covariance")
    # mu = mean_i x_i, sigma = sum_i (x_i - mu)(x_i - mu)^T / (n - 1)
    return frechet_distance(real.mean(axis=0), np.atleast_2d(np.cov(real, rowvar=False)),
                            generated.mean(axis=0),
                            np.atleast_2d(np.cov(generated, rowvar=False)))


def mmd2(features_x, features_y, *, unbiased=True):
    """Returns the squared MMD of two feature sets with KID's cubic polynomial kernel.

    Unbiased (a U-statistic, the pairs i = j left out), it averages to the true MMD^2 and
    can be negative; biased (a V-statistic, i = j kept) it is >= 0 but too large on average
    by (E k(x, x) - E k(x, x')) / m + (E k(y, y) - E k(y, y')) / n, shrinking as 1 / n.
    Explained in notebooks/11_evaluating_generative_models.ipynb, section "KID".

    Args:
        features_x: (m, d) features. features_y: (n, d) features.
        unbiased: True for the U-statistic of KID, False for the V-statistic.

    Returns:
        A float.

    Raises:
        ValueError: for fewer than 2 samples, NaN, or different feature dimensions.

    Example:
        >>> mmd2(features_real[:1000], features_generated[:1000])
    """
    x, y = checks.feature_pair(features_x, features_y, 2, "MMD^2",
                               names=("features_x", "features_y"))
    (m, d), n = x.shape, len(y)
    # k(a, b) = (a . b / d + 1)^3, the cubic polynomial kernel of Binkowski et al.
    k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    if unbiased:
        # MMD_u^2 = sum_(i!=j) k(x_i, x_j) / (m (m-1)) + sum_(i!=j) k(y_i, y_j) / (n (n-1))
        #           - 2 sum_(i,j) k(x_i, y_j) / (m n)
        return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
                     + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1)) - 2 * k_xy.mean())
    # MMD_b^2 = sum_(i,j) k(x_i, x_j) / m^2 + sum_(i,j) k(y_i, y_j) / n^2
    #           - 2 sum_(i,j) k(x_i, y_j) / (m n)
    return float(k_xx.mean() + k_yy.mean() - 2 * k_xy.mean())


def kid(features_real, features_generated, *, subsets=100, subset_size=1000, seed=0):
    """Returns the Kernel Inception Distance (Binkowski et al. 2018) as an `Estimate`.

    The unbiased `mmd2` with the kernel k(x, y) = (x . y / d + 1)^3 on `subsets` random
    subsets of `subset_size` samples of each set (drawn without replacement), averaged. Unlike
    FID it is unbiased: identical distributions give 0 on average, whatever the sample size.
    Explained in notebooks/11_evaluating_generative_models.ipynb, section "KID".

    Args:
        features_real: (n, d) features of real images.
        features_generated: (m, d) features of generated images.
        subsets: number of random subsets.
        subset_size: samples of each set per subset; capped at the smaller set's size.
        seed: seed of the subsets; the same seed gives the same numbers.

    Returns:
        `Estimate(mean, std)`: the mean and standard deviation over the subsets.

    Raises:
        ValueError: for fewer than 2 samples, NaN, different dimensions, `subsets` < 1.
        TypeError: for a non-integer `subsets`, `subset_size` or `seed`.

    Example:
        >>> kid(features(x_real), features(gan.generate(5000, seed=1))).mean
    """
    real, generated = checks.feature_pair(features_real, features_generated, 2, "KID")
    subsets = require_int(subsets, "subsets", minimum=1)
    size = min(require_int(subset_size, "subset_size", minimum=2), len(real), len(generated))
    rng = np.random.default_rng(require_int(seed, "seed", minimum=0))
    estimates = [mmd2(real[rng.choice(len(real), size, replace=False)],
                      generated[rng.choice(len(generated), size, replace=False)])
                 for _ in range(subsets)]
    return Estimate(float(np.mean(estimates)), float(np.std(estimates)))


def _squared_distances(a, b):
    """||a_i - b_j||^2 = ||a_i||^2 - 2 a_i . b_j + ||b_j||^2, clipped at 0; (len(a), len(b))."""
    distances = a @ b.T  # In place from here: one (len(a), len(b)) array, no temporaries.
    distances *= -2
    distances += (a ** 2).sum(axis=1)[:, None]
    distances += (b ** 2).sum(axis=1)[None, :]
    return np.maximum(distances, 0, out=distances)  # Rounding can make a 0 a hair negative.


def _radii(points, k, batch_size):
    """Squared distance of each point to its k-th nearest neighbour in `points`, (n,)."""
    radii = np.empty(len(points))
    for start in range(0, len(points), batch_size):
        distances = _squared_distances(points[start:start + batch_size], points)
        # Column 0 of the partition is the point itself, so column k is its k-th neighbour.
        radii[start:start + batch_size] = np.partition(distances, k, axis=1)[:, k]
    return radii


def _inside(queries, points, radii, batch_size):
    """1 for each query within radius of some point (inside its k-NN manifold), else 0."""
    # f(q) = 1 if ||q - p|| <= NND_k(p) for some p in points, else 0  # (len(queries),)
    return np.concatenate([np.any(_squared_distances(queries[start:start + batch_size], points)
                                  <= radii[None, :], axis=1)
                           for start in range(0, len(queries), batch_size)])


def precision_recall(real, generated, *, k=3, batch_size=1000):
    """Returns the k-NN precision and recall of Kynkaanniemi et al. 2019.

    Each sample of a set gets a ball reaching its k-th nearest neighbour; the union of the
    balls approximates that set's manifold. Precision is the share of generated samples
    inside the real manifold (are they realistic?); recall the share of real samples inside
    the generated manifold (does the generator cover them all?). Distances are computed
    `batch_size` rows at a time, so 10,000 x 10,000 needs about 80 MB at a time.
    Explained in notebooks/11_evaluating_generative_models.ipynb, section "Precision and recall".

    Args:
        real: (n, d) features of real images.
        generated: (m, d) features of generated images.
        k: the neighbour that sets each ball's radius (the paper uses 3).
        batch_size: rows of the distance matrix computed at a time.

    Returns:
        `PrecisionRecall(precision, recall)`, each in [0, 1].

    Raises:
        ValueError: for `k` >= a set's size, NaN, or different feature dimensions.

    Example:
        >>> precision_recall(features(x_real), features(gan.generate(5000, seed=1)), k=3)
    """
    k = require_int(k, "k", minimum=1)
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    real, generated = checks.feature_pair(real, generated, k + 1, f"k={k} nearest neighbours",
                                          names=("real", "generated"))
    # precision = mean over generated g of f(g, real), recall = mean over real r of f(r, generated)
    precision = _inside(generated, real, _radii(real, k, batch_size), batch_size).mean()
    recall = _inside(real, generated, _radii(generated, k, batch_size), batch_size).mean()
    return PrecisionRecall(float(precision), float(recall))


def inception_score(probabilities, *, splits=10):
    """Returns the Inception Score (Salimans et al. 2016) of class probabilities as an `Estimate`.

    IS = exp(E_x KL(p(y | x) || p(y))), with p(y) the mean of p(y | x) over the images: high
    when each image is confidently one class (p(y | x) peaked) and the classes are evenly used
    (p(y) flat); between 1 and K. Computed on `splits` consecutive parts of the images, as in
    the paper's code, and averaged. The paper uses InceptionV3 on ImageNet; any classifier's
    probabilities work, and the course uses its own classifier.
    Explained in notebooks/11_evaluating_generative_models.ipynb, section "Inception Score".

    Args:
        probabilities: (n, K) class probabilities p(y | x) of n generated images.
        splits: number of parts (the paper uses 10).

    Returns:
        `Estimate(mean, std)` over the splits.

    Raises:
        ValueError: for rows that are not probabilities (logits), or `splits` > n.
        TypeError: for integer probabilities or a non-integer `splits`.

    Example:
        >>> logits = classifier.predict(gan.generate(5000, seed=1))
        >>> inception_score(keras.ops.softmax(logits)).mean
    """
    p = checks.class_probabilities(probabilities)
    splits = require_int(splits, "splits", minimum=1, maximum=len(p))
    bounds = np.arange(splits + 1) * len(p) // splits  # The paper's code's parts.
    scores = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        part = p[start:stop]  # (b, K)
        marginal = part.mean(axis=0, keepdims=True)  # p(y) = mean_x p(y | x), (1, K)
        # KL(p(y|x) || p(y)) = sum_y p(y|x) log(p(y|x) / p(y)), with 0 log 0 = 0  # (b,)
        ratio = np.divide(part, marginal, out=np.ones_like(part), where=part > 0)
        kl = np.sum(part * np.log(ratio), axis=1)
        scores.append(np.exp(kl.mean()))  # IS = exp(E_x KL)
    return Estimate(float(np.mean(scores)), float(np.std(scores)))


def classification_accuracy_score(generated, real, *, epochs=2, seed=0, num_classes=10,
                                  verbose=False):
    """Returns the Classification Accuracy Score (Ravuri & Vinyals 2019).

    Trains `metrics.train_reference_classifier` on generated (image, label) pairs, e.g. a
    conditional generator's samples with the classes it was asked for, and tests it on real
    test images. High only if the generated images of each class look like and vary like the
    real ones: a classifier that never saw a real image can only get them right that way.
    Explained in notebooks/11_evaluating_generative_models.ipynb,
    section "Classification Accuracy Score".

    Args:
        generated: a pair (images, labels) of generated images in [-1, 1] and their classes.
        real: a pair (images, labels) of real test images in [-1, 1], of the same shape.
        epochs: training epochs of the classifier.
        seed: seed of its weights and shuffle.
        num_classes: number of classes.
        verbose: if True, Keras prints one line per epoch.

    Returns:
        `ClassificationAccuracyScore(accuracy, class_accuracies)`: accuracy on `real`, and
        one per class (NaN for a class with no real image).

    Raises:
        TypeError: if `generated` or `real` is not a pair, for uint8 images or float labels.
        ValueError: for images outside [-1, 1], of different shapes, or labels out of range.

    Example:
        >>> labels = np.arange(10_000) % 10  # The classes cgan.generate cycles through.
        >>> cas = classification_accuracy_score((cgan.generate(10_000, seed=1), labels),
        ...                                     (normalize(x_test), y_test))
    """
    num_classes = require_int(num_classes, "num_classes", minimum=2)
    images, labels, real_images, real_labels = checks.labelled_pair(generated, real,
                                                                    num_classes)
    classifier = metrics.train_reference_classifier(
        images, labels, epochs=epochs, seed=seed, num_classes=num_classes, verbose=verbose)
    predicted = np.argmax(classifier.predict(real_images, batch_size=256, verbose=0), axis=1)
    correct = predicted == real_labels  # (n,)
    class_accuracies = tuple(float(correct[real_labels == label].mean())
                             if np.any(real_labels == label) else float("nan")
                             for label in range(num_classes))
    return ClassificationAccuracyScore(float(correct.mean()), class_accuracies)
