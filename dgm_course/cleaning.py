"""Data cleaning checks: corrupt images, exact and near duplicates, invalid and suspicious labels.

Every check reports indices and never drops anything: what to remove is the learner's
decision (`CleaningReport.drop_indices()` lists a sensible default).
Explained in notebooks/01_data_preprocessing.ipynb, section "Clean the data".
"""

import collections
import dataclasses
from typing import NamedTuple

import numpy as np

from dgm_course._progress import progress as progress_bar
from dgm_course._validation import describe, require_array, require_int

# Re-exported: duplicates are one of the checks a cleaning report runs.
from dgm_course.duplicates import NEAR_THRESHOLD, Duplicates, find_duplicates  # noqa: F401

_ROW_CHUNK = 512  # Rows of the pairwise neighbour-distance matrix computed at once.


def _split_by_shape(images, expected_shape):
    """Returns (the images of the expected shape stacked, their indices, the other indices)."""
    if not isinstance(images, (list, tuple)):
        images = require_array(images, "images", fix="Pass a batch (N, H, W, C) or a list.")
        index = np.arange(len(images))
        if expected_shape is None or images.shape[1:] == tuple(expected_shape):
            return images, index, index[:0]
        return images[:0], index[:0], index
    arrays = [np.asarray(image) for image in images]
    shapes = [array.shape for array in arrays]
    if expected_shape is None:  # The most common shape; ties go to the first seen.
        expected_shape = collections.Counter(shapes).most_common(1)[0][0] if shapes else ()
    matches = np.array([shape == tuple(expected_shape) for shape in shapes], dtype=bool)
    good = [arrays[i] for i in np.flatnonzero(matches)]
    stacked = np.stack(good) if good else np.zeros((0, *expected_shape), np.uint8)
    return require_array(stacked, "images"), np.flatnonzero(matches), np.flatnonzero(~matches)


def _find_corrupt_array(images, value_range):
    """Returns problem -> indices for a numeric (N, ...) array."""
    if images.size == 0:
        images = np.zeros((len(images), 1), images.dtype)
    flat = images.reshape(len(images), -1)
    finite = np.isfinite(flat).all(axis=1) if flat.dtype.kind == "f" else np.ones(len(flat), bool)
    safe = np.where(np.isfinite(flat), flat, 0) if flat.dtype.kind == "f" else flat
    low, high = value_range
    return {
        "nan": np.flatnonzero(~finite),
        "constant": np.flatnonzero(finite & (safe.max(axis=1) == safe.min(axis=1))),
        "out_of_range": np.flatnonzero(((safe < low) | (safe > high)).any(axis=1)),
    }


def find_corrupt(images, *, expected_shape=None, value_range=None):
    """Finds images that cannot be right: NaN or infinity, constant, out of range, misshapen.

    Explained in notebooks/01_data_preprocessing.ipynb, section "Clean the data".

    Args:
        images: an (N, H, W, C) array, or a list of N per-image arrays (which may differ
            in shape, as after reading files one by one).
        expected_shape: the shape every image should have, e.g. (28, 28, 1); default: the
            most common shape among the images.
        value_range: `(low, high)` the pixels must lie in; default (0, 255) for integer
            images. Float images need it declared, e.g. (-1, 1) after `normalize`.

    Returns:
        A dict mapping "wrong_shape", "nan" (NaN or infinity), "constant" (every pixel
        equal, e.g. blank) and "out_of_range" to sorted int64 arrays of image indices.

    Raises:
        ValueError: if float images come without `value_range`, or `images` is not a batch.
        TypeError: if the pixels are not numbers.

    Example:
        >>> find_corrupt(np.zeros((3, 28, 28, 1), "uint8"))["constant"]
        array([0, 1, 2])
    """
    stacked, good, wrong = _split_by_shape(images, expected_shape)
    if value_range is None and stacked.dtype.kind == "f":
        raise ValueError(
            f"`images` are floats ({describe(stacked)}), so their range is not known: pass "
            "value_range=(-1, 1) or (0, 1) as used with `normalize`, or (0, 255)."
        )
    problems = _find_corrupt_array(stacked, value_range or (0, 255))
    report = {"wrong_shape": wrong, **{name: good[found] for name, found in problems.items()}}
    return {name: np.asarray(found, dtype=np.int64) for name, found in report.items()}


def check_labels(labels, num_classes):
    """Finds labels that are not valid class indices: not integers, negative, or too large.

    Explained in notebooks/01_data_preprocessing.ipynb, section "Clean the data".

    Args:
        labels: (N,) labels, of any numeric dtype (floats are checked for whole numbers).
        num_classes: the number of classes; valid labels are 0..num_classes - 1.

    Returns:
        A sorted int64 array of the indices of invalid labels (empty when all are valid).

    Raises:
        TypeError: if `labels` is not numeric or `num_classes` is not an int.
        ValueError: if `labels` is not one-dimensional or `num_classes` < 1.

    Example:
        >>> check_labels(np.array([0, 3, 10, -1, 2.5]), num_classes=10)
        array([2, 3, 4])
    """
    labels = require_array(labels, "labels", ndim=1, fix="Pass the (N,) label array, e.g. y_train.")
    num_classes = require_int(num_classes, "num_classes", minimum=1)
    with np.errstate(invalid="ignore"):
        values = labels.astype(np.float64)
        bad = ~np.isfinite(values) | (values != np.round(values))
        bad |= (values < 0) | (values >= num_classes)
    return np.flatnonzero(bad).astype(np.int64)


class SuspiciousLabels(NamedTuple):
    """What `suspicious_labels` returns, most suspicious first."""

    indices: np.ndarray  # (m,) int64 indices of images whose neighbours disagree.
    neighbour_labels: np.ndarray  # (m,) the label most of their neighbours carry.
    disagreement: np.ndarray  # (m,) share of the k neighbours with another label.


def _pca_features(images, seed, dimensions=50, sample=5000):
    """Projects flattened images onto their top principal components (fitted on a sample)."""
    flat = images.reshape(len(images), -1).astype(np.float32)
    rng = np.random.default_rng(seed)
    fitted = flat[rng.choice(len(flat), min(sample, len(flat)), replace=False)]
    mean = fitted.mean(axis=0)
    centred = fitted - mean
    # The principal components are the eigenvectors of the covariance with the largest eigenvalues.
    _, eigenvectors = np.linalg.eigh(centred.T @ centred)  # Eigenvalues in ascending order.
    components = eigenvectors[:, ::-1][:, :dimensions]
    return (flat - mean) @ components  # (N, dimensions)


def _k_smallest(partial, k):
    """(row, column) indices of the k smallest entries in each row (ties may add a few)."""
    step = 16 if partial.shape[1] >= 16 * k else 1
    # The k-th smallest of every 16th column bounds the row's k-th smallest from above, so
    # only a few candidates per row need sorting (much faster than np.argpartition).
    bound = np.partition(partial[:, ::step], k - 1, axis=1)[:, k - 1]
    rows, columns = np.nonzero(partial <= bound[:, None])
    values = partial[rows, columns]
    order = np.lexsort((values, rows))
    rows, columns, values = rows[order], columns[order], values[order]
    kth = values[np.searchsorted(rows, np.arange(len(partial))) + k - 1]
    keep = values <= kth[rows]
    return rows[keep], columns[keep]


def _neighbour_votes(features, classes, k, show_progress):
    """For each row of `features` (sorted by class index `classes`, (N,)): the number of its
    k nearest other rows in each class (N, C), and the distance to the nearest row of its
    own class divided by that to the nearest row of another class (N,)."""
    starts = np.flatnonzero(np.r_[True, classes[1:] != classes[:-1]])  # First row of each class.
    squared_norms = (features ** 2).sum(axis=1)
    votes = np.zeros((len(features), len(starts)), np.int64)
    ratio = np.empty(len(features), np.float32)
    chunks = range(0, len(features), _ROW_CHUNK)
    for start in progress_bar(chunks, enabled=show_progress, description="neighbours"):
        rows = np.arange(start, min(start + _ROW_CHUNK, len(features)))
        # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b; |a|^2 is the same along a row, so it is added last.
        partial = squared_norms[None, :] - 2 * features[rows] @ features.T  # (rows, N)
        partial[np.arange(len(rows)), rows] = np.inf  # An image is not its own neighbour.
        row, column = _k_smallest(partial, k)
        np.add.at(votes, (rows[row], classes[column]), 1)
        nearest = np.minimum.reduceat(partial, starts, axis=1)  # (rows, C)
        own = nearest[np.arange(len(rows)), classes[rows]]
        nearest[np.arange(len(rows)), classes[rows]] = np.inf
        own_distance, other_distance = np.sqrt(
            np.maximum(np.stack([own, nearest.min(axis=1)]) + squared_norms[rows], 0))
        ratio[rows] = own_distance / np.maximum(other_distance, 1e-12)
    return votes, ratio


def suspicious_labels(images, labels, *, k=10, seed=0, progress=False):
    """Ranks images whose k nearest neighbours mostly carry a different label.

    A cheap mislabelling check: images are compared by their first 50 principal
    components (fitted on a random sample of at most 5,000 images, chosen with `seed`);
    an image is suspicious when the label most of its k nearest neighbours carry is not its
    own. Images are ranked by the share of their neighbours with another label; ties (common)
    by how much nearer the closest image of another label is than the closest of its own.
    Ambiguous images (a 4 that looks like a 9) are flagged too: look before dropping.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Clean the data".

    Args:
        images: (N, H, W, C) or (N, H, W) images, uint8 or float.
        labels: (N,) valid integer labels (see `check_labels`).
        k: neighbours per image, 1 <= k < N.
        seed: seed of the sample the principal components are fitted on.
        progress: show a progress bar.

    Returns:
        A `SuspiciousLabels(indices, neighbour_labels, disagreement)`, most suspicious first.

    Raises:
        ValueError: if lengths differ, labels are invalid or `k` is out of range.

    Example:
        >>> suspects = suspicious_labels(x_train[:10000], y_train[:10000])
        >>> fig = image_grid(x_train[suspects.indices[:16]], suspects.neighbour_labels[:16])
    """
    images = require_array(images, "images", ndim=(3, 4), fix="Pass images (N, H, W, C).")
    labels = require_array(labels, "labels", ndim=1, fix="Pass the (N,) labels, e.g. y_train.")
    if len(labels) != len(images) or check_labels(labels, num_classes=2 ** 62).size:
        raise ValueError(
            f"`labels` ({describe(labels)}) must hold one non-negative integer label per image "
            f"({len(images)} images). Run check_labels(labels, num_classes) to find bad ones."
        )
    k = require_int(k, "k", minimum=1, maximum=max(len(images) - 1, 1))
    label_values, classes = np.unique(labels.astype(np.int64), return_inverse=True)
    order = np.argsort(classes, kind="stable")  # Group the images by class.
    votes, ratio = _neighbour_votes(_pca_features(images[order], seed), classes[order], k,
                                   progress)
    votes[order], ratio[order] = votes.copy(), ratio.copy()  # Back to the original order.
    majority = votes.argmax(axis=1)  # Ties go to the smaller label.
    # Ties at the k-th distance (identical images) can give an image more than k votes.
    disagreement = 1 - votes[np.arange(len(labels)), classes] / votes.sum(axis=1)
    flagged = np.flatnonzero(majority != classes)
    # Most disagreement first; ties (common) by how much nearer another label is than its own.
    flagged = flagged[np.lexsort((-ratio[flagged], -disagreement[flagged]))]
    return SuspiciousLabels(flagged, label_values[majority[flagged]], disagreement[flagged])


@dataclasses.dataclass
class CleaningReport:
    """What `clean_report` found: indices into the training (or test) set, nothing dropped.

    Pairs follow `find_duplicates`: within the training set `(i, j)` with i < j, across
    sets `(training index, test index)`. `str(report)` gives a summary.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Clean the data".
    """

    n_images: int
    n_test_images: int
    corrupt: dict
    test_corrupt: dict
    duplicate_pairs: np.ndarray
    near_duplicate_pairs: np.ndarray
    near_distances: np.ndarray
    cross_pairs: np.ndarray
    cross_near_pairs: np.ndarray
    cross_near_distances: np.ndarray
    bad_labels: np.ndarray
    test_bad_labels: np.ndarray

    def drop_indices(self, *, near=True, cross=True):
        """Returns sorted training indices a learner may choose to drop.

        These are the corrupt images, those with invalid labels, the later image of every
        duplicate pair (so one copy stays), and, with `cross=True`, every training image
        that duplicates a test image (it would leak the test set into training).

        Args:
            near: include near duplicates, not only exact ones.
            cross: include training images that duplicate test images.

        Returns:
            A sorted int64 array of unique training indices.

        Example:
            >>> keep = np.setdiff1d(np.arange(len(x_train)), report.drop_indices())
        """
        parts = [*self.corrupt.values(), self.bad_labels, self.duplicate_pairs[:, 1]]
        if near:
            parts.append(self.near_duplicate_pairs[:, 1])  # Keep the first of each pair.
        if cross:
            parts.append(self.cross_pairs[:, 0])  # The training side of each pair.
        if cross and near:
            parts.append(self.cross_near_pairs[:, 0])
        return np.unique(np.concatenate(parts).astype(np.int64))

    def __str__(self):
        def count(problems):
            found = [f"{len(v)} {name}" for name, v in problems.items() if len(v)]
            return ", ".join(found) or "none"

        return "\n".join([
            f"Cleaning report: {self.n_images:,} training and {self.n_test_images:,} test images",
            f"  corrupt training images: {count(self.corrupt)}",
            f"  corrupt test images: {count(self.test_corrupt)}",
            f"  invalid labels: {len(self.bad_labels)} training, {len(self.test_bad_labels)} test",
            f"  duplicates within training: {len(self.duplicate_pairs)} exact, "
            f"{len(self.near_duplicate_pairs)} near pairs",
            f"  training images duplicating test images: {len(self.cross_pairs)} exact, "
            f"{len(self.cross_near_pairs)} near pairs",
            f"  drop_indices() suggests dropping {len(self.drop_indices()):,} training images",
        ])


def clean_report(x_train, y_train, x_test, y_test, num_classes, *, progress=False):
    """Runs every cleaning check on a dataset and collects the results.

    Corrupt images and invalid labels in both sets, exact and near duplicates within the
    training set and between training and test set. About half a minute for Fashion-MNIST.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Clean the data".

    Args:
        x_train: uint8 training images (N, H, W, C).
        y_train: (N,) training labels.
        x_test: uint8 test images of the same image shape.
        y_test: test labels.
        num_classes: the number of classes.
        progress: show progress bars of the duplicate searches.

    Returns:
        A `CleaningReport`.

    Raises:
        TypeError, ValueError: as the individual checks.

    Example:
        >>> report = clean_report(data.x_train, data.y_train, data.x_test, data.y_test, 10)
        >>> print(report)
    """
    within = find_duplicates(x_train, progress=progress)
    across = find_duplicates(x_train, x_test, progress=progress)
    return CleaningReport(
        n_images=len(x_train), n_test_images=len(x_test),
        corrupt=find_corrupt(x_train), test_corrupt=find_corrupt(x_test),
        duplicate_pairs=within.exact_pairs, near_duplicate_pairs=within.near_pairs,
        near_distances=within.near_distances, cross_pairs=across.exact_pairs,
        cross_near_pairs=across.near_pairs, cross_near_distances=across.near_distances,
        bad_labels=check_labels(y_train, num_classes),
        test_bad_labels=check_labels(y_test, num_classes),
    )
