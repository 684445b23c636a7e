"""dgm_course.gan: the GAN model (one-batch fit, seeds, trackers, generate), the toy builders
and the minibatch-std layer, and the theory of chapter 03 against independent references:
D* against a trained discriminator, C(G) = -log 4 + 2 JSD by Monte Carlo against a grid
integral, and the generator losses' gradients against their closed forms."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dgm_course import gan, losses, toy
from dgm_course.environment import set_seed


def ring_points(n=64, seed=0):
    return toy.ring().sample(n, seed=seed)[0]


def make_gan(*, seed=0, weights_seed=0, minibatch_std=False, **kwargs):
    set_seed(weights_seed)
    model = gan.GAN(gan.toy_generator(latent_dim=3, hidden=16),
                    gan.toy_discriminator(hidden=16, minibatch_std=minibatch_std),
                    latent_dim=3, seed=seed, **kwargs)
    model.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
    return model


def all_weights(model):
    return [w.numpy() for w in model.generator.weights + model.discriminator.weights]


# The model.


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, {"saturating": True}, {"label_smoothing": 0.1},
                                     {"minibatch_std": True}])
def test_one_batch_fit_gives_finite_losses(options):
    model = make_gan(**options)
    history = model.fit(ring_points(32), batch_size=32, epochs=1, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss"}
    assert all(np.isfinite(values[0]) for values in history.history.values())
    if options.get("saturating"):
        assert history.history["g_loss"][0] < 0  # log(1 - D) is negative.


@pytest.mark.slow
def test_fit_accepts_labelled_data_and_ignores_labels():
    x, component = toy.ring().sample(32, seed=0)
    history = make_gan().fit(x, component, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["d_loss"][0])


@pytest.mark.slow
def test_same_seed_gives_same_weights_after_two_steps():
    x = ring_points(64)
    runs = []
    for seed in (5, 5, 6):
        model = make_gan(seed=seed)
        model.fit(x, batch_size=32, epochs=1, verbose=0, shuffle=False)
        runs.append(all_weights(model))
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(np.allclose(a, c) for a, c in zip(runs[0], runs[2], strict=True))  # The seed matters.


@pytest.mark.slow
def test_trackers_reset_every_epoch():
    batch_logs = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batch_logs.append(dict(logs)))
    model = make_gan()
    history = model.fit(ring_points(32), batch_size=32, epochs=2, verbose=0, callbacks=[record])
    assert [m.name for m in model.metrics] == ["d_loss", "g_loss"]
    # One batch per epoch: epoch 2 reports its own batch, not the mean with epoch 1.
    for key in ("d_loss", "g_loss"):
        assert history.history[key][1] == pytest.approx(batch_logs[1][key], rel=1e-6)
        assert history.history[key][1] != pytest.approx(
            (batch_logs[0][key] + batch_logs[1][key]) / 2, rel=1e-6)


def test_generate_shapes_and_seeds():
    model = make_gan()
    samples = model.generate(10, seed=1)
    assert samples.shape == (10, 2) and samples.dtype == np.float32
    np.testing.assert_array_equal(samples, model.generate(10, seed=1))
    assert not np.allclose(samples, model.generate(10, seed=2))
    with pytest.raises(ValueError, match="at least 1"):
        model.generate(0, seed=1)


@pytest.mark.slow
def test_preview_never_changes_training():
    """The training noise has its own SeedGenerator: generate() and the snapshot callback
    draw elsewhere, so training with and without previews ends in the same weights."""
    x = ring_points(64)
    plain = make_gan(seed=3)
    state = plain.seed_generator.state.numpy().copy()
    plain.generate(5, seed=0)
    np.testing.assert_array_equal(state, plain.seed_generator.state.numpy())
    plain.fit(x, batch_size=32, epochs=2, verbose=0, shuffle=False)
    watched = make_gan(seed=3)
    snapshots = gan.SampleSnapshots(20, epochs=[1, 2], seed=9)
    watched.fit(x, batch_size=32, epochs=2, verbose=0, shuffle=False, callbacks=[snapshots])
    assert sorted(snapshots.snapshots) == [1, 2] and snapshots.snapshots[1].shape == (20, 2)
    assert all(np.array_equal(a, b) for a, b in zip(all_weights(plain), all_weights(watched), strict=True))


def test_bad_arguments_are_refused():
    generator, discriminator = gan.toy_generator(), gan.toy_discriminator()
    with pytest.raises(TypeError, match="keras.Model"):
        gan.GAN(lambda z: z, discriminator, latent_dim=2)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        gan.GAN(generator, discriminator, latent_dim=2, label_smoothing=1.0)
    with pytest.raises(ValueError, match="at least 1"):
        gan.GAN(generator, discriminator, latent_dim=0)


def test_toy_builders_shapes_and_weight_counts():
    generator = gan.toy_generator(latent_dim=4, hidden=8, output_dim=3)
    assert generator.output_shape == (None, 3)
    assert generator.count_params() == (4 * 8 + 8) + (8 * 8 + 8) + (8 * 3 + 3)
    plain = gan.toy_discriminator(input_dim=3, hidden=8)
    remedied = gan.toy_discriminator(input_dim=3, hidden=8, minibatch_std=True)
    assert plain.output_shape == remedied.output_shape == (None, 1)
    assert remedied.count_params() - plain.count_params() == 8  # One more input feature.


def test_minibatch_std_matches_numpy_and_sees_collapse():
    x = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
    out = gan.MinibatchStdDev()(x).numpy()
    assert out.shape == (16, 6)
    np.testing.assert_allclose(out[:, :5], x)
    np.testing.assert_allclose(out[:, 5], np.mean(np.std(x, axis=0)), rtol=1e-5)
    collapsed = np.repeat(x[:1], 16, axis=0)
    assert gan.MinibatchStdDev()(collapsed).numpy()[0, 5] < 1e-3
    gradient = tf.GradientTape()
    with gradient as tape:
        tensor = tf.constant(collapsed)
        tape.watch(tensor)
        total = tf.reduce_sum(gan.MinibatchStdDev()(tensor))
    assert np.all(np.isfinite(tape.gradient(total, tensor).numpy()))  # sqrt(0 + 1e-8) is safe.


def test_mode_coverage_counts_modes_and_quality():
    ring = toy.ring()
    x, _ = ring.sample(800, seed=0)
    full = gan.mode_coverage(x, ring)
    assert full["modes_covered"] == 8 and full["high_quality"] > 0.98
    jitter = np.random.default_rng(1).uniform(-0.1, 0.1, size=(100, 2))  # within 2 stds
    collapsed = np.concatenate([ring.means[[0] * 60 + [3] * 40] + jitter, np.zeros((100, 2))])
    result = gan.mode_coverage(collapsed, ring)  # fair share 25, threshold 2.5 samples
    assert result["modes_covered"] == 2 and result["high_quality"] == pytest.approx(0.5)
    assert result["counts"].tolist() == [60, 0, 0, 40, 0, 0, 0, 0]


# The theory: optimal discriminator, Jensen-Shannon, generator gradients.

P_DATA = toy.GaussianMixture([[-1.0], [1.5]], stds=[0.5, 0.4], weights=[0.6, 0.4])
P_G = toy.GaussianMixture([[0.0]], stds=[1.0])


def test_optimal_discriminator_maximises_the_pointwise_value():
    """For fixed x the integrand a log D + b log(1 - D), a = p_data(x), b = p_g(x), is
    largest at D = a / (a + b): compare with a brute-force search over D."""
    d = np.linspace(1e-4, 1 - 1e-4, 200_001)
    for a, b in [(0.3, 0.1), (0.05, 0.9), (1.0, 1.0)]:
        best = d[np.argmax(a * np.log(d) + b * np.log(1 - d))]
        assert gan.optimal_discriminator(np.log(a), np.log(b)) == pytest.approx(best, abs=1e-4)
        assert best == pytest.approx(a / (a + b), abs=1e-4)
    extreme = gan.optimal_discriminator(np.array([-2000.0, 0.0]), np.array([0.0, -2000.0]))
    np.testing.assert_array_equal(extreme, [0.0, 1.0])


def test_optimal_discriminator_with_one_sided_label_smoothing():
    """Solutions 03, exercise 3's question: with real target 1 - s the expected loss at x,
    a [(1 - s) sp(-l) + s sp(l)] + b sp(l) (a = p_data(x), b = p_g(x), sp = softplus),
    is smallest at D = (1 - s) a / (a + b)."""
    s, far = 0.1, np.float32(1e4)  # softplus(-1e4) = 0 switches the other term off

    def per_logit(l, a, b):
        return (a * ((1 - s) * np.logaddexp(0, -l) + s * np.logaddexp(0, l))
                + b * np.logaddexp(0, l))

    for l in np.linspace(-6, 6, 7, dtype=np.float32):  # the transcription is the package's loss
        real_term = float(losses.discriminator_loss([l], [-far], label_smoothing=s))
        fake_term = float(losses.discriminator_loss([far], [l]))
        assert 0.3 * real_term + 0.7 * fake_term == pytest.approx(per_logit(l, 0.3, 0.7), rel=1e-5)
    logits = np.linspace(-12, 12, 240_001)
    for a, b in [(0.3, 0.1), (0.05, 0.9), (1.0, 0.0)]:
        best = 1 / (1 + np.exp(-logits[np.argmin(per_logit(logits, a, b))]))
        assert best == pytest.approx((1 - s) * a / (a + b), abs=1e-3)


@pytest.mark.slow
def test_trained_discriminator_converges_to_the_optimal_one():
    """A discriminator trained on samples approaches D* up to the noise of a finite sample:
    small on average under m = (p_data + p_g) / 2, and nowhere far off where there is mass."""
    p_data = toy.GaussianMixture([[-2.0], [2.0]], stds=[0.5, 0.5])
    p_g = toy.GaussianMixture([[0.5]], stds=[1.0])
    x_data, _ = p_data.sample(8000, seed=0)
    x_g, _ = p_g.sample(8000, seed=1)
    set_seed(0)
    discriminator = keras.Sequential([keras.Input((1,)), keras.layers.Dense(32, activation="tanh"),
                                      keras.layers.Dense(32, activation="tanh"),
                                      keras.layers.Dense(1)])
    discriminator.compile(optimizer=keras.optimizers.Adam(1e-2),
                          loss=keras.losses.BinaryCrossentropy(from_logits=True))
    x = np.concatenate([x_data, x_g])
    y = np.concatenate([np.ones(len(x_data)), np.zeros(len(x_g))]).astype("float32")
    discriminator.fit(x, y, batch_size=256, epochs=30, verbose=0, shuffle=True)
    grid = np.linspace(-4.0, 4.0, 161).astype("float32")[:, None]
    trained = keras.ops.convert_to_numpy(keras.ops.sigmoid(discriminator(grid)))[:, 0]
    exact = gan.optimal_discriminator(p_data.log_prob(grid), p_g.log_prob(grid))
    m = 0.5 * (p_data.prob(grid) + p_g.prob(grid))
    error = np.abs(trained - exact)
    assert np.sum(error * m) / np.sum(m) < 0.04
    assert np.max(error[m > 0.02]) < 0.12


def test_jensen_shannon_identity_by_monte_carlo():
    """C(G) = E_data[log D*] + E_g[log(1 - D*)] (Monte Carlo over samples) equals
    -log 4 + 2 JSD(p_data || p_g) (numerical integration on a grid)."""
    grid = np.linspace(-8.0, 8.0, 4001)
    p, q = P_DATA.prob(grid), P_G.prob(grid)
    jsd = gan.jensen_shannon(p, q, grid[1] - grid[0])
    x_data, _ = P_DATA.sample(200_000, seed=2)
    x_g, _ = P_G.sample(200_000, seed=3)
    d_data = gan.optimal_discriminator(P_DATA.log_prob(x_data), P_G.log_prob(x_data))
    d_g = gan.optimal_discriminator(P_DATA.log_prob(x_g), P_G.log_prob(x_g))
    value = np.mean(np.log(d_data)) + np.mean(np.log1p(-d_g))
    assert value == pytest.approx(-np.log(4) + 2 * jsd, abs=5e-3)


def test_jensen_shannon_against_kl_to_the_mixture_and_its_bounds():
    grid = np.linspace(-8.0, 8.0, 4001)
    half = toy.GaussianMixture(np.concatenate([P_DATA.means, P_G.means]),
                               np.concatenate([P_DATA.stds, P_G.stds])[:, 0],
                               np.concatenate([P_DATA.weights, P_G.weights]) / 2)  # M
    reference = 0.5 * toy.kl_on_grid(P_DATA, half, grid) + 0.5 * toy.kl_on_grid(P_G, half, grid)
    dx = grid[1] - grid[0]
    assert gan.jensen_shannon(P_DATA.prob(grid), P_G.prob(grid), dx) == pytest.approx(reference,
                                                                                      rel=1e-6)
    assert gan.jensen_shannon(P_G.prob(grid), P_G.prob(grid), dx) == pytest.approx(0.0, abs=1e-9)
    far = toy.GaussianMixture([[6.0]], stds=[0.3]).prob(grid)
    assert gan.jensen_shannon(P_G.prob(grid), far, dx) == pytest.approx(np.log(2), abs=1e-4)


def grad_of_generator_loss(logits, saturating):
    logits = tf.constant(logits, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        total = losses.generator_loss(logits, saturating=saturating) * len(logits)  # a sum
    return tape.gradient(total, logits).numpy()


@pytest.mark.parametrize("saturating", [False, True])
def test_generator_loss_gradients_match_their_closed_forms(saturating):
    """d/dl [-log sigmoid(l)] = -(1 - D) and d/dl [log(1 - sigmoid(l))] = -D, D = sigmoid(l):
    when D(G(z)) -> 0 the first stays near -1 and the second vanishes."""
    logits = np.array([-30.0, -10.0, -3.0, -1.0, 0.0, 1.0, 3.0, 10.0], np.float32)
    d = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    expected = -d if saturating else -(1.0 - d)
    np.testing.assert_allclose(grad_of_generator_loss(logits, saturating), expected, atol=1e-6)
    # Against central finite differences of a float64 NumPy transcription.
    h = 1e-5
    loss = (lambda l: np.log1p(-1 / (1 + np.exp(-l)))) if saturating else (
        lambda l: -np.log(1 / (1 + np.exp(-l))))
    moderate = logits[2:7].astype(np.float64)
    finite = (loss(moderate + h) - loss(moderate - h)) / (2 * h)
    np.testing.assert_allclose(grad_of_generator_loss(logits[2:7], saturating), finite, atol=1e-5)
    assert np.all(np.isfinite(grad_of_generator_loss(np.array([-1e4, 1e4], np.float32),
                                                     saturating)))


@pytest.mark.slow
def test_stop_on_divergence_names_the_loss_epoch_and_batch(capsys):
    x = ring_points(96)
    x[40] = np.nan  # The second batch of 32 holds a NaN: its d_loss becomes NaN.
    stop = gan.StopOnDivergence()
    history = make_gan().fit(x, batch_size=32, epochs=3, verbose=0, shuffle=False,
                             callbacks=[stop])
    assert stop.diverged["loss"] == "d_loss" and np.isnan(stop.diverged["value"])
    assert (stop.diverged["epoch"], stop.diverged["batch"]) == (1, 2)
    assert len(history.history["d_loss"]) == 1  # Stopped in the first epoch.
    assert "`d_loss` became nan at epoch 1, batch 2" in capsys.readouterr().out
    healthy = gan.StopOnDivergence()
    make_gan().fit(ring_points(64), batch_size=32, epochs=1, verbose=0, callbacks=[healthy])
    assert healthy.diverged is None
