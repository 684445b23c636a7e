"""A Bayes classifier from a class-conditional generative model, and how to judge it.

A conditional VAE gives a lower bound on log p(x | y) for every class y; Bayes' rule turns them
into p(y | x) = p(x | y) p(y) / p(x). The same numbers give log p(x), which is low for an image
of no known class, so the classifier can refuse it. Judged by accuracy, calibration (expected
calibration error, reliability diagram) and the rejection trade-off (Fashion-MNIST items shown
to an MNIST model). Explained in notebooks/10_generative_classification.ipynb.
"""

import dataclasses

import keras
import numpy as np
from keras import ops
from matplotlib.figure import Figure

from dgm_course import conditional_vae, losses
from dgm_course._progress import progress
from dgm_course._validation import describe, require_array, require_int, require_labels

_ROWS_PER_CALL = 8_192  # Decoder rows per call in class_log_likelihoods, to bound memory.


def class_log_likelihoods(model, images, *, k=1, seed, batch_size=100, verbose=True):
    """Estimates log p(x | y) of every image under every class y with a conditional VAE.

    For each candidate label y the image is encoded with y, and the importance-weighted bound
    L_k(x | y) = log (1/k) sum_i p(x, z_i | y) / q(z_i | x, y), z_i ~ q(z | x, y), is drawn
    (Burda et al. 2016). k = 1 is the conditional ELBO (with a sampled KL); L_k grows with k
    towards log p(x | y). A bound is below the truth by a gap that differs between classes, and
    Bayes' rule compares bounds: the larger k, the smaller that bias.
    Explained in notebooks/10_generative_classification.ipynb, section "Class likelihoods".

    Args:
        model: a trained `conditional_vae.ConditionalVAE`.
        images: (n, *model.image_shape) floats, as the model was trained on.
        k: importance samples per image and class (1: the ELBO).
        seed: an int seed: the same seed gives the same numbers.
        batch_size: images per call (each call decodes batch_size * K * k rows, in chunks).
        verbose: if True, a progress bar.

    Returns:
        A float64 NumPy array (n, K): column y holds the estimate of log p(x | y), in nats.

    Raises:
        TypeError: for a model that is no ConditionalVAE or images that are not floats.
        ValueError: for images of another shape than the model's, non-finite pixels, k or
            batch_size below 1.

    Example:
        >>> log_likelihoods = class_log_likelihoods(cvae, x01_test, k=10, seed=0)  # (n, 10)
        >>> predictions = predict(log_likelihoods)
    """
    if not isinstance(model, conditional_vae.ConditionalVAE):
        raise TypeError(f"`model` must be a conditional_vae.ConditionalVAE (it needs p(x | y) "
                        f"for every class); got {describe(model)}.")
    images = _check_images(images, model.image_shape)
    k = require_int(k, "k", minimum=1)
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    generator = keras.random.SeedGenerator(require_int(seed, "seed", minimum=0))
    starts = progress(range(0, len(images), batch_size), enabled=verbose,
                      description=f"log p(x | y), k = {k}",
                      total=-(-len(images) // batch_size))
    bounds = [ops.convert_to_numpy(_class_bounds(model, images[start:start + batch_size], k,
                                                 generator)) for start in starts]
    return np.concatenate(bounds).astype(np.float64)


def _check_images(images, image_shape):
    """Returns `images` as float32 (n, *image_shape), or raises a clear error."""
    images = require_array(images, "images", dtype_kinds="f",
                           fix="Pass float images as the model was trained on, e.g. x / 255.")
    if images.ndim != len(image_shape) + 1 or tuple(images.shape[1:]) != tuple(image_shape):
        raise ValueError(f"`images` must have shape (n, {', '.join(map(str, image_shape))}), "
                         f"the model's image shape; got {describe(images)}. Greyscale images "
                         "need a channel axis: x[..., None].")
    if len(images) == 0 or not np.all(np.isfinite(images)):
        raise ValueError(f"`images` must be a non-empty set of finite pixels; got "
                         f"{describe(images)}.")
    return images.astype(np.float32, copy=False)


def _class_bounds(model, x, k, seed):
    """L_k(x | y) for every image of the batch and every class y: a (batch, K) tensor."""
    batch, classes = int(x.shape[0]), model.num_classes
    # Every image once per class, class-major: row c * batch + i is (x_i, y = c).
    labels = ops.repeat(ops.arange(classes, dtype="int32"), batch)  # (K * batch,)
    x = ops.concatenate([ops.convert_to_tensor(x)] * classes, axis=0)  # (K * batch, ...)
    z_mean, z_log_var = model.encoder([x, labels], training=False)  # (K * batch, latent_dim)
    per_call = max(1, _ROWS_PER_CALL // (classes * batch))
    log_weights = [_log_weights(model, x, labels, z_mean, z_log_var, min(per_call, k - start),
                                seed) for start in range(0, k, per_call)]
    # L_k = logsumexp_i(log w_i) - log k  # (K * batch,)
    bound = losses.importance_weighted_bound(ops.concatenate(log_weights, axis=0))
    return ops.transpose(ops.reshape(bound, (classes, batch)))  # (batch, K)


def _log_weights(model, x, labels, z_mean, z_log_var, k, seed):
    """log w_i = log p(x | z_i, y) + log p(z_i) - log q(z_i | x, y), z_i ~ q: (k, rows)."""
    rows, latent_dim = int(z_mean.shape[0]), int(z_mean.shape[1])
    epsilon = keras.random.normal((k * rows, latent_dim), seed=seed)
    z_mean, z_log_var = ops.tile(z_mean, (k, 1)), ops.tile(z_log_var, (k, 1))
    # z = z_mean + exp(0.5 * z_log_var) * epsilon  # (k * rows, latent_dim), sample-major
    z = z_mean + ops.exp(0.5 * z_log_var) * epsilon
    x, labels = ops.concatenate([x] * k, axis=0), ops.tile(labels, (k,))
    log_px_given_z = model.log_likelihood(x, model.decoder([z, labels], training=False))
    log_pz = losses.gaussian_log_likelihood(z, ops.zeros_like(z), ops.zeros_like(z))
    log_q = losses.gaussian_log_likelihood(z, z_mean, z_log_var)
    return ops.reshape(log_px_given_z + log_pz - log_q, (k, rows))


def _log_joint(log_likelihoods, log_prior):
    """log p(x | y) + log p(y) as float64 (n, K), after checking both inputs."""
    log_likelihoods = require_array(log_likelihoods, "log_likelihoods", ndim=2, dtype_kinds="fi",
                                    fix="Pass the (n, K) array class_log_likelihoods returns.")
    n, classes = log_likelihoods.shape
    if n == 0 or classes < 2 or not np.all(np.isfinite(log_likelihoods)):
        raise ValueError(f"`log_likelihoods` must hold finite log p(x | y), one row per image "
                         f"and one column per class (K >= 2); got {describe(log_likelihoods)}.")
    if log_prior is None:  # The uniform prior p(y) = 1 / K.
        return log_likelihoods.astype(np.float64) - np.log(classes)
    log_prior = require_array(log_prior, "log_prior", ndim=1, dtype_kinds="fi",
                              fix="Pass log p(y), one value per class, e.g. "
                                  "log_prior_from_labels(y_train, 10).")
    if len(log_prior) != classes or np.any(np.isnan(log_prior)) or np.any(log_prior > 0):
        raise ValueError(f"`log_prior` must hold log p(y) <= 0 for the {classes} classes; got "
                         f"{describe(log_prior)}.")
    # sum_y p(y) = 1, i.e. logsumexp_y log p(y) = 0.
    if abs(_logsumexp(log_prior[None, :])[0]) > 1e-6:
        raise ValueError(f"`log_prior` must be a normalised log-distribution (exp sums to 1); "
                         f"got exp summing to {np.exp(log_prior).sum():.6g}. Subtract its "
                         "logsumexp, or build it with log_prior_from_labels.")
    return log_likelihoods.astype(np.float64) + log_prior.astype(np.float64)


def _logsumexp(values):
    """logsumexp over axis 1 of a float64 (n, K) array, shifted so that exp never overflows."""
    # logsumexp_y(a_y) = m + log sum_y exp(a_y - m), m = max_y a_y  # (n,)
    peak = values.max(axis=1)
    return peak + np.log(np.sum(np.exp(values - peak[:, None]), axis=1))


def log_prior_from_labels(labels, num_classes):
    """log p(y) estimated by the class frequencies of the training labels, shape (K,).

    Explained in notebooks/10_generative_classification.ipynb, section "Bayes' rule".

    Args:
        labels: (N,) integer labels in 0..num_classes-1. num_classes: K.

    Returns:
        A float64 array (K,): log(count_y / N); -inf for a class with no example.

    Raises:
        TypeError, ValueError: for labels that are no integers, or out of range.

    Example:
        >>> np.exp(log_prior_from_labels(np.array([0, 0, 1]), 2))
        array([0.66666667, 0.33333333])
    """
    num_classes = require_int(num_classes, "num_classes", minimum=2)
    labels = require_array(labels, "labels", ndim=1, dtype_kinds="ui",
                           fix="Pass the integer training labels, e.g. y_train.")
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"`labels` must be non-empty and lie in 0..{num_classes - 1}; got "
                         f"{describe(labels)}.")
    with np.errstate(divide="ignore"):
        return np.log(np.bincount(labels, minlength=num_classes) / len(labels))


def bayes_posterior(log_likelihoods, log_prior=None):
    """p(y | x) = p(x | y) p(y) / sum_y' p(x | y') p(y'), from log-likelihoods, stably.

    Log-likelihoods of images are hundreds of nats below zero: exp would give 0 for every
    class. The log-sum-exp shift makes the largest log p(x | y) + log p(y) zero first.
    Explained in notebooks/10_generative_classification.ipynb, section "Bayes' rule".

    Args:
        log_likelihoods: (n, K) estimates of log p(x | y), e.g. from `class_log_likelihoods`.
        log_prior: (K,) log p(y), normalised; None for the uniform prior 1 / K.

    Returns:
        A float64 array (n, K) of probabilities; each row sums to 1.

    Raises:
        TypeError, ValueError: for inputs of the wrong shape, NaN, or a prior that does not
            sum to 1.

    Example:
        >>> bayes_posterior(np.array([[-1000.0, -1000.0 - np.log(3)]]))
        array([[0.75, 0.25]])
    """
    log_joint = _log_joint(log_likelihoods, log_prior)
    # log p(y | x) = log p(x | y) + log p(y) - logsumexp_y'(log p(x | y') + log p(y'))  # (n, K)
    return np.exp(log_joint - _logsumexp(log_joint)[:, None])


def predict(log_likelihoods, log_prior=None):
    """The Bayes classifier's decision argmax_y p(x | y) p(y), an int64 array (n,). Args and
    Raises as `bayes_posterior`. Explained in notebooks/10_generative_classification.ipynb,
    section "Bayes' rule"."""
    return np.argmax(_log_joint(log_likelihoods, log_prior), axis=1).astype(np.int64)


def log_evidence(log_likelihoods, log_prior=None):
    """log p(x) = logsumexp_y(log p(x | y) + log p(y)) in nats, float64 (n,): the score that
    refuses unknown images (bounds on log p(x | y) give a bound on log p(x)). Args and Raises
    as `bayes_posterior`. Explained in notebooks/10_generative_classification.ipynb, section
    "Refuse what no class explains"."""
    return _logsumexp(_log_joint(log_likelihoods, log_prior))


def _check_probabilities(probabilities, labels):
    """Returns (probabilities float64 (n, K), labels int64 (n,)), or raises a clear error."""
    probabilities = require_array(probabilities, "probabilities", ndim=2, dtype_kinds="f",
                                  fix="Pass p(y | x), one row per image, e.g. bayes_posterior(...)"
                                      " or a softmax of a classifier's logits.")
    if (len(probabilities) == 0 or np.any(probabilities < 0)
            or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)):
        raise ValueError(f"`probabilities` must be non-empty rows of probabilities summing to 1; "
                         f"got {describe(probabilities)}. Logits need a softmax first.")
    labels = require_labels(labels, len(probabilities), fix="one true label per image")
    if labels.min() < 0 or labels.max() >= probabilities.shape[1]:
        raise ValueError(f"`labels` must lie in 0..{probabilities.shape[1] - 1}; got values in "
                         f"{labels.min()}..{labels.max()}.")
    return probabilities.astype(np.float64), labels


@dataclasses.dataclass(frozen=True)
class ReliabilityDiagram:
    """Confidence against accuracy in equal-width confidence bins (Guo et al. 2017).

    Attributes:
        bin_edges: (bins + 1,) edges of the bins, 0 to 1; bin b holds (edge_b, edge_b+1].
        confidence: (bins,) mean confidence max_y p(y | x) of the images in each bin (NaN if
            empty). accuracy: (bins,) share of them classified correctly (NaN if empty).
        counts: (bins,) images per bin.
        ece: the expected calibration error, sum_b (n_b / n) |accuracy_b - confidence_b|.
    """

    bin_edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray
    ece: float

    def figure(self, title=None):
        """Returns a bar chart of accuracy per confidence bin, the diagonal (perfect) dashed."""
        fig = Figure(figsize=(4.0, 4.0))
        ax = fig.add_subplot(1, 1, 1)
        widths = np.diff(self.bin_edges)
        ax.bar(self.bin_edges[:-1], np.nan_to_num(self.accuracy), width=widths, align="edge",
               edgecolor="black", label="accuracy")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        ax.set_xlabel("confidence max p(y | x)")
        ax.set_ylabel("accuracy")
        ax.set_title(title or f"ECE = {self.ece:.4f}")
        ax.legend(loc="upper left")
        fig.tight_layout()
        return fig


def reliability_diagram(probabilities, labels, *, bins=15):
    """Bins the images by confidence and compares each bin's confidence with its accuracy.

    Explained in notebooks/10_generative_classification.ipynb, section "Calibration".

    Args:
        probabilities: (n, K) p(y | x), rows summing to 1. labels: (n,) true labels.
        bins: the number of equal-width confidence bins (15 as in Guo et al. 2017).

    Returns:
        A frozen `ReliabilityDiagram`; `.ece` the expected calibration error, `.figure()`.

    Raises:
        TypeError, ValueError: for rows that are not probabilities, labels of the wrong count
            or range, or bins < 1.

    Example:
        >>> reliability_diagram(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]), bins=2).ece
        0.25
    """
    probabilities, labels = _check_probabilities(probabilities, labels)
    bins = require_int(bins, "bins", minimum=1)
    confidence = probabilities.max(axis=1)  # (n,)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)  # (n,)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin b holds the confidences in (edge_b, edge_b+1] (a confidence of 0 goes to bin 0).
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)  # (n,)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidence, minlength=bins) / counts
        accuracy = np.bincount(index, correct, minlength=bins) / counts
    # ECE = sum_b (n_b / n) |accuracy_b - confidence_b|
    ece = float(np.nansum(counts / len(labels) * np.abs(accuracy - mean_confidence)))
    return ReliabilityDiagram(edges, mean_confidence, accuracy, counts, ece)


def expected_calibration_error(probabilities, labels, *, bins=15):
    """The expected calibration error sum_b (n_b / n) |accuracy_b - confidence_b|, a float: 0
    when, among the images the classifier is 80% sure of, 80% are right. Args and Raises as
    `reliability_diagram`. Explained in notebooks/10_generative_classification.ipynb, section
    "Calibration"."""
    return reliability_diagram(probabilities, labels, bins=bins).ece


@dataclasses.dataclass(frozen=True)
class RejectionCurve:
    """The trade-off of refusing every image whose score (log p(x)) is below a threshold.

    Attributes:
        thresholds: (m,) increasing thresholds, from -inf (refuse nothing) to +inf (refuse all).
        unknown_refused: (m,) share of the unknown images with a score below each threshold.
        known_kept: (m,) share of the known images with a score at or above it.
        auroc: the area under the ROC curve (unknown_refused against 1 - known_kept): the
            probability that a random known image scores above a random unknown one, ties half.
    """

    thresholds: np.ndarray
    unknown_refused: np.ndarray
    known_kept: np.ndarray
    auroc: float

    def refused_at(self, known_kept=0.95):
        """The share of unknown images refused by the highest threshold keeping >= known_kept."""
        kept_enough = self.known_kept >= known_kept
        return float(self.unknown_refused[kept_enough].max())

    def figure(self, title=None):
        """Returns the curve: share of unknown images refused against share of known kept."""
        fig = Figure(figsize=(4.5, 4.0))
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(self.known_kept, self.unknown_refused)
        ax.set_xlabel("share of known images kept")
        ax.set_ylabel("share of unknown images refused")
        ax.set_title(title or f"AUROC = {self.auroc:.4f}")
        fig.tight_layout()
        return fig


def rejection_curve(scores_known, scores_unknown):
    """Every threshold on a score, with the shares of unknown images refused and known kept.

    An image is refused when its score (log p(x)) is below the threshold. Explained in
    notebooks/10_generative_classification.ipynb, section "Refuse what no class explains".

    Args:
        scores_known: (n,) scores of images of the known classes (e.g. MNIST test images).
        scores_unknown: (m,) scores of images of no known class (e.g. Fashion-MNIST items).

    Returns:
        A frozen `RejectionCurve`; `.refused_at(0.95)`, `.auroc`, `.figure()`.

    Raises:
        TypeError, ValueError: for scores that are not 1-D non-empty finite numbers.

    Example:
        >>> rejection_curve(np.array([-100.0, -90.0]), np.array([-300.0, -95.0])).auroc
        0.75
    """
    known, unknown = (_scores(scores, name) for scores, name in
                      ((scores_known, "scores_known"), (scores_unknown, "scores_unknown")))
    thresholds = np.concatenate([[-np.inf], np.unique(np.concatenate([known, unknown])), [np.inf]])
    # refused(t) = share with score < t; kept(t) = share with score >= t  # (m,) each
    unknown_refused = np.searchsorted(np.sort(unknown), thresholds, side="left") / len(unknown)
    known_kept = 1.0 - np.searchsorted(np.sort(known), thresholds, side="left") / len(known)
    # AUROC = integral of unknown_refused d(1 - known_kept), trapezoids (ties count one half).
    known_refused = 1.0 - known_kept
    auroc = float(np.sum(np.diff(known_refused) * (unknown_refused[1:] + unknown_refused[:-1])) / 2)
    return RejectionCurve(thresholds, unknown_refused, known_kept, auroc)


def _scores(scores, name):
    """Returns `scores` as a non-empty, finite float64 array (n,), or raises."""
    scores = require_array(scores, name, ndim=1, dtype_kinds="fi",
                           fix="Pass one score per image, e.g. log_evidence(log_likelihoods).")
    if len(scores) == 0 or not np.all(np.isfinite(scores)):
        raise ValueError(f"`{name}` must be a non-empty array of finite scores; got "
                         f"{describe(scores)}.")
    return scores.astype(np.float64)


__all__ = ["RejectionCurve", "ReliabilityDiagram", "bayes_posterior", "class_log_likelihoods",
           "expected_calibration_error", "log_evidence", "log_prior_from_labels", "predict",
           "rejection_curve", "reliability_diagram"]
