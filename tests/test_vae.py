"""vae.VAE: fit() and evaluate() on one batch, trackers, seeds, beta, and the importance-weighted
bound against the exact log p(x) of a linear-Gaussian model written as a VAE."""

import math

import keras
import numpy as np
import pytest

from dgm_course import vae
from dgm_course.environment import set_seed

# A linear-Gaussian latent model: z ~ N(0, 1), x | z ~ N(a z + b, s^2), so that
# p(x) = N(b, a^2 + s^2) and p(z | x) = N(v a (x - b) / s^2, v) with v = 1 / (1 + a^2 / s^2).
A, B, S = 1.5, 0.3, 0.5


def _points(n=64, seed=0):
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, n)
    return np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32) * 2


def _binary(n=64, seed=0):
    return (np.random.default_rng(seed).uniform(size=(n, 16)) < 0.3).astype(np.float32)


def _fitted(likelihood="gaussian", beta=1.0, seed=0, validation=False):
    set_seed(seed)
    x = _points() if likelihood == "gaussian" else _binary()
    dim = x.shape[1]
    model = vae.VAE(vae.toy_encoder(input_dim=dim), vae.toy_decoder(output_dim=dim),
                    beta=beta, likelihood=likelihood, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(x, epochs=2, batch_size=64, verbose=0,
                        validation_data=(x,) if validation else None)
    return model, history


@pytest.mark.slow
@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_one_batch_fit_gives_finite_losses(likelihood):
    _, history = _fitted(likelihood)
    assert set(history.history) == {"loss", "reconstruction", "kl"}
    for values in history.history.values():
        assert np.all(np.isfinite(values))


@pytest.mark.slow
def test_test_step_runs_with_validation_data():
    _, history = _fitted(validation=True)
    for name in ("val_loss", "val_reconstruction", "val_kl"):
        assert np.all(np.isfinite(history.history[name])), name


@pytest.mark.slow
def test_trackers_are_listed_and_loss_is_reconstruction_plus_beta_kl():
    model, history = _fitted(beta=2.0)
    assert [metric.name for metric in model.metrics] == ["loss", "reconstruction", "kl"]
    h = history.history
    np.testing.assert_allclose(h["loss"], np.add(h["reconstruction"], 2.0 * np.asarray(h["kl"])),
                               rtol=1e-5)


@pytest.mark.slow
def test_same_seed_same_training():
    first, h1 = _fitted(seed=3)
    second, h2 = _fitted(seed=3)
    assert h1.history == h2.history
    for w1, w2 in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(w1, w2)
    _, h3 = _fitted(seed=4)
    assert h3.history != h1.history


@pytest.mark.slow
def test_beta_scales_the_kl_term_only():
    set_seed(0)
    encoder, decoder, x = vae.toy_encoder(), vae.toy_decoder(), _points(256)
    results = {}
    for beta in (0.0, 1.0, 3.0):
        model = vae.VAE(encoder, decoder, beta=beta, seed=0)
        model.compile()
        results[beta] = model.evaluate(x, batch_size=256, verbose=0, return_dict=True)
    for beta, result in results.items():
        assert result["reconstruction"] == pytest.approx(results[0.0]["reconstruction"], rel=1e-6)
        assert result["kl"] == pytest.approx(results[0.0]["kl"], rel=1e-6)
        assert result["loss"] == pytest.approx(result["reconstruction"] + beta * result["kl"], rel=1e-5)


@pytest.mark.slow
def test_generate_shapes_and_seeds():
    model, _ = _fitted()
    mean = keras.ops.convert_to_numpy(model.generate(10, seed=1))
    noisy = keras.ops.convert_to_numpy(model.generate(10, seed=1, noise=True))
    assert mean.shape == noisy.shape == (10, 2)
    np.testing.assert_array_equal(mean, keras.ops.convert_to_numpy(model.generate(10, seed=1)))
    assert not np.allclose(mean, noisy)
    binary, _ = _fitted("bernoulli")
    draws = keras.ops.convert_to_numpy(binary.generate(5, seed=0, noise=True))
    assert set(np.unique(draws)) <= {0.0, 1.0}


def _linear_gaussian_vae(log_var_offset=0.0, mean_offset=0.0):
    model = vae.LinearGaussian(A, B, S)
    return model.as_vae(mean_offset=mean_offset, log_var_offset=log_var_offset)


def _exact_log_px(x):
    """log p(x) by numerical integration of p(x | z) p(z) over z (independent of the closed form)."""
    z = np.linspace(-12, 12, 24_001)
    joint = (np.exp(-0.5 * ((x - A * z - B) / S) ** 2) / (S * np.sqrt(2 * np.pi))
             * np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi))  # (batch, grid)
    return np.log(np.trapezoid(joint, z, axis=-1))


def _gaussian_kl_1d(m_q, log_var_q, m_p, log_var_p):
    return 0.5 * (log_var_p - log_var_q + (np.exp(log_var_q) + (m_q - m_p) ** 2) / np.exp(log_var_p) - 1)


def test_linear_gaussian_log_px_and_posterior_match_numerical_integration():
    model, x = vae.LinearGaussian(A, B, S), np.array([[-2.0], [0.3], [1.7]])
    np.testing.assert_allclose(model.log_px(x[:, 0]), _exact_log_px(x), atol=1e-8)
    z = np.linspace(-12, 12, 24_001)
    posterior = np.exp(-0.5 * ((x - A * z - B) / S) ** 2 - 0.5 * z**2)
    posterior /= np.trapezoid(posterior, z, axis=-1)[:, None]
    mean = np.trapezoid(posterior * z, z, axis=-1)
    variance = np.trapezoid(posterior * (z - mean[:, None]) ** 2, z, axis=-1)
    q_mean, q_log_var = model.posterior(x[:, 0])
    np.testing.assert_allclose(q_mean, mean, atol=1e-8)
    np.testing.assert_allclose(np.exp(q_log_var), variance, atol=1e-8)


def test_elbo_plus_kl_to_the_posterior_is_log_px_for_any_q():
    model, rng = vae.LinearGaussian(A, B, S), np.random.default_rng(0)
    x, q_mean, q_log_var = rng.normal(0, 2, 50), rng.normal(0, 1, 50), rng.normal(0, 1, 50)
    post_mean, post_log_var = model.posterior(x)
    kl = _gaussian_kl_1d(q_mean, q_log_var, post_mean, post_log_var)
    np.testing.assert_allclose(model.elbo(x, q_mean, q_log_var) + kl, model.log_px(x), atol=1e-10)
    assert np.all(model.elbo(x, q_mean, q_log_var) <= model.log_px(x))
    np.testing.assert_allclose(model.elbo(x, post_mean, post_log_var), model.log_px(x), atol=1e-10)


def test_linear_gaussian_elbo_matches_monte_carlo():
    model, x, q_mean, q_log_var = vae.LinearGaussian(A, B, S), 1.2, -0.3, np.log(0.6)
    z = q_mean + np.sqrt(0.6) * np.random.default_rng(1).standard_normal(400_000)
    log_joint = (-0.5 * (np.log(2 * np.pi * S**2) + (x - A * z - B) ** 2 / S**2)
                 - 0.5 * (np.log(2 * np.pi) + z**2))
    log_q = -0.5 * (np.log(2 * np.pi * 0.6) + (z - q_mean) ** 2 / 0.6)
    samples = log_joint - log_q
    assert abs(samples.mean() - model.elbo(x, q_mean, q_log_var)) < 4 * samples.std() / np.sqrt(z.size)


@pytest.mark.parametrize("estimator", ["reparameterization", "score_function"])
def test_gradient_estimators_are_unbiased(estimator):
    """f(z) = z^2: E_q[f] = mean^2 + exp(log_var), so the gradient is (2 mean, exp(log_var))."""
    mean, log_var = 0.8, math.log(0.5)
    samples = vae.gradient_samples(lambda z: z**2, mean, log_var, 200_000, estimator=estimator, seed=0)
    assert samples.shape == (200_000, 2)
    error = np.abs(samples.mean(axis=0) - [2 * mean, math.exp(log_var)])
    assert np.all(error < 4 * samples.std(axis=0) / np.sqrt(len(samples)))


def test_score_function_has_the_larger_variance():
    def f(z):
        return z**2

    reparameterized = vae.gradient_samples(f, 0.8, 0.0, 50_000, estimator="reparameterization", seed=1)
    score = vae.gradient_samples(f, 0.8, 0.0, 50_000, estimator="score_function", seed=1)
    assert np.all(score.var(axis=0) > 3 * reparameterized.var(axis=0))
    # Reparameterised: d/d mean of z^2 is 2 z, whose variance is 4 sigma^2 = 4.
    assert reparameterized[:, 0].var() == pytest.approx(4.0, rel=0.05)


def test_bound_is_exact_for_every_k_when_q_is_the_true_posterior():
    x = np.linspace(-3, 3, 13, dtype=np.float32)[:, None]
    model = _linear_gaussian_vae()
    for k in (1, 7):
        bound = keras.ops.convert_to_numpy(model.log_likelihood_bound(x, k=k, seed=0))
        assert bound.shape == (13,)
        np.testing.assert_allclose(bound, _exact_log_px(x), atol=1e-4)


@pytest.mark.slow
def test_bound_grows_with_k_towards_log_px_for_a_wrong_q():
    x = np.repeat(np.array([[0.5], [2.0]], np.float32), 500, axis=0)
    model = _linear_gaussian_vae(log_var_offset=1.0, mean_offset=0.4)
    exact = _exact_log_px(x).mean()
    means = [float(np.mean(model.log_likelihood_bound(x, k=k, seed=k))) for k in (1, 5, 50, 500)]
    assert means[0] < means[1] < means[2] < means[3] <= exact + 1e-3
    assert exact - means[0] > 0.2  # A wrong q loses something...
    assert exact - means[3] < 0.02  # ...that many importance samples recover.


@pytest.mark.slow
def test_k_equal_1_is_an_elbo_estimate():
    model, _ = _fitted()
    x = np.repeat(_points(4), 5000, axis=0)
    bound = keras.ops.convert_to_numpy(model.log_likelihood_bound(x, k=1, seed=0))
    reconstruction, kl = model.compute_terms(x)
    elbo = -keras.ops.convert_to_numpy(reconstruction) - keras.ops.convert_to_numpy(kl)
    standard_error = np.sqrt(bound.var() / len(bound) + elbo.var() / len(elbo))
    assert abs(bound.mean() - elbo.mean()) < 4 * standard_error


def test_bad_arguments_are_refused_with_a_fix():
    encoder, decoder = vae.toy_encoder(), vae.toy_decoder()
    with pytest.raises(ValueError, match="likelihood"):
        vae.VAE(encoder, decoder, likelihood="poisson")
    with pytest.raises(ValueError, match="beta"):
        vae.VAE(encoder, decoder, beta=-1.0)
    with pytest.raises(ValueError, match="k"):
        vae.VAE(encoder, decoder).log_likelihood_bound(_points(4), k=0, seed=0)


def test_toy_builders_shapes():
    encoder, decoder = vae.toy_encoder(3, 4, 8), vae.toy_decoder(4, 3, 8)
    z_mean, z_log_var = encoder(np.zeros((5, 3), np.float32))
    assert z_mean.shape == z_log_var.shape == (5, 4)
    assert decoder(np.zeros((5, 4), np.float32)).shape == (5, 3)


def test_networks_that_do_not_fit_together_are_refused():
    with pytest.raises(ValueError, match="latent shape .* differs from the decoder's input"):
        vae.VAE(vae.toy_encoder(latent_dim=3), vae.toy_decoder(latent_dim=2))
    with pytest.raises(ValueError, match="a VAE reconstructs its input"):
        vae.VAE(vae.toy_encoder(input_dim=2), vae.toy_decoder(output_dim=3))


def test_data_of_the_wrong_shape_is_refused_with_the_fix():
    model = vae.VAE(vae.toy_encoder(), vae.toy_decoder())
    model.compile(keras.optimizers.Adam())
    with pytest.raises(ValueError, match=r"takes examples of shape \(2,\).*\(64, 3\)"):
        model.fit(np.zeros((64, 3), "float32"), batch_size=64, epochs=1, verbose=0)
