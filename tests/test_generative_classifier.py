"""Tests of dgm_course/generative_classifier.py: Bayes' rule against NumPy and at -1000 nats,
the class likelihoods of a conditional VAE against a NumPy Monte Carlo transcription and against
the closed form of a per-class linear-Gaussian model, the calibration error against hand-computed
cases, the rejection curve against sklearn's AUROC and the rank formula, and a smoke run of
benchmarks/bayes_classifier.py on random images (never the data in /work/shared)."""

import importlib.util
import math
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers, ops

from dgm_course import conditional_vae, vae
from dgm_course import generative_classifier as gc

K, LATENT = 3, 2


# --- Bayes' rule -------------------------------------------------------------------------------

def test_posterior_matches_numpy_and_sums_to_one():
    rng = np.random.default_rng(0)
    log_likelihoods, prior = rng.normal(-3.0, 2.0, (20, 4)), np.array([0.1, 0.2, 0.3, 0.4])
    joint = np.exp(log_likelihoods) * prior  # p(x | y) p(y), small enough to exponentiate
    posterior = gc.bayes_posterior(log_likelihoods, np.log(prior))
    np.testing.assert_allclose(posterior, joint / joint.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(gc.log_evidence(log_likelihoods, np.log(prior)),
                               np.log(joint.sum(axis=1)), rtol=1e-12)
    np.testing.assert_array_equal(gc.predict(log_likelihoods, np.log(prior)),
                                  posterior.argmax(axis=1))


def test_posterior_is_stable_at_minus_a_thousand_nats():
    log_likelihoods = np.array([[-1000.0, -1000.0 - math.log(3.0)], [-1500.0, -1000.0]])
    posterior = gc.bayes_posterior(log_likelihoods)  # exp(-1000) is 0 in float64
    np.testing.assert_allclose(posterior, [[0.75, 0.25], [0.0, 1.0]], atol=1e-15)
    # Shifting every class by the same amount shifts log p(x) and leaves p(y | x) alone.
    np.testing.assert_allclose(gc.log_evidence(log_likelihoods[:1]),
                               [-1000.0 + math.log(4.0 / 3.0) - math.log(2.0)], rtol=1e-14)
    np.testing.assert_allclose(gc.bayes_posterior(log_likelihoods - 5000.0), posterior)


def test_prior_shifts_the_decision():
    equal = np.zeros((1, 2))
    np.testing.assert_allclose(gc.bayes_posterior(equal, np.log([0.75, 0.25])), [[0.75, 0.25]])
    assert gc.predict(np.array([[-10.0, -10.5]]), np.log([0.2, 0.8]))[0] == 1


def test_log_prior_from_labels():
    np.testing.assert_allclose(np.exp(gc.log_prior_from_labels(np.array([0, 0, 1, 2]), 4)),
                               [0.5, 0.25, 0.25, 0.0])


@pytest.mark.parametrize("log_likelihoods, log_prior, error, match", [
    (np.zeros((3,)), None, ValueError, "dimensions"),
    (np.zeros((3, 1)), None, ValueError, "K >= 2"),
    (np.array([[0.0, np.nan]]), None, ValueError, "finite"),
    (np.zeros((2, 3)), np.log([0.5, 0.5]), ValueError, "3 classes"),
    (np.zeros((2, 2)), np.array([0.0, 0.0]), ValueError, "sums? to|normalised"),
    (np.zeros((2, 2), dtype=bool), None, TypeError, "dtype"),
])
def test_bayes_rule_rejects_bad_input(log_likelihoods, log_prior, error, match):
    with pytest.raises(error, match=match):
        gc.bayes_posterior(log_likelihoods, log_prior)


# --- Calibration -------------------------------------------------------------------------------

def test_ece_of_a_hand_computed_case():
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])
    # bins=10: one image per bin; |correct - confidence| = 0.1, 0.8, 0.3, 0.45.
    assert gc.expected_calibration_error(probabilities, labels, bins=10) == pytest.approx(0.4125)
    # bins=2: all four in (0.5, 1]: |3/4 - mean(0.9, 0.8, 0.7, 0.55)| = 0.0125.
    diagram = gc.reliability_diagram(probabilities, labels, bins=2)
    assert diagram.ece == pytest.approx(0.0125)
    np.testing.assert_array_equal(diagram.counts, [0, 4])
    assert np.isnan(diagram.accuracy[0]) and diagram.accuracy[1] == 0.75
    assert len(diagram.figure().axes) == 1


def test_ece_is_zero_when_calibrated_and_matches_a_loop():
    calibrated = np.tile([[0.75, 0.25]], (4, 1))
    assert gc.expected_calibration_error(calibrated, np.array([0, 0, 0, 1])) == pytest.approx(0.0)
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(5) * 0.3, size=500)
    labels = rng.integers(0, 5, 500)
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == labels
    expected = 0.0
    for low, high in zip(np.linspace(0, 1, 16)[:-1], np.linspace(0, 1, 16)[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            expected += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    assert gc.expected_calibration_error(probabilities, labels) == pytest.approx(expected)


@pytest.mark.parametrize("probabilities, labels, bins, error, match", [
    (np.array([[2.0, -1.0]]), np.array([0]), 15, ValueError, "summing to 1"),
    (np.array([[0.5, 0.5]]), np.array([0, 1]), 15, ValueError, "one true label per image"),
    (np.array([[0.5, 0.5]]), np.array([2]), 15, ValueError, "0..1"),
    (np.array([[0.5, 0.5]]), np.array([0.0]), 15, TypeError, "dtype"),
    (np.array([[0.5, 0.5]]), np.array([0]), 0, ValueError, "bins"),
])
def test_calibration_rejects_bad_input(probabilities, labels, bins, error, match):
    with pytest.raises(error, match=match):
        gc.expected_calibration_error(probabilities, labels, bins=bins)


# --- Rejection ---------------------------------------------------------------------------------

def test_rejection_curve_against_sklearn_and_the_rank_formula():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    known = np.round(rng.normal(-100.0, 10.0, 300))  # Rounded: many ties.
    unknown = np.round(rng.normal(-120.0, 15.0, 200))
    curve = gc.rejection_curve(known, unknown)
    truth = np.r_[np.zeros(len(known)), np.ones(len(unknown))]  # 1: unknown, to be refused
    assert curve.auroc == pytest.approx(sklearn_metrics.roc_auc_score(truth, -np.r_[known, unknown]))
    # AUROC = P(known > unknown) + P(known = unknown) / 2 (Mann-Whitney).
    difference = known[:, None] - unknown[None, :]
    assert curve.auroc == pytest.approx(np.mean(difference > 0) + 0.5 * np.mean(difference == 0))
    assert (curve.unknown_refused[0], curve.known_kept[0]) == (0.0, 1.0)
    assert (curve.unknown_refused[-1], curve.known_kept[-1]) == (1.0, 0.0)
    assert np.all(np.diff(curve.unknown_refused) >= 0) and np.all(np.diff(curve.known_kept) <= 0)
    kept_95 = curve.known_kept >= 0.95
    threshold = curve.thresholds[kept_95].max()
    assert np.mean(known >= threshold) >= 0.95
    assert curve.refused_at(0.95) == pytest.approx(np.mean(unknown < threshold))
    assert len(curve.figure().axes) == 1


def test_separated_scores_give_auroc_one():
    curve = gc.rejection_curve(np.array([-10.0, -11.0]), np.array([-50.0, -60.0, -70.0]))
    assert curve.auroc == 1.0 and curve.refused_at(1.0) == 1.0


@pytest.mark.parametrize("known, unknown, match", [
    (np.array([]), np.array([1.0]), "non-empty"),
    (np.array([1.0, np.inf]), np.array([1.0]), "finite"),
    (np.array([1.0]), np.zeros((2, 2)), "dimensions"),
])
def test_rejection_curve_rejects_bad_input(known, unknown, match):
    with pytest.raises(ValueError, match=match):
        gc.rejection_curve(known, unknown)


# --- Class likelihoods of a conditional VAE ----------------------------------------------------

@pytest.fixture(scope="module")
def tiny_cvae():
    """A width-8 conditional VAE for (28, 28, 1) images with random weights, its label
    embeddings scaled up so that the classes give different likelihoods. (That the columns are
    in class order is checked exactly on the linear-Gaussian model below.)"""
    keras.utils.set_random_seed(0)
    model = conditional_vae.ConditionalVAE(
        conditional_vae.build_conditional_encoder(num_classes=K, latent_dim=LATENT, width=8),
        conditional_vae.build_conditional_decoder(num_classes=K, latent_dim=LATENT, width=8),
        num_classes=K, likelihood="bernoulli", seed=0)
    rng = np.random.default_rng(0)
    for network in (model.encoder, model.decoder):
        embedding = network.get_layer("label_embedding")
        embedding.set_weights([rng.normal(0.0, 5.0, embedding.get_weights()[0].shape)])
    return model


def _images(n, seed=0):
    return (np.random.default_rng(seed).random((n, 28, 28, 1)) < 0.3).astype(np.float32)


def _numpy_bound(model, x, label, k, draws, rng):
    """`draws` independent L_k(x | label) for one image, NumPy except the two networks."""
    rows = k * draws
    x_rows, labels = np.repeat(x[None], rows, axis=0), np.full(rows, label, np.int32)
    z_mean, z_log_var = (np.asarray(t, np.float64)
                         for t in model.encoder.predict([x_rows, labels], verbose=0))
    z = z_mean + np.exp(0.5 * z_log_var) * rng.standard_normal(z_mean.shape)
    logits = np.asarray(model.decoder.predict([z.astype(np.float32), labels], verbose=0),
                        np.float64).reshape(rows, -1)
    # log p(x | z, y) = sum(x * l - log(1 + exp(l)))
    log_px = np.sum(x_rows.reshape(rows, -1) * logits - np.logaddexp(0.0, logits), axis=1)
    log_pz = -0.5 * np.sum(np.log(2 * np.pi) + z**2, axis=1)
    log_q = -0.5 * np.sum(np.log(2 * np.pi) + z_log_var + (z - z_mean) ** 2 / np.exp(z_log_var),
                          axis=1)
    log_w = (log_px + log_pz - log_q).reshape(draws, k)
    peak = log_w.max(axis=1, keepdims=True)
    return peak[:, 0] + np.log(np.mean(np.exp(log_w - peak), axis=1))  # (draws,)


def test_shapes_dtype_and_seeds(tiny_cvae):
    x = _images(5)
    first = gc.class_log_likelihoods(tiny_cvae, x, k=2, seed=3, batch_size=2, verbose=False)
    assert first.shape == (5, K) and first.dtype == np.float64 and np.all(np.isfinite(first))
    again = gc.class_log_likelihoods(tiny_cvae, x, k=2, seed=3, batch_size=2, verbose=False)
    np.testing.assert_array_equal(first, again)
    other = gc.class_log_likelihoods(tiny_cvae, x, k=2, seed=4, batch_size=2, verbose=False)
    assert not np.allclose(first, other)


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 4])
def test_bounds_match_a_numpy_monte_carlo_transcription(tiny_cvae, k, monkeypatch):
    monkeypatch.setattr(gc, "_ROWS_PER_CALL", 2 * K * 100)  # Several chunks of samples too.
    draws, x = 300, _images(2, seed=1)
    # Each image repeated `draws` times: `draws` independent estimates per image and class.
    estimates = gc.class_log_likelihoods(tiny_cvae, np.repeat(x, draws, axis=0), k=k, seed=0,
                                         batch_size=100, verbose=False).reshape(2, draws, K)
    rng = np.random.default_rng(5)
    for image in range(2):
        for label in range(K):
            reference = _numpy_bound(tiny_cvae, x[image], label, k, draws, rng)
            ours = estimates[image, :, label]
            error = 4 * math.sqrt((ours.var() + reference.var()) / draws)
            assert abs(ours.mean() - reference.mean()) < error + 1e-3, (image, label)


def _linear_gaussian_cvae(models, *, mean_offset=0.0):
    """A ConditionalVAE of the 1-D models x | z, y ~ N(a_y z + b_y, s^2) (one shared s), whose
    encoder is each class's exact posterior, its mean shifted by `mean_offset`."""
    x, labels = keras.Input((1,)), keras.Input((), dtype="int32")
    encoder_table = layers.Embedding(len(models), 3)
    params = encoder_table(labels)  # (batch, 3): gain, offset, log-variance
    encoder = keras.Model([x, labels], [params[:, :1] * x + params[:, 1:2],
                                        params[:, 2:3] + 0.0 * x])
    z = keras.Input((1,))
    decoder_table = layers.Embedding(len(models), 2)
    weights = decoder_table(labels)  # (batch, 2): a, b
    decoder = keras.Model([z, labels], weights[:, :1] * z + weights[:, 1:2])
    rows = []
    for model in models:
        mean_at_0, log_var = model.posterior(np.array([0.0]))
        gain = model.a / (model.a**2 + model.s**2)
        rows.append([gain, mean_at_0[0] + mean_offset, log_var[0]])
    encoder_table.set_weights([np.array(rows, np.float32)])
    decoder_table.set_weights([np.array([[m.a, m.b] for m in models], np.float32)])
    cvae = conditional_vae.ConditionalVAE(encoder, decoder, num_classes=len(models),
                                          likelihood="gaussian")
    cvae.decoder_log_var.assign(np.full((1,), 2 * math.log(models[0].s), np.float32))
    return cvae


MODELS = [vae.LinearGaussian(1.5, 0.3, 0.5), vae.LinearGaussian(-0.8, 2.0, 0.5),
          vae.LinearGaussian(3.0, -1.0, 0.5)]


def test_exact_posterior_gives_the_exact_log_likelihood_of_every_class():
    x = np.array([[-2.0], [0.3], [1.7]], np.float32)
    exact = np.stack([model.log_px(x[:, 0].astype(np.float64)) for model in MODELS], axis=1)
    for k in (1, 3):  # With q = p(z | x, y) every weight equals p(x | y): no variance, no gap.
        bounds = gc.class_log_likelihoods(_linear_gaussian_cvae(MODELS), x, k=k, seed=0,
                                          verbose=False)
        np.testing.assert_allclose(bounds, exact, atol=2e-4)


@pytest.mark.slow
def test_more_samples_raise_the_bound_towards_the_exact_log_likelihood():
    model, x = _linear_gaussian_cvae(MODELS, mean_offset=0.3), np.full((2000, 1), 0.7, np.float32)
    elbo = np.array([m.elbo(0.7, m.posterior(np.array([0.7]))[0][0] + 0.3,
                            m.posterior(np.array([0.7]))[1][0]) for m in MODELS])
    exact = np.array([m.log_px(0.7) for m in MODELS])
    draws = [gc.class_log_likelihoods(model, x, k=k, seed=k, batch_size=500, verbose=False)
             for k in (1, 10, 200)]  # 2000 draws of L_k for each k and class
    means = [bound.mean(axis=0) for bound in draws]
    # L_1 is the ELBO (closed form), within 4 standard errors of the Monte Carlo mean.
    assert np.all(np.abs(means[0] - elbo) < 4 * draws[0].std(axis=0) / math.sqrt(len(x)))
    assert np.all(means[0] < means[1]) and np.all(means[1] < means[2])
    assert np.all(means[2] <= exact + 1e-3) and np.all(exact - means[2] < 0.2 * (exact - elbo))


@pytest.mark.parametrize("model, images, options, error, match", [
    ("linear", np.zeros((2, 28, 28, 1), np.float32), {}, TypeError, "ConditionalVAE"),
    ("tiny", np.zeros((2, 28, 28), np.float32), {}, ValueError, "image shape"),
    ("tiny", np.zeros((2, 28, 28, 1), np.uint8), {}, TypeError, "float"),
    ("tiny", np.full((2, 28, 28, 1), np.nan, np.float32), {}, ValueError, "finite"),
    ("tiny", np.zeros((2, 28, 28, 1), np.float32), {"k": 0}, ValueError, "`k`"),
    ("tiny", np.zeros((2, 28, 28, 1), np.float32), {"batch_size": 0}, ValueError, "batch_size"),
])
def test_class_log_likelihoods_rejects_bad_input(tiny_cvae, model, images, options, error, match):
    model = tiny_cvae if model == "tiny" else vae.LinearGaussian().as_vae()
    with pytest.raises(error, match=match):
        gc.class_log_likelihoods(model, images, seed=0, verbose=False, **options)


@pytest.mark.slow
def test_benchmark_quick_run_prints_both_tables():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bayes_classifier.py"
    spec = importlib.util.spec_from_file_location("bayes_classifier", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    rng = np.random.default_rng(0)

    def images(n):
        return rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)

    arrays = (images(64), np.arange(64) % 10, images(20), np.arange(20) % 10, images(20))
    text = benchmark.run(arrays, benchmark.parse(["--quick"]))
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    names = [row[0].strip() for row in rows]
    assert names == ["classifier", "Bayes, conditional VAE, ELBO (k = 1)",
                     "Bayes, conditional VAE, importance-weighted, k = 2",
                     "discriminative CNN (1 epoch)", "score", "log p(x), ELBO (k = 1)",
                     "log p(x), importance-weighted, k = 2",
                     "largest softmax probability, discriminative CNN (1 epoch)"], text
    assert all(row[2].strip().endswith("%") for row in rows[1:4]), text
    assert all(0.0 <= float(row[2]) <= 1.0 for row in rows[5:]), text
