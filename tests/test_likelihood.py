"""dgm_course.likelihood: dynamic binarisation, the background model's perturbation and the
likelihood ratio, each against an independent reference."""

import itertools

import numpy as np
import pytest

from dgm_course import likelihood, losses


def raw_images(n=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 4, 4, 1)).astype(np.uint8)


def test_a_bernoulli_likelihood_sums_to_one_over_binary_images_only():
    # Why binarise: over all 2^4 binary 2x2 images, exp(log p(x)) sums to 1; over grey levels,
    # the same formula integrates to less than 1, so it is not a density of grey images.
    logits = np.array([[0.3, -1.2, 2.0, 0.0]], np.float32)
    binary = np.array(list(itertools.product([0.0, 1.0], repeat=4)), np.float32)
    total = np.exp(losses.bernoulli_log_likelihood(binary, np.repeat(logits, 16, axis=0))).sum()
    assert total == pytest.approx(1.0, abs=1e-5)
    grid = np.linspace(0.0, 1.0, 201, dtype=np.float32)  # one pixel, the integral over [0, 1]
    density = np.exp(losses.bernoulli_log_likelihood(grid[:, None], np.full((201, 1), 0.3,
                                                                          np.float32)))
    assert np.trapezoid(density, grid) < 0.95


@pytest.mark.parametrize("images", [np.full((2, 4, 4, 1), 0.5), np.zeros((0, 4, 4, 1), np.uint8),
                                    np.zeros((4, 4, 1), np.int64)])
def test_binarized_dataset_asks_for_raw_uint8_images(images):
    with pytest.raises(TypeError, match="uint8"):
        likelihood.binarized_dataset(images, batch_size=2, seed=0)


def _epochs(dataset, count):
    return [np.concatenate([np.asarray(batch[0] if isinstance(batch, tuple) else batch)
                            for batch in dataset]) for _ in range(count)]


def test_binarized_dataset_draws_anew_every_epoch_and_repeats_across_runs():
    images = raw_images()
    first = _epochs(likelihood.binarized_dataset(images, batch_size=16, seed=5, shuffle=False), 3)
    again = _epochs(likelihood.binarized_dataset(images, batch_size=16, seed=5, shuffle=False), 3)
    for epoch, repeat in zip(first, again):
        np.testing.assert_array_equal(epoch, repeat)
    assert not np.array_equal(first[0], first[1])  # dynamic: a new binarisation each epoch
    assert set(np.unique(first[0])) == {0.0, 1.0}
    # Over many epochs the mean is the grey level again.
    # E[x_b] = x / 255: over 150 epochs, within 5 standard errors of the grey level.
    many = np.stack(_epochs(likelihood.binarized_dataset(images, batch_size=64, seed=1,
                                                         shuffle=False), 150))
    p = images / 255.0
    assert np.all(np.abs(many.mean(axis=0) - p) < 5 * np.sqrt(p * (1 - p) / 150) + 1e-3)


def test_binarized_dataset_keeps_each_label_with_its_image():
    labels = np.arange(30)
    images = np.zeros((30, 4, 4, 1), np.uint8)
    images[labels % 2 == 1, 0, 0, 0] = 255  # odd labels: a pixel that always binarises to 1
    for x, y in likelihood.binarized_dataset(images, labels, batch_size=7, seed=0):
        np.testing.assert_array_equal(np.asarray(x)[:, 0, 0, 0], np.asarray(y) % 2)


def test_binarized_dataset_rejects_labels_of_another_length():
    with pytest.raises(ValueError, match="one label per image"):
        likelihood.binarized_dataset(raw_images(10), np.arange(9), batch_size=4, seed=0)


def test_perturbation_replaces_the_share_it_is_asked_to_with_fair_coins():
    images = np.zeros((400, 8, 8, 1), np.uint8)
    images[:200] = 255  # half all white, half all black: a changed pixel is easy to count
    [clean] = _epochs(likelihood.binarized_dataset(images, batch_size=400, seed=1, shuffle=False), 1)
    [noisy] = _epochs(likelihood.binarized_dataset(images, batch_size=400, seed=1, shuffle=False,
                                                   perturb_rate=0.2), 1)
    np.testing.assert_array_equal(clean, images / 255.0)
    # A replaced pixel keeps its value half the time: mu / 2 of the pixels change.
    assert np.mean(noisy != clean) == pytest.approx(0.1, abs=0.01)
    with pytest.raises(ValueError, match="strictly between 0"):
        likelihood.binarized_dataset(images, batch_size=4, seed=0, perturb_rate=1.5)


def test_likelihood_ratio_is_the_difference_and_checks_its_inputs():
    np.testing.assert_allclose(likelihood.likelihood_ratio([-80.0, -120.0], [-100.0, -110.0]),
                               [20.0, -10.0])
    with pytest.raises(ValueError, match="same images"):
        likelihood.likelihood_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        likelihood.likelihood_ratio([np.nan], [1.0])


def test_complexity_bits_orders_blank_strokes_and_noise_and_matches_a_png_file(tmp_path):
    from PIL import Image

    images = np.zeros((3, 28, 28, 1), np.float32)
    images[1, 5:20, 10:14] = 1.0  # a bar
    images[2] = np.random.default_rng(0).integers(0, 2, (28, 28, 1))  # coin flips
    bits = likelihood.complexity_bits(images)
    assert bits[0] < bits[1] < bits[2]
    path = tmp_path / "bar.png"  # the reference: the same image written to a PNG file
    Image.fromarray((images[1, ..., 0] * 255).astype(np.uint8)).save(path, optimize=True)
    assert bits[1] == 8 * path.stat().st_size
    np.testing.assert_array_equal(likelihood.complexity_bits((images * 255).astype(np.uint8)), bits)
    with pytest.raises(ValueError, match="binary"):
        likelihood.complexity_bits(images * 0.5)


def test_complexity_corrected_is_log2_likelihood_plus_bits():
    log_p = np.array([-100.0, -250.0])
    np.testing.assert_allclose(likelihood.complexity_corrected(log_p, [400.0, 900.0]),
                               log_p / np.log(2.0) + [400.0, 900.0])
    with pytest.raises(ValueError, match="`log_p` has 2 entries and `bits` 1"):
        likelihood.complexity_corrected([1.0, 2.0], [3.0])
