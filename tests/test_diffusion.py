"""dgm_course.diffusion: the closed form q(x_t | x_0) against iterating the one-step chain
(Monte Carlo means and variances), the schedule against Ho et al.'s numbers, and the
noise-prediction loss on predictors with known scores (zero: 1; the oracle: 0)."""

import numpy as np
import pytest
from keras import ops

from dgm_course import diffusion

BETAS = diffusion.linear_beta_schedule(1000)
ALPHA_BARS = diffusion.cumulative_alphas(BETAS)


def test_schedule_matches_ho_et_al():
    assert BETAS.shape == (1000,) and BETAS[0] == pytest.approx(1e-4) and BETAS[-1] == 0.02
    # alpha_bar_t as a NumPy loop, and the paper's "almost pure noise" at T (about 4e-5).
    product, expected = 1.0, []
    for beta in BETAS:
        product *= 1.0 - beta
        expected.append(product)
    np.testing.assert_allclose(ALPHA_BARS, expected, rtol=1e-12)
    assert 1e-5 < ALPHA_BARS[-1] < 1e-4


def test_closed_form_matches_the_iterated_chain():
    # 4,000 chains from one fixed x0 of 6 values, 300 steps of a short schedule.
    betas = diffusion.linear_beta_schedule(300, beta_start=1e-3, beta_end=0.03)
    alpha_bars = diffusion.cumulative_alphas(betas)
    x0 = np.array([-1.0, -0.5, 0.0, 0.3, 0.8, 1.0], np.float32)
    x = np.broadcast_to(x0, (4000, 6)).copy()
    for t in range(1, 301):
        x = ops.convert_to_numpy(diffusion.noising_step(x, t, betas, seed=t))
        if t in (10, 100, 300):
            chain_mean, chain_var = x.mean(axis=0), x.var(axis=0)
            closed, _ = diffusion.noise_images(np.broadcast_to(x0, (4000, 6)), t, alpha_bars,
                                               seed=1000 + t)
            closed = ops.convert_to_numpy(closed)
            # The exact moments, and both samples within Monte Carlo error of them.
            mean, var = np.sqrt(alpha_bars[t - 1]) * x0, 1.0 - alpha_bars[t - 1]
            for sample_mean, sample_var in ((chain_mean, chain_var),
                                            (closed.mean(axis=0), closed.var(axis=0))):
                np.testing.assert_allclose(sample_mean, mean, atol=5 * np.sqrt(var / 4000))
                np.testing.assert_allclose(sample_var, var, rtol=0.1)


def test_noise_images_per_example_steps_and_epsilon():
    x0 = np.linspace(-1, 1, 3 * 4 * 4).reshape(3, 4, 4, 1).astype(np.float32)
    t = np.array([1, 500, 1000])
    x_t, epsilon = (ops.convert_to_numpy(v) for v in diffusion.noise_images(x0, t, ALPHA_BARS, seed=3))
    for i, step in enumerate(t):
        a = ALPHA_BARS[step - 1]
        np.testing.assert_allclose(x_t[i], np.sqrt(a) * x0[i] + np.sqrt(1 - a) * epsilon[i],
                                   rtol=1e-5, atol=1e-6)
    again, _ = diffusion.noise_images(x0, t, ALPHA_BARS, seed=3)
    np.testing.assert_array_equal(ops.convert_to_numpy(again), x_t)  # Seeded.


def test_noise_prediction_loss_of_known_predictors():
    x0 = np.random.default_rng(0).uniform(-1, 1, (256, 8, 8, 1)).astype(np.float32)
    zero = diffusion.noise_prediction_loss(lambda x_t, t: ops.zeros_like(x_t), x0, ALPHA_BARS,
                                           seed=0)
    assert zero.shape == (256,)
    assert float(ops.mean(zero)) == pytest.approx(1.0, abs=0.02)  # E[epsilon^2] = 1

    def oracle(x_t, t):  # Knows x0: epsilon = (x_t - sqrt(a) x0) / sqrt(1 - a).
        a = np.asarray(ALPHA_BARS, np.float32)[ops.convert_to_numpy(t) - 1][:, None, None, None]
        return (x_t - np.sqrt(a) * x0) / np.sqrt(1 - a)

    perfect = diffusion.noise_prediction_loss(oracle, x0, ALPHA_BARS, seed=0)
    assert float(ops.max(perfect)) < 1e-6


def test_clear_errors():
    with pytest.raises(ValueError, match="1..1000"):
        diffusion.noise_images(np.zeros((2, 3), np.float32), 0, ALPHA_BARS, seed=0)
    with pytest.raises(ValueError, match="beta_start"):
        diffusion.linear_beta_schedule(10, beta_start=0.5, beta_end=0.1)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        diffusion.cumulative_alphas(np.array([0.1, 1.5]))
    with pytest.raises(TypeError, match="callable"):
        diffusion.noise_prediction_loss(3, np.zeros((2, 3), np.float32), ALPHA_BARS, seed=0)


def test_one_step_per_example_must_match_the_batch():
    alpha_bars = diffusion.cumulative_alphas(diffusion.linear_beta_schedule(10))
    with pytest.raises(ValueError, match="3 steps for a batch of 2"):
        diffusion.noise_images(np.zeros((2, 4), np.float32), [1, 2, 3], alpha_bars, seed=0)
