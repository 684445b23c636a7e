"""Index splits: class-balanced subsets, labelled/unlabelled splits, train/validation splits.

Every function returns sorted int64 index arrays (use them as `x[indices]`) and is
deterministic for a given `seed`.
Explained in notebooks/01_data_preprocessing.ipynb, section "Labelled subsets and splits".
"""

import numpy as np

from dgm_course._validation import require_array, require_fraction, require_int


def _labels_array(labels):
    """Returns `labels` as a non-empty 1-D integer array, or raises a clear error."""
    labels = require_array(
        labels, "labels", ndim=1, dtype_kinds="ui",
        fix="Pass the integer class labels, e.g. y_train of shape (N,).",
    )
    if labels.size == 0:
        raise ValueError("`labels` is empty; pass the labels of at least one image.")
    return labels


def balanced_indices(labels, n_per_class, *, seed=0):
    """Returns sorted indices holding exactly `n_per_class` random examples of every class.

    The classes are the distinct values in `labels`. Used for the small labelled sets of
    the semi-supervised chapters and for quick, class-balanced experiments.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Labelled subsets and splits".

    Args:
        labels: (N,) integer class labels.
        n_per_class: how many examples of each class to pick (at least 1).
        seed: seed of the random choice; the same seed gives the same indices.

    Returns:
        A sorted int64 array of `n_per_class * n_classes` distinct indices into `labels`.

    Raises:
        ValueError: if `n_per_class` is larger than the smallest class (the message names
            that class and its count) or smaller than 1.
        TypeError: if `labels` are not integers or `n_per_class` is not an int.

    Example:
        >>> idx = balanced_indices(y_train, 10, seed=0)  # 10 labelled images per class
        >>> x_small, y_small = x_train[idx], y_train[idx]
    """
    labels = _labels_array(labels)
    n_per_class = require_int(n_per_class, "n_per_class", minimum=1)
    classes, counts = np.unique(labels, return_counts=True)
    smallest = int(np.argmin(counts))
    if n_per_class > counts[smallest]:
        raise ValueError(
            f"`n_per_class`={n_per_class} exceeds the size of class {classes[smallest]}, which "
            f"has only {counts[smallest]} examples. Pass n_per_class <= {counts[smallest]}, "
            "or use more data."
        )
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == label), n_per_class, replace=False)
        for label in classes
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def labelled_unlabelled_split(labels, n_per_class, *, seed=0):
    """Splits all indices into a class-balanced labelled set and the unlabelled rest.

    The semi-supervised chapters train with the labels of `labelled_idx` only and use the
    images of `unlabelled_idx` without their labels.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Labelled subsets and splits".

    Args:
        labels: (N,) integer class labels.
        n_per_class: labelled examples per class.
        seed: seed of the random choice.

    Returns:
        A tuple `(labelled_idx, unlabelled_idx)` of sorted int64 arrays, disjoint and
        together covering `range(N)`.

    Raises:
        ValueError: as `balanced_indices`.

    Example:
        >>> labelled_idx, unlabelled_idx = labelled_unlabelled_split(y_train, 100)
    """
    labelled_idx = balanced_indices(labels, n_per_class, seed=seed)
    unlabelled_mask = np.ones(len(np.asarray(labels)), dtype=bool)
    unlabelled_mask[labelled_idx] = False
    return labelled_idx, np.flatnonzero(unlabelled_mask).astype(np.int64)


def _stratified_val_counts(counts, n_val):
    """Shares `n_val` between classes in proportion to `counts` (largest remainders)."""
    exact = counts * (n_val / counts.sum())
    shares = np.floor(exact).astype(np.int64)
    # Hand the remaining few to the classes with the largest fractional parts.
    order = np.argsort(-(exact - shares), kind="stable")
    shares[order[: n_val - shares.sum()]] += 1
    return shares


def train_val_split(labels, *, val_fraction=0.1, seed=0, stratify=True):
    """Splits all indices into training and validation indices.

    With `stratify=True` every class keeps (up to rounding) the same share in both parts,
    so a small validation set still has every class. The validation set holds
    `round(val_fraction * N)` indices in total.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Labelled subsets and splits".

    Args:
        labels: (N,) integer class labels.
        val_fraction: share of the indices for validation, strictly between 0 and 1.
        seed: seed of the random choice.
        stratify: keep class proportions (True) or draw uniformly at random (False).

    Returns:
        A tuple `(train_idx, val_idx)` of sorted, disjoint int64 arrays covering `range(N)`.

    Raises:
        ValueError: if `val_fraction` is outside (0, 1) or leaves one part empty.

    Example:
        >>> train_idx, val_idx = train_val_split(y_train, val_fraction=0.1)
        >>> x_val, y_val = x_train[val_idx], y_train[val_idx]
    """
    labels = _labels_array(labels)
    val_fraction = require_fraction(val_fraction, "val_fraction")
    n_val = int(round(val_fraction * len(labels)))
    if not 0 < n_val < len(labels):
        raise ValueError(
            f"`val_fraction`={val_fraction} of {len(labels)} labels gives {n_val} validation "
            "indices, leaving one part empty. Pass a fraction that keeps both parts non-empty."
        )
    rng = np.random.default_rng(seed)
    if not stratify:
        val_idx = rng.choice(len(labels), n_val, replace=False)
    else:
        classes, counts = np.unique(labels, return_counts=True)
        shares = _stratified_val_counts(counts, n_val)
        val_idx = np.concatenate([
            rng.choice(np.flatnonzero(labels == label), share, replace=False)
            for label, share in zip(classes, shares)
        ])
    val_mask = np.zeros(len(labels), dtype=bool)
    val_mask[val_idx] = True
    return np.flatnonzero(~val_mask).astype(np.int64), np.flatnonzero(val_mask).astype(np.int64)
