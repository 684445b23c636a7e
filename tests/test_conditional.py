"""dgm_course.conditional, conditional_gan and conditional_vae: shapes, seeds, one-batch fits,
`generate_class`, the AC-GAN objective (L_S and L_C) and the conditional ELBO against NumPy
transcriptions, and the errors that bad input gets."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from dgm_course import conditional, conditional_gan, conditional_vae
from dgm_course.environment import set_seed

K = 10
LATENT = 8


def images_and_labels(n=32, shape=(28, 28, 1), seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, *shape)).astype("float32"), np.arange(n) % K


def softplus(x):
    return np.logaddexp(0.0, x)


def log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def make_model(kind, *, seed=0, weights_seed=0, shape=(28, 28, 1)):
    set_seed(weights_seed)
    if kind == "cvae":
        model = conditional_vae.ConditionalVAE(
            conditional_vae.build_conditional_encoder(shape, latent_dim=LATENT, width=8),
            conditional_vae.build_conditional_decoder(shape, latent_dim=LATENT, width=8),
            num_classes=K, seed=seed)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        return model
    generator = conditional.build_conditional_generator(shape, latent_dim=LATENT, width=8)
    if kind == "cgan":
        model = conditional_gan.ConditionalGAN(
            generator, conditional.build_conditional_discriminator(shape, width=8),
            latent_dim=LATENT, num_classes=K, seed=seed)
    else:
        model = conditional_gan.ACGAN(
            generator, conditional.build_auxiliary_discriminator(shape, width=8),
            latent_dim=LATENT, num_classes=K, seed=seed)
    model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    return model


def training_images(kind, n=32, shape=(28, 28, 1)):
    x, y = images_and_labels(n, shape)
    return ((x + 1) / 2 if kind == "cvae" else x), y  # The CVAE's Bernoulli pixels: [0, 1].


MODELS = ["cgan", "acgan", "cvae"]
TRACKERS = {"cgan": {"d_loss", "g_loss"}, "acgan": {"d_loss", "g_loss", "class_loss",
                                                    "real_accuracy"},
            "cvae": {"loss", "reconstruction", "kl"}}


# Builders and conditioning.


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_builders_shapes(shape):
    generator = conditional.build_conditional_generator(shape, num_classes=K, latent_dim=LATENT)
    assert generator.output_shape == (None, *shape)
    assert conditional.build_conditional_discriminator(shape).output_shape == (None, 1)
    source, classes = conditional.build_auxiliary_discriminator(shape, num_classes=7).output_shape
    assert source == (None, 1) and classes == (None, 7)
    encoder = conditional_vae.build_conditional_encoder(shape, latent_dim=LATENT)
    assert [tuple(o.shape) for o in encoder.outputs] == [(None, LATENT)] * 2
    decoder = conditional_vae.build_conditional_decoder(shape, latent_dim=LATENT)
    assert decoder.output_shape == (None, *shape)


def test_conditional_input_is_z_then_the_labels_embedding_row():
    embedding = layers.Embedding(K, 3)
    z = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    labels = np.array([0, 3, 3, 9])
    out = keras.ops.convert_to_numpy(conditional.conditional_input(z, labels, embedding))
    table = embedding.get_weights()[0]
    np.testing.assert_array_equal(out, np.concatenate([z, table[labels]], axis=1))


def test_the_label_changes_the_generators_image():
    generator = conditional.build_conditional_generator(latent_dim=LATENT)
    z = np.zeros((2, LATENT), "float32")
    images = keras.ops.convert_to_numpy(generator([z, np.array([1, 2])]))
    assert not np.allclose(images[0], images[1])


# The models: one-batch fits, seeds, trackers, generate_class.


@pytest.mark.slow
@pytest.mark.parametrize("kind", MODELS)
def test_one_batch_fit_gives_finite_losses(kind):
    model = make_model(kind)
    x, y = training_images(kind)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert set(history.history) == TRACKERS[kind]
    assert all(np.isfinite(values[0]) for values in history.history.values())


@pytest.mark.slow
@pytest.mark.parametrize("kind", MODELS)
def test_same_seed_gives_same_weights_after_two_steps(kind):
    x, y = training_images(kind, 64)
    runs = []
    for seed in (5, 5, 6):
        model = make_model(kind, seed=seed)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
        runs.append([w.numpy() for w in model.weights])
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(np.allclose(a, c) for a, c in zip(runs[0], runs[2], strict=True))


@pytest.mark.parametrize("kind", MODELS)
def test_generate_class_shape_seed_and_label(kind):
    model = make_model(kind)
    images = model.generate_class(3, 5, seed=1)
    assert isinstance(images, np.ndarray) and images.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(images, model.generate_class(3, 5, seed=1))
    assert not np.allclose(images, model.generate_class(3, 5, seed=2))
    assert not np.allclose(images, model.generate_class(4, 5, seed=1))
    # It is exactly the network on z ~ N(0, I) drawn with the seed and a label vector of n.
    z = keras.random.normal((5, LATENT), seed=1)
    labels = keras.ops.full((5,), 3, "int32")
    network = model.decoder if kind == "cvae" else model.generator
    expected = keras.ops.convert_to_numpy(network([z, labels]))
    if kind == "cvae":
        expected = 1 / (1 + np.exp(-expected))
    np.testing.assert_allclose(images, expected, atol=1e-6)


@pytest.mark.parametrize("kind", MODELS)
def test_generating_leaves_the_training_noise_alone(kind):
    model = make_model(kind)
    state = model.seed_generator.state.numpy().copy()
    model.generate_class(1, 4, seed=0)
    model.generate(4, seed=0)
    np.testing.assert_array_equal(state, model.seed_generator.state.numpy())


@pytest.mark.slow
@pytest.mark.parametrize("kind", MODELS)
def test_fit_takes_a_dataset_of_pairs_and_config_round_trips(kind):
    model = make_model(kind)
    x, y = training_images(kind)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    assert np.isfinite(model.fit(dataset, epochs=1, verbose=0).history[
        "loss" if kind == "cvae" else "d_loss"][0])
    clone = type(model).from_config(model.get_config())
    assert clone.num_classes == K and clone.latent_dim == LATENT


@pytest.mark.slow
def test_cvae_validation_uses_test_step():
    model = make_model("cvae")
    x, y = training_images("cvae")
    history = model.fit(x, y, batch_size=32, epochs=1, validation_data=(x, y), verbose=0)
    assert np.isfinite(history.history["val_loss"][0])


# The formulas, against NumPy.


def test_auxiliary_loss_is_minus_l_c():
    rng = np.random.default_rng(0)
    real_logits, fake_logits = rng.normal(0, 3, (6, K)), rng.normal(0, 3, (4, K))
    real_labels, fake_labels = rng.integers(0, K, 6), rng.integers(0, K, 4)
    # L_C = E[log P(C = c | X_real)] + E[log P(C = c | X_fake)] (Odena et al. 2017, eq. 2).
    l_c = (log_softmax(real_logits)[np.arange(6), real_labels].mean()
           + log_softmax(fake_logits)[np.arange(4), fake_labels].mean())
    out = conditional_gan.auxiliary_loss(real_logits.astype("float32"), real_labels,
                                         fake_logits.astype("float32"), fake_labels)
    np.testing.assert_allclose(float(out), -l_c, rtol=1e-5)
    extreme = conditional_gan.auxiliary_loss(np.array([[100.0, -100.0]]), [1],
                                             np.array([[-100.0, 100.0]]), [0])
    np.testing.assert_allclose(float(extreme), 400.0, rtol=1e-5)  # No clipping, no overflow.


def discriminator_outputs(model, *inputs):
    """The discriminator in training mode, as the losses call it (batch norm on this batch)."""
    outputs = model.discriminator(list(inputs) if len(inputs) > 1 else inputs[0], training=True)
    return [o.numpy().astype(np.float64) for o in (outputs if isinstance(outputs, list) else
                                                   [outputs])]


def test_acgan_losses_are_l_s_plus_l_c_for_d_and_l_c_minus_l_s_for_g():
    model = make_model("acgan")
    x, y = images_and_labels(6)
    y = keras.ops.array(y)
    fake = model.generator([keras.random.normal((6, LATENT), seed=3), y])
    real_source, real_classes = discriminator_outputs(model, x)
    fake_source, fake_classes = discriminator_outputs(model, fake)
    y = y.numpy()
    rows = np.arange(6)
    # L_S = E[log D_S(x_real)] + E[log(1 - D_S(x_fake))], log sigmoid(l) = -softplus(-l).
    l_s = -softplus(-real_source).mean() - softplus(fake_source).mean()
    l_c = (log_softmax(real_classes)[rows, y].mean() + log_softmax(fake_classes)[rows, y].mean())
    d_loss, extras = model._discriminator_loss(x, fake, y)
    np.testing.assert_allclose(float(d_loss), -(l_s + l_c), rtol=1e-4)
    np.testing.assert_allclose(float(extras["class_loss"]), -l_c, rtol=1e-4)
    # G: the non-saturating -log D_S(G(z, c)) - log P(C = c | G(z, c)).
    g_expected = softplus(-fake_source).mean() - log_softmax(fake_classes)[rows, y].mean()
    np.testing.assert_allclose(float(model._generator_loss(fake, y)), g_expected, rtol=1e-4)
    # With lambda_C = 3 the class term counts three times; the config keeps it.
    model.class_weight = 3.0
    g_weighted = softplus(-fake_source).mean() - 3 * log_softmax(fake_classes)[rows, y].mean()
    np.testing.assert_allclose(float(model._generator_loss(fake, y)), g_weighted, rtol=1e-4)
    assert model.get_config()["class_weight"] == 3.0


def test_acgan_class_weight_must_be_positive():
    generator = conditional.build_conditional_generator(latent_dim=LATENT, width=8)
    with pytest.raises(ValueError, match="class_weight` must be a positive number; got 0"):
        conditional_gan.ACGAN(generator, conditional.build_auxiliary_discriminator(width=8),
                              latent_dim=LATENT, num_classes=K, class_weight=0)


def test_cgan_discriminator_judges_pairs():
    model = make_model("cgan")
    x, y = images_and_labels(6)
    x, y = keras.ops.array(x), keras.ops.array(y)
    fake = model.generator([keras.random.normal((6, LATENT), seed=3), y])
    [real_logits] = discriminator_outputs(model, x, y)
    [fake_logits] = discriminator_outputs(model, fake, y)
    d_loss, _ = model._discriminator_loss(x, fake, y)
    expected = softplus(-real_logits).mean() + softplus(fake_logits).mean()
    np.testing.assert_allclose(float(d_loss), expected, rtol=1e-5)
    [other] = discriminator_outputs(model, x, (y + 1) % K)
    assert not np.allclose(real_logits, other)  # The label is part of what D judges.


def test_cvae_terms_are_the_conditional_elbo():
    model = make_model("cvae", seed=5)
    x, y = training_images("cvae", 4)
    reconstruction, kl = (t.numpy() for t in model.compute_terms(x, y))
    z_mean, z_log_var = (t.numpy().astype(np.float64) for t in model.encoder([x, y]))
    # The model's first draw: the same SeedGenerator seed gives the same epsilon.
    epsilon = keras.random.normal(z_mean.shape, seed=keras.random.SeedGenerator(5)).numpy()
    z = z_mean + np.exp(0.5 * z_log_var) * epsilon
    logits = model.decoder([z.astype("float32"), y.astype("int32")]).numpy().astype(np.float64)
    flat_x, flat_l = x.reshape(4, -1), logits.reshape(4, -1)
    # -log p(x | z, y) = sum(softplus(l) - x l); KL = -0.5 sum(1 + log_var - mean^2 - var).
    np.testing.assert_allclose(reconstruction, (softplus(flat_l) - flat_x * flat_l).sum(1),
                               rtol=1e-4)
    np.testing.assert_allclose(kl, -0.5 * (1 + z_log_var - z_mean**2 - np.exp(z_log_var)).sum(1),
                               rtol=1e-4, atol=1e-6)


# Bad input.


@pytest.mark.parametrize("kind", MODELS)
def test_bad_training_data_is_refused_with_the_fix(kind):
    model = make_model(kind)
    x, y = training_images(kind)
    with pytest.raises(ValueError, match="no labels"):
        model.fit(x, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="no labels"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(16), verbose=0)
    with pytest.raises(ValueError, match=r"must lie in 0\.\.9"):
        model.fit(x, y + 5, batch_size=16, verbose=0)
    with pytest.raises(TypeError, match="integer class labels"):
        model.fit(x, y.astype("float32"), batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="not one-hot rows"):
        model.fit(x, np.eye(K)[y].astype(int), batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="one label per image"):
        model.fit(x, y[:5], batch_size=16, verbose=0)
    with pytest.raises(ValueError, match=r"per-example shape \(28, 28\)"):
        model.fit(x[..., 0], y, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match=r"per-example shape \(32, 32, 3\)"):
        model.fit(np.zeros((4, 32, 32, 3), "float32"), y[:4], batch_size=16, verbose=0)


@pytest.mark.parametrize("kind", MODELS)
def test_bad_generate_class_arguments_are_refused(kind):
    model = make_model(kind)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        model.generate_class(10, 4, seed=0)
    with pytest.raises(TypeError, match="one integer class"):
        model.generate_class(3.0, 4, seed=0)
    with pytest.raises(TypeError, match="one integer class"):
        model.generate_class([1, 2], 4, seed=0)
    with pytest.raises(ValueError, match="at least 1"):
        model.generate_class(3, 0, seed=0)
    with pytest.raises(TypeError, match="seed"):
        model.generate_class(3, 4, seed=None)


def test_networks_that_do_not_fit_the_model_are_refused():
    generator = conditional.build_conditional_generator(latent_dim=LATENT)
    with pytest.raises(ValueError, match="build_auxiliary_discriminator"):
        conditional_gan.ACGAN(generator, conditional.build_conditional_discriminator(),
                              latent_dim=LATENT, num_classes=K)
    from dgm_course import dcgan
    with pytest.raises(ValueError, match=r"\[z, labels\]"):
        conditional_gan.ConditionalGAN(dcgan.build_generator(latent_dim=LATENT),
                                       conditional.build_conditional_discriminator(),
                                       latent_dim=LATENT, num_classes=K)
    from dgm_course import vae
    with pytest.raises(ValueError, match="two inputs"):
        conditional_vae.ConditionalVAE(vae.toy_encoder(), vae.toy_decoder(), num_classes=K)
    with pytest.raises(ValueError, match="image_shape"):
        conditional.build_conditional_generator((64, 64, 3))


def test_check_labels():
    np.testing.assert_array_equal(conditional.check_labels(np.array([0, 9]), K), [0, 9])
    with pytest.raises(ValueError, match="one label per image"):
        conditional.check_labels([0, 1], K, n=3)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        conditional.check_labels([-1], K)



def test_moving_average_decay_warms_up_then_stays_at_decay():
    steps = np.array([1, 2, 10, 100, 1000, 10_000, 100_000], np.float32)
    got = keras.ops.convert_to_numpy(conditional_gan.moving_average_decay(0.999, steps))
    np.testing.assert_allclose(got, np.minimum(0.999, (1 + steps) / (10 + steps)), rtol=1e-6)


def test_update_moving_average_matches_numpy():
    rng = np.random.default_rng(0)
    old, new = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    averages = [keras.Variable(a.astype("float32")) for a in old]
    conditional_gan.update_moving_average(averages, [v.astype("float32") for v in new], 0.9)
    for average, a, v in zip(averages, old, new, strict=True):
        np.testing.assert_allclose(average.numpy(), 0.9 * a + 0.1 * v, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="same network"):
        conditional_gan.update_moving_average(averages, [new[0]], 0.9)

# (plus test_ema_averages_the_generator_and_samples_from_the_average[cgan|acgan]: a NumPy
# transcription of the averaged weights over 4 fit steps, generate_class == average_generator,
# config round trip; and test_bad_ema_is_refused for 0.0, 1.0, 1.5, "0.999", True)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cgan", "acgan"])
def test_ema_averages_the_generator_and_samples_from_the_average(kind):
    model = make_model(kind)
    generator, discriminator = model.generator, model.discriminator
    cls = conditional_gan.ACGAN if kind == "acgan" else conditional_gan.ConditionalGAN
    model = cls(generator, discriminator, latent_dim=LATENT, num_classes=K, seed=0, ema=0.9)
    model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    expected = [w.astype(np.float64) for w in model.generator.get_weights()]
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(model.generator.get_weights())

    x, y = training_images(kind, n=32)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[Record()])
    # average <- d_t * average + (1 - d_t) * weights, d_t = min(0.9, (1 + t) / (10 + t)).
    for t, weights in enumerate(seen, start=1):
        decay = min(0.9, (1 + t) / (10 + t))
        expected = [decay * a + (1 - decay) * w for a, w in zip(expected, weights, strict=True)]
    for average, want in zip(model.average_generator.get_weights(), expected, strict=True):
        np.testing.assert_allclose(average, want, rtol=1e-4, atol=1e-5)
    assert model.sampler is model.average_generator and model.get_config()["ema"] == 0.9
    images = model.generate_class(3, 4, seed=1)
    z, labels = conditional.class_noise(3, 4, latent_dim=LATENT, num_classes=K, seed=1)
    np.testing.assert_allclose(images, model.average_generator([z, labels]).numpy(), atol=1e-5)


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, "0.999", True])
def test_bad_ema_is_refused(bad):
    generator = conditional.build_conditional_generator(latent_dim=LATENT, width=8)
    with pytest.raises(ValueError, match="`ema` must be None or a decay in"):
        conditional_gan.ConditionalGAN(generator, conditional.build_conditional_discriminator(width=8),
                                       latent_dim=LATENT, num_classes=K, ema=bad)


# The projection discriminator (Miyato & Koyama, 2018).


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_projection_discriminator_is_w_phi_plus_b_plus_e_y_phi(shape):
    set_seed(0)
    network = conditional.build_projection_discriminator(shape, num_classes=K, width=8)
    assert network.output_shape == (None, 1)
    x, y = images_and_labels(5, shape)
    # phi(x): the flattened convolutional features, read from the model's own graph.
    features = keras.Model(network.inputs, network.get_layer("logit").input)
    phi = keras.ops.convert_to_numpy(features([x, y]))  # (5, F)
    kernel, bias = network.get_layer("logit").get_weights()  # w (F, 1), b (1,)
    [table] = network.get_layer("class_projection").get_weights()  # e (K, F)
    table = np.random.default_rng(1).normal(size=table.shape).astype("float32")
    network.get_layer("class_projection").set_weights([table])  # Not the zero-ish init.
    # D's logit = w . phi(x) + b + e_y . phi(x), in NumPy  # (5, 1)
    expected = phi @ kernel + bias + np.sum(table[y] * phi, axis=1, keepdims=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(network([x, y])), expected,
                               rtol=1e-4, atol=1e-4)


def banded_images(n, seed):
    """Images in [-1, 1] whose class k is a bright band of rows 2k+2..2k+4 on a dark ground,
    with a little noise: the label is plain to see."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % K).astype(np.int32)
    x = np.full((n, 28, 28, 1), -1.0, np.float32)
    for i, k in enumerate(labels):
        x[i, 2 + 2 * k:5 + 2 * k] = 1.0
    return np.clip(x + rng.normal(0, 0.1, x.shape), -1, 1).astype(np.float32), labels


def label_accuracy(discriminator, x, y):
    """How often argmax_j D(x, j) is x's own label: D used as a classifier over the labels."""
    x = keras.ops.convert_to_tensor(x)
    scores = np.stack([keras.ops.convert_to_numpy(discriminator(
        [x, keras.ops.full((len(y),), j, "int32")]))[:, 0] for j in range(K)], axis=1)
    return float(np.mean(scores.argmax(axis=1) == y))


@pytest.mark.slow
def test_conditional_gan_trains_with_the_projection_discriminator_and_the_label_matters():
    """After 20 steps on images whose class is plain to see, the projection discriminator
    scores a real image higher with its own label than with any other: argmax_j D(x, j)
    names the label of held-out images. Neither the untrained network (chance, 1/K) nor the
    trained one with its class projection zeroed (D then ignores the label; ties give
    class 0, 1/K) passes that bar."""
    set_seed(0)
    model = conditional_gan.ConditionalGAN(
        conditional.build_conditional_generator(latent_dim=LATENT, width=8),
        conditional.build_projection_discriminator(width=8), latent_dim=LATENT,
        num_classes=K, seed=0)
    model.compile(d_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    # Built now, Adam's moments do not make fit() trace train_step twice.
    model.d_optimizer.build(model.discriminator.trainable_variables)
    model.g_optimizer.build(model.generator.trainable_variables)
    x, y = banded_images(640, 0)
    x_test, y_test = banded_images(100, 1)
    untrained = label_accuracy(model.discriminator, x_test, y_test)
    history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    assert all(np.isfinite(values[-1]) for values in history.values())
    trained = label_accuracy(model.discriminator, x_test, y_test)
    assert trained > 0.8 and untrained < 0.3, (untrained, trained)
    projection = model.discriminator.get_layer("class_projection")
    projection.set_weights([np.zeros_like(projection.get_weights()[0])])
    assert label_accuracy(model.discriminator, x_test, y_test) < 0.3  # The label ignored.
