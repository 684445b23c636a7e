"""Input checks of dgm_course.evaluation: each error says what was passed, what was expected
and how to fix it (STYLE.md rule 8). Not part of the learner-facing API."""

import numpy as np

from dgm_course import metrics
from dgm_course._validation import describe, require_array

PROBABILITY_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 only to about 1e-6.


def features(value, name, minimum, purpose):
    """Returns `value` as finite float64 features (n, d) with n >= `minimum`, or raises."""
    array = require_array(value, name, ndim=2, dtype_kinds="uif",
                          fix="Pass features (n, d), e.g. feature_extractor(classifier)(images).")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` holds NaN or infinity ({describe(array)}); a diverged "
                         "generator produces NaN: check its losses before judging its samples.")
    if len(array) < minimum:
        raise ValueError(f"`{name}` has {len(array)} samples ({describe(array)}) but {purpose} "
                         f"needs at least {minimum}. Pass more samples (thousands for a "
                         "trustworthy score).")
    return array.astype(np.float64)


def feature_pair(real, generated, minimum, purpose, names=("features_real",
                                                             "features_generated")):
    """Returns both feature sets checked by `features`, with the same dimension d."""
    real = features(real, names[0], minimum, purpose)
    generated = features(generated, names[1], minimum, purpose)
    if real.shape[1] != generated.shape[1]:
        raise ValueError(f"`{names[0]}` and `{names[1]}` must have the same feature dimension; "
                         f"got {describe(real)} and {describe(generated)}. Compute both with "
                         "the same feature extractor.")
    return real, generated


def _gaussian(mu, sigma, index):
    """Returns a mean (d,) and a symmetric covariance (d, d) in float64, or raises."""
    mu = require_array(mu, f"mu{index}", ndim=1, dtype_kinds="uif").astype(np.float64)
    sigma = require_array(sigma, f"sigma{index}", ndim=2, dtype_kinds="uif").astype(np.float64)
    d = len(mu)
    if d == 0 or sigma.shape != (d, d) or not np.all(np.isfinite(sigma)) or not np.all(
            np.isfinite(mu)):
        raise ValueError(f"`sigma{index}` must be a finite (d, d) covariance matching a finite "
                         f"`mu{index}` of d >= 1 values; got {describe(sigma)} and "
                         f"{describe(mu)}. Use features.mean(axis=0) and "
                         "np.cov(features, rowvar=False).")
    if not np.allclose(sigma, sigma.T, rtol=1e-6, atol=1e-9 * np.abs(sigma).max()):
        raise ValueError(f"`sigma{index}` must be symmetric (a covariance matrix); got one "
                         "that is not. Use np.cov(features, rowvar=False).")
    return mu, (sigma + sigma.T) / 2  # Exactly symmetric, for eigh.


def gaussians(mu1, sigma1, mu2, sigma2):
    """Returns both Gaussians checked by `_gaussian`, of the same dimension d, or raises."""
    (mu1, sigma1), (mu2, sigma2) = _gaussian(mu1, sigma1, 1), _gaussian(mu2, sigma2, 2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"The two Gaussians must have the same dimension; got `mu1` "
                         f"{describe(mu1)} and `mu2` {describe(mu2)}.")
    return mu1, sigma1, mu2, sigma2


def class_probabilities(probabilities):
    """Returns (n, K) class probabilities in float64, every row summing to 1, or raises."""
    p = require_array(probabilities, "probabilities", ndim=2, dtype_kinds="f",
                      fix="Pass p(y | x), e.g. keras.ops.softmax(classifier.predict(x)).")
    if p.shape[1] < 2 or not np.all(np.isfinite(p)) or np.any(p < 0) or not np.allclose(
            p.sum(axis=1), 1.0, atol=PROBABILITY_TOLERANCE):
        raise ValueError(f"`probabilities` must be finite, non-negative rows over at least 2 "
                         f"classes, each summing to 1; got {describe(p)}. Logits (the reference "
                         "classifier's output) need a softmax: keras.ops.softmax(logits).")
    return p.astype(np.float64)


def _labelled_images(value, name, num_classes):
    """Returns (images, labels) checked like the reference classifier's, or raises."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"`{name}` must be a pair (images, labels); got {describe(value)}. "
                        "Pass e.g. (x_test, y_test).")
    images = metrics._check_images(value[0])
    return images, metrics._check_labels(value[1], len(images), num_classes)


def labelled_pair(generated, real, num_classes):
    """Returns (images, labels, real_images, real_labels), the images of the same shape."""
    images, labels = _labelled_images(generated, "generated", num_classes)
    real_images, real_labels = _labelled_images(real, "real", num_classes)
    if images.shape[1:] != real_images.shape[1:]:
        raise ValueError(f"Generated and real images must have the same shape; got "
                         f"{describe(images)} and {describe(real_images)}.")
    return images, labels, real_images, real_labels
