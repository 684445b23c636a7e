"""Checks for exercises/00_setup.ipynb."""

import numpy as np

from dgm_course.checks import fail, passed


def check_class_counts(class_counts):
    """Exercise 1: `class_counts(labels, num_classes)` returns images per class."""
    exercise = "Exercise 1 (class counts)"
    labels = np.array([0, 2, 2, 3, 3, 3], dtype=np.int64)
    result = class_counts(labels, 5)
    result = np.asarray(result)
    if result.shape != (5,):
        fail(
            exercise,
            f"for labels {labels.tolist()} and num_classes=5 you returned shape {result.shape}; "
            "expected one count per class, shape (5,).",
            "A class with no image still needs its 0: np.bincount(labels, minlength=num_classes).",
        )
    if result.dtype.kind == "f" and np.isclose(result.sum(), 1.0):
        fail(exercise, f"you returned proportions {result.round(3).tolist()}, not counts.",
             "Count images; do not divide by the number of labels.")
    if not np.array_equal(result, [1, 0, 2, 3, 0]):
        fail(exercise, f"for labels {labels.tolist()} you returned {result.tolist()}; "
             "expected [1, 0, 2, 3, 0].", "Entry c counts how often label c occurs.")
    passed(f"{exercise}: counts are right, empty classes included.")


def check_megabytes(megabytes):
    """Exercise 2: `megabytes(shape, dtype)` is the memory of an array in MiB."""
    exercise = "Exercise 2 (memory)"
    shape = (60_000, 28, 28, 1)
    expected = {"uint8": 44.86083984375, "float32": 179.443359375}
    for dtype, right in expected.items():
        result = float(megabytes(shape, dtype))
        if np.isclose(result, right):
            continue
        if np.isclose(result, right * 2**20 / 1e6):
            problem = "you divided by 1e6 (megabytes); the exercise asks MiB, 2**20 bytes."
        elif dtype == "float32" and np.isclose(result, expected["uint8"]):
            problem = "float32 came out as 1 byte per value; each float32 takes 4 bytes."
        elif np.isclose(result, right * 2**20):
            problem = "that is the number of bytes; divide by 2**20 for MiB."
        else:
            problem = f"for shape {shape} and dtype {dtype} you returned {result}; expected {right}."
        fail(exercise, problem, "bytes = prod(shape) * np.dtype(dtype).itemsize; MiB = bytes / 2**20.")
    passed(f"{exercise}: 60,000 images take {expected['uint8']:.1f} MiB as uint8 "
           f"and {expected['float32']:.1f} MiB as float32.")


def check_steps_per_epoch(steps_per_epoch):
    """Exercise 3: `steps_per_epoch(n_images, batch_size, drop_remainder)`."""
    exercise = "Exercise 3 (steps per epoch)"
    cases = [((1000, 128, False), 8), ((1000, 128, True), 7), ((1024, 128, False), 8),
             ((1024, 128, True), 8), ((100, 128, True), 0)]
    for (n_images, batch_size, drop), right in cases:
        result = steps_per_epoch(n_images, batch_size, drop)
        if isinstance(result, float):
            fail(exercise, f"you returned the float {result}; a number of steps is an int.",
                 "Use integer division (//) or math.ceil, and return an int.")
        if result != right:
            kept = "kept" if not drop else "dropped"
            fail(exercise, f"{n_images} images in batches of {batch_size}, last partial batch "
                 f"{kept}: you returned {result}, expected {right}.",
                 "Without drop_remainder the last, smaller batch is a step too: round up.")
    passed(f"{exercise}: right with and without drop_remainder.")
