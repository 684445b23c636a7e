"""dgm_course.semi_supervised: the losses of Salimans et al. (2016) against a NumPy transcription
that builds the K + 1-class softmax explicitly (a fake logit of 0 appended), feature matching
against NumPy, the pipeline, the model (one-batch fit, seeds, classify, validation) and the
refusal of bad input."""

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dgm_course import semi_supervised as ss
from dgm_course.environment import set_seed

K, LATENT, SHAPE = 4, 3, (6, 6, 1)


def k_plus_one_softmax(logits):
    """p(y = 1..K+1 | x) in float64 with the fake class's logit fixed at 0 as the last column."""
    full = np.concatenate([np.asarray(logits, np.float64), np.zeros((len(logits), 1))], axis=1)
    shifted = np.exp(full - full.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)  # (batch, K + 1)


def random_logits(n, seed, scale=3.0):
    return (np.random.default_rng(seed).normal(size=(n, K)) * scale).astype(np.float32)


def images(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, *SHAPE)).astype(np.float32)


def labels(n, seed=0):
    return np.random.default_rng(seed).integers(0, K, n)


def make_model(*, seed=0, weights_seed=0, **kwargs):
    set_seed(weights_seed)
    model = ss.SemiSupervisedGAN(
        ss.build_generator(SHAPE, latent_dim=LATENT, units=(8,)),
        ss.build_discriminator(SHAPE, num_classes=K, units=(16, 8), seed=seed),
        latent_dim=LATENT, seed=seed, **kwargs)
    model.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
    return model


def dataset(n_unlabelled=16, batch_size=8, seed=0):
    return ss.make_semi_supervised_dataset(images(2 * K, 1), np.arange(2 * K) % K,
                                           images(n_unlabelled, 2), batch_size=batch_size,
                                           seed=seed, num_classes=K)


# The formulas, against NumPy.


def test_supervised_loss_is_the_cross_entropy_of_the_real_classes():
    """-log p(y | x, y < K + 1): the K + 1-softmax renormalised over the K real classes."""
    logits, y = random_logits(7, 0), labels(7)
    p = k_plus_one_softmax(logits)
    expected = -np.mean(np.log(p[np.arange(7), y] / p[:, :K].sum(axis=1)))
    assert float(ss.supervised_loss(logits, y)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("scale", [1.0, 3.0, 40.0])  # 40: exp overflows without logsumexp.
def test_unsupervised_loss_against_the_k_plus_one_softmax(scale):
    """-E[log D(x)] - E[log(1 - D(G(z)))] with D = 1 - p(y = K + 1 | x), the fake class's
    probability read off the explicit softmax."""
    real, fake = random_logits(6, 1, scale), random_logits(5, 2, scale)
    p_real, p_fake = k_plus_one_softmax(real), k_plus_one_softmax(fake)
    # D(x) as the sum over the K real classes (1 - p_fake would round to 0 far from the data).
    expected = -np.mean(np.log(p_real[:, :K].sum(axis=1))) - np.mean(np.log(p_fake[:, K]))
    loss = float(ss.unsupervised_loss(real, fake))
    assert np.isfinite(loss) and loss == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(ss.real_probability(real), p_real[:, :K].sum(axis=1), rtol=1e-5)


def test_unsupervised_loss_gradient_against_finite_differences():
    real, fake = random_logits(3, 3).astype(np.float64), random_logits(3, 4).astype(np.float64)

    def numpy_loss(r, f):
        return (-np.mean(np.log(k_plus_one_softmax(r)[:, :K].sum(axis=1)))
                - np.mean(np.log(k_plus_one_softmax(f)[:, K])))

    variable = tf.Variable(real)
    with tf.GradientTape() as tape:
        loss = ss.unsupervised_loss(variable, fake)
    gradient = tape.gradient(loss, variable).numpy()
    h, finite = 1e-4, np.zeros_like(real)
    for index in np.ndindex(real.shape):
        step = np.zeros_like(real)
        step[index] = h
        finite[index] = (numpy_loss(real + step, fake) - numpy_loss(real - step, fake)) / (2 * h)
    np.testing.assert_allclose(gradient, finite, atol=1e-4)


def test_feature_matching_is_the_squared_distance_of_the_means():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(9, 4)), rng.normal(1.0, 2.0, size=(6, 4))
    expected = np.sum((real.mean(axis=0) - fake.mean(axis=0)) ** 2)
    assert float(ss.feature_matching_loss(real, fake)) == pytest.approx(expected, rel=1e-5)
    real_variable, fake_variable = tf.Variable(real), tf.Variable(fake)
    with tf.GradientTape() as tape:
        loss = ss.feature_matching_loss(real_variable, fake_variable)
    real_gradient, fake_gradient = tape.gradient(loss, [real_variable, fake_variable])
    assert real_gradient is None or not np.any(real_gradient)  # Only the generator's side moves.
    np.testing.assert_allclose(fake_gradient.numpy(),  # d/df_j = -2 (mean_r - mean_f) / n_fake
                               np.tile(-2 * (real.mean(0) - fake.mean(0)) / 6, (6, 1)), rtol=1e-5)


# The pipeline and the model.


def test_dataset_batches_hold_labelled_and_unlabelled_images():
    data = dataset(n_unlabelled=20, batch_size=8)
    batches = list(data)
    assert len(batches) == 2  # 20 // 8: full batches of the unlabelled images only.
    (x_l, y_l), x_u = batches[0]
    assert x_l.shape == (8, *SHAPE) and y_l.shape == (8,) and x_u.shape == (8, *SHAPE)
    seen = np.concatenate([batch[0][1].numpy() for batch in batches])
    assert set(seen) == set(range(K))  # The 8 labelled images are cycled through.
    again = list(dataset(n_unlabelled=20, batch_size=8))
    assert np.array_equal(batches[1][1].numpy(), again[1][1].numpy())  # Same seed, same order.


def one_batch_fit(cls=ss.SemiSupervisedGAN):
    """One fit() step of a model whose discriminator has no noise layers active (std 0), on
    8 labelled images labelled so that the untrained discriminator gets exactly 5 right.
    Returns (the logs, the accuracy argmax l(x) == y of the labelled batch before the step,
    recomputed from the discriminator itself)."""
    set_seed(0)
    model = cls(ss.build_generator(SHAPE, latent_dim=LATENT, units=(8,)),
                ss.build_discriminator(SHAPE, num_classes=K, units=(16, 8), input_noise=0.0,
                                       hidden_noise=0.0),
                latent_dim=LATENT, seed=0, unsupervised_weight=0.5)
    model.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
    model.d_optimizer.build(model.discriminator.trainable_variables)  # else fit() traces twice
    model.g_optimizer.build(model.generator.trainable_variables)
    x_labelled = images(8, 1)
    predicted = model.discriminator(x_labelled, training=True)[0].numpy().argmax(axis=1)
    y_labelled = np.where(np.arange(8) < 5, predicted, (predicted + 1) % K)  # 5 of 8 right
    # One step sees all 8 labelled images (in some order): the batch's accuracy is theirs.
    data = ss.make_semi_supervised_dataset(x_labelled, y_labelled, images(8, 2), batch_size=8,
                                           seed=0, num_classes=K)
    logs = model.fit(data, epochs=1, verbose=0).history
    return logs, float(np.mean(predicted == y_labelled))


@pytest.mark.slow
def test_one_batch_fit_gives_finite_losses_and_consistent_trackers():
    logs, expected_accuracy = one_batch_fit()
    assert set(logs) == {"d_loss", "g_loss", "supervised", "unsupervised", "accuracy"}
    assert all(np.isfinite(values[0]) for values in logs.values())
    assert logs["d_loss"][0] == pytest.approx(logs["supervised"][0]
                                              + 0.5 * logs["unsupervised"][0], rel=1e-5)
    # The logged accuracy is that of the labelled batch's logits before D's step.
    assert expected_accuracy == 5 / 8
    assert logs["accuracy"][0] == pytest.approx(expected_accuracy)


class AccuracyWithShiftedLabels(ss.SemiSupervisedGAN):
    """Broken: the accuracy compares the predictions with labels misaligned by one class."""

    def _record(self, logits, labels, **losses):
        return super()._record(logits, (labels + 1) % self.num_classes, **losses)


class AccuracyOfTheLeastLikelyClass(ss.SemiSupervisedGAN):
    """Broken: the accuracy takes argmin of the logits (or of -logits, the losses' sign)."""

    def _record(self, logits, labels, **losses):
        return super()._record(-logits, labels, **losses)


@pytest.mark.slow
@pytest.mark.parametrize("broken", [AccuracyWithShiftedLabels, AccuracyOfTheLeastLikelyClass],
                         ids=lambda cls: cls.__name__)
def test_the_accuracy_check_fails_on_a_broken_accuracy(broken):
    """The accuracy assertion above can fail: these two broken trackers violate it (the old
    assertion, 0 <= accuracy <= 1, let both through)."""
    logs, expected_accuracy = one_batch_fit(broken)
    assert 0.0 <= logs["accuracy"][0] <= 1.0
    assert logs["accuracy"][0] != pytest.approx(expected_accuracy)


@pytest.mark.slow
def test_same_seed_gives_same_weights():
    runs = []
    for seed in (5, 5, 6):
        model = make_model(seed=seed)
        model.fit(dataset(16, seed=seed), epochs=1, verbose=0)
        runs.append([w.numpy() for w in model.weights])
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(np.allclose(a, c) for a, c in zip(runs[0], runs[2], strict=True))


@pytest.mark.slow
def test_classify_validation_and_config():
    model = make_model()
    x, y = images(10, 7), labels(10, 7)
    history = model.fit(dataset(8), epochs=1, verbose=0, validation_data=(x, y))
    probabilities = model.class_probabilities(x)
    predicted = model.classify(x, batch_size=4)
    assert probabilities.shape == (10, K) and predicted.shape == (10,)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(predicted, probabilities.argmax(axis=1))
    assert history.history["val_accuracy"][0] == pytest.approx(np.mean(predicted == y))
    logits = model.predict(x, verbose=0)  # call() gives the class logits.
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True),
                               probabilities, rtol=1e-5)
    clone = ss.SemiSupervisedGAN.from_config(model.get_config())
    assert (clone.num_classes, clone.latent_dim, clone.image_shape) == (K, LATENT, SHAPE)
    assert model.generate(5, seed=1).shape == (5, *SHAPE)


def test_builders_shapes():
    discriminator = ss.build_discriminator(num_classes=10)
    assert [tuple(o.shape) for o in discriminator.outputs] == [(None, 10), (None, 250)]
    assert discriminator.count_params() == (784 * 1000 + 1000 * 500 + 500 * 250 + 2 * 250 * 250
                                            + 250 * 10) + 2 * (1000 + 500 + 3 * 250 + 10)
    generator = ss.build_generator(latent_dim=100)
    assert generator.output_shape == (None, 28, 28, 1)
    pixels = generator(np.random.default_rng(0).normal(size=(4, 100)), training=False)
    assert 0.0 <= float(np.min(pixels)) and float(np.max(pixels)) <= 1.0  # Sigmoid: [0, 1].


def test_weight_norm_dense_against_numpy_and_its_config():
    layer = ss.WeightNormDense(3, activation="relu")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    layer(x)
    layer.scale.assign([0.5, 2.0, 1.0])
    layer.bias.assign([0.1, -0.2, 0.3])
    v = layer.direction.numpy()
    w = v / np.linalg.norm(v, axis=0) * np.array([0.5, 2.0, 1.0])  # w_j = g_j v_j / ||v_j||
    np.testing.assert_allclose(layer(x), np.maximum(x @ w + [0.1, -0.2, 0.3], 0), rtol=1e-5,
                               atol=1e-6)
    assert [weight.name for weight in layer.trainable_weights] == ["direction", "scale", "bias"]
    fixed = ss.WeightNormDense.from_config(ss.WeightNormDense(3, train_scale=False).get_config())
    fixed.build((None, 4))
    assert [weight.name for weight in fixed.trainable_weights] == ["direction", "bias"]


def test_initialize_from_data_standardises_every_pre_activation():
    set_seed(0)
    x = images(200, 3)
    discriminator = ss.initialize_from_data(
        ss.build_discriminator(SHAPE, num_classes=K, units=(16, 8)), x)
    for layer in [layer for layer in discriminator.layers
                  if isinstance(layer, ss.WeightNormDense)]:
        inputs = keras.Model(discriminator.input, layer.input)(x, training=False)
        a = keras.ops.convert_to_numpy(layer.pre_activation(inputs) + layer.bias)
        np.testing.assert_allclose(a.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(a.std(axis=0), 1.0, rtol=1e-3)


@pytest.mark.slow
def test_moving_average_of_the_discriminator_classifies():
    model = make_model(ema=0.9)
    before = [w.numpy() for w in model.discriminator.weights]
    model.fit(dataset(8), epochs=1, verbose=0)  # One step.
    assert model.classifier is model.average_discriminator
    decay = 2.0 / 11.0  # moving_average_decay(0.9, step=1) = min(0.9, 2 / 11)
    for old, new, average in zip(before, model.discriminator.weights,
                                 model.average_discriminator.weights, strict=True):
        np.testing.assert_allclose(average.numpy(), decay * old + (1 - decay) * new.numpy(),
                                   rtol=1e-5, atol=1e-6)
    x = images(6, 4)
    expected = model.average_discriminator(x, training=False)[0].numpy().argmax(axis=1)
    assert np.array_equal(model.classify(x), expected)
    assert ss.SemiSupervisedGAN.from_config(model.get_config()).ema == 0.9


def baseline_on_eight_images():
    """The supervised baseline trained 20 steps on 8 labelled images; returns it with the
    discriminator it was built on and the data."""
    set_seed(0)
    discriminator = ss.build_discriminator(SHAPE, num_classes=K, units=(16, 8))
    x, y = images(8), np.arange(8) % K
    classifier = ss.train_supervised_baseline(discriminator, x, y, steps=20, batch_size=8,
                                              learning_rate=0.01)
    return classifier, discriminator, x, y


@pytest.mark.slow
def test_supervised_baseline_is_the_discriminators_classifier():
    classifier, discriminator, x, y = baseline_on_eight_images()
    assert classifier.output_shape == (None, K)
    assert classifier.layers[-1] is discriminator.layers[-1]  # The same network, logits only.
    loss, accuracy = classifier.evaluate(x, y, verbose=0)
    logits = classifier.predict(x, verbose=0).astype(np.float64)
    # evaluate() reports the cross-entropy and accuracy of its own logits on these images...
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(-np.mean(log_p[np.arange(8), y]), rel=1e-4)
    assert accuracy == pytest.approx(np.mean(logits.argmax(axis=1) == y))
    # ...and training taught it the labels of its 8 images (chance: 1/4).
    assert accuracy >= 0.75


@pytest.mark.slow
def test_the_baseline_check_fails_when_the_labels_are_detached_from_the_images(monkeypatch):
    """The training assertion above can fail: with images and labels shuffled apart (a broken
    pipeline) the baseline cannot learn them (the old 0 <= accuracy <= 1 let it through)."""

    def detached(x_labelled, labels, *, batch_size, seed):
        def shuffled(values, s):
            return tf.data.Dataset.from_tensor_slices(values).shuffle(
                len(labels), seed=s, reshuffle_each_iteration=True)

        return (tf.data.Dataset.zip((shuffled(x_labelled, seed), shuffled(labels, seed + 1)))
                .repeat().batch(batch_size))

    monkeypatch.setattr(ss, "_labelled_batches", detached)
    classifier, _, x, y = baseline_on_eight_images()
    _, accuracy = classifier.evaluate(x, y, verbose=0)
    assert 0.0 <= accuracy < 0.75


# Bad input.


@pytest.mark.parametrize("change, error, match", [
    ({"y_labelled": np.array([0, 1, 2, 9])}, ValueError, r"must lie in 0\.\.3 \(num_classes=4"),
    ({"y_labelled": np.array([0, 1, 2])}, ValueError, "has 3 entries but there are 4 images"),
    ({"y_labelled": np.array([0.0, 1, 2, 3])}, TypeError, "not one-hot rows or floats"),
    ({"x_unlabelled": images(16)[:, :5]}, ValueError, r"per-image shape \(5, 6, 1\)"),
    ({"x_unlabelled": images(16)[..., 0]}, ValueError, "must have 4 dimensions"),
    ({"x_labelled": (images(4) * 127).astype(np.uint8)}, TypeError, "normalize"),
    ({"x_unlabelled": images(3)}, ValueError, "fewer than one batch of 8"),
])
def test_bad_pipeline_input_is_refused(change, error, match):
    arguments = {"x_labelled": images(4), "y_labelled": np.arange(4), "x_unlabelled": images(16)}
    arguments.update(change)
    with pytest.raises(error, match=match):
        ss.make_semi_supervised_dataset(**arguments, batch_size=8, num_classes=K)


@pytest.mark.slow
def test_bad_model_input_is_refused():
    model = make_model()
    with pytest.raises(ValueError, match="trains on batches"):
        model.fit(images(8), labels(8), verbose=0)
    other = ss.make_semi_supervised_dataset(np.zeros((4, 5, 5, 1), np.float32), np.arange(4),
                                            np.zeros((8, 5, 5, 1), np.float32), batch_size=4)
    with pytest.raises(ValueError, match=r"labelled images has per-example shape \(5, 5, 1\)"):
        model.fit(other, verbose=0)
    with pytest.raises(ValueError, match=r"per-image shape \(28, 28, 1\)"):
        model.classify(np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match="must output \\[class logits"):
        ss.SemiSupervisedGAN(model.generator, keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                                                               keras.layers.Dense(K)]),
                             latent_dim=LATENT)
    with pytest.raises(ValueError, match="`unsupervised_weight` must be a number >= 0"):
        make_model(unsupervised_weight=-1.0)


# The experiment script, in a tiny configuration (no accuracy is asserted).


@pytest.mark.slow
def test_benchmark_runs_both_contenders_and_prints_a_table(monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "semi_supervised_benchmark", Path(__file__).resolve().parent.parent
        / "benchmarks" / "semi_supervised.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    # Keep the two contenders the benchmark trains, to recompute the accuracies it reports.
    reports, baselines = [], []

    class RecordedReport(benchmark.EpochReport):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            reports.append(self)

    train_baseline = ss.train_supervised_baseline

    def recorded_baseline(*args, **kwargs):
        baselines.append(train_baseline(*args, **kwargs))
        return baselines[-1]

    monkeypatch.setattr(benchmark, "EpochReport", RecordedReport)
    monkeypatch.setattr(benchmark.semi_supervised, "train_supervised_baseline", recorded_baseline)
    x, y = (images(300, 8) + 1) / 2, np.arange(300) % K
    result = benchmark.run(x, y, x[:40], y[:40], labels_per_class=2, epochs=1, seed=0,
                           baseline_steps=3)
    assert result["labels"] == 2 * K and len(result["curve"]) == 1
    # The reported accuracies are those of the two trained contenders on the test images:
    # the GAN's moving-average classifier (classify) and the baseline's logits.
    [report], [baseline] = reports, baselines
    model = report.classifier
    assert model.classifier is model.average_discriminator
    assert result["accuracy"] == result["curve"][-1] == result["best_accuracy"]
    assert result["accuracy"] == pytest.approx(np.mean(model.classify(x[:40]) == y[:40]))
    logits = baseline.predict(x[:40], verbose=0)
    assert result["baseline_accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == y[:40]))
    rows = benchmark.markdown([("toy", result)]).splitlines()
    assert rows[0].startswith("| dataset | labels | seed |") and rows[2].startswith("| toy | 8 |")
