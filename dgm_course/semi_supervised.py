"""The semi-supervised GAN of Salimans et al. (2016, section 5): a discriminator that is also a
K-class classifier, trained on a few labelled images, many unlabelled ones and the generator's
fakes, with a generator trained by feature matching.

The discriminator has K + 1 outputs (K classes and "fake"); fixing the fake logit at 0 leaves
K logits l_1..l_K, and with Z(x) = sum_k exp(l_k(x)):
    p(y = k | x, real) = softmax(l)_k          D(x) = p(real | x) = Z(x) / (Z(x) + 1)
Explained in notebooks/10_generative_classification.ipynb, section "A semi-supervised GAN".
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from dgm_course import accelerate, conditional, conditional_gan, gan
from dgm_course._validation import describe, require_array, require_int


def supervised_loss(class_logits, labels):
    """L_supervised = -E[log p(y | x, y < K + 1)], the cross-entropy of softmax(l) on labelled
    images, as a batch mean. Explained in notebooks/10_generative_classification.ipynb,
    section "A semi-supervised GAN".

    Args:
        class_logits: (batch, K) logits l_1..l_K of the labelled images.
        labels: (batch,) their labels in 0..K-1.

    Returns:
        A scalar tensor.

    Example:
        >>> float(supervised_loss(ops.zeros((2, 10)), [3, 7]))  # log 10
        2.3025851249816895
    """
    class_logits = ops.cast(class_logits, "float32")
    # -log softmax(l)_y = logsumexp(l) - l_y  # (batch,)
    return ops.mean(ops.sparse_categorical_crossentropy(labels, class_logits, from_logits=True))


def unsupervised_loss(real_logits, fake_logits):
    """L_unsupervised = -E_x[log D(x)] - E_z[log(1 - D(G(z)))], as batch means, with
    D(x) = Z(x) / (Z(x) + 1) and Z(x) = sum_k exp(l_k(x)): the GAN's loss on the K + 1-class
    discriminator. Explained in notebooks/10_generative_classification.ipynb, section
    "A semi-supervised GAN".

    With lse = logsumexp(l) = log Z, D = sigmoid(lse), so (written without overflow)
        -log D(x) = softplus(-lse) = softplus(lse) - lse,   -log(1 - D(x)) = softplus(lse).

    Args:
        real_logits: (batch, K) class logits of real (unlabelled) images.
        fake_logits: (batch_fake, K) class logits of generated images.

    Returns:
        A scalar tensor.

    Example:
        >>> float(unsupervised_loss(ops.zeros((2, 10)), ops.zeros((2, 10))))  # D = 10/11
        2.4849066734313965
    """
    real_lse = ops.logsumexp(ops.cast(real_logits, "float32"), axis=-1)  # (batch,)
    fake_lse = ops.logsumexp(ops.cast(fake_logits, "float32"), axis=-1)  # (batch_fake,)
    # -log D(x) = softplus(-lse(x)) and -log(1 - D(G(z))) = softplus(lse(G(z)))
    return ops.mean(ops.softplus(-real_lse)) + ops.mean(ops.softplus(fake_lse))


def feature_matching_loss(real_features, fake_features):
    """||E_x f(x) - E_z f(G(z))||^2, f an intermediate layer of the discriminator: the
    generator's loss (Salimans et al., 2016, section 3.1), expectations as batch means.
    Explained in notebooks/10_generative_classification.ipynb, section "Feature matching".

    Args:
        real_features: (batch, F) features of real images (no gradient flows into them).
        fake_features: (batch_fake, F) features of generated images.

    Returns:
        A scalar tensor.

    Example:
        >>> float(feature_matching_loss([[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0]]))  # 2^2 + 3^2
        13.0
    """
    real_mean = ops.mean(ops.cast(real_features, "float32"), axis=0)  # (F,)
    fake_mean = ops.mean(ops.cast(fake_features, "float32"), axis=0)  # (F,)
    # The paper's code averages over the F features instead of summing: Adam's steps are the same.
    return ops.sum(ops.square(ops.stop_gradient(real_mean) - fake_mean))


def real_probability(class_logits):
    """Returns D(x) = Z(x) / (Z(x) + 1) = sigmoid(logsumexp(l)) as a (batch,) NumPy array."""
    lse = ops.logsumexp(ops.cast(class_logits, "float32"), axis=-1)
    return ops.convert_to_numpy(ops.sigmoid(lse))


def _check_images(images, name, image_shape=None):
    """Returns `images` as a float32 (N, H, W, C) array (of `image_shape` if given), or raises."""
    fix = ("Pass float images (N, H, W, C) scaled like the training data, e.g. "
           "preprocessing.normalize(x); greyscale images need a channel axis (x[..., None]).")
    images = require_array(images, name, ndim=4, dtype_kinds="f", fix=fix)
    if image_shape is not None and tuple(images.shape[1:]) != tuple(image_shape):
        raise ValueError(f"`{name}` has per-image shape {tuple(images.shape[1:])} but "
                         f"{tuple(image_shape)} was expected ({describe(images)}). {fix}")
    return images.astype(np.float32, copy=False)


def make_semi_supervised_dataset(x_labelled, y_labelled, x_unlabelled, *, batch_size, seed=0,
                                 num_classes=10):
    """Builds the training pipeline: batches ((labelled images, labels), unlabelled images).

    One epoch is one pass over the unlabelled images, shuffled anew every epoch, in full
    batches. The few labelled images are reshuffled and repeated without end, so that every
    step also gets `batch_size` labelled images (as the paper's code tiles them).
    Explained in notebooks/10_generative_classification.ipynb, section "A semi-supervised GAN".

    Args:
        x_labelled: float images (N_l, H, W, C), e.g. the 100 of `splits.balanced_indices`.
        y_labelled: (N_l,) their integer labels in 0..num_classes-1.
        x_unlabelled: float images (N_u, H, W, C) of the same shape; N_u >= batch_size.
        batch_size: labelled and unlabelled images per step (each).
        seed: seed of both shuffles.
        num_classes: K, to check the labels.

    Returns:
        A `tf.data.Dataset` for `SemiSupervisedGAN.fit`.

    Raises:
        TypeError: for integer (not normalised) images or float labels.
        ValueError: for labels out of range or not one per image, images of different shapes,
            or fewer unlabelled images than one batch.

    Example:
        >>> labelled_idx, unlabelled_idx = splits.labelled_unlabelled_split(y_train, 10)
        >>> dataset = make_semi_supervised_dataset(x[labelled_idx], y_train[labelled_idx],
        ...                                        x[unlabelled_idx], batch_size=100, seed=0)
    """
    x_labelled = _check_images(x_labelled, "x_labelled")
    x_unlabelled = _check_images(x_unlabelled, "x_unlabelled", x_labelled.shape[1:])
    num_classes = require_int(num_classes, "num_classes", minimum=2)
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    labels = conditional.check_labels(y_labelled, num_classes, n=len(x_labelled))  # int32
    if len(labels) == 0:
        raise ValueError("`x_labelled` is empty; pass at least one labelled image per class.")
    if len(x_unlabelled) < batch_size:
        raise ValueError(f"`x_unlabelled` holds {len(x_unlabelled)} images, fewer than one batch "
                         f"of {batch_size}; pass more images or a smaller batch_size.")
    labelled = _labelled_batches(x_labelled, labels, batch_size=batch_size, seed=seed)
    images = tf.constant(x_unlabelled)
    # Shuffle indices, not images: the shuffle buffer then holds N ints instead of N images.
    unlabelled = (tf.data.Dataset.range(len(x_unlabelled))
                  .shuffle(len(x_unlabelled), seed=seed + 1, reshuffle_each_iteration=True)
                  .batch(batch_size, drop_remainder=True).map(lambda i: tf.gather(images, i)))
    return tf.data.Dataset.zip((labelled, unlabelled)).prefetch(tf.data.AUTOTUNE)


def _labelled_batches(x_labelled, labels, *, batch_size, seed):
    """The labelled images with their labels, reshuffled and repeated without end, batched."""
    return (tf.data.Dataset.from_tensor_slices((x_labelled, labels))
            .shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
            .repeat().batch(batch_size))


def _check_dataset(x, image_shape):
    """Raises unless `x` is a dataset of ((images, labels), images) of the model's shape."""
    spec = getattr(x, "element_spec", None)
    if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], tuple)
            and len(spec[0]) == 2):
        raise ValueError("A SemiSupervisedGAN trains on batches ((labelled images, labels), "
                         f"unlabelled images); got {describe(x)}. Build them with "
                         "make_semi_supervised_dataset(x_labelled, y_labelled, x_unlabelled, "
                         "batch_size=...).")
    for what, images in (("The labelled images", spec[0][0]), ("The unlabelled images", spec[1])):
        conditional.check_image_shape(images.shape[1:], image_shape, what)


@keras.saving.register_keras_serializable(package="dgm_course")
class SemiSupervisedGAN(gan.GAN):
    """A GAN whose discriminator is a K-class classifier with an implicit "fake" class.

    Each `train_step` gets ((labelled images, labels), unlabelled images) from
    `make_semi_supervised_dataset`. The discriminator takes one step on
    d_loss = L_supervised + w * L_unsupervised (labelled, unlabelled and generated images),
    then the generator one step on the feature-matching loss, each on fresh noise from the
    model's own `SeedGenerator`. Trackers: `d_loss`, `g_loss`, `supervised`, `unsupervised`
    and `accuracy` (on the labelled batches); `evaluate(x_test, y_test)` and `validation_data`
    report the test `accuracy` and cross-entropy (`supervised`).
    Explained in notebooks/10_generative_classification.ipynb, section "A semi-supervised GAN".

    Args:
        generator: a model z (batch, latent_dim) -> images, e.g. `build_generator()`.
        discriminator: a model images -> [class logits (batch, K), features (batch, F)], e.g.
            `build_discriminator()`; the features are what the generator matches.
        latent_dim: size of z ~ N(0, I).
        seed: seed of the training noise.
        unsupervised_weight: w, the weight of L_unsupervised (1 in the paper's equations;
            its MNIST code halves the loss, i.e. w = 0.5).
        ema: None, or a decay in (0, 1) such as 0.999: then the model also keeps
            `average_discriminator`, an exponential moving average of the discriminator's
            weights updated after every discriminator step, and classifies with it (the
            paper's code tests an average of the weights too). Training is unchanged.
        **kwargs: passed to `keras.Model`.

    Example:
        >>> model = SemiSupervisedGAN(build_generator(), build_discriminator(), latent_dim=100)
        >>> model.compile(d_optimizer=keras.optimizers.Adam(3e-3, beta_1=0.5),
        ...               g_optimizer=keras.optimizers.Adam(3e-3, beta_1=0.5))
        >>> model.fit(dataset, epochs=10, validation_data=(x_test, y_test))
        >>> predicted = model.classify(x_test)  # (N,) labels
    """

    def __init__(self, generator, discriminator, *, latent_dim, seed=0, unsupervised_weight=1.0,
                 ema=None, **kwargs):
        for unused in ("saturating", "label_smoothing"):  # Feature matching replaces them.
            kwargs.pop(unused, None)
        super().__init__(generator, discriminator, latent_dim=latent_dim, seed=seed, **kwargs)
        outputs = getattr(discriminator, "outputs", None) or []  # None: not built.
        if len(outputs) != 2 or len(outputs[0].shape) != 2:
            raise ValueError("The discriminator must output [class logits (batch, K), features "
                             f"(batch, F)]; got outputs {[tuple(o.shape) for o in outputs]}. "
                             "Build it with semi_supervised.build_discriminator().")
        if isinstance(unsupervised_weight, bool) or not isinstance(
                unsupervised_weight, (int, float)) or unsupervised_weight < 0:
            raise ValueError(f"`unsupervised_weight` must be a number >= 0; got "
                             f"{describe(unsupervised_weight)}. 1.0 is the paper's loss.")
        self.unsupervised_weight = float(unsupervised_weight)
        self.num_classes = int(discriminator.outputs[0].shape[-1])
        self.image_shape = tuple(discriminator.input_shape[1:])
        self.supervised_tracker = keras.metrics.Mean(name="supervised")
        self.unsupervised_tracker = keras.metrics.Mean(name="unsupervised")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        self.ema, self.average_discriminator = conditional_gan.ConditionalGAN._check_ema(ema), None
        if self.ema is not None:
            self.average_discriminator = keras.models.clone_model(discriminator)
            self.average_discriminator.set_weights(discriminator.get_weights())
            self.average_discriminator.trainable = False  # Only the moving average moves it.
            self.ema_updates = keras.Variable(0.0, trainable=False, name="ema_updates")

    def get_config(self):
        config = {**super().get_config(), "unsupervised_weight": self.unsupervised_weight,
                  "ema": self.ema}
        for unused in ("saturating", "label_smoothing"):
            config.pop(unused, None)
        return config

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.supervised_tracker,
                self.unsupervised_tracker, self.accuracy_tracker]

    def fit(self, x=None, *args, **kwargs):
        """`keras.Model.fit` on a `make_semi_supervised_dataset` pipeline, after checking it."""
        _check_dataset(x, self.image_shape)
        kwargs.setdefault("shuffle", False)  # The pipeline shuffles; Keras would warn.
        return keras.Model.fit(self, x, *args, **kwargs)

    @property
    def classifier(self):
        """The discriminator that classifies: its moving average if the model has `ema=`."""
        return self.discriminator if self.average_discriminator is None else \
            self.average_discriminator

    def call(self, images, training=False):
        """Maps images to their class logits l_1..l_K (the fake logit is the fixed 0)."""
        return self.classifier(images, training=training)[0]

    def _record(self, logits, labels, **losses):
        """Updates the trackers named in `losses` and the accuracy; returns their results."""
        correct = ops.equal(ops.argmax(logits, axis=-1), ops.cast(labels, "int64"))
        self.accuracy_tracker.update_state(ops.mean(ops.cast(correct, "float32")))
        trackers = {metric.name: metric for metric in self.metrics}
        for name, value in losses.items():
            trackers[name].update_state(value)
        return {name: trackers[name].result() for name in (*losses, "accuracy")}

    def train_step(self, data):
        (labelled, labels), unlabelled = data
        batch_size = ops.shape(unlabelled)[0]
        fake = self.generator(self._noise(batch_size), training=True)
        with tf.GradientTape() as tape:
            labelled_logits, _ = self.discriminator(labelled, training=True)
            real_logits, _ = self.discriminator(unlabelled, training=True)
            fake_logits, _ = self.discriminator(fake, training=True)
            supervised = supervised_loss(labelled_logits, labels)
            unsupervised = unsupervised_loss(real_logits, fake_logits)
            # d_loss = L_supervised + w * L_unsupervised  # scalar
            d_loss = supervised + self.unsupervised_weight * unsupervised
            scaled = accelerate.scaled_loss(d_loss, self.d_optimizer)  # / replicas, * scale
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(scaled, weights), weights)
        if self.average_discriminator is not None:
            self.ema_updates.assign_add(1.0)
            conditional_gan.update_moving_average(
                self.average_discriminator.weights, self.discriminator.weights,
                conditional_gan.moving_average_decay(self.ema, self.ema_updates))
        # Generator step on fresh noise: match the updated discriminator's mean features.
        with tf.GradientTape() as tape:
            _, real_features = self.discriminator(unlabelled, training=True)
            fake = self.generator(self._noise(batch_size), training=True)
            _, fake_features = self.discriminator(fake, training=True)
            g_loss = feature_matching_loss(real_features, fake_features)
            scaled = accelerate.scaled_loss(g_loss, self.g_optimizer)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(scaled, weights), weights)
        return self._record(labelled_logits, labels, d_loss=d_loss, g_loss=g_loss,
                            supervised=supervised, unsupervised=unsupervised)

    def test_step(self, data):
        images, labels = data[0], data[1]
        logits = self(images, training=False)
        return self._record(logits, labels, supervised=supervised_loss(logits, labels))

    def class_probabilities(self, images, *, batch_size=256):
        """Returns p(y = k | x, real) = softmax(l(x))_k, a (N, K) NumPy array.

        Raises:
            TypeError, ValueError: for images that are not float (N, H, W, C) of the
                discriminator's shape.
        """
        images = _check_images(images, "images", self.image_shape)
        logits = self.classifier.predict(
            images, batch_size=require_int(batch_size, "batch_size", minimum=1), verbose=0)[0]
        return ops.convert_to_numpy(ops.softmax(ops.cast(logits, "float32"), axis=-1))

    def classify(self, images, *, batch_size=256):
        """Returns the predicted labels argmax_k l_k(x), an int64 (N,) NumPy array.

        Example:
            >>> accuracy = np.mean(model.classify(x_test) == y_test)
        """
        return np.argmax(self.class_probabilities(images, batch_size=batch_size), axis=-1)


@keras.saving.register_keras_serializable(package="dgm_course")
class WeightNormDense(layers.Layer):
    """A dense layer with weight normalisation (Salimans & Kingma, 2016): the weights of unit j
    are w_j = g_j v_j / ||v_j||, so the direction v_j and the length g_j are learned apart.

    The paper's discriminator keeps g fixed in its hidden layers (`train_scale=False`), as set
    by `initialize_from_data`: the Gaussian noise added after each layer then keeps its size
    relative to the signal. Explained in notebooks/10_generative_classification.ipynb,
    section "A semi-supervised GAN".

    Args:
        units: number of output units.
        activation: a Keras activation (name or callable), None for linear.
        train_scale: whether g is trained.
    """

    def __init__(self, units, activation=None, train_scale=True, **kwargs):
        super().__init__(**kwargs)
        self.units = require_int(units, "units", minimum=1)
        self.activation = keras.activations.get(activation)
        self.train_scale = bool(train_scale)

    def build(self, input_shape):
        self.direction = self.add_weight(shape=(input_shape[-1], self.units), name="direction",
                                         initializer=keras.initializers.RandomNormal(0.0, 0.1))
        self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale",
                                     trainable=self.train_scale)
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def pre_activation(self, x):
        """x w without the bias, w_j = g_j v_j / ||v_j||  # (batch, units)"""
        norms = ops.sqrt(ops.sum(ops.square(self.direction), axis=0))  # (units,)
        return ops.matmul(x, self.direction * (self.scale / norms))

    def call(self, x):
        return self.activation(self.pre_activation(x) + self.bias)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "train_scale": self.train_scale,
                "activation": keras.activations.serialize(self.activation)}


def initialize_from_data(network, images):
    """Data-dependent initialisation of every `WeightNormDense` layer of `network` (Salimans &
    Kingma, 2016, section 3): on `images`, layer by layer, sets g and b so that each unit's
    pre-activation has mean 0 and standard deviation 1. Returns `network`.

    Explained in notebooks/10_generative_classification.ipynb, section "A semi-supervised GAN".

    Args:
        network: a functional or Sequential Keras model, e.g. `build_discriminator()`.
        images: a batch of real images (a few hundred) scaled like the training data.
    """
    images = _check_images(images, "images", tuple(network.input_shape[1:]))
    for layer in network.layers:
        if isinstance(layer, WeightNormDense):
            inputs = keras.Model(network.input, layer.input)(images, training=False)
            a = layer.pre_activation(inputs)  # (batch, units)
            mean, std = ops.mean(a, axis=0), ops.std(a, axis=0)  # (units,), (units,)
            # (x w - mean) / std = x (w / std) - mean / std: g <- g / std, b <- -mean / std
            layer.scale.assign(layer.scale / std)
            layer.bias.assign(-mean / std)
    return network


def build_discriminator(image_shape=(28, 28, 1), *, num_classes=10,
                        units=(1000, 500, 250, 250, 250), input_noise=0.3, hidden_noise=0.5,
                        seed=0):
    """Returns the paper's MNIST discriminator: images -> [class logits (batch, K), features].

    Weight-normalised dense ReLU layers of `units` (g fixed) with Gaussian noise, active in
    training only, on the input (std `input_noise`) and after every hidden layer (std
    `hidden_noise`); a weight-normalised linear layer (g trained) gives the K logits. The
    features the generator matches are the last hidden layer's, before its noise. Call
    `initialize_from_data` on it before training. Images in [0, 1], as in the paper.

    Args:
        image_shape: shape of one image.
        num_classes: K, the number of class logits.
        units: sizes of the hidden layers.
        input_noise, hidden_noise: standard deviations of the Gaussian noise.
        seed: seed of the noise layers (the initial weights follow `environment.set_seed`).

    Returns:
        A functional `keras.Model` named "discriminator" with outputs [logits, features].
    """
    images = keras.Input(tuple(image_shape))
    x = layers.GaussianNoise(input_noise, seed=seed)(layers.Flatten()(images))
    for index, size in enumerate(units):
        features = WeightNormDense(size, activation="relu", train_scale=False)(x)
        x = layers.GaussianNoise(hidden_noise, seed=seed + index + 1)(features)
    logits = WeightNormDense(require_int(num_classes, "num_classes", minimum=2))(x)
    return keras.Model(images, [logits, features], name="discriminator")


def build_generator(image_shape=(28, 28, 1), *, latent_dim=100, units=(500, 500)):
    """Returns the paper's MNIST generator z (batch, latent_dim) -> images in [0, 1].

    Dense layers of `units` with batch norm and softplus, then a weight-normalised dense layer
    with a sigmoid (its g bounds how far the pixels' logits can grow: without it the pixels
    saturate at 0 and 1 within a few hundred steps), reshaped to `image_shape`.
    """
    stack = [keras.Input((require_int(latent_dim, "latent_dim", minimum=1),))]
    for size in units:
        stack += [layers.Dense(size, use_bias=False), layers.BatchNormalization(),
                  layers.Activation("softplus")]
    stack += [WeightNormDense(int(np.prod(image_shape)), activation="sigmoid"),
              layers.Reshape(tuple(image_shape))]
    return keras.Sequential(stack, name="generator")


def train_supervised_baseline(discriminator, x_labelled, y_labelled, *, steps, batch_size=100,
                              learning_rate=3e-3, seed=0):
    """Trains the class logits of `discriminator` on the labelled images alone (L_supervised
    only, no generator, no unlabelled images): the supervised classifier of the same size.

    Explained in notebooks/10_generative_classification.ipynb, section "A semi-supervised GAN".

    Args:
        discriminator: a fresh network images -> [class logits, features] such as
            `initialize_from_data(build_discriminator(), x)`, built like the GAN's.
        x_labelled, y_labelled: the labelled images and their labels (the GAN's).
        steps: optimizer steps, each on `batch_size` labelled images (reshuffled, repeated).
        learning_rate: of Adam(beta_1=0.5), as for the GAN's discriminator.
        seed: seed of the shuffle.

    Returns:
        A compiled `keras.Model` images -> logits; `evaluate(x_test, y_test)` gives the accuracy.
    """
    x_labelled = _check_images(x_labelled, "x_labelled", tuple(discriminator.input_shape[1:]))
    labels = conditional.check_labels(y_labelled, discriminator.outputs[0].shape[-1],
                                      n=len(x_labelled))
    classifier = keras.Model(discriminator.input, discriminator.outputs[0], name="supervised")
    classifier.compile(optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.5),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       metrics=["accuracy"])
    batches = _labelled_batches(x_labelled, labels, batch_size=batch_size, seed=seed)
    classifier.fit(batches.take(require_int(steps, "steps", minimum=1)), shuffle=False, verbose=0)
    return classifier
