"""Tests for dgm_course.cleaning: corrupt images, duplicates, invalid and suspicious labels."""

import numpy as np
import pytest

from dgm_course import cleaning
from dgm_course.cleaning import (
    CleaningReport,
    check_labels,
    clean_report,
    find_corrupt,
    suspicious_labels,
)


def test_find_corrupt_finds_each_problem():
    images = np.random.default_rng(0).integers(1, 200, (6, 8, 8, 1)).astype(np.int16)
    images[1] = 0  # Blank.
    images[2, 0, 0] = 300  # Outside 0..255.
    images[3, 4, 4] = -1
    found = find_corrupt(images)
    assert set(found) == {"wrong_shape", "nan", "constant", "out_of_range"}
    assert found["constant"].tolist() == [1]
    assert found["out_of_range"].tolist() == [2, 3]
    assert found["nan"].size == 0 and found["wrong_shape"].size == 0
    assert all(indices.dtype == np.int64 for indices in found.values())


def test_find_corrupt_floats_and_lists():
    images = np.zeros((4, 5, 5), np.float32) + np.linspace(-0.5, 0.5, 25).reshape(5, 5)
    images[1, 2, 2] = np.nan
    images[2, 0, 0] = np.inf
    images[3, 0, 0] = 1.5
    found = find_corrupt(images, value_range=(-1, 1))
    assert found["nan"].tolist() == [1, 2] and found["out_of_range"].tolist() == [3]
    square, blank = np.arange(16, dtype=np.uint8).reshape(4, 4), np.ones((4, 4), np.uint8)
    ragged = [blank, square, np.ones((3, 4), np.uint8), square]
    found = find_corrupt(ragged)
    assert found["wrong_shape"].tolist() == [2] and found["constant"].tolist() == [0]
    found = find_corrupt(ragged, expected_shape=(3, 4))
    assert found["wrong_shape"].tolist() == [0, 1, 3] and found["constant"].tolist() == [2]


def test_find_corrupt_float_without_range_explains():
    with pytest.raises(ValueError, match=r"floats .* pass value_range=\(-1, 1\)"):
        find_corrupt(np.zeros((2, 4, 4), np.float32))


# find_duplicates


def test_check_labels():
    labels = np.array([0, 3, 10, -1, 2.5, np.nan, 9])
    assert check_labels(labels, 10).tolist() == [2, 3, 4, 5]
    assert check_labels(np.arange(10), 10).size == 0
    with pytest.raises(TypeError, match="`num_classes` must be an integer"):
        check_labels(labels, 10.0)
    with pytest.raises(ValueError, match="`labels` must have 1 dimensions"):
        check_labels(np.zeros((3, 2)), 10)


@pytest.mark.slow
def test_suspicious_labels_ranks_planted_flips_first(digits):
    images, labels = digits
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(labels), 20, replace=False)
    noisy_labels = labels.copy()
    noisy_labels[flipped] = (labels[flipped] + rng.integers(1, 10, 20)) % 10
    suspects = suspicious_labels(images, noisy_labels, k=10, seed=0)
    top = suspects.indices[:30]
    assert np.isin(flipped, top).sum() >= 16
    # For the flipped images found, the neighbours name the true label.
    found = np.isin(suspects.indices, flipped)
    assert np.mean(suspects.neighbour_labels[found] == labels[suspects.indices[found]]) > 0.9
    assert np.all(np.diff(suspects.disagreement) <= 0)
    again = suspicious_labels(images, noisy_labels, k=10, seed=0)
    np.testing.assert_array_equal(again.indices, suspects.indices)


def test_suspicious_labels_bad_inputs_explain(digits):
    images, labels = digits
    with pytest.raises(ValueError, match=r"one non-negative integer label per image \(5000 images\)"):
        suspicious_labels(images, labels[:10])
    with pytest.raises(ValueError, match="check_labels"):
        suspicious_labels(images[:3], np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="`k` must be at most 2"):
        suspicious_labels(images[:3], np.array([0, 1, 2]), k=5)


# clean_report


def test_clean_report_and_drop_indices(digits, noisy):
    images, labels = digits
    x_train, y_train = images[:300].copy(), labels[:300].copy()
    x_test, y_test = images[300:400].copy(), labels[300:400].copy()
    x_train[5] = 0  # Corrupt: blank.
    x_train[100] = x_train[50]  # Exact duplicate.
    x_train[101] = noisy(x_train[60], sigma=3, seed=4)  # Near duplicate.
    x_train[102] = x_test[7]  # Test image leaking into training.
    x_train[103] = noisy(x_test[8], sigma=3, seed=5)
    y_train[200] = 12  # Invalid label.
    report = clean_report(x_train, y_train, x_test, y_test, num_classes=10)
    assert isinstance(report, CleaningReport)
    assert report.corrupt["constant"].tolist() == [5]
    assert report.duplicate_pairs.tolist() == [[50, 100]]
    assert report.near_duplicate_pairs.tolist() == [[60, 101]]
    assert report.cross_pairs.tolist() == [[102, 7]] and report.cross_near_pairs.tolist() == [[103, 8]]
    assert report.bad_labels.tolist() == [200] and report.test_bad_labels.size == 0
    assert report.drop_indices().tolist() == [5, 100, 101, 102, 103, 200]
    assert report.drop_indices(near=False, cross=False).tolist() == [5, 100, 200]
    text = str(report)
    assert "300 training and 100 test images" in text
    assert "1 constant" in text and "1 exact, 1 near" in text
    assert "suggests dropping 6 training images" in text


def test_progress_bars_go_to_stderr_only_when_asked(digits, capsys):
    images, labels = digits[0][:600], digits[1][:600]
    quiet = suspicious_labels(images, labels, k=5)
    assert capsys.readouterr().err == ""
    loud = suspicious_labels(images, labels, k=5, progress=True)
    assert "neighbours" in capsys.readouterr().err
    np.testing.assert_array_equal(quiet.indices, loud.indices)
    cleaning.find_duplicates(images, progress=True)
    assert "near duplicates" in capsys.readouterr().err
