"""Checks for the exercises of chapter 01, "Data preprocessing"
(exercises/01_data_preprocessing.ipynb; the lecture is notebooks/01_data_preprocessing.ipynb).

Each check runs the learner's function on small cases whose answers are known, and names
the typical mistake behind a wrong answer. TensorFlow is imported only by the checks that
need it.
"""

import time

import numpy as np

from dgm_course._validation import describe
from dgm_course.checks import fail, passed


def _as_array(value, exercise, what):
    """Returns `value` as a NumPy array (Keras and TensorFlow tensors included)."""
    try:
        return np.asarray(value)
    except (TypeError, ValueError):  # A ragged list, for example.
        fail(exercise, f"{what} returned {describe(value)}, which is not an array.")


def check_normalize(normalize, denormalize):
    """Exercise 1: `normalize` maps uint8 0..255 onto float32 [-1, 1]; `denormalize` inverts it."""
    exercise = "Exercise 1"
    values = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    out = _as_array(normalize(values.copy()), exercise, "normalize")
    if out.shape != values.shape:
        fail(exercise,
             f"normalize returned {describe(out)}; expected the input's shape {values.shape}.",
             "Work elementwise; do not reshape or flatten.")
    x = out.ravel()
    if np.any(np.diff(x) < -0.5):  # A jump down: uint8 arithmetic wrapped around.
        first = int(np.argmax(np.diff(x) < -0.5))
        fail(exercise,
             f"values jump down: {first} maps to {x[first]:.3f} but {first + 1} to "
             f"{x[first + 1]:.3f}. The arithmetic ran in uint8, which wraps around above 255.",
             "Convert to float32 before any arithmetic: images.astype('float32').")
    if np.allclose(x, np.arange(256) / 255.0):
        fail(exercise, "values lie in [0, 1], not [-1, 1]: that is x / 255 only.",
             "x' = x / 127.5 - 1 maps 0 to -1 and 255 to 1.")
    if not np.allclose(x, np.arange(256) / 127.5 - 1.0, atol=1e-6):
        fail(exercise, f"normalize maps 0 to {x[0]:.4f} and 255 to {x[-1]:.4f}; expected -1 and 1.",
             "x' = x / 127.5 - 1.")
    if x.dtype != np.float32:
        fail(exercise,
             f"normalize returned dtype {x.dtype}; expected float32, what Keras layers compute in.",
             "Convert first: images.astype('float32') / 127.5 - 1.")
    _check_denormalize(denormalize, values, exercise)
    passed("normalize maps 0..255 onto [-1, 1]; denormalize inverts it exactly and clips what "
           "lies outside.")


def _check_denormalize(denormalize, values, exercise):
    """The second half of Exercise 1: exact inverse, uint8, clipping."""
    x = values.astype(np.float32) / 127.5 - 1.0
    with np.errstate(all="ignore"):
        back = _as_array(denormalize(x), exercise, "denormalize")
    if back.dtype != np.uint8 or back.shape != values.shape:
        fail(exercise,
             f"denormalize returned {describe(back)}; expected uint8 of shape {values.shape}.",
             "Images are stored as uint8: round, clip to 0..255, then .astype(np.uint8).")
    wrong = np.flatnonzero(back.ravel() != values.ravel())
    if wrong.size:
        u, got = int(wrong[0]), int(back.ravel()[wrong[0]])
        if np.all(back.ravel()[wrong] == values.ravel()[wrong] - 1):
            fail(exercise,
                 f"127.5 * (x + 1) is computed as {127.5 * (x.ravel()[u] + 1):.7f} for {u} and "
                 f"truncated, so {u} becomes {got} ({wrong.size} of 256 values are off by one).",
                 "Round before casting: np.round(127.5 * (x + 1)).")
        fail(exercise,
             f"denormalize(normalize(u)) is not u: {u} comes back as {got} "
             f"({wrong.size} of 256 values wrong).",
             "Invert x' = x / 127.5 - 1: x = 127.5 * (x' + 1).")
    outside = np.array([-1.5, -1.01, 1.01, 1.5], np.float32).reshape(1, 2, 2, 1)
    with np.errstate(all="ignore"):
        clipped = np.asarray(denormalize(outside)).ravel()
    if clipped.tolist() != [0, 0, 255, 255]:
        fail(exercise,
             f"values outside [-1, 1] are not clipped: -1.5, -1.01, 1.01, 1.5 became "
             f"{clipped.tolist()}, expected [0, 0, 255, 255]. A generator's output can leave "
             "[-1, 1].",
             "Clip before casting: np.clip(..., 0, 255).")


def _uneven_labels():
    """40 labels of 4 classes with 12, 9, 11 and 8 examples, in a fixed shuffled order."""
    labels = np.repeat(np.arange(4), [12, 9, 11, 8])
    return np.random.default_rng(7).permutation(labels)


def check_balanced_subset(balanced_subset):
    """Exercise 2: `balanced_subset(labels, n_per_class, seed=...)`, n indices of each class."""
    exercise = "Exercise 2"
    labels = _uneven_labels()
    first = _as_array(balanced_subset(labels, 5, seed=0), exercise, "balanced_subset")
    if first.ndim != 1 or first.dtype.kind not in "iu":
        fail(exercise, f"expected a 1-D array of integer indices; got {describe(first)}.",
             "Return positions into `labels`, e.g. from np.flatnonzero(labels == c).")
    if first.size and (first.min() < 0 or first.max() >= labels.size):
        fail(exercise,
             f"indices must lie in 0..{labels.size - 1}; got {first.min()}..{first.max()}.")
    if np.unique(first).size < first.size:
        repeated = int(np.argmax(np.bincount(first)))
        fail(exercise, f"index {repeated} appears more than once: the subset repeats examples.",
             "Draw without replacement: rng.choice(class_indices, n_per_class, replace=False).")
    counts = np.bincount(labels[first], minlength=4).tolist()
    if counts != [5, 5, 5, 5]:
        fail(exercise, f"the subset has {counts} examples of classes 0..3; expected 5 of each "
             f"({first.size} indices in all, expected 20).",
             "Pick n_per_class indices from np.flatnonzero(labels == c) for every class c.")
    again = np.asarray(balanced_subset(labels, 5, seed=0))
    if not np.array_equal(np.sort(first), np.sort(again)):
        fail(exercise,
             "two calls with seed=0 gave different subsets: the result is not reproducible.",
             "Use rng = np.random.default_rng(seed), not the global np.random functions.")
    if np.array_equal(np.sort(first), np.sort(np.asarray(balanced_subset(labels, 5, seed=1)))):
        fail(exercise, "seeds 0 and 1 give the same subset: the seed is ignored "
             "(taking the first n of each class is not a random sample).",
             "Draw with rng = np.random.default_rng(seed).")
    try:
        short = balanced_subset(labels, 9, seed=0)
    except ValueError:
        return passed("balanced_subset draws n of each class, reproducibly, and refuses too "
                      "large an n.")
    fail(exercise,
         f"asked for 9 per class while class 3 has only 8 examples, it returned "
         f"{describe(short)} instead of raising ValueError.",
         "Compare n_per_class with np.bincount(labels).min(); raise ValueError naming the class.")


def _images_with_duplicates():
    """12 random 8x8 images: 2, 5, 9 identical; 7, 11 identical; 4 differs from 1 in one pixel.
    Returns them and the expected pairs (first copy, later copy)."""
    images = np.random.default_rng(3).integers(0, 200, size=(12, 8, 8, 1), dtype=np.uint8)
    images[5] = images[9] = images[2]
    images[11] = images[7]
    images[4] = images[1]
    images[4, 3, 3, 0] += 1
    return images, {(2, 5), (2, 9), (7, 11)}


def _pairs(value, exercise):
    """Returns the learner's pairs as a set of (i, j), rejecting malformed and mirrored pairs."""
    pairs = _as_array(value, exercise, "find_exact_duplicates")
    if pairs.size == 0:
        return set()
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        fail(exercise, f"expected index pairs, an array of shape (k, 2); got {describe(pairs)}.")
    found = [tuple(int(i) for i in row) for row in pairs]
    for i, j in found:
        if i == j:
            fail(exercise, f"pair ({i}, {i}) compares an image with itself.",
                 "Compare i only with j > i.")
        if (j, i) in found:
            fail(exercise,
                 f"both ({min(i, j)}, {max(i, j)}) and ({max(i, j)}, {min(i, j)}) are reported: "
                 "one pair counted twice.",
                 "Report each pair once, as (i, j) with i < j.")
        if i > j:
            fail(exercise, f"pair ({i}, {j}) has i > j.", "Report each pair as (i, j) with i < j.")
    if len(set(found)) < len(found):
        fail(exercise, "the same pair is reported more than once.", "Report each pair once.")
    return set(found)


def check_exact_duplicates(find_exact_duplicates):
    """Exercise 3: `find_exact_duplicates(images)` pairs each later copy j with the first copy i."""
    exercise = "Exercise 3"
    images, expected = _images_with_duplicates()
    found = _pairs(find_exact_duplicates(images.copy()), exercise)
    if (1, 4) in found:
        fail(exercise,
             "images 1 and 4 differ by 1 in one pixel: they are near-duplicates, not exact ones.",
             "Compare the bytes exactly (image.tobytes()), with no tolerance.")
    if (5, 9) in found:
        fail(exercise,
             "(5, 9) pairs two later copies of image 2. Pair each later copy with the first copy "
             "only: then dropping the second index of every pair keeps exactly one copy.",
             "Remember the first index of each image's bytes in a dict.")
    if found - expected:
        fail(exercise, f"pairs {sorted(found - expected)} are not copies of one another.")
    if expected - found:
        fail(exercise, f"missed the pairs {sorted(expected - found)}.",
             "Every image that equals an earlier one gives one pair (first copy, this copy).")
    if _pairs(find_exact_duplicates(images[[0, 1, 3, 4, 6]]), exercise):
        fail(exercise, "reported pairs in a set of images with no duplicates.")
    big = np.random.default_rng(4).integers(0, 256, size=(2000, 28, 28, 1), dtype=np.uint8)
    big[1999] = big[0]
    start = time.perf_counter()
    found = _pairs(find_exact_duplicates(big), exercise)
    seconds = time.perf_counter() - start
    if found != {(0, 1999)}:
        fail(exercise,
             f"on 2,000 images with one duplicate pair (0, 1999) it found {sorted(found)[:5]}.")
    if seconds > 2.0:
        fail(exercise, f"2,000 images took {seconds:.1f} s; comparing all pairs grows as N^2 "
             "(60,000 images would take hours).",
             "Hash each image's bytes into a dict: one pass over the images.")
    passed(f"find_exact_duplicates pairs every copy with its first, skips near ones "
           f"({seconds * 1000:.0f} ms for 2,000 images).")


def _digit_like(n=16):
    """n copies of a 28x28 'F' in [-1, 1] (background -1): its left side is the heavier."""
    images = -np.ones((n, 28, 28, 1), np.float32)
    images[:, 5:23, 7:11] = 1.0  # The stem.
    images[:, 5:8, 7:18] = 1.0  # The top bar.
    images[:, 12:15, 7:15] = 1.0  # The middle bar.
    return images


def _column_centre(images):
    """The column of each image's centre of mass, weighting pixels by brightness (n,)."""
    weights = (images[..., 0] + 1.0).sum(axis=1)  # (n, width)
    return weights @ np.arange(images.shape[2]) / weights.sum(axis=1)


def _check_layers(augmentation, exercise):
    """Rejects flips and large rotations, read off the Keras layers."""
    from keras import layers

    for layer in getattr(augmentation, "layers", [augmentation]):
        if isinstance(layer, layers.RandomFlip):
            fail(exercise, "flips turn digits into non-digits: a mirrored 7 or 3 is not a digit "
                 "(that is why the lecture flips Fashion-MNIST but not MNIST).",
                 "Remove RandomFlip; use small rotations, translations and zooms.")
        if isinstance(layer, layers.RandomRotation):
            degrees = 360 * max(abs(f) for f in np.ravel(layer.factor))
            if degrees > 36:
                fail(exercise,
                     f"rotations of up to {degrees:.0f} degrees change what a digit is "
                     "(a 6 turned upside down is a 9).",
                     "Keep rotations small: factor=0.05 is 18 degrees.")


def check_digit_augmentation(make_augmentation):
    """Exercise 4: `make_augmentation(seed=...)` returns seeded Keras layers that augment digits."""
    exercise = "Exercise 4"
    digits = _digit_like()
    augmentation = make_augmentation(seed=0)
    _check_layers(augmentation, exercise)
    out = _as_array(augmentation(digits, training=True), exercise, "the augmentation")
    if out.shape != digits.shape or out.dtype != np.float32:
        fail(exercise,
             f"the augmentation turned float32 images of shape {digits.shape} into "
             f"{describe(out)}.",
             "Use only layers that keep shape and dtype (RandomRotation, ...).")
    if out.min() < -1.0001 or out.max() > 1.0001:
        fail(exercise, f"values leave [-1, 1]: they span [{out.min():.2f}, {out.max():.2f}].",
             "Do not rescale or add noise; bilinear interpolation stays within the input's range.")
    if np.allclose(out, digits):
        fail(exercise, "the output equals the input: nothing was augmented.",
             "Call it with training=True, and give the layers non-zero factors.")
    border = np.concatenate([out[:, :2].ravel(), out[:, -2:].ravel(), out[:, :, :2].ravel()])
    if np.mean(np.abs(border) < 0.1) > 0.02:
        fail(exercise,
             "the background turned grey where the layers fill in new pixels: fill_value=0.0 is "
             "mid-grey in [-1, 1].",
             "Pass fill_mode='constant', fill_value=-1.0 to every layer.")
    centre, mirror_centre = _column_centre(digits)[0], _column_centre(digits[:, :, ::-1])[0]
    mirrored = np.abs(_column_centre(out) - mirror_centre) < np.abs(_column_centre(out) - centre)
    if mirrored.any():
        fail(exercise,
             "some outputs are mirror images of their input: flips turn digits into non-digits.",
             "Remove any flip.")
    if not np.allclose(out, np.asarray(make_augmentation(seed=0)(digits, training=True))):
        fail(exercise, "two calls with the same seed differ: the augmentation is not reproducible.",
             "Pass seed= to every random layer (e.g. seed, seed + 1, ...).")
    if np.allclose(out, np.asarray(make_augmentation(seed=1)(digits, training=True))):
        fail(exercise, "seeds 0 and 1 give the same images: the seed argument is ignored.",
             "Pass the seed on to the layers.")
    passed("the augmentation is seeded, keeps shape, dtype, range and background, and never flips.")


def _epoch(dataset, exercise):
    """Returns (images, labels, batch sizes) of one pass over a tf.data pipeline."""
    images, labels, sizes = [], [], []
    for element in dataset.as_numpy_iterator():
        if not (isinstance(element, tuple) and len(element) == 2):
            fail(exercise, "each element should be a pair (images, labels); got "
                 f"{type(element).__name__}.",
                 "Start from tf.data.Dataset.from_tensor_slices((images, labels)).")
        images.append(element[0])
        labels.append(element[1])
        sizes.append(len(element[1]))
    return np.concatenate(images), np.concatenate(labels), sizes


def _check_epoch(x, y, sizes, exercise):
    """Batch sizes, dtype, range and image-label pairing of one epoch of `check_pipeline`'s case."""
    if sizes != [32, 32, 32, 4]:
        fail(exercise,
             f"100 examples in batches of 32 came as batches of {sizes}; "
             "expected [32, 32, 32, 4].",
             "Batch once, after shuffling, and keep the last short batch (drop_remainder=False).")
    if x.dtype != np.float32 or x.min() < -1 or x.max() > 1 or x.min() >= 0:
        fail(exercise, f"images come out as {x.dtype} in [{x.min():.2f}, {x.max():.2f}]; expected "
             "float32 in [-1, 1].", "Map your normalize from Exercise 1 over the dataset.")
    if not np.array_equal(np.round((x.mean(axis=(1, 2, 3)) + 1) * 127.5), 2 * y):
        fail(exercise,
             "labels no longer match their images: were images and labels shuffled apart?",
             "Shuffle (image, label) pairs together: "
             "from_tensor_slices((images, labels)).shuffle(...).")
    if not np.array_equal(np.sort(y), np.arange(len(y))):
        fail(exercise, "one epoch does not show every example exactly once.")


def check_pipeline(make_pipeline):
    """Exercise 5: `make_pipeline(images, labels, batch_size=..., seed=...)`, a tf.data pipeline."""
    import tensorflow as tf

    exercise = "Exercise 5"
    labels = np.arange(100)
    images = np.repeat(2 * labels.astype(np.uint8), 16).reshape(100, 4, 4, 1)  # Image i: all 2i.
    dataset = make_pipeline(images, labels, batch_size=32, seed=0)
    if not isinstance(dataset, tf.data.Dataset):
        fail(exercise, f"expected a tf.data.Dataset; got {describe(dataset)}.")
    x, y, sizes = _epoch(dataset, exercise)
    _check_epoch(x, y, sizes, exercise)
    if np.array_equal(y, labels):
        fail(exercise, "the examples come in their original order: nothing was shuffled.",
             "Add .shuffle(len(images), seed=seed) before .batch().")
    if y[:32].max() < 60:
        fail(exercise,
             f"the first batch holds only examples 0..{y[:32].max()}: the shuffle buffer is "
             "smaller than the data, so the order stays nearly sorted.",
             "Use buffer_size=len(images).")
    again = make_pipeline(images, labels, batch_size=32, seed=0)
    if not np.array_equal(y, _epoch(again, exercise)[1]):
        fail(exercise, "two pipelines with seed=0 give different orders.",
             "Pass seed=seed to shuffle().")
    if np.array_equal(y, _epoch(dataset, exercise)[1]):
        fail(exercise, "epochs 1 and 2 see the examples in the same order; cache() after shuffle() "
             "freezes the first epoch's order.",
             "Cache before shuffling, and keep reshuffle_each_iteration=True.")
    passed("make_pipeline normalises, shuffles pairs reproducibly, reshuffles each epoch and "
           "batches.")
