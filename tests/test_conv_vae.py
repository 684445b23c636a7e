"""dgm_course.conv_vae: builder shapes and weight counts against closed forms, seeds, a
one-batch fit() through vae.VAE with finite losses and a validation loss from test_step,
binarisation against its probabilities, the batched log-likelihood estimate against the
VAE's own bound, and clear errors for bad input."""

import keras
import numpy as np
import pytest

from dgm_course import conv_vae, vae
from dgm_course.environment import set_seed

SHAPES = [(28, 28, 1), (32, 32, 3)]


def _images(shape, n=16, seed=0):
    return (np.random.default_rng(seed).uniform(size=(n, *shape)) < 0.3).astype("float32")


def _model(shape=(28, 28, 1), *, likelihood="bernoulli", latent_dim=4, width=4, beta=1.0):
    set_seed(0)
    model = vae.VAE(conv_vae.build_encoder(shape, latent_dim=latent_dim, width=width),
                    conv_vae.build_decoder(latent_dim, shape, likelihood=likelihood, width=width),
                    likelihood=likelihood, beta=beta, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes(shape):
    encoder = conv_vae.build_encoder(shape, latent_dim=5, width=4)
    decoder = conv_vae.build_decoder(5, shape, width=4)
    z_mean, z_log_var = encoder(np.zeros((3, *shape), "float32"))
    assert tuple(z_mean.shape) == tuple(z_log_var.shape) == (3, 5)
    assert tuple(decoder(np.zeros((3, 5), "float32")).shape) == (3, *shape)


def test_weight_counts_match_closed_forms():
    w, d = 4, 5
    encoder = conv_vae.build_encoder((28, 28, 1), latent_dim=d, width=w)
    # conv 3x3 1->w, conv 3x3 w->2w, dense 7*7*2w -> 8w, two heads 8w -> d (weights + biases)
    expected = (9 * w + w) + (9 * w * 2 * w + 2 * w) + (49 * 2 * w * 8 * w + 8 * w) + 2 * (8 * w * d + d)
    assert encoder.count_params() == expected
    decoder = conv_vae.build_decoder(d, (28, 28, 1), width=w)
    # dense d -> 7*7*2w, convT 3x3 2w->w, convT 3x3 w->w, conv 3x3 w->1
    expected = (d * 49 * 2 * w + 49 * 2 * w) + (9 * 2 * w * w + w) + (9 * w * w + w) + (9 * w + 1)
    assert decoder.count_params() == expected


@pytest.mark.slow
def test_same_seed_same_weights_and_losses():
    histories = []
    for _ in range(2):
        model = _model()
        histories.append(model.fit(_images((28, 28, 1)), epochs=1, batch_size=16, verbose=0).history)
    assert histories[0] == histories[1]


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_one_batch_fit_with_validation_gives_finite_losses(shape, likelihood):
    model = _model(shape, likelihood=likelihood)
    x = _images(shape)
    history = model.fit(x, epochs=2, batch_size=16, validation_data=(x,), verbose=0).history
    assert set(history) == {f"{prefix}{name}" for prefix in ("", "val_")
                            for name in ("loss", "reconstruction", "kl")}
    for values in history.values():
        assert np.all(np.isfinite(values))
    # test_step: no noise in the weights, so evaluate() repeats the last val_ numbers' recipe.
    scores = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    assert np.isclose(scores["loss"], scores["reconstruction"] + scores["kl"], rtol=1e-5)


def test_bernoulli_decoder_outputs_logits_and_vae_decodes_probabilities():
    model = _model()
    z = np.random.default_rng(0).normal(size=(4, 4)).astype("float32")
    logits = keras.ops.convert_to_numpy(model.decoder(z))
    probabilities = keras.ops.convert_to_numpy(model.decode(z))
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)


def test_binarize_matches_the_grey_levels_as_probabilities():
    grey = np.tile(np.array([0, 64, 128, 255], np.uint8), (50_000, 1))
    binary = conv_vae.binarize(grey, seed=0)
    assert binary.dtype == np.float32 and set(np.unique(binary)) <= {0.0, 1.0}
    np.testing.assert_allclose(binary.mean(axis=0), [0, 64 / 255, 128 / 255, 1], atol=0.01)
    assert binary[:, 0].max() == 0 and binary[:, 3].min() == 1
    np.testing.assert_array_equal(binary, conv_vae.binarize(grey, seed=0))
    assert not np.array_equal(binary, conv_vae.binarize(grey, seed=1))


@pytest.mark.slow
def test_estimate_log_likelihood_is_the_vaes_bound_in_batches():
    model = _model()
    x = _images((28, 28, 1), n=6)
    whole = keras.ops.convert_to_numpy(
        model.log_likelihood_bound(x, k=5, seed=keras.random.SeedGenerator(3)))
    np.testing.assert_allclose(conv_vae.estimate_log_likelihood(model, x, k=5, seed=3, batch_size=6),
                               whole, rtol=1e-6)
    batched = conv_vae.estimate_log_likelihood(model, x, k=5, seed=3, batch_size=4)
    assert batched.shape == (6,) and np.all(np.isfinite(batched))
    # L_k grows with k on average (Burda et al. 2016, theorem 1).
    many = np.repeat(x[:2], 20, axis=0)
    low = conv_vae.estimate_log_likelihood(model, many, k=1, seed=0, batch_size=40).mean()
    high = conv_vae.estimate_log_likelihood(model, many, k=50, seed=0, batch_size=40).mean()
    assert high > low


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: conv_vae.build_encoder((28, 28)), ValueError, "channel axis"),
        (lambda: conv_vae.build_encoder((64, 64, 3)), ValueError, "image_shape"),
        (lambda: conv_vae.build_encoder(latent_dim=0), ValueError, "latent_dim"),
        (lambda: conv_vae.build_encoder(width=2.5), TypeError, "width"),
        (lambda: conv_vae.build_decoder(4, likelihood="poisson"), ValueError, "likelihood"),
        (lambda: conv_vae.build_decoder(4, (28, 28, 3)), ValueError, "image_shape"),
        (lambda: conv_vae.binarize(np.zeros((2, 2), "float32"), seed=0), TypeError, "uint8"),
        (lambda: conv_vae.binarize(np.zeros((2, 2), "uint16"), seed=0), TypeError, "uint8"),
        (lambda: conv_vae.binarize(np.zeros((2, 2), "uint8"), seed=None), TypeError, "seed"),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_images_of_the_wrong_shape_are_rejected_by_fit():
    with pytest.raises(ValueError, match="encoder takes examples of shape"):
        _model().fit(_images((32, 32, 3)), epochs=1, batch_size=16, verbose=0)


def test_estimate_log_likelihood_rejects_bad_k():
    with pytest.raises(ValueError, match="k"):
        conv_vae.estimate_log_likelihood(_model(), _images((28, 28, 1), n=2), k=0, seed=0)
