"""dgm_course.wgan: one-batch fit() with finite losses in both modes, weight clipping that
really clips, a gradient penalty that pulls the critic's gradient norm towards 1, n_critic
critic steps per generator step, seeded repeatability, clear errors, a save/load roundtrip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dgm_course import dcgan, gan, losses, toy, wgan
from dgm_course.environment import set_seed


def images(n=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 28, 28, 1)).astype("float32")


def ring_points(n=32, seed=0):
    return toy.ring().sample(n, seed=seed)[0].astype("float32")


def make_wgan(*, seed=0, lr=1e-4, conv=False, **kwargs):
    """A WGAN of the DCGAN networks for 28x28x1 (conv=True) or of the small dense toy networks
    for 2-D points (fast to trace: most tests are about the training step, not the networks)."""
    set_seed(0)
    if conv:
        networks = (dcgan.build_generator(latent_dim=8, width=8),
                    dcgan.build_critic(width=8, layer_norm="clip_value" not in kwargs))
    else:
        networks = (gan.toy_generator(latent_dim=8, hidden=16), gan.toy_discriminator(hidden=16))
    model = wgan.WGAN(*networks, latent_dim=8, seed=seed, **kwargs)
    model.compile(d_optimizer=keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9),
                  g_optimizer=keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9))
    return model


def all_weights(model):
    return [w.numpy() for w in model.generator.weights + model.critic.weights]


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, {"clip_value": 0.01}])
def test_one_batch_fit_gives_finite_losses(options):
    model = make_wgan(n_critic=2, conv=True, **options)
    history = model.fit(images(), batch_size=16, epochs=1, verbose=0)
    expected = {"d_loss", "g_loss", "wasserstein"} | ({"gp"} if not options else set())
    assert set(history.history) == expected
    assert all(np.isfinite(values[0]) for values in history.history.values())
    if not options:
        assert history.history["gp"][0] > 0
    assert model.generate(3, seed=1).shape == (3, 28, 28, 1)


@pytest.mark.slow
def test_weight_clipping_really_clips():
    model = make_wgan(n_critic=2, clip_value=0.01, lr=0.1)  # Steps big enough to leave [-c, c].
    model.fit(ring_points(), batch_size=16, epochs=1, verbose=0)
    largest = max(np.abs(w.numpy()).max() for w in model.critic.trainable_weights)
    assert largest == pytest.approx(0.01)


@pytest.mark.slow
def test_gradient_penalty_pulls_the_gradient_norm_towards_one():
    """A dense critic made steep (weights x 3) on 2-D toy data: its gradient norm at the
    interpolates starts well above 1; a few critic steps with the penalty bring it down."""
    set_seed(0)
    critic = gan.toy_discriminator(hidden=16)
    for weight in critic.trainable_weights:
        weight.assign(3.0 * weight)
    model = wgan.WGAN(gan.toy_generator(latent_dim=2, hidden=16), critic, latent_dim=2,
                      n_critic=5, seed=0)
    model.compile(d_optimizer=keras.optimizers.Adam(1e-2, beta_1=0.5, beta_2=0.9),
                  g_optimizer=keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9))
    real = toy.ring().sample(128, seed=0)[0].astype("float32")
    fake = model.generate(128, seed=1)

    def mean_gradient_norm():
        x_hat = tf.constant(0.5 * real + 0.5 * fake)
        with tf.GradientTape() as tape:
            tape.watch(x_hat)
            scores = critic(x_hat)
        return float(tf.reduce_mean(tf.norm(tape.gradient(scores, x_hat), axis=1)))

    before = mean_gradient_norm()
    penalty_before = float(losses.gradient_penalty(critic, real, fake, seed=0))
    model.fit(real, batch_size=128, epochs=4, verbose=0)
    after = mean_gradient_norm()
    assert penalty_before > 0 and before > 2.0
    assert after < before and abs(after - 1.0) < abs(before - 1.0)
    assert float(losses.gradient_penalty(critic, real, fake, seed=0)) < penalty_before


@pytest.mark.slow
@pytest.mark.parametrize("n_critic", [1, 3])
def test_n_critic_steps_per_generator_step(n_critic):
    model = make_wgan(n_critic=n_critic)
    model.fit(ring_points(32), batch_size=16, epochs=1, verbose=0)
    assert int(model.g_optimizer.iterations) == 2
    assert int(model.d_optimizer.iterations) == 2 * n_critic


@pytest.mark.slow
def test_same_seed_gives_same_weights_after_two_steps():
    runs = []
    for seed in (5, 5, 6):
        model = make_wgan(seed=seed, n_critic=2)
        model.fit(ring_points(32), batch_size=16, epochs=1, verbose=0, shuffle=False)
        runs.append(all_weights(model))
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(np.allclose(a, c) for a, c in zip(runs[0], runs[2], strict=True))  # The seed matters.


@pytest.mark.slow
def test_bad_arguments_and_shapes_give_our_message():
    generator, critic = dcgan.build_generator(latent_dim=8, width=8), dcgan.build_critic(width=8)
    with pytest.raises(ValueError, match="Choose one way"):
        wgan.WGAN(generator, critic, latent_dim=8, clip_value=0.01, gp_weight=10.0)
    with pytest.raises(ValueError, match="positive number"):
        wgan.WGAN(generator, critic, latent_dim=8, clip_value=-0.01)
    with pytest.raises(ValueError, match=">= 0"):
        wgan.WGAN(generator, critic, latent_dim=8, gp_weight=-1.0)
    with pytest.raises(ValueError, match="at least 1"):
        wgan.WGAN(generator, critic, latent_dim=8, n_critic=0)
    with pytest.raises(TypeError, match="keras.Model"):
        wgan.WGAN(generator, lambda x: x, latent_dim=8)
    assert wgan.WGAN(generator, critic, latent_dim=8, clip_value=0.01).gp_weight == 0.0
    assert wgan.WGAN(generator, critic, latent_dim=8).gp_weight == 10.0
    model = make_wgan(n_critic=1, conv=True)
    with pytest.raises(ValueError, match=r"shape \(32, 32, 3\) but the critic takes \(28, 28, 1\)"):
        model.fit(np.zeros((16, 32, 32, 3), "float32"), batch_size=16, epochs=1, verbose=0)


@pytest.mark.slow
def test_save_and_load_roundtrip(tmp_path):
    model = make_wgan(n_critic=2, clip_value=0.05, seed=3)
    model.fit(ring_points(), batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "wgan.keras")
    loaded = keras.models.load_model(tmp_path / "wgan.keras")
    assert isinstance(loaded, wgan.WGAN)
    assert (loaded.n_critic, loaded.clip_value, loaded.gp_weight, loaded._seed) == (2, 0.05, 0.0, 3)
    np.testing.assert_allclose(loaded.generate(4, seed=2), model.generate(4, seed=2), atol=1e-6)
    model.save_weights(tmp_path / "wgan.weights.h5")
    fresh = make_wgan(n_critic=2, clip_value=0.05, seed=9)
    fresh.load_weights(tmp_path / "wgan.weights.h5")
    assert all(np.array_equal(a, b) for a, b in zip(all_weights(fresh), all_weights(model), strict=True))


@pytest.mark.slow
def test_critic_gradient_norms_match_finite_differences():
    """||grad D(x_hat)|| of a nonlinear critic, against central differences in float64 at the
    same interpolates (eps drawn with the same seed and shape)."""
    set_seed(0)
    critic = gan.toy_discriminator(hidden=8)
    real, fake = ring_points(6, seed=0), ring_points(6, seed=1) * 0.5
    norms = wgan.critic_gradient_norms(critic, real, fake, seed=4)
    eps = keras.ops.convert_to_numpy(keras.random.uniform((6, 1), seed=4))
    x_hat = (eps * real + (1 - eps) * fake).astype(np.float64)
    weights = [w.numpy().astype(np.float64) for w in critic.weights]

    def score(x):  # the critic in NumPy: Dense, LeakyReLU(0.2), Dense, LeakyReLU(0.2), Dense
        for kernel, bias in zip(weights[0::2], weights[1::2], strict=True):
            x = x @ kernel + bias
            if kernel is not weights[-2]:
                x = np.where(x > 0, x, 0.2 * x)
        return x[:, 0]

    h = 1e-6
    grads = np.stack([(score(x_hat + h * e) - score(x_hat - h * e)) / (2 * h)
                      for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(grads, axis=1), rtol=1e-4)


@pytest.mark.slow
def test_critic_gradient_norms_are_the_norms_behind_the_penalty():
    set_seed(0)
    critic = dcgan.build_critic(width=8)
    real, fake = images(4, seed=0), images(4, seed=1)
    norms = wgan.critic_gradient_norms(critic, real, fake, seed=2)
    assert norms.shape == (4,) and np.all(norms > 0)
    penalty = float(losses.gradient_penalty(critic, real, fake, seed=2))
    assert np.mean((norms - 1.0) ** 2) == pytest.approx(penalty, rel=1e-4)
    with pytest.raises(ValueError, match="same shape"):
        wgan.critic_gradient_norms(critic, real, fake[:2], seed=0)
    with pytest.raises(TypeError, match="keras.Model"):
        wgan.critic_gradient_norms(lambda x: x, real, fake, seed=0)


@pytest.mark.slow
def test_fit_checks_a_dataset_before_the_first_step_and_does_not_warn_about_shuffle():
    import warnings

    import tensorflow as tf

    model = make_wgan(n_critic=1, conv=True)
    wrong = tf.data.Dataset.from_tensor_slices(np.zeros((8, 32, 32, 3), "float32")).batch(4)
    with pytest.raises(ValueError, match=r"shape \(32, 32, 3\) but the critic takes"):
        model.fit(wrong, epochs=1, verbose=0)
    right = tf.data.Dataset.from_tensor_slices(np.zeros((8, 28, 28, 1), "float32")).batch(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # Keras warns when shuffle=True is ignored.
        model.fit(right, epochs=1, verbose=0)
