"""Exact and near-duplicate images, within one set or between two (train vs test).

A near duplicate is the same picture up to small changes: noise, re-compression, a
one-pixel shift. Reported, never dropped. Explained in
notebooks/01_data_preprocessing.ipynb, section "Clean the data".
"""

from typing import NamedTuple

import numpy as np

from dgm_course._progress import progress as progress_bar
from dgm_course._validation import describe, require_array, require_fraction

NEAR_THRESHOLD = 0.1  # Default `threshold` of `find_duplicates`, chosen on real pairs.
_PATCH = 4  # Side of the patches whose difference the near-duplicate distance bounds.
_FREQUENCIES = 8  # Fourier frequencies per axis in the candidate search.
_ROW_CHUNK = 512  # Rows of the pairwise candidate matrix computed at once (~120 MB).
_PAIR_CHUNK = 8192  # Candidate pairs confirmed at once.
_SLACK = 1e-5  # Float32 rounding margin: the candidate test may keep a few extra pairs.


def _as_uint8_batch(images, name):
    """Returns uint8 `images` as (N, H, W, C), adding C=1 to an (N, H, W) stack."""
    images = require_array(images, name, ndim=(3, 4), dtype_kinds="u",
                           fix="Pass uint8 images of shape (N, H, W, C), e.g. data.x_train.")
    return images[..., np.newaxis] if images.ndim == 3 else images


class Duplicates(NamedTuple):
    """What `find_duplicates` returns: index pairs, and distances of the near pairs."""

    exact_pairs: np.ndarray  # (k, 2) int64
    near_pairs: np.ndarray  # (m, 2) int64, closest first
    near_distances: np.ndarray  # (m,) float32, at most the threshold


def _group_ids(images, other, same):
    """Returns equal ids for byte-identical images: (ids of images, ids of other)."""
    batches = (images,) if same else (images, other)
    row_bytes = images[0].nbytes if len(images) else 1
    rows = [np.ascontiguousarray(batch).reshape(len(batch), -1) for batch in batches]
    keys = np.concatenate(rows).view(np.dtype((np.void, row_bytes))).ravel()
    _, ids = np.unique(keys, return_inverse=True)
    return (ids, ids) if same else (ids[: len(images)], ids[len(images):])


def _exact_pairs(ids, other_ids, same):
    """Pairs of equal ids: (first copy, later copy) within one set, all matches across two."""
    if same:
        _, first_index, inverse = np.unique(ids, return_index=True, return_inverse=True)
        first = first_index[inverse]
        later = np.flatnonzero(first != np.arange(len(ids)))
        return np.stack([first[later], later], axis=1)
    order = np.argsort(ids, kind="stable")
    low = np.searchsorted(ids[order], other_ids, "left")
    high = np.searchsorted(ids[order], other_ids, "right")
    pairs = [
        np.stack([order[start:stop], np.full(stop - start, j)], axis=1)
        for j, (start, stop) in enumerate(zip(low, high)) if stop > start
    ]
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)


def _fourier_signature(images):
    """(N, F) low-frequency Fourier magnitudes, and (N,) mean squares, pixels scaled to 0..1.

    The magnitudes ignore (circular) shifts, and by Parseval's theorem the distance between
    two signatures is at most the root-mean-square difference of the two images under any
    shift: pairs whose signatures are far apart cannot be near duplicates.
    """
    n, height, width, channels = images.shape
    k = min(_FREQUENCIES, height // 2, width // 2)
    rows = np.r_[0:k, height - k + 1:height]  # Frequencies 0..k-1 and -(k-1)..-1.
    weights = np.full(k, np.sqrt(2.0), np.float32)
    weights[0] = 1.0  # A column kx > 0 also stands for its mirror -kx, which rfft2 omits.
    signatures, mean_squares = [], []
    for start in range(0, n, _PAIR_CHUNK):
        unit = images[start:start + _PAIR_CHUNK].astype(np.float32) / 255
        spectrum = np.abs(np.fft.rfft2(unit, axes=(1, 2)))[:, rows, :k]
        scaled = spectrum * weights[:, None] / (height * width * np.sqrt(channels))
        signatures.append(scaled.reshape(len(unit), -1).astype(np.float32))
        mean_squares.append((unit ** 2).mean(axis=(1, 2, 3)))
    return np.concatenate(signatures), np.concatenate(mean_squares)


_SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def _wrap_pad(images):
    """Adds one pixel on every side, copied from the opposite side (wrap-around)."""
    height, width = images.shape[1:3]
    rows, columns = np.r_[height - 1, 0:height, 0], np.r_[width - 1, 0:width, 0]
    return images.take(rows, axis=1).take(columns, axis=2)


def _best_shifts(first, padded):
    """For pairs of images in 0..1, `first` (k, H, W, C) and `padded` (k, H+2, W+2, C), the
    second image wrap-padded: the index into `_SHIFTS` of the shift of the second image that
    best matches the first, the shifted copies, and the relative distance at that shift."""
    height, width = first.shape[1:3]
    second = padded[:, 1:-1, 1:-1]
    shifted = [padded[:, 1 - dy:1 - dy + height, 1 - dx:1 - dx + width] for dy, dx in _SHIFTS]
    # The best shift maximises the correlation sum(a * shifted b).
    correlations = np.stack([np.einsum("khwc,khwc->k", first, view) for view in shifted], axis=1)
    energy = (first ** 2).sum(axis=(1, 2, 3)) + (second ** 2).sum(axis=(1, 2, 3))
    # relative^2 = ||a - shifted b||^2 / (||a||^2 + ||b||^2) = 1 - 2 a.(shifted b) / (...)
    relative = np.sqrt(np.maximum(1 - 2 * correlations.max(axis=1) / np.maximum(energy, 1e-12), 0))
    return np.argmax(correlations, axis=1), shifted, relative


def _pair_distances(first, padded):
    """Near-duplicate distance of image pairs in 0..1 (arguments as `_best_shifts`)."""
    best, shifted, _ = _best_shifts(first, padded)
    second = padded[:, 1:-1, 1:-1]
    squared = np.empty_like(first)
    for index, view in enumerate(shifted):
        chosen = best == index
        squared[chosen] = (first[chosen] - view[chosen]) ** 2
    energy = (first ** 2).sum(axis=(1, 2, 3)) + (second ** 2).sum(axis=(1, 2, 3))
    # relative = ||a - shifted b|| / sqrt(||a||^2 + ||b||^2)  # (k,)
    relative = np.sqrt(squared.sum(axis=(1, 2, 3)) / np.maximum(energy, 1e-12))
    # patch = max over 4x4 patches of the root-mean-square difference  # (k,)
    sums = squared.sum(axis=3, dtype=np.float64).cumsum(axis=1).cumsum(axis=2)
    sums = np.pad(sums, ((0, 0), (1, 0), (1, 0)))
    p = _PATCH
    patch_sums = sums[:, p:, p:] - sums[:, :-p, p:] - sums[:, p:, :-p] + sums[:, :-p, :-p]
    patch = np.sqrt(patch_sums.max(axis=(1, 2)) / (p * p * first.shape[3]))
    return np.maximum(relative, patch).astype(np.float32)


def _candidate_factors(signature, mean_square, threshold, left):
    """One side of the candidate test, so that a matrix product of both sides is >= 0 for
    every pair whose signatures are within `threshold` (relative to the images' energy)."""
    # Keep (i, j) if |s_i - s_j|^2 <= t^2 (m_i + m_j), written as one matrix product:
    # [s_i, |s_i|^2 - t^2 m_i, 1] . [2 s_j, -1, -(|s_j|^2 - t^2 m_j)] >= 0
    bias = (signature ** 2).sum(axis=1, keepdims=True) - threshold ** 2 * mean_square[:, None]
    ones = np.ones_like(bias)
    factors = [signature, bias, ones] if left else [2 * signature, -ones, -bias]
    return np.hstack(factors).astype(np.float32)


def _confirm(images, padded_other, pairs, threshold):
    """Returns the candidate pairs within `threshold` and their distances."""
    kept, distances = [np.zeros((0, 2), np.int64)], [np.zeros(0, np.float32)]
    for start in range(0, len(pairs), _PAIR_CHUNK):
        pair = pairs[start:start + _PAIR_CHUNK]
        first = images[pair[:, 0]].astype(np.float32) / 255
        second = padded_other[pair[:, 1]].astype(np.float32) / 255
        # Cheap test first: most candidates already fail on the relative distance.
        close = _best_shifts(first, second)[2] <= threshold + 1e-3
        distance = _pair_distances(first[close], second[close])
        kept.append(pair[close][distance <= threshold])
        distances.append(distance[distance <= threshold])
    return np.concatenate(kept), np.concatenate(distances)


def _near_pairs(images, other, ids, other_ids, same, threshold, show_progress):
    """Candidate search on Fourier signatures, then the exact distance of each candidate."""
    signature, mean_square = _fourier_signature(images)
    left = _candidate_factors(signature, mean_square, threshold, left=True)
    right = _candidate_factors(*(
        (signature, mean_square) if same else _fourier_signature(other)), threshold, left=False)
    results, padded_other = [], _wrap_pad(other)
    chunks = range(0, len(images), _ROW_CHUNK)
    for start in progress_bar(chunks, enabled=show_progress, description="near duplicates"):
        first_column = start if same else 0  # Within one set only pairs i < j are needed.
        scores = left[start:start + _ROW_CHUNK] @ right[first_column:].T  # (rows, columns)
        i, j = np.divmod(np.flatnonzero(scores >= -_SLACK), scores.shape[1])
        i, j = i + start, j + first_column
        keep = (ids[i] != other_ids[j]) & ((j > i) if same else True)  # Exact copies aren't near.
        candidates = np.stack([i[keep], j[keep]], axis=1)
        results.append(_confirm(images, padded_other, candidates, threshold))
    pairs = np.concatenate([pair for pair, _ in results]).astype(np.int64)
    distances = np.concatenate([distance for _, distance in results])
    order = np.lexsort((pairs[:, 1], pairs[:, 0], distances))  # Closest first.
    return pairs[order], distances[order]


def find_duplicates(images, other=None, *, near=True, threshold=NEAR_THRESHOLD,
                    progress=False):
    """Finds exact and near-duplicate images within one set, or between two sets.

    Exact duplicates are byte-identical. Near duplicates are the same picture up to small
    changes: noise, re-compression, a shift by one pixel. Their distance, in 0..1, is
    computed after shifting the second image by at most one pixel (wrapping around the
    border) to match the first as well as possible, and is the larger of
      - relative: ||a - b|| / sqrt(||a||^2 + ||b||^2), the share of the two images' energy
        that differs (0: identical; 1: no overlap at all), and
      - patch: the largest root-mean-square difference of any 4x4 patch, with pixels
        scaled to 0..1 (a new print on a shirt or a stroke in a different place is large
        here even when it is small overall).
    The default threshold 0.1 was chosen by looking at real pairs of Fashion-MNIST: below
    it, pairs are the same photograph re-encoded or shifted; above it, they start to be
    different items photographed alike (another print, another outline). Copies of a
    digit with Gaussian noise of standard deviation up to about 12 grey levels stay below it.
    The search is exact, not approximate: a candidate test on low-frequency Fourier
    magnitudes (unchanged by shifts) rules out, by Parseval's theorem, only pairs whose
    relative distance exceeds the threshold; candidates are then measured exactly.
    Fashion-MNIST on two CPU cores: about 20 s within the 60,000 training images, 8 s
    against the 10,000 test images.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Clean the data".

    Args:
        images: uint8 images (N, H, W, C) or (N, H, W).
        other: optional second uint8 set of the same image shape (e.g. the test set).
        near: also search for near duplicates (False: exact ones only, much faster).
        threshold: largest distance of a near-duplicate pair, in (0, 0.2). Larger values
            report different images and make the search much slower.

    Returns:
        A `Duplicates(exact_pairs, near_pairs, near_distances)`. Without `other`, pairs are
        `(i, j)` with i < j in `images`; an exact pair links a later copy j to the first
        copy i. With `other`, pairs are `(i in images, j in other)`. Near pairs exclude
        exact ones and are sorted closest first.

    Raises:
        TypeError: if the images are not uint8.
        ValueError: on mismatched image shapes or a threshold outside (0, 0.2).

    Example:
        >>> within = find_duplicates(x_train)
        >>> across = find_duplicates(x_train, x_test)  # test images leaking into training
        >>> first, second = within.near_pairs[:8].T
        >>> fig = image_pairs(x_train[first], x_train[second], captions=within.near_distances[:8])
    """
    images = _as_uint8_batch(images, "images")
    same = other is None
    other = images if same else _as_uint8_batch(other, "other")
    if images.shape[1:] != other.shape[1:]:
        raise ValueError(
            f"`images` ({describe(images)}) and `other` ({describe(other)}) must hold images of "
            "the same shape; compare sets of the same dataset, e.g. x_train and x_test."
        )
    threshold = require_fraction(threshold, "threshold", low=0.0, high=0.2)
    if len(images) == 0 or len(other) == 0:
        empty = np.zeros((0, 2), np.int64)
        return Duplicates(empty, empty, np.zeros(0, np.float32))
    ids, other_ids = _group_ids(images, other, same)
    exact = _exact_pairs(ids, other_ids, same).astype(np.int64)
    if not near:
        return Duplicates(exact, np.zeros((0, 2), np.int64), np.zeros(0, np.float32))
    found = _near_pairs(images, other, ids, other_ids, same, threshold, progress)
    return Duplicates(exact, *found)
