"""Conditional GANs: generators of p(x | y), trained with `fit(images, labels)`.

- `ConditionalGAN` (Mirza & Osindero, 2014): both players see the label. The discriminator
  judges pairs (x, y): real images with their labels against G(z, y) with the same labels.
- `ACGAN` (Odena et al., 2017): the discriminator sees the image only and has a second head,
  a classifier. With L_S = E[log P(S = real | x_real)] + E[log P(S = fake | x_fake)] and
  L_C = E[log P(C = c | x_real)] + E[log P(C = c | x_fake)], D maximises L_S + L_C and G
  maximises L_C - L_S (here with the non-saturating generator loss, as in chapter 03).
Explained in notebooks/08_conditional.ipynb, sections "The conditional GAN" and "The AC-GAN".
"""

import keras
import tensorflow as tf
from keras import ops

from dgm_course import conditional, gan, losses
from dgm_course._validation import describe, require_int


def auxiliary_loss(real_class_logits, real_labels, fake_class_logits, fake_labels):
    """Returns -L_C, the AC-GAN's auxiliary classification loss, as batch means.

    -L_C = mean_i -log P(C = y_i | x_i) over the real batch + mean_j -log P(C = c_j | G(z_j, c_j))
    over the fake batch: sparse categorical cross-entropy from logits, each batch averaged,
    then summed (as `losses.discriminator_loss` sums its two terms). Explained in
    notebooks/08_conditional.ipynb, section "The AC-GAN".

    Args:
        real_class_logits: (batch, K) class logits on real images.
        real_labels: (batch,) their labels.
        fake_class_logits: (batch_fake, K) class logits on generated images.
        fake_labels: (batch_fake,) the labels they were generated for.

    Returns:
        A scalar tensor.

    Example:
        >>> float(auxiliary_loss(ops.zeros((2, 10)), [0, 1], ops.zeros((3, 10)), [2, 3, 4]))
        4.605170249938965
    """
    total = 0.0
    for logits, labels, name in ((real_class_logits, real_labels, "real"),
                                 (fake_class_logits, fake_labels, "fake")):
        logits, labels = ops.convert_to_tensor(logits, "float32"), ops.convert_to_tensor(labels)
        rows, count = logits.shape[0] if len(logits.shape) == 2 else -1, labels.shape[0]
        if len(labels.shape) != 1 or rows == -1 or None not in (rows, count) and rows != count:
            raise ValueError(f"`{name}_class_logits` must be (batch, num_classes) with one row per "
                             f"entry of `{name}_labels`; got {describe(logits)} for "
                             f"{describe(labels)} labels.")
        # -log P(C = y | x) = -log softmax(logits)[y]  # (batch,)
        total += ops.mean(ops.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    return total


@keras.saving.register_keras_serializable(package="dgm_course")
class ConditionalGAN(gan.GAN):
    """A GAN whose generator G(z, y) and discriminator D(x, y) both take the label.

    Each `train_step` gets (images, labels); the fakes are generated for the batch's own
    labels (so c ~ p(y), the classes' shares in the data), one discriminator step then one
    generator step on fresh noise from the model's `SeedGenerator`. `generate_class` draws
    with its own seed. Explained in notebooks/08_conditional.ipynb, section "The conditional GAN".

    Args:
        generator: a model [z (batch, latent_dim), labels (batch,)] -> images, e.g.
            `conditional.build_conditional_generator`.
        discriminator: a model [images, labels] -> logit (batch, 1), e.g.
            `conditional.build_conditional_discriminator`.
        latent_dim: size of z. num_classes: K. seed: seed of the training noise.
        label_smoothing: one-sided label smoothing of the real targets, in [0, 1).
        **kwargs: passed to `keras.Model`.

    Example:
        >>> model = ConditionalGAN(build_conditional_generator(), build_conditional_discriminator(),
        ...                        latent_dim=64, num_classes=10, seed=0)
        >>> model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        ...               g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
        >>> model.fit(x_train, y_train, batch_size=128, epochs=3)
        >>> sevens = model.generate_class(7, 16, seed=1)  # (16, 28, 28, 1)
    """

    def __init__(self, generator, discriminator, *, latent_dim, num_classes, seed=0,
                 label_smoothing=0.0, **kwargs):
        kwargs.pop("saturating", None)  # Always the non-saturating loss here.
        super().__init__(generator, discriminator, latent_dim=latent_dim, seed=seed,
                         label_smoothing=label_smoothing, **kwargs)
        self.num_classes = require_int(num_classes, "num_classes", minimum=2)
        if len(generator.inputs) != 2:
            raise ValueError(f"The generator must take [z, labels]; it takes {len(generator.inputs)} "
                             "input(s). Build it with conditional.build_conditional_generator.")
        self.image_shape = tuple(generator.outputs[0].shape[1:])

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit` on (images, labels), after checking their shapes and range."""
        conditional.check_training_data(x, y, image_shape=self.image_shape,
                                        num_classes=self.num_classes)
        if isinstance(x, tf.data.Dataset):  # It orders its own batches; Keras would warn.
            kwargs.setdefault("shuffle", False)
        return keras.Model.fit(self, x, y, *args, **kwargs)

    def call(self, inputs, training=False):
        """Maps [z, labels] to images: the generator."""
        return self.generator(inputs, training=training)

    def _discriminator_loss(self, real, fake, labels):
        """D's loss -V on (x, y) pairs; returns (loss, {} of extra values to track)."""
        real_logits = self.discriminator([real, labels], training=True)
        fake_logits = self.discriminator([fake, labels], training=True)
        return losses.discriminator_loss(real_logits, fake_logits,
                                         label_smoothing=self.label_smoothing), {}

    def _generator_loss(self, fake, labels):
        """G's non-saturating loss -log D(G(z, y), y)."""
        return losses.generator_loss(self.discriminator([fake, labels], training=True))

    def train_step(self, data):
        real, labels = conditional.split_batch(data)
        labels = ops.cast(labels, "int32")
        batch_size = ops.shape(real)[0]
        fake = self.generator([self._noise(batch_size), labels], training=True)
        with tf.GradientTape() as tape:
            d_loss, extras = self._discriminator_loss(real, fake, labels)
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(d_loss, weights), weights)
        # Generator step on fresh noise, through the updated discriminator.
        with tf.GradientTape() as tape:
            fake = self.generator([self._noise(batch_size), labels], training=True)
            g_loss = self._generator_loss(fake, labels)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(g_loss, weights), weights)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        for tracker in self.metrics[2:]:
            tracker.update_state(extras[tracker.name])
        return {metric.name: metric.result() for metric in self.metrics}

    def generate_class(self, label, n, *, seed):
        """Returns n images of class `label`: G(z, y = label), z ~ N(0, I) drawn with `seed`.

        Args:
            label: an int in 0..num_classes-1.
            n: how many images.
            seed: an int or a `keras.random.SeedGenerator` owned by the caller.

        Returns:
            A NumPy array (n, H, W, C) in [-1, 1].

        Raises:
            TypeError, ValueError: for a label that is no int or out of range, or a bad n.
        """
        z, labels = conditional.class_noise(label, n, latent_dim=self.latent_dim,
                                            num_classes=self.num_classes, seed=seed)
        return ops.convert_to_numpy(self.generator([z, labels], training=False))

    def generate(self, n, *, seed):
        """Returns n images whose classes cycle 0, 1, ..., K-1, 0, ... (e.g. for SampleGrid)."""
        n = require_int(n, "n", minimum=1)
        z = keras.random.normal((n, self.latent_dim), seed=seed)
        labels = ops.arange(n, dtype="int32") % self.num_classes
        return ops.convert_to_numpy(self.generator([z, labels], training=False))


@keras.saving.register_keras_serializable(package="dgm_course")
class ACGAN(ConditionalGAN):
    """The auxiliary classifier GAN: D(x) -> [source logit, class logits] (Odena et al., 2017).

    d_loss = -(L_S + L_C) and g_loss = -log D_S(G(z, c)) - log P(C = c | G(z, c)) (the
    non-saturating form of G maximising L_C - L_S). The tracker `class_loss` is -L_C;
    `real_accuracy` is how often D's classifier head names a real image's label.
    Explained in notebooks/08_conditional.ipynb, section "The AC-GAN".

    Args:
        generator: [z, labels] -> images, e.g. `conditional.build_conditional_generator`.
        discriminator: images -> [source logit (batch, 1), class logits (batch, K)], e.g.
            `conditional.build_auxiliary_discriminator`.
        latent_dim, num_classes, seed, label_smoothing, **kwargs: as for `ConditionalGAN`.
    """

    def __init__(self, generator, discriminator, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        if len(discriminator.outputs) != 2 or discriminator.outputs[1].shape[-1] != self.num_classes:
            raise ValueError(
                "The AC-GAN's discriminator must output [source logit (batch, 1), class logits "
                f"(batch, {self.num_classes})]; got outputs "
                f"{[tuple(o.shape) for o in discriminator.outputs]}. Build it with "
                "conditional.build_auxiliary_discriminator(num_classes=...).")
        self.class_loss_tracker = keras.metrics.Mean(name="class_loss")
        self.accuracy_tracker = keras.metrics.Mean(name="real_accuracy")

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.class_loss_tracker,
                self.accuracy_tracker]

    def _discriminator_loss(self, real, fake, labels):
        real_source, real_classes = self.discriminator(real, training=True)
        fake_source, fake_classes = self.discriminator(fake, training=True)
        # -L_S: the GAN's loss on the source head.
        source_loss = losses.discriminator_loss(real_source, fake_source,
                                                label_smoothing=self.label_smoothing)
        # -L_C: cross-entropy of the class head on real *and* fake images (the paper's L_C).
        class_loss = auxiliary_loss(real_classes, labels, fake_classes, labels)
        correct = ops.cast(ops.equal(ops.argmax(real_classes, axis=-1), ops.cast(labels, "int64")),
                           "float32")
        return source_loss + class_loss, {"class_loss": class_loss,
                                          "real_accuracy": ops.mean(correct)}

    def _generator_loss(self, fake, labels):
        fake_source, fake_classes = self.discriminator(fake, training=True)
        # -log D_S(G(z, c)) - log P(C = c | G(z, c))  # scalar
        class_term = ops.mean(ops.sparse_categorical_crossentropy(labels, fake_classes,
                                                                  from_logits=True))
        return losses.generator_loss(fake_source) + class_term


__all__ = ["ACGAN", "ConditionalGAN", "auxiliary_loss"]
