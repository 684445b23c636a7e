"""Tests for dgm_course.duplicates: exact and near duplicates, against a brute-force reference."""

import numpy as np
import pytest

from dgm_course import duplicates
from dgm_course.duplicates import find_duplicates


def _reference_distance(a, b):
    """Straightforward near-duplicate distance of two uint8 images, written independently."""
    a, b = a.astype(np.float64) / 255, b.astype(np.float64) / 255
    shifted = [np.roll(b, (dy, dx), axis=(0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    best = min(shifted, key=lambda s: ((a - s) ** 2).sum())
    squared = ((a - best) ** 2).sum(axis=-1)
    relative = np.sqrt(squared.sum() / ((a ** 2).sum() + (b ** 2).sum()))
    patches = np.lib.stride_tricks.sliding_window_view(squared, (4, 4)).mean(axis=(-2, -1))
    return max(relative, np.sqrt(patches.max() / a.shape[-1]))


# find_corrupt


def test_exact_duplicates_within_and_across(digits):
    images = digits[0][:300].copy()
    images[250] = images[10]
    images[260] = images[10]
    images[270] = images[20]
    within = find_duplicates(images, near=False)
    assert within.exact_pairs.tolist() == [[10, 250], [10, 260], [20, 270]]
    test = digits[0][300:350].copy()
    test[5] = images[10]
    across = find_duplicates(images, test, near=False)
    assert sorted(across.exact_pairs.tolist()) == [[10, 5], [250, 5], [260, 5]]
    assert across.near_pairs.shape == (0, 2)


def test_planted_near_duplicates_are_found_and_distinct_digits_are_not(digits, noisy):
    images = digits[0][:400].copy()
    images[300] = noisy(images[3], sigma=3, seed=0)  # Small noise.
    images[301] = np.roll(images[4], 1, axis=1)  # Shifted down by one pixel.
    images[302] = np.roll(noisy(images[5], sigma=2, seed=1), (-1, 1), axis=(0, 1))  # Both.
    images[303] = np.clip(images[6].astype(int) + 40, 0, 255)  # Brighter: not a near copy.
    result = find_duplicates(images)
    assert result.exact_pairs.shape == (0, 2)
    assert sorted(result.near_pairs.tolist()) == [[3, 300], [4, 301], [5, 302]]
    assert np.all(np.diff(result.near_distances) >= 0)
    assert result.near_distances.max() <= duplicates.NEAR_THRESHOLD
    assert result.near_distances[1] < 0.05  # The shifted copy matches exactly.


def test_near_duplicates_agree_with_brute_force_reference(digits, noisy):
    # Copies with growing noise and shifts, so that distances straddle the threshold.
    base = digits[0][:40]
    copies = [np.roll(noisy(image, 4 + 2 * i, seed=i), i % 2, axis=0) for i, image in enumerate(base[:30])]
    images = np.concatenate([base, np.stack(copies)])
    threshold = 0.15
    result = find_duplicates(images, threshold=threshold)
    expected = {}
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            distance = _reference_distance(images[i], images[j])
            if distance <= threshold:
                expected[(i, j)] = distance
    found = dict(zip(map(tuple, result.near_pairs.tolist()), result.near_distances, strict=True))
    assert 5 < len(expected) < 30  # Some copies fall above the threshold.
    assert set(found) == set(expected)
    np.testing.assert_allclose([found[pair] for pair in expected], list(expected.values()), atol=1e-5)


def test_cross_near_duplicates(digits, noisy):
    train = digits[0][:200]
    test = np.concatenate([digits[0][200:230], noisy(train[[7, 9]], sigma=3, seed=2)])
    result = find_duplicates(train, test)
    assert sorted(result.near_pairs.tolist()) == [[7, 30], [9, 31]]


def test_find_duplicates_rgb_and_empty(noisy):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 16, 16, 3)).astype(np.uint8)
    images[15] = noisy(images[2], sigma=2, seed=3)
    assert find_duplicates(images).near_pairs.tolist() == [[2, 15]]
    empty = find_duplicates(images[:0])
    assert empty.exact_pairs.shape == (0, 2) and empty.near_distances.shape == (0,)


def test_find_duplicates_bad_inputs_explain():
    images = np.zeros((3, 8, 8, 1), np.uint8)
    with pytest.raises(TypeError, match=r"dtype of kind \['u'\].*float32"):
        find_duplicates(images.astype(np.float32))
    with pytest.raises(ValueError, match="same shape"):
        find_duplicates(images, np.zeros((3, 9, 9, 1), np.uint8))
    with pytest.raises(ValueError, match=r"`threshold` must lie strictly between 0.0 and 0.2; got 0.5"):
        find_duplicates(images, threshold=0.5)
    with pytest.raises(ValueError, match="dimensions"):
        find_duplicates(np.zeros((8, 8), np.uint8))


# check_labels and suspicious_labels
