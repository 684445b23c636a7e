"""dgm_course.interpret: traversals against a hand-built batch of codes, the KL per
coordinate against the summed closed form and a Monte Carlo estimate, input gradients
against a linear model's weights and central finite differences, and clear errors."""

import keras
import numpy as np
import pytest
from keras import layers

from dgm_course import interpret, losses

RNG = np.random.default_rng(0)


def test_latent_traversal_changes_one_coordinate_per_row():
    z = np.arange(4, dtype=np.float32)
    grid = interpret.latent_traversal(lambda codes: codes * 10, z, dims=[1, 3], values=[-2, 5])
    expected = 10 * np.array([[0, -2, 2, 3], [0, 5, 2, 3], [0, 1, 2, -2], [0, 1, 2, 5]])
    np.testing.assert_array_equal(grid, expected)


def test_kl_per_dimension_sums_to_the_vae_kl_and_matches_monte_carlo():
    z_mean = RNG.normal(size=(200, 3)).astype(np.float32)
    z_log_var = RNG.normal(-1, 0.5, size=(200, 3)).astype(np.float32)
    kl = interpret.kl_per_dimension(z_mean, z_log_var)
    total = np.asarray(losses.gaussian_kl(z_mean, z_log_var)).mean()
    assert kl.sum() == pytest.approx(total, rel=1e-5)
    # Monte Carlo: E_q[log q(z_j) - log N(z_j; 0, 1)] for coordinate 0 of example 0.
    mean, std = z_mean[0, 0], np.exp(0.5 * z_log_var[0, 0])
    z = mean + std * RNG.normal(size=400_000)
    log_q = -0.5 * (((z - mean) / std) ** 2 + np.log(2 * np.pi * std**2))
    log_p = -0.5 * (z**2 + np.log(2 * np.pi))
    single = interpret.kl_per_dimension(z_mean[:1], z_log_var[:1])[0]
    assert np.mean(log_q - log_p) == pytest.approx(single, abs=0.01)
    inactive = interpret.kl_per_dimension(np.zeros((5, 2)), np.zeros((5, 2)))
    np.testing.assert_allclose(inactive, 0.0)


def small_classifier(outputs=3, seed=0):
    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential([keras.Input((4, 4, 1)), layers.Flatten(),
                             layers.Dense(8, activation="tanh", kernel_initializer=init),
                             layers.Dense(outputs, kernel_initializer=init)])


def test_input_gradients_of_a_linear_model_are_its_weights():
    model = keras.Sequential([keras.Input((4, 4, 1)), layers.Flatten(), layers.Dense(3)])
    images = RNG.normal(size=(2, 4, 4, 1)).astype(np.float32)
    gradients = interpret.input_gradients(model, images, class_index=[2, 0])
    kernel = model.layers[-1].kernel.numpy()  # (16, 3)
    np.testing.assert_allclose(gradients[0].ravel(), kernel[:, 2], rtol=1e-6)
    np.testing.assert_allclose(gradients[1].ravel(), kernel[:, 0], rtol=1e-6)


@pytest.mark.parametrize("outputs, class_index", [(3, None), (3, 1), (1, None)])
def test_input_gradients_match_finite_differences(outputs, class_index):
    model = small_classifier(outputs)
    images = RNG.uniform(-1, 1, size=(3, 4, 4, 1)).astype(np.float64)
    gradients = interpret.input_gradients(model, images.astype(np.float32), class_index=class_index)
    logits = model(images.astype(np.float32)).numpy()
    target = logits.argmax(axis=1) if class_index is None else np.full(3, class_index)
    target = np.zeros(3, int) if outputs == 1 else target
    h = 1e-2
    for pixel in [(0, 0, 0), (1, 2, 0), (3, 3, 0)]:
        step = np.zeros_like(images)
        step[(slice(None),) + pixel] = h
        up = model((images + step).astype(np.float32)).numpy()
        down = model((images - step).astype(np.float32)).numpy()
        numeric = (up - down)[np.arange(3), target] / (2 * h)
        np.testing.assert_allclose(gradients[(slice(None),) + pixel], numeric, atol=2e-3)


def test_input_gradients_score_the_first_of_several_outputs():
    inputs = keras.Input((4, 4, 1))
    features = layers.Dense(5)(layers.Flatten()(inputs))
    two_outputs = keras.Model(inputs, [layers.Dense(3)(features), features])
    one_output = keras.Model(inputs, two_outputs.outputs[0])
    images = RNG.normal(size=(2, 4, 4, 1)).astype(np.float32)
    np.testing.assert_allclose(interpret.input_gradients(two_outputs, images),
                               interpret.input_gradients(one_output, images))


def test_saliency_map_is_scaled_per_image():
    gradients = np.zeros((2, 3, 3, 3), np.float32)
    gradients[0, 1, 1, 2] = -4.0
    gradients[0, 0, 0, 0] = 2.0
    saliency = interpret.saliency_map(gradients)
    assert saliency.shape == (2, 3, 3, 1)
    assert saliency[0, 1, 1, 0] == 1.0 and saliency[0, 0, 0, 0] == 0.5
    np.testing.assert_array_equal(saliency[1], 0.0)  # No gradient: all zero, no NaN.


def test_clear_errors():
    with pytest.raises(ValueError, match="one code"):
        interpret.latent_traversal(lambda c: c, np.zeros((2, 3)), dims=[0], values=[1])
    with pytest.raises(ValueError, match="at most 2"):
        interpret.latent_traversal(lambda c: c, np.zeros(3), dims=[3], values=[1])
    with pytest.raises(ValueError, match="same shape"):
        interpret.kl_per_dimension(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(TypeError, match="normalised float"):
        interpret.input_gradients(small_classifier(), np.zeros((1, 4, 4, 1), np.uint8))
