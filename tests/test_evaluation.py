"""dgm_course.evaluation and feature_space: the Frechet distance against closed forms, the TTUR
code's scipy.linalg.sqrtm and large Gaussian samples; KID's MMD^2 against NumPy loops, and its
bias against the V-statistic's; precision and recall against brute force and on clusters with
known answers; the Inception Score against the paper's code; CAS on a tiny dataset; the feature
extractors (InceptionV3 replaced by a stand-in: its weights need the internet); clear errors."""

import os
import tracemalloc
from pathlib import Path

import keras
import numpy as np
import pytest
from scipy import linalg
from scipy.spatial.distance import cdist

from dgm_course import evaluation, feature_space, metrics

RNG = np.random.default_rng(0)


def random_covariance(d, rng, rank=None):
    """A random symmetric positive (semi-)definite (d, d) matrix of the given rank."""
    factor = rng.normal(size=(d, rank or d))
    return factor @ factor.T / d + (0 if rank else 0.1 * np.eye(d))


def ttur_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """The TTUR code's calculate_frechet_distance (Heusel et al.), transcribed."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


# ---- FID ----

def test_identical_sets_give_fid_zero():
    features = RNG.normal(size=(500, 32)) @ RNG.normal(size=(32, 32)) + 3.0
    assert evaluation.fid(features, features) == pytest.approx(0, abs=1e-6)
    # Fewer samples than dimensions and dead ReLU units: singular covariances, still 0.
    singular = np.maximum(RNG.normal(size=(20, 64)), 0)
    singular[:, :10] = 0
    assert evaluation.fid(singular, singular) == pytest.approx(0, abs=1e-6)


def test_frechet_distance_of_commuting_covariances_is_the_closed_form():
    # Diagonal, or diagonal in the same rotated basis Q: sum_i (sqrt(a_i) - sqrt(b_i))^2.
    d = 6
    mu1, mu2 = RNG.normal(size=d), RNG.normal(size=d)
    a, b = RNG.uniform(0.1, 4, d), RNG.uniform(0.1, 4, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    q, _ = np.linalg.qr(RNG.normal(size=(d, d)))
    assert evaluation.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(
        expected, rel=1e-12)
    assert evaluation.frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2,
                                       q @ np.diag(b) @ q.T) == pytest.approx(expected, rel=1e-10)
    assert evaluation.frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2)) == 4.0


def test_frechet_distance_matches_the_ttur_code():
    d = 16
    mu1, mu2 = RNG.normal(size=d), RNG.normal(size=d)
    sigma1, sigma2 = random_covariance(d, RNG), random_covariance(d, RNG)
    expected = ttur_frechet_distance(mu1, sigma1, mu2, sigma2)
    assert evaluation.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected,
                                                                                  rel=1e-9)


def test_frechet_distance_of_singular_covariances_matches_eigenvalues_of_the_product():
    # Tr (S1 S2)^(1/2) = sum_i sqrt(lambda_i(S1 S2)): S1 S2 has real eigenvalues >= 0.
    d = 12
    sigma1, sigma2 = random_covariance(d, RNG, rank=4), random_covariance(d, RNG, rank=7)
    eigenvalues = np.clip(np.linalg.eigvals(sigma1 @ sigma2).real, 0, None)
    expected = np.trace(sigma1) + np.trace(sigma2) - 2 * np.sum(np.sqrt(eigenvalues))
    result = evaluation.frechet_distance(np.zeros(d), sigma1, np.zeros(d), sigma2)
    assert np.isfinite(result) and result == pytest.approx(expected, rel=1e-6)


def test_fid_of_large_gaussian_samples_approaches_the_analytic_distance():
    d, n = 4, 200_000
    mu1, mu2 = RNG.normal(size=d), RNG.normal(size=d)
    sigma1, sigma2 = random_covariance(d, RNG), random_covariance(d, RNG)
    analytic = evaluation.frechet_distance(mu1, sigma1, mu2, sigma2)
    real = RNG.multivariate_normal(mu1, sigma1, n)
    generated = RNG.multivariate_normal(mu2, sigma2, n)
    assert analytic > 1 and evaluation.fid(real, generated) == pytest.approx(analytic, rel=0.01)


# ---- KID ----

def numpy_mmd2(x, y, unbiased):
    """MMD^2 with k(a, b) = (a . b / d + 1)^3, written out as loops over the pairs."""
    d = x.shape[1]

    def mean_kernel(a, b, skip_diagonal):
        values = [(a[i] @ b[j] / d + 1) ** 3 for i in range(len(a)) for j in range(len(b))
                  if not (skip_diagonal and i == j)]
        return np.mean(values)

    return (mean_kernel(x, x, unbiased) + mean_kernel(y, y, unbiased)
            - 2 * mean_kernel(x, y, False))


@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd2_matches_numpy_loops(unbiased):
    x, y = RNG.normal(size=(7, 3)), RNG.normal(0.5, 1.2, size=(9, 3))
    assert evaluation.mmd2(x, y, unbiased=unbiased) == pytest.approx(numpy_mmd2(x, y, unbiased),
                                                                     rel=1e-12)


def test_kid_averages_mmd2_over_seeded_subsets():
    real, generated = RNG.normal(size=(60, 5)), RNG.normal(0.3, 1, size=(80, 5))
    rng = np.random.default_rng(4)
    expected = [evaluation.mmd2(real[rng.choice(60, 25, replace=False)],
                                generated[rng.choice(80, 25, replace=False)]) for _ in range(6)]
    result = evaluation.kid(real, generated, subsets=6, subset_size=25, seed=4)
    assert result.mean == pytest.approx(np.mean(expected), rel=1e-12)
    assert result.std == pytest.approx(np.std(expected), rel=1e-12)
    assert evaluation.kid(real, generated, subsets=6, subset_size=25, seed=4) == result
    assert evaluation.kid(real, generated, subsets=6, subset_size=25, seed=5) != result
    # A subset larger than a set is capped at its size: every subset is then the whole sets.
    assert evaluation.kid(real, real, subset_size=1000).std == pytest.approx(0, abs=1e-12)


def test_identical_sets_give_kid_close_to_zero():
    # The very same m samples on both sides: the unbiased MMD^2 leaves out the pairs i = j
    # within a set but not across, so it is -2 (mean_i k(x_i, x_i) - mean_(i!=j) k(x_i, x_j)) / m,
    # minus the V-statistic's bias: close to 0, shrinking as 1 / m.
    results = {}
    for m in (100, 400):
        features = RNG.normal(size=(m, 16))
        kernel = (features @ features.T / 16 + 1) ** 3
        off_diagonal = (kernel.sum() - np.trace(kernel)) / (m * (m - 1))
        results[m] = evaluation.kid(features, features, subsets=3).mean
        assert results[m] == pytest.approx(-2 * (np.mean(np.diag(kernel)) - off_diagonal) / m,
                                           rel=1e-9)
    assert 3 < results[100] / results[400] < 5
    assert abs(results[400]) < 0.05 * evaluation.kid(features, features + 0.5, subsets=3).mean


def test_kid_is_unbiased_and_the_v_statistic_is_not():
    # Two independent samples of the same Gaussian: the true MMD^2 is 0.
    def estimates(m, unbiased, repeats=300):
        rng = np.random.default_rng(m)
        return np.array([evaluation.mmd2(rng.normal(size=(m, 8)), rng.normal(size=(m, 8)),
                                         unbiased=unbiased) for _ in range(repeats)])

    for m in (20, 80):
        unbiased = estimates(m, True)
        assert abs(unbiased.mean()) < 3 * unbiased.std() / np.sqrt(len(unbiased))
    biased_small, biased_large = estimates(20, False).mean(), estimates(80, False).mean()
    assert biased_small > 20 * estimates(20, True).std() / np.sqrt(300)  # Far from 0.
    assert 3 < biased_small / biased_large < 5  # The bias shrinks as 1 / m: 4x samples, 1/4.
    assert estimates(80, True).std() < 0.5 * estimates(20, True).std()  # So does the spread.


# ---- Precision and recall ----

def brute_force_precision_recall(real, generated, k):
    """Kynkaanniemi et al.'s definition with every distance computed by SciPy."""
    def inside(queries, points):
        radii = np.sort(cdist(points, points), axis=1)[:, k]  # Column 0: the point itself.
        return np.mean(np.any(cdist(queries, points) <= radii[None, :], axis=1))

    return inside(generated, real), inside(real, generated)


@pytest.mark.parametrize("k, batch_size", [(3, 1000), (1, 7), (5, 13)])
def test_precision_recall_matches_brute_force(k, batch_size):
    real, generated = RNG.normal(size=(60, 4)), RNG.normal(0.7, 1.3, size=(50, 4))
    result = evaluation.precision_recall(real, generated, k=k, batch_size=batch_size)
    assert result == pytest.approx(brute_force_precision_recall(real, generated, k), abs=1e-12)
    assert 0 < result.precision < 1 and 0 < result.recall < 1


def test_precision_recall_extremes_and_half_the_modes():
    real = RNG.normal(size=(300, 8))
    assert evaluation.precision_recall(real, real) == (1.0, 1.0)
    assert evaluation.precision_recall(real, real + 100.0) == (0.0, 0.0)
    # Ten far-apart clusters in the plane; the generator draws only five, twice as often.
    centres = 20.0 * np.stack(np.meshgrid(np.arange(5), np.arange(2)), axis=-1).reshape(10, 2)
    real = centres[np.arange(2000) % 10] + RNG.normal(size=(2000, 2))
    generated = centres[np.arange(2000) % 5] + RNG.normal(size=(2000, 2))
    precision, recall = evaluation.precision_recall(real, generated)
    assert precision > 0.95 and recall == pytest.approx(0.5, abs=0.03)


@pytest.mark.slow
def test_precision_recall_of_10000_samples_fits_in_memory():
    real, generated = RNG.normal(size=(10_000, 8)), RNG.normal(0.1, 1, size=(10_000, 8))
    tracemalloc.start()
    result = evaluation.precision_recall(real, generated)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 300e6  # One full 10,000 x 10,000 float64 matrix alone is 800 MB.
    assert 0.8 < result.precision <= 1 and 0.8 < result.recall <= 1


# ---- Inception Score ----

def paper_inception_score(predictions, splits):
    """The Inception Score as in Salimans et al.'s code (openai/improved-gan), transcribed."""
    scores = []
    for i in range(splits):
        part = predictions[(i * predictions.shape[0] // splits):
                           ((i + 1) * predictions.shape[0] // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return np.mean(scores), np.std(scores)


def test_inception_score_extremes():
    k = 10
    confident_uniform = np.eye(k)[np.arange(1000) % k]  # Sure of each image, classes even.
    assert evaluation.inception_score(confident_uniform) == pytest.approx((k, 0), abs=1e-12)
    same = np.tile(RNG.dirichlet(np.ones(k)), (500, 1))  # Every image gets the same p(y|x).
    assert evaluation.inception_score(same, splits=5) == pytest.approx((1, 0), abs=1e-12)
    one_class = np.eye(k)[np.zeros(100, int)]  # Mode collapse onto one class.
    assert evaluation.inception_score(one_class).mean == pytest.approx(1, abs=1e-12)


@pytest.mark.parametrize("n, splits", [(1000, 10), (1003, 10), (77, 3)])
def test_inception_score_matches_the_papers_code(n, splits):
    probabilities = RNG.dirichlet(np.full(10, 0.3), size=n)
    result = evaluation.inception_score(probabilities.astype(np.float32), splits=splits)
    expected = paper_inception_score(probabilities.astype(np.float32).astype(np.float64),
                                     splits)
    assert result == pytest.approx(expected, rel=1e-9)
    assert 1 < result.mean < 10


# ---- Classification Accuracy Score ----

def bars(n, seed):
    """8x8 images of 8 classes: class k lights row k; noise added."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 8, n)
    images = np.full((n, 8, 8, 1), -1.0)
    images[np.arange(n), labels] = 1.0
    return np.clip(images + rng.normal(0, 0.4, images.shape), -1, 1).astype("float32"), labels


@pytest.mark.slow
def test_classification_accuracy_score_on_a_tiny_case():
    train, test = bars(512, seed=0), bars(400, seed=1)
    good = evaluation.classification_accuracy_score(train, test, epochs=2, num_classes=8)
    assert good.accuracy > 0.9 and len(good.class_accuracies) == 8
    counts = np.bincount(test[1], minlength=8)
    assert np.dot(good.class_accuracies, counts) / 400 == pytest.approx(good.accuracy)
    # Shuffled labels teach nothing: each row gets the label most often shuffled onto it.
    shuffled = (train[0], np.random.default_rng(2).permutation(train[1]))
    chance = evaluation.classification_accuracy_score(shuffled, test, epochs=2, num_classes=8)
    assert chance.accuracy < 0.4  # Chance: 1/8.
    seen = test[1] < 7  # No real image of class 7: its accuracy is NaN.
    missing = evaluation.classification_accuracy_score(train, (test[0][seen], test[1][seen]),
                                                       epochs=1, num_classes=8)
    assert np.isnan(missing.class_accuracies[7]) and not np.isnan(missing.accuracy)


# ---- Feature extractors ----

def known_model():
    """(4, 4, 1) -> relu(flatten(x) @ W + b) (3 features) -> 2 logits, with known weights."""
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(3, activation="relu", name="hidden"),
                              keras.layers.Dense(2, name="logits")])
    weights = [RNG.normal(size=(16, 3)).astype("float32"), np.float32([0.1, -0.2, 0.3])]
    model.get_layer("hidden").set_weights(weights)
    return model, weights


def test_feature_extractor_reads_the_penultimate_layer_in_batches(capsys):
    model, (w, b) = known_model()
    images = RNG.uniform(-1, 1, size=(10, 4, 4, 1)).astype("float32")
    expected = np.maximum(images.reshape(10, 16) @ w + b, 0)
    features = feature_space.feature_extractor(model, batch_size=3, show_progress=True)(images)
    assert features.dtype == np.float64 and features.shape == (10, 3)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    assert "features" in capsys.readouterr().err  # The progress bar.
    by_name = feature_space.feature_extractor(model, layer="flat")(images)
    np.testing.assert_allclose(by_name, images.reshape(10, 16), atol=0)
    assert evaluation.feature_extractor(model, layer=-1)(images).shape == (10, 2)


def test_reference_classifier_features_are_the_128_units_before_the_logits():
    classifier = metrics.reference_classifier((28, 28, 1), seed=0)
    images = RNG.uniform(-1, 1, (6, 28, 28, 1)).astype("float32")
    features = evaluation.feature_extractor(classifier)(images)
    assert features.shape == (6, 128) and np.all(features >= 0)  # ReLU units.
    kernel, bias = classifier.layers[-1].get_weights()  # The logits are a Dense on them.
    np.testing.assert_allclose(features @ kernel + bias, classifier.predict(images, verbose=0),
                               rtol=1e-4, atol=1e-5)


def fake_inception(calls):
    """A stand-in for keras.applications.InceptionV3: the centre pixel's 3 channels."""
    def build(**kwargs):
        calls.append(kwargs)
        return keras.Sequential([keras.Input((299, 299, 3)), keras.layers.Cropping2D(149),
                                 keras.layers.Flatten()])
    return build


def test_inception_features_resize_and_tile_the_images(monkeypatch):
    calls = []
    monkeypatch.setattr(keras.applications, "InceptionV3", fake_inception(calls))
    features = feature_space.feature_extractor("inception", batch_size=2)
    assert calls == [{"weights": "imagenet", "include_top": False, "pooling": "avg",
                      "input_shape": (299, 299, 3)}]
    grey = np.float32([-1.0, 0.25, 0.5])[:, None, None, None] * np.ones((3, 28, 28, 1), "f")
    np.testing.assert_allclose(features(grey), np.repeat(grey[:, 0, 0], 3, axis=1), atol=1e-6)
    colour = np.ones((1, 32, 32, 3), "float32") * np.float32([0.1, -0.4, 0.9])
    np.testing.assert_allclose(features(colour), [[0.1, -0.4, 0.9]], atol=1e-6)


def test_inception_offline_says_so_and_points_to_the_default(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...")

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    with pytest.raises(RuntimeError, match="could not be downloaded") as caught:
        feature_space.feature_extractor("inception")
    assert "train_reference_classifier" in str(caught.value)


INCEPTION_WEIGHTS = (Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "models"
                     / "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")


@pytest.mark.skipif(not INCEPTION_WEIGHTS.exists(), reason="InceptionV3 weights not downloaded")
def test_real_inception_features_where_the_weights_are_at_hand():
    images = RNG.uniform(-1, 1, (2, 28, 28, 1)).astype("float32")
    features = feature_space.feature_extractor("inception")(images)
    assert features.shape == (2, 2048) and np.all(np.isfinite(features))


def test_feature_extractor_errors(monkeypatch):
    model, _ = known_model()
    with pytest.raises(TypeError, match="keras.Model or the string 'inception'"):
        feature_space.feature_extractor("resnet")
    with pytest.raises(ValueError, match="hidden"):  # The message lists the layers.
        feature_space.feature_extractor(model, layer="no_such_layer")
    with pytest.raises(ValueError, match="layer 7"):
        feature_space.feature_extractor(model, layer=7)
    with pytest.raises(ValueError, match="layer` must be None"):
        feature_space.feature_extractor("inception", layer="mixed10")
    features = feature_space.feature_extractor(model)
    with pytest.raises(ValueError, match=r"\(4, 4, 1\)"):
        features(np.zeros((2, 8, 8, 1), "float32"))
    with pytest.raises(TypeError, match="normalize"):
        features(np.zeros((2, 4, 4, 1), "uint8"))
    monkeypatch.setattr(keras.applications, "InceptionV3", fake_inception([]))
    with pytest.raises(ValueError, match="greyscale or RGB"):
        feature_space.feature_extractor("inception")(np.zeros((2, 8, 8, 2), "float32"))


# ---- Bad input ----

GOOD = RNG.normal(size=(10, 3))


@pytest.mark.parametrize("call, error, words", [
    (lambda: evaluation.fid(GOOD, GOOD[:, :2]), ValueError, "same feature dimension"),
    (lambda: evaluation.fid(GOOD[:1], GOOD), ValueError, "1 samples .* at least 2"),
    (lambda: evaluation.fid(GOOD[:, 0], GOOD), ValueError, "2 dimensions"),
    (lambda: evaluation.fid(np.full((4, 3), np.nan), GOOD), ValueError, "NaN"),
    (lambda: evaluation.fid(GOOD.astype(str), GOOD), TypeError, "dtype"),
    (lambda: evaluation.frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3)),
     ValueError, "sigma1` must be a finite"),
    (lambda: evaluation.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)),
     ValueError, "same dimension"),
    (lambda: evaluation.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), [[1, 1], [0, 1]]),
     ValueError, "symmetric"),
    (lambda: evaluation.kid(GOOD, GOOD, subsets=0), ValueError, "subsets"),
    (lambda: evaluation.kid(GOOD, GOOD, subset_size=1), ValueError, "subset_size"),
    (lambda: evaluation.kid(GOOD, GOOD, seed=0.5), TypeError, "seed"),
    (lambda: evaluation.mmd2(GOOD[:1], GOOD), ValueError, "MMD"),
    (lambda: evaluation.precision_recall(GOOD, GOOD[:3], k=3), ValueError,
     "`generated` has 3 samples .* k=3 nearest neighbours needs at least 4"),
    (lambda: evaluation.precision_recall(GOOD, GOOD, k=0), ValueError, "`k` must be at least 1"),
    (lambda: evaluation.inception_score(GOOD), ValueError, "softmax"),
    (lambda: evaluation.inception_score(np.eye(3)[[0, 1]], splits=3), ValueError,
     "splits` must be at most 2"),
    (lambda: evaluation.inception_score(np.eye(3, dtype=int)), TypeError, "softmax"),
    (lambda: evaluation.classification_accuracy_score(np.zeros((2, 8, 8, 1)), bars(4, 0)),
     TypeError, "pair"),
    (lambda: evaluation.classification_accuracy_score(bars(4, 0), (np.zeros((2, 6, 6, 1)),
                                                                   [0, 1])),
     ValueError, "same shape"),
    (lambda: evaluation.classification_accuracy_score(bars(4, 0), bars(4, 1), num_classes=2),
     ValueError, r"0\.\.1"),
])
def test_bad_input_is_explained(call, error, words):
    with pytest.raises(error, match=words):
        call()
