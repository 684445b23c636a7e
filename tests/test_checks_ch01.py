"""The checks of chapter 01 against right answers (the solutions notebook's) and the typical
wrong ones, each of which must be rejected with the message that names its mistake."""

import numpy as np
import pytest

from dgm_course.checks import ExerciseError, ch01

# Exercise 1: normalisation.


def normalize(images):
    return images.astype(np.float32) / 127.5 - 1.0


def denormalize(x):
    return np.clip(np.round(127.5 * (np.asarray(x) + 1.0)), 0, 255).astype(np.uint8)


def test_normalize_solution_passes(capsys):
    ch01.check_normalize(normalize, denormalize)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda u: u.astype(np.float32) / 255.0, r"values lie in \[0, 1\], not \[-1, 1\]"),
        (lambda u: u * 2 / 255.0 - 1, "wraps around"),  # u * 2 stays uint8 and overflows.
        (lambda u: (u.astype(np.float32) - 128) / 128, "255 to 0.9922"),
        (lambda u: u / 127.5 - 1.0, "float64"),
        (lambda u: (u.astype(np.float32) / 127.5 - 1).reshape(-1), "shape"),
    ],
)
def test_normalize_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch01.check_normalize(wrong, denormalize)


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda x: (127.5 * (x + 1)).astype(np.uint8), r"truncated, so 1 becomes 0"),
        (lambda x: np.round(127.5 * (x + 1)), "expected uint8"),
        (lambda x: np.round(127.5 * (x + 1)).astype(np.uint8), "not clipped"),
        (lambda x: np.round(128 * (x + 1)).clip(0, 255).astype(np.uint8), "comes back as"),
    ],
)
def test_denormalize_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch01.check_normalize(normalize, wrong)


# Exercise 2: balanced labelled subsets.


def balanced_subset(labels, n_per_class, seed=0):
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    if n_per_class > counts.min():
        raise ValueError(f"class {classes[counts.argmin()]} has only {counts.min()} examples")
    chosen = [rng.choice(np.flatnonzero(labels == c), n_per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(chosen))


def first_n(labels, n_per_class, seed=0):
    return np.concatenate([np.flatnonzero(labels == c)[:n_per_class] for c in np.unique(labels)])


def test_balanced_subset_solution_passes(capsys):
    ch01.check_balanced_subset(balanced_subset)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda labels, n, seed=0: np.arange(4 * n), r"has \[.*\] examples of classes"),
        (lambda labels, n, seed=0: np.sort(np.random.default_rng(seed).choice(labels.size, 4 * n)),
         "appears more than once"),
        (lambda labels, n, seed=0: np.concatenate([
            np.random.default_rng(seed).choice(np.flatnonzero(labels == c), n) for c in range(4)]),
         "appears more than once"),
        (lambda labels, n, seed=0: balanced_subset(labels, n, np.random.randint(1 << 30)),
         "not reproducible"),
        (lambda labels, n, seed=0: balanced_subset(labels, n, 0), "seed is ignored"),
        (first_n, "seed is ignored"),
        (lambda labels, n, seed=0: labels[balanced_subset(labels, n, seed)], "appears more than once"),
        (lambda labels, n, seed=0: balanced_subset(labels, n, seed).astype(float), "integer indices"),
        (lambda labels, n, seed=0: np.append(balanced_subset(labels, n, seed)[1:], 40), "must lie in 0..39"),
    ],
)
def test_balanced_subset_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch01.check_balanced_subset(wrong)


def test_balanced_subset_must_refuse_too_large_n():
    def silent(labels, n_per_class, seed=0):
        rng = np.random.default_rng(seed)
        return np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:n_per_class] for c in range(4)])

    with pytest.raises(ExerciseError, match="class 3 has only 8 examples.*instead of raising ValueError"):
        ch01.check_balanced_subset(silent)


# Exercise 3: exact duplicates.


def find_exact_duplicates(images):
    first_copy, pairs = {}, []
    for index, image in enumerate(images):
        key = image.tobytes()
        if key in first_copy:
            pairs.append((first_copy[key], index))
        else:
            first_copy[key] = index
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def every_pair(images):
    flat = images.reshape(len(images), -1)
    return [(i, j) for i in range(len(flat)) for j in range(i + 1, len(flat))
            if np.array_equal(flat[i], flat[j])]


def consecutive_copies(images):
    last_copy, pairs = {}, []
    for index, image in enumerate(images):
        if image.tobytes() in last_copy:
            pairs.append((last_copy[image.tobytes()], index))
        last_copy[image.tobytes()] = index
    return pairs


def all_pairs(images, tolerance=0):
    flat = images.reshape(len(images), -1).astype(int)
    return [(i, j) for i in range(len(flat)) for j in range(len(flat))
            if i != j and np.abs(flat[i] - flat[j]).max() <= tolerance]


def test_exact_duplicates_solution_passes(capsys):
    ch01.check_exact_duplicates(find_exact_duplicates)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda x: np.concatenate([find_exact_duplicates(x), [[0, 0]]]), r"pair \(0, 0\) compares"),
        (all_pairs, r"both \(2, 5\) and \(5, 2\)"),
        (lambda x: find_exact_duplicates(x)[:, ::-1], r"has i > j"),
        (lambda x: [p for p in all_pairs(x, tolerance=1) if p[0] < p[1]], "near-duplicates, not exact"),
        (every_pair, r"\(5, 9\) pairs two later copies"),
        (consecutive_copies, r"\(5, 9\) pairs two later copies"),
        (lambda x: find_exact_duplicates(x)[1:], r"missed the pairs \[\(2, 5\)\]"),
        (lambda x: find_exact_duplicates(x) + [[0, 1]], r"not copies of one another"),
        (lambda x: np.concatenate([find_exact_duplicates(x)] * 2), "more than once"),
        (lambda x: find_exact_duplicates(x).ravel(), r"shape \(k, 2\)"),
    ],
)
def test_exact_duplicates_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch01.check_exact_duplicates(wrong)


@pytest.mark.slow
def test_exact_duplicates_rejects_a_quadratic_loop():
    def slow(images):
        time_left = 2.1  # Stands for the minutes a double loop takes on 2,000 images.
        if len(images) > 100:
            import time

            time.sleep(time_left)
        return find_exact_duplicates(images)

    with pytest.raises(ExerciseError, match="grows as N\\^2"):
        ch01.check_exact_duplicates(slow)


# Exercise 4: augmentation for digits.


def make_augmentation(seed=0, *, flip=False, rotation=0.05, fill_value=-1.0, seeded=True):
    import keras
    from keras import layers

    def seed_of(offset):
        return seed + offset if seeded else None

    fill = {"fill_mode": "constant", "fill_value": fill_value}
    stack = [layers.RandomFlip("horizontal", seed=seed_of(3))] if flip else []
    stack += [
        layers.RandomRotation(rotation, seed=seed_of(0), **fill),
        layers.RandomTranslation(0.1, 0.1, seed=seed_of(1), **fill),
        layers.RandomZoom(0.1, seed=seed_of(2), **fill),
    ]
    return keras.Sequential(stack)


def test_digit_augmentation_solution_passes(capsys):
    ch01.check_digit_augmentation(make_augmentation)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize(
    "wrong, match",
    [
        (lambda seed=0: make_augmentation(seed, flip=True), "flips turn digits into non-digits"),
        (lambda seed=0: make_augmentation(seed, rotation=0.5), "up to 180 degrees"),
        (lambda seed=0: make_augmentation(seed, fill_value=0.0), "background turned grey"),
        (lambda seed=0: make_augmentation(seed, seeded=False), "two calls with the same seed differ"),
        (lambda seed=0: make_augmentation(0), "seed argument is ignored"),
        (lambda seed=0: (lambda x, training=False: x[:, :, ::-1]), "mirror images"),
        (lambda seed=0: (lambda x, training=False: x), "nothing was augmented"),
        (lambda seed=0: (lambda x, training=False: 1.5 * x), r"values leave \[-1, 1\]"),
        (lambda seed=0: (lambda x, training=False: x.astype(np.float64)), "float32 images"),
    ],
)
def test_digit_augmentation_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch01.check_digit_augmentation(wrong)


# Exercise 5: a tf.data pipeline.


def make_pipeline(images, labels, *, batch_size, seed=0, cache_after_shuffle=False, buffer=None):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32) / 127.5 - 1.0, y))
    if not cache_after_shuffle:
        dataset = dataset.cache()
    dataset = dataset.shuffle(buffer or len(images), seed=seed, reshuffle_each_iteration=True)
    if cache_after_shuffle:
        dataset = dataset.cache()
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def shuffled_apart(images, labels, *, batch_size, seed=0):
    import tensorflow as tf

    x = tf.data.Dataset.from_tensor_slices(images).shuffle(len(images), seed=seed)
    y = tf.data.Dataset.from_tensor_slices(labels).shuffle(len(labels), seed=seed + 1)
    x = x.map(lambda image: tf.cast(image, tf.float32) / 127.5 - 1.0)
    return tf.data.Dataset.zip((x, y)).batch(batch_size)


def test_pipeline_solution_passes(capsys):
    ch01.check_pipeline(make_pipeline)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize(
    "wrong, match",
    [
        (shuffled_apart, "labels no longer match their images"),
        (lambda x, y, *, batch_size, seed=0: make_pipeline(x, y, batch_size=batch_size, seed=seed,
                                                           cache_after_shuffle=True), "same order"),
        (lambda x, y, *, batch_size, seed=0: make_pipeline(x, y, batch_size=batch_size, seed=seed,
                                                           buffer=8), "shuffle buffer is smaller"),
        (lambda x, y, *, batch_size, seed=0: make_pipeline(x, y, batch_size=batch_size, seed=seed,
                                                           buffer=1), "nothing was shuffled"),
        (lambda x, y, *, batch_size, seed=0: make_pipeline(x, y, batch_size=batch_size, seed=None),
         "two pipelines with seed=0"),
        (lambda x, y, *, batch_size, seed=0: make_pipeline(x, y, batch_size=batch_size, seed=seed)
         .unbatch().batch(batch_size, drop_remainder=True), r"\[32, 32, 32\]"),
        (lambda x, y, *, batch_size, seed=0: make_pipeline(x, y, batch_size=batch_size, seed=seed)
         .map(lambda a, b: ((a + 1) / 2, b)), r"expected float32 in \[-1, 1\]"),
        (lambda x, y, *, batch_size, seed=0: make_pipeline(x, y, batch_size=batch_size, seed=seed)
         .map(lambda a, b: a), "pair"),
        (lambda x, y, *, batch_size, seed=0: (x, y), "expected a tf.data.Dataset"),
    ],
)
def test_pipeline_mistakes_are_named(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        ch01.check_pipeline(wrong)


# Every check lets NotImplementedError, the unfinished exercise, pass through unchanged.


def not_done(*args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize(
    "call",
    [
        lambda: ch01.check_normalize(not_done, denormalize),
        lambda: ch01.check_normalize(normalize, not_done),
        lambda: ch01.check_balanced_subset(not_done),
        lambda: ch01.check_exact_duplicates(not_done),
        lambda: ch01.check_digit_augmentation(not_done),
        lambda: ch01.check_pipeline(not_done),
    ],
)
def test_not_implemented_passes_through(call):
    with pytest.raises(NotImplementedError) as info:
        call()
    assert type(info.value) is NotImplementedError


# The lecture's helpers answer the exercises the way the checks expect, so the two agree.


def test_the_course_helpers_pass_the_checks(capsys):
    from dgm_course import cleaning, preprocessing, splits

    ch01.check_normalize(preprocessing.normalize, preprocessing.denormalize)
    ch01.check_balanced_subset(lambda labels, n, seed=0: splits.balanced_indices(labels, n, seed=seed))
    ch01.check_exact_duplicates(lambda images: cleaning.find_duplicates(images, near=False).exact_pairs)
    ch01.check_digit_augmentation(lambda seed=0: preprocessing.augmentation("mnist", seed=seed))
    ch01.check_pipeline(lambda images, labels, *, batch_size, seed=0: preprocessing.make_dataset(
        images, labels, batch_size=batch_size, seed=seed))
    assert capsys.readouterr().out.count("✅") == 5
    with pytest.raises(ExerciseError, match="flips turn digits into non-digits"):
        ch01.check_digit_augmentation(lambda seed=0: preprocessing.augmentation("fashion_mnist", seed=seed))
