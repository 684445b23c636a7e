"""Tests for dgm_course.splits: balanced subsets, labelled/unlabelled and train/validation splits."""

import numpy as np
import pytest

from dgm_course.splits import (
    balanced_indices,
    labelled_unlabelled_split,
    train_val_split,
)


@pytest.fixture
def labels():
    """Unbalanced labels: class c has 20 + 5 * c examples, shuffled; class 7 is absent."""
    counts = {c: 20 + 5 * c for c in range(10) if c != 7}
    values = np.concatenate([np.full(n, c) for c, n in counts.items()])
    return np.random.default_rng(0).permutation(values).astype(np.int64)


def test_balanced_indices_exact_counts_sorted_and_seeded(labels):
    idx = balanced_indices(labels, 12, seed=3)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    classes, counts = np.unique(labels[idx], return_counts=True)
    assert classes.tolist() == [0, 1, 2, 3, 4, 5, 6, 8, 9] and set(counts) == {12}
    np.testing.assert_array_equal(idx, balanced_indices(labels, 12, seed=3))
    assert not np.array_equal(idx, balanced_indices(labels, 12, seed=4))
    assert len(balanced_indices(labels, 20)) == 9 * 20  # The whole smallest class.


def test_balanced_indices_too_many_names_the_class(labels):
    with pytest.raises(ValueError, match=r"`n_per_class`=21 exceeds the size of class 0, which has only 20 examples\. Pass n_per_class <= 20"):
        balanced_indices(labels, 21)
    with pytest.raises(ValueError, match="`n_per_class` must be at least 1; got 0"):
        balanced_indices(labels, 0)
    with pytest.raises(TypeError, match="`n_per_class` must be an integer; got float 2.0"):
        balanced_indices(labels, 2.0)
    with pytest.raises(TypeError, match=r"`labels` must have a dtype of kind \['i', 'u'\].*float64.*integer class labels"):
        balanced_indices(labels.astype(float), 2)
    with pytest.raises(ValueError, match="`labels` is empty"):
        balanced_indices(labels[:0], 2)


def test_labelled_unlabelled_split_is_a_partition(labels):
    labelled, unlabelled = labelled_unlabelled_split(labels, 5, seed=1)
    np.testing.assert_array_equal(labelled, balanced_indices(labels, 5, seed=1))
    assert np.intersect1d(labelled, unlabelled).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([labelled, unlabelled])), np.arange(len(labels)))
    assert unlabelled.dtype == np.int64 and np.all(np.diff(unlabelled) > 0)


@pytest.mark.parametrize("stratify", [True, False])
def test_train_val_split_partition_and_size(labels, stratify):
    train, val = train_val_split(labels, val_fraction=0.2, seed=0, stratify=stratify)
    assert len(val) == round(0.2 * len(labels))
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    again = train_val_split(labels, val_fraction=0.2, seed=0, stratify=stratify)
    np.testing.assert_array_equal(val, again[1])
    assert not np.array_equal(val, train_val_split(labels, val_fraction=0.2, seed=1, stratify=stratify)[1])


def test_train_val_split_stratified_keeps_class_shares(labels):
    _, val = train_val_split(labels, val_fraction=0.2, seed=0)
    classes, counts = np.unique(labels, return_counts=True)
    val_counts = np.array([(labels[val] == c).sum() for c in classes])
    assert np.all(np.abs(val_counts - 0.2 * counts) < 1)  # Off by rounding only.


def test_train_val_split_bad_fraction_explains(labels):
    with pytest.raises(ValueError, match=r"`val_fraction` must lie strictly between 0.0 and 1.0; got 1.5"):
        train_val_split(labels, val_fraction=1.5)
    with pytest.raises(ValueError, match="gives 0 validation indices, leaving one part empty"):
        train_val_split(labels, val_fraction=0.001)
