"""The conditional VAE (Sohn et al., 2015): an encoder q(z | x, y) and a decoder p(x | z, y),
trained with `fit(images, labels)` to maximise the conditional ELBO

    log p(x | y) >= E_q(z | x, y)[log p(x | z, y)] - KL(q(z | x, y) || p(z)).

The prior is N(0, I) for every class: Sohn et al. allow a prior network p(z | y), but with a
fixed prior the class lives in y alone and z holds the rest (stroke, slant, width), which is
what "draw class c" needs. A `vae.VAE` whose networks take the label as a second input.
Explained in notebooks/08_conditional.ipynb, section "The conditional VAE".
"""

import keras
import tensorflow as tf
from keras import layers, ops

from dgm_course import accelerate, conditional, dcgan, losses, vae
from dgm_course._validation import require_int


def build_conditional_encoder(image_shape=(28, 28, 1), *, num_classes=10, latent_dim=16,
                              width=32):
    """Returns an encoder [images, labels (batch,)] -> [z_mean, z_log_var], (batch, latent_dim).

    The label enters as one more image channel (a learned map per class, as in
    `conditional.build_conditional_discriminator`); stride-2 ReLU convolutions, a dense layer,
    then the two heads. Explained in notebooks/08_conditional.ipynb, "The conditional VAE".

    Args:
        image_shape: (28, 28, 1) or (32, 32, 3).
        num_classes: K. latent_dim: size of z. width: channels of the first convolution.

    Returns:
        A functional `keras.Model` named "conditional_encoder".
    """
    shape, stages = dcgan._stages(image_shape)
    num_classes = require_int(num_classes, "num_classes", minimum=2)
    latent_dim = require_int(latent_dim, "latent_dim", minimum=1)
    images = keras.Input(shape, name="images")
    labels = keras.Input((), dtype="int32", name="labels")
    embedding = layers.Embedding(num_classes, shape[0] * shape[1], name="label_embedding")
    h = ops.concatenate([images, conditional.label_channel(labels, embedding, shape)], axis=-1)
    for stage in range(stages):
        h = layers.Conv2D(width * 2**stage, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Dense(128, activation="relu")(layers.Flatten()(h))
    z_mean = layers.Dense(latent_dim, name="z_mean")(h)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(h)
    return keras.Model([images, labels], [z_mean, z_log_var], name="conditional_encoder")


def build_conditional_decoder(image_shape=(28, 28, 1), *, num_classes=10, latent_dim=16,
                              embedding_dim=16, width=32):
    """Returns a decoder [z (batch, latent_dim), labels (batch,)] -> logits shaped like images.

    concat(z, embed(y)) -> dense -> a small feature map -> stride-2 transposed convolutions, the
    last one linear: the logits of Bernoulli pixels (or the means of Gaussian ones).
    Explained in notebooks/08_conditional.ipynb, "The conditional VAE".

    Args:
        image_shape: (28, 28, 1) or (32, 32, 3).
        num_classes: K. latent_dim: size of z. embedding_dim: size of the label's embedding.
        width: channels of the largest hidden feature map.

    Returns:
        A functional `keras.Model` named "conditional_decoder".
    """
    (height, _, channels), stages = dcgan._stages(image_shape)
    num_classes = require_int(num_classes, "num_classes", minimum=2)
    z = keras.Input((require_int(latent_dim, "latent_dim", minimum=1),), name="z")
    labels = keras.Input((), dtype="int32", name="labels")
    embedding = layers.Embedding(num_classes, require_int(embedding_dim, "embedding_dim",
                                                          minimum=1), name="label_embedding")
    side, filters = height // 2**stages, width * 2 ** (stages - 1)
    h = layers.Dense(side * side * filters, activation="relu")(
        conditional.conditional_input(z, labels, embedding))
    h = layers.Reshape((side, side, filters))(h)
    for stage in range(stages - 1):
        h = layers.Conv2DTranspose(filters // 2 ** (stage + 1), 4, strides=2, padding="same",
                                   activation="relu")(h)
    output = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", name="logits")(h)
    return keras.Model([z, labels], output, name="conditional_decoder")


@keras.saving.register_keras_serializable(package="dgm_course")
class ConditionalVAE(vae.VAE):
    """A VAE of p(x | y): `encoder([x, y])` -> [z_mean, z_log_var], `decoder([z, y])` -> p(x | z, y).

    The loss is the negative conditional ELBO, -log p(x | z, y) + beta * KL(q(z | x, y) || N(0, I)),
    one reparameterised z per example, trackers `loss`, `reconstruction`, `kl` as in `vae.VAE`.
    `generate_class(c, n, seed=...)` decodes z ~ N(0, I) with y = c.
    Explained in notebooks/08_conditional.ipynb, section "The conditional VAE".

    Args:
        encoder: [images, labels] -> [z_mean, z_log_var], e.g. `build_conditional_encoder`.
        decoder: [z, labels] -> logits (bernoulli) or means (gaussian), shaped like the images.
        num_classes: K.
        beta, likelihood, seed, **kwargs: as for `vae.VAE` (likelihood "bernoulli" wants
            images in [0, 1]).

    Example:
        >>> cvae = ConditionalVAE(build_conditional_encoder(), build_conditional_decoder(),
        ...                       num_classes=10, likelihood="bernoulli", seed=0)
        >>> cvae.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> cvae.fit(x01_train, y_train, batch_size=128, epochs=5)
        >>> sevens = cvae.generate_class(7, 16, seed=1)  # (16, 28, 28, 1) in [0, 1]
    """

    def __init__(self, encoder, decoder, *, num_classes, beta=1.0, likelihood="bernoulli",
                 seed=0, **kwargs):
        for name, network in (("encoder", encoder), ("decoder", decoder)):
            if len(getattr(network, "inputs", None) or ()) != 2:
                raise ValueError(f"The {name} must take two inputs ([images, labels] or "
                                 f"[z, labels]); build it with build_conditional_{name}.")
        super().__init__(encoder, decoder, beta=beta, likelihood=likelihood, seed=seed, **kwargs)
        self.num_classes = require_int(num_classes, "num_classes", minimum=2)
        self.image_shape = tuple(encoder.inputs[0].shape[1:])
        self._seed = seed

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "beta": self.beta,
                "likelihood": self.likelihood, "seed": self._seed,
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("encoder", "decoder"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit` on (images, labels), after checking their shapes and range."""
        conditional.check_training_data(x, y, image_shape=self.image_shape,
                                        num_classes=self.num_classes)
        if isinstance(x, tf.data.Dataset):  # It orders its own batches; Keras would warn.
            kwargs.setdefault("shuffle", False)
        return super().fit(x, y, *args, **kwargs)

    def call(self, inputs, training=False):
        """Reconstructs images from [images, labels] through the posterior mean."""
        x, labels = inputs
        z_mean, _ = self.encoder([x, labels], training=training)
        return self.decode(z_mean, labels, training=training)

    def decode(self, z, labels, training=False):
        """Returns E[x | z, y]: sigmoid(logits) (bernoulli) or the mean (gaussian)."""
        z, labels = ops.convert_to_tensor(z, "float32"), ops.convert_to_tensor(labels, "int32")
        output = self.decoder([z, labels], training=training)
        return ops.sigmoid(output) if self.likelihood == "bernoulli" else output

    def compute_terms(self, x, labels, training=False):
        """Returns (-log p(x | z, y), KL(q(z | x, y) || p(z))), each (batch,), one z each."""
        x, labels = ops.convert_to_tensor(x, "float32"), ops.convert_to_tensor(labels, "int32")
        z_mean, z_log_var = self.encoder([x, labels], training=training)
        # z = z_mean + exp(0.5 * z_log_var) * epsilon  # (batch, latent_dim)
        z = losses.reparameterize(z_mean, z_log_var, seed=self.seed_generator)
        reconstruction = -self.log_likelihood(x, self.decoder([z, labels], training=training))
        return reconstruction, losses.gaussian_kl(z_mean, z_log_var)

    def _batch(self, data):
        x, labels = conditional.split_batch(data)
        conditional.check_image_shape(x.shape[1:], self.image_shape, "The batch")
        return x, ops.cast(labels, "int32")

    def train_step(self, data):
        x, labels = self._batch(data)
        with tf.GradientTape() as tape:
            reconstruction, kl = self.compute_terms(x, labels, training=True)
            loss = self._loss(reconstruction, kl)
            scaled = accelerate.scaled_loss(loss, self.optimizer)  # / replicas, * scale
        self.optimizer.apply(tape.gradient(scaled, self.trainable_weights),
                             self.trainable_weights)
        return self._record(reconstruction, kl)

    def test_step(self, data):
        return self._record(*self.compute_terms(*self._batch(data), training=False))

    def generate_class(self, label, n, *, seed):
        """Returns n images of class `label`: E[x | z, y = label], z ~ N(0, I) drawn with `seed`.

        Args:
            label: an int in 0..num_classes-1. n: how many images.
            seed: an int or a `keras.random.SeedGenerator` owned by the caller.

        Returns:
            A NumPy array (n, H, W, C): pixel probabilities in [0, 1] (bernoulli) or means.

        Raises:
            TypeError, ValueError: for a label that is no int or out of range, or a bad n.
        """
        z, labels = conditional.class_noise(label, n, latent_dim=self.latent_dim,
                                            num_classes=self.num_classes, seed=seed)
        return ops.convert_to_numpy(self.decode(z, labels))

    def generate(self, n, *, seed, noise=False):
        """Returns n images whose classes cycle 0, 1, ..., K-1, 0, ... (means; no pixel noise)."""
        if noise:
            raise ValueError("ConditionalVAE.generate returns the decoder's means; noise=True "
                             "is not supported.")
        n = require_int(n, "n", minimum=1)
        z = keras.random.normal((n, self.latent_dim), seed=seed)
        return ops.convert_to_numpy(self.decode(z, ops.arange(n, dtype="int32") % self.num_classes))


__all__ = ["ConditionalVAE", "build_conditional_decoder", "build_conditional_encoder"]
