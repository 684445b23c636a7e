"""Conditional GANs: generators of p(x | y), trained with `fit(images, labels)`.

- `ConditionalGAN` (Mirza & Osindero, 2014): both players see the label. The discriminator
  judges pairs (x, y): real images with their labels against G(z, y) with the same labels.
- `ACGAN` (Odena et al., 2017): the discriminator sees the image only and has a second head,
  a classifier. With L_S = E[log P(S = real | x_real)] + E[log P(S = fake | x_fake)] and
  L_C = E[log P(C = c | x_real)] + E[log P(C = c | x_fake)], D maximises L_S + L_C and G
  maximises L_C - L_S (here with the non-saturating generator loss, as in chapter 03).
Both can sample from an exponential moving average of the generator's weights (`ema=`;
Yazici et al., 2019; Karras et al., 2018).
Explained in notebooks/08_conditional.ipynb, sections "The conditional GAN", "The AC-GAN" and
"Average the generator's weights".
"""

import keras
import tensorflow as tf
from keras import ops

from dgm_course import accelerate, conditional, gan, losses
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


def moving_average_decay(decay, step):
    """Returns min(decay, (1 + t) / (10 + t)) for update number t = `step` (1, 2, ...).

    The warm-up of `tf.train.ExponentialMovingAverage(num_updates=...)`: early updates use a
    smaller decay, so the average forgets the random initial weights within a few hundred
    steps instead of 1 / (1 - decay) of them. Explained in notebooks/08_conditional.ipynb,
    section "Average the generator's weights".

    Example:
        >>> round(float(moving_average_decay(0.999, 1)), 4)  # 2 / 11
        0.1818
        >>> round(float(moving_average_decay(0.999, 100_000)), 4)
        0.999
    """
    step = ops.cast(step, "float32")
    return ops.minimum(ops.cast(decay, "float32"), (1.0 + step) / (10.0 + step))


def update_moving_average(averages, values, decay):
    """Sets each a in `averages` to decay * a + (1 - decay) * v, for v the matching `values`.

    Explained in notebooks/08_conditional.ipynb, section "Average the generator's weights".

    Args:
        averages: a list of variables (the averaged generator's weights).
        values: the current weights, in the same order and shapes.
        decay: a scalar in [0, 1): how much of the old average to keep.

    Raises:
        ValueError: if the two lists differ in length.
    """
    if len(averages) != len(values):
        raise ValueError(f"`averages` has {len(averages)} variables but `values` has "
                         f"{len(values)}; pass the weights of two copies of the same network.")
    for average, value in zip(averages, values):
        # a <- d a + (1 - d) v
        average.assign(decay * average + (1.0 - decay) * ops.cast(value, average.dtype))


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
            `conditional.build_projection_discriminator` (or the label-channel
            `conditional.build_conditional_discriminator`).
        latent_dim: size of z. num_classes: K. seed: seed of the training noise.
        label_smoothing: one-sided label smoothing of the real targets, in [0, 1).
        ema: None, or a decay in (0, 1) such as 0.999: then the model also keeps
            `average_generator`, an exponential moving average of the generator's weights
            (batch-norm statistics included) updated after every generator step with
            `moving_average_decay(ema, step)`, and `generate_class` and `generate` sample
            from it. The training game itself is unchanged.
        **kwargs: passed to `keras.Model`.

    Example:
        >>> model = ConditionalGAN(build_conditional_generator(), build_projection_discriminator(),
        ...                        latent_dim=64, num_classes=10, seed=0)
        >>> model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        ...               g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
        >>> model.fit(x_train, y_train, batch_size=128, epochs=3)
        >>> sevens = model.generate_class(7, 16, seed=1)  # (16, 28, 28, 1)
    """

    def __init__(self, generator, discriminator, *, latent_dim, num_classes, seed=0,
                 label_smoothing=0.0, ema=None, **kwargs):
        kwargs.pop("saturating", None)  # Always the non-saturating loss here.
        super().__init__(generator, discriminator, latent_dim=latent_dim, seed=seed,
                         label_smoothing=label_smoothing, **kwargs)
        self.num_classes = require_int(num_classes, "num_classes", minimum=2)
        if len(generator.inputs) != 2:
            raise ValueError(f"The generator must take [z, labels]; it takes {len(generator.inputs)} "
                             "input(s). Build it with conditional.build_conditional_generator.")
        self.image_shape = tuple(generator.outputs[0].shape[1:])
        self.ema, self.average_generator = self._check_ema(ema), None
        if self.ema is not None:
            self.average_generator = keras.models.clone_model(generator)
            self.average_generator.set_weights(generator.get_weights())
            self.average_generator.trainable = False  # Only `update_moving_average` moves it.
            self.ema_updates = keras.Variable(0.0, trainable=False, name="ema_updates")

    @staticmethod
    def _check_ema(ema):
        if ema is None:
            return None
        if isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0.0 < ema < 1.0:
            raise ValueError(f"`ema` must be None or a decay in (0, 1), e.g. 0.999; got "
                             f"{describe(ema)}.")
        return float(ema)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "ema": self.ema}

    @property
    def sampler(self):
        """The network that `generate_class` and `generate` use: the averaged generator if
        the model was built with `ema=`, else the generator."""
        return self.generator if self.average_generator is None else self.average_generator

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
            scaled = accelerate.scaled_loss(d_loss, self.d_optimizer)  # / replicas, * scale
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(scaled, weights), weights)
        # Generator step on fresh noise, through the updated discriminator.
        with tf.GradientTape() as tape:
            fake = self.generator([self._noise(batch_size), labels], training=True)
            g_loss = self._generator_loss(fake, labels)
            scaled = accelerate.scaled_loss(g_loss, self.g_optimizer)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(scaled, weights), weights)
        if self.average_generator is not None:
            self.ema_updates.assign_add(1.0)
            update_moving_average(self.average_generator.weights, self.generator.weights,
                                  moving_average_decay(self.ema, self.ema_updates))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        for tracker in self.metrics[2:]:
            tracker.update_state(extras[tracker.name])
        return {metric.name: metric.result() for metric in self.metrics}

    def generate_class(self, label, n, *, seed):
        """Returns n images of class `label`: G(z, y = label), z ~ N(0, I) drawn with `seed`
        (G the averaged generator if the model was built with `ema=`).

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
        return ops.convert_to_numpy(self.sampler([z, labels], training=False))

    def generate(self, n, *, seed):
        """Returns n images whose classes cycle 0, 1, ..., K-1, 0, ... (e.g. for SampleGrid)."""
        n = require_int(n, "n", minimum=1)
        z = keras.random.normal((n, self.latent_dim), seed=seed)
        labels = ops.arange(n, dtype="int32") % self.num_classes
        return ops.convert_to_numpy(self.sampler([z, labels], training=False))


@keras.saving.register_keras_serializable(package="dgm_course")
class ACGAN(ConditionalGAN):
    """The auxiliary classifier GAN: D(x) -> [source logit, class logits] (Odena et al., 2017).

    d_loss = -(L_S + L_C) and g_loss = -log D_S(G(z, c)) - lambda_C log P(C = c | G(z, c))
    (the non-saturating form of G maximising lambda_C L_C - L_S; lambda_C = 1 in the paper). The tracker `class_loss` is -L_C;
    `real_accuracy` is how often D's classifier head names a real image's label.
    Explained in notebooks/08_conditional.ipynb, section "The AC-GAN".

    Args:
        generator: [z, labels] -> images, e.g. `conditional.build_conditional_generator`.
        discriminator: images -> [source logit (batch, 1), class logits (batch, K)], e.g.
            `conditional.build_auxiliary_discriminator`.
        class_weight: lambda_C, the weight of the class term in the generator's loss; 1 is the
            paper's loss, larger values make the generator follow the label more closely.
        latent_dim, num_classes, seed, label_smoothing, ema, **kwargs: as for `ConditionalGAN`.
    """

    def __init__(self, generator, discriminator, *, class_weight=1.0, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        if not isinstance(class_weight, (int, float)) or not class_weight > 0:
            raise ValueError(f"`class_weight` must be a positive number; got {class_weight!r}. "
                             "Use 1.0 for the paper's loss.")
        self.class_weight = float(class_weight)
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
        # In float32: under a mixed policy the logits are float16 or bfloat16 (chapter 09).
        class_term = ops.mean(ops.sparse_categorical_crossentropy(
            labels, ops.cast(fake_classes, "float32"), from_logits=True))
        # lambda_C * class_term: lambda_C = 1 in Odena et al.; a larger weight is our departure.
        return losses.generator_loss(fake_source) + self.class_weight * class_term

    def get_config(self):
        return {**super().get_config(), "class_weight": self.class_weight}


__all__ = ["ACGAN", "ConditionalGAN", "auxiliary_loss", "moving_average_decay",
           "update_moving_average"]
