"""dgm_course.dcgan: builder shapes and weight counts against closed forms, the DCGAN guidelines
(where batch norm is and is not), shape validation, a one-batch fit() through gan.GAN for both
image shapes, a clear error for images of the wrong shape, and a save/load roundtrip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dgm_course import dcgan, gan
from dgm_course.environment import set_seed

SHAPES = [(28, 28, 1), (32, 32, 3)]


def images(shape, n=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, *shape)).astype("float32")


def make_gan(shape, *, width=8, latent_dim=8, seed=0, **kwargs):
    set_seed(0)
    model = gan.GAN(dcgan.build_generator(shape, latent_dim=latent_dim, width=width),
                    dcgan.build_discriminator(shape, width=width), latent_dim=latent_dim,
                    seed=seed, **kwargs)
    model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    return model


@pytest.mark.parametrize("shape", SHAPES)
def test_builder_shapes_and_weight_counts(shape):
    latent_dim, w, channels = 8, 8, shape[2]
    generator = dcgan.build_generator(shape, latent_dim=latent_dim, width=w)
    discriminator = dcgan.build_discriminator(shape, width=w)
    critic = dcgan.build_critic(shape, width=w)
    assert generator.output_shape == (None, *shape)
    assert discriminator.output_shape == critic.output_shape == (None, 1)
    # Closed forms: 4x4 kernels, BN has 4 weights per channel, no bias before BN.
    if shape == (28, 28, 1):  # dense -> 7x7x2w, 2w -> w, w -> 1
        g = (latent_dim * 49 * 2 * w + 4 * 2 * w + 16 * 2 * w * w + 4 * w
             + 16 * w * channels + channels)
        d = (16 * channels * w + w) + (16 * w * 2 * w + 2 * w) + 4 * 2 * w + (7 * 7 * 2 * w + 1)
        c = d - 4 * 2 * w + 2 * (7 * 7 * 2 * w)  # Layer norm over (7, 7, 2w): gamma and beta.
    else:  # dense -> 4x4x4w, 4w -> 2w -> w -> 3
        g = (latent_dim * 16 * 4 * w + 4 * 4 * w + 16 * 4 * w * 2 * w + 4 * 2 * w
             + 16 * 2 * w * w + 4 * w + 16 * w * channels + channels)
        d = ((16 * channels * w + w) + (16 * w * 2 * w + 2 * w) + 4 * 2 * w
             + (16 * 2 * w * 4 * w + 4 * w) + 4 * 4 * w + (4 * 4 * 4 * w + 1))
        c = d - 4 * 2 * w - 4 * 4 * w + 2 * (8 * 8 * 2 * w) + 2 * (4 * 4 * 4 * w)
    assert generator.count_params() == g
    assert discriminator.count_params() == d
    assert critic.count_params() == c
    assert dcgan.build_discriminator(shape, width=w, minibatch_std=True).count_params() == d + 1


def test_dcgan_guidelines():
    generator = dcgan.build_generator((32, 32, 3), width=8)
    discriminator = dcgan.build_discriminator((32, 32, 3), width=8)
    kinds = [type(layer).__name__ for layer in generator.layers]
    assert kinds[-1] == "Conv2DTranspose" and generator.layers[-1].activation.__name__ == "tanh"
    assert "BatchNormalization" not in kinds[-2:] and "ReLU" in kinds
    kinds = [type(layer).__name__ for layer in discriminator.layers]
    assert kinds[:2] == ["Conv2D", "LeakyReLU"]  # No batch norm on the input block.
    assert "BatchNormalization" in kinds and "MaxPooling2D" not in kinds
    for layer_norm in (True, False):
        kinds = [type(layer).__name__ for layer in
                 dcgan.build_critic((32, 32, 3), width=8, layer_norm=layer_norm).layers]
        assert "BatchNormalization" not in kinds
        assert ("LayerNormalization" in kinds) == layer_norm


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_one_batch_fit_gives_finite_losses(shape):
    model = make_gan(shape, label_smoothing=0.1)
    history = model.fit(images(shape), batch_size=16, epochs=1, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss"}
    assert all(np.isfinite(values[0]) for values in history.history.values())
    samples = model.generate(3, seed=1)
    assert samples.shape == (3, *shape) and np.all(np.abs(samples) <= 1)


@pytest.mark.parametrize("bad", [(64, 64, 3), (28, 28), (32, 32, 1), "mnist", None])
def test_unsupported_image_shape_names_the_supported_ones(bad):
    for build in (dcgan.build_generator, dcgan.build_discriminator, dcgan.build_critic):
        with pytest.raises(ValueError, match=r"\(28, 28, 1\) or \(32, 32, 3\).*resize"):
            build(bad)


def test_images_of_the_wrong_shape_give_our_message():
    model = make_gan((28, 28, 1))
    with pytest.raises(ValueError, match=r"shape \(32, 32, 3\).*takes \(28, 28, 1\)"):
        model.fit(images((32, 32, 3)), batch_size=16, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"shape \(28, 28\).*x\[\.\.\., None\]"):
        model.fit(images((28, 28)), batch_size=16, epochs=1, verbose=0)


@pytest.mark.slow
def test_save_and_load_roundtrip(tmp_path):
    model = make_gan((28, 28, 1), label_smoothing=0.1, seed=4)
    model.fit(images((28, 28, 1)), batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")
    assert isinstance(loaded, gan.GAN)
    assert (loaded.latent_dim, loaded.label_smoothing, loaded._seed) == (8, 0.1, 4)
    np.testing.assert_allclose(loaded.generate(4, seed=2), model.generate(4, seed=2), atol=1e-6)
    model.save_weights(tmp_path / "gan.weights.h5")
    fresh = make_gan((28, 28, 1))
    fresh.load_weights(tmp_path / "gan.weights.h5")
    for a, b in zip(fresh.generator.weights + fresh.discriminator.weights,
                    model.generator.weights + model.discriminator.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_dataset_of_the_wrong_shape_gives_our_message():
    dataset = tf.data.Dataset.from_tensor_slices(images((32, 32, 3))).batch(16)
    with pytest.raises(ValueError, match=r"shape \(32, 32, 3\).*takes \(28, 28, 1\)"):
        make_gan((28, 28, 1)).fit(dataset, epochs=1, verbose=0)
