"""The checks of exercises/00_setup.ipynb accept the solution and name typical mistakes."""

import math

import numpy as np
import pytest

from dgm_course.checks import ExerciseError, ch00


def right_class_counts(labels, num_classes):
    return np.bincount(labels, minlength=num_classes)


def right_megabytes(shape, dtype):
    return math.prod(shape) * np.dtype(dtype).itemsize / 2**20


def right_steps_per_epoch(n_images, batch_size, drop_remainder):
    return n_images // batch_size if drop_remainder else math.ceil(n_images / batch_size)


def not_done(*args):
    raise NotImplementedError()


def test_solutions_pass(capsys):
    ch00.check_class_counts(right_class_counts)
    ch00.check_megabytes(right_megabytes)
    ch00.check_steps_per_epoch(right_steps_per_epoch)
    assert capsys.readouterr().out.count("✅") == 3


@pytest.mark.parametrize("check", [ch00.check_class_counts, ch00.check_megabytes,
                                   ch00.check_steps_per_epoch])
def test_unfinished_exercise_raises_not_implemented(check):
    with pytest.raises(NotImplementedError):
        check(not_done)


@pytest.mark.parametrize("wrong, message", [
    (lambda labels, k: np.bincount(labels), "shape"),
    (lambda labels, k: np.bincount(labels, minlength=k) / len(labels), "proportions"),
    (lambda labels, k: np.bincount(labels, minlength=k)[::-1], "expected"),
])
def test_class_counts_mistakes(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        ch00.check_class_counts(wrong)


@pytest.mark.parametrize("wrong, message", [
    (lambda shape, dtype: math.prod(shape) * np.dtype(dtype).itemsize / 1e6, "1e6"),
    (lambda shape, dtype: math.prod(shape) / 2**20, "4 bytes"),
    (lambda shape, dtype: math.prod(shape) * np.dtype(dtype).itemsize, "number of bytes"),
    (lambda shape, dtype: math.prod(shape[1:]) * np.dtype(dtype).itemsize / 2**20, "expected"),
])
def test_megabytes_mistakes(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        ch00.check_megabytes(wrong)


@pytest.mark.parametrize("wrong, message", [
    (lambda n, b, drop: n // b, "round up"),
    (lambda n, b, drop: n / b, "float"),
    (lambda n, b, drop: math.ceil(n / b), "dropped"),
])
def test_steps_per_epoch_mistakes(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        ch00.check_steps_per_epoch(wrong)
