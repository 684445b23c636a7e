"""A GAN as a `keras.Model` whose `train_step` plays one round of the minimax game, and small
dense networks for 2-D toy data (with the minibatch standard-deviation remedy for mode collapse).

The game (Goodfellow et al., 2014):
    min_G max_D V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]
Explained in notebooks/03_gan_theory.ipynb, sections "Train a GAN on a ring of Gaussians" and
"A remedy: minibatch standard deviation".
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from dgm_course import accelerate, losses
from dgm_course._validation import describe, require_int


def check_batch_shape(real, network, name):
    """Raises a ValueError if a batch's (or array's, or TensorSpec's) per-example shape differs
    from what `network` takes (e.g. 32x32x3 images fed to a model built for 28x28x1)."""
    try:
        expected = tuple(network.input_shape[1:])
    except (AttributeError, ValueError):  # A subclassed network with no declared input.
        return
    if getattr(real, "shape", None) is None:  # A Python generator, for example: not checked.
        return
    passed = tuple(real.shape[1:])
    if len(passed) != len(expected) or any(e is not None and p is not None and p != e
                                            for p, e in zip(passed, expected)):
        raise ValueError(f"The training data has per-example shape {passed} but the {name} "
                         f"takes {expected}. Build the networks for the data's shape (e.g. "
                         f"image_shape={passed}) or reshape the data (greyscale images need "
                         "a channel axis: x[..., None]).")


def checked_fit_arguments(x, network, name, kwargs):
    """Checks the training data's shape against `network` before `fit` starts; returns
    `kwargs` with `shuffle=False` for a tf.data.Dataset (it orders its own batches)."""
    spec = getattr(x, "element_spec", x)  # A batched tf.data.Dataset's, or the array.
    check_batch_shape(spec[0] if isinstance(spec, tuple) else spec, network, name)
    if isinstance(x, tf.data.Dataset):  # Keras would warn that it ignores shuffle=True.
        kwargs = {"shuffle": False, **kwargs}
    return kwargs


@keras.saving.register_keras_serializable(package="dgm_course")
class GAN(keras.Model):
    """A generator and a discriminator trained against each other with `fit()`.

    Each `train_step` takes one discriminator step, then one generator step, each on fresh
    latent noise drawn from the model's own `keras.random.SeedGenerator`; `generate` draws
    with its own seed, so looking at samples never changes the course of training.
    Explained in notebooks/03_gan_theory.ipynb, section "Train a GAN on a ring of Gaussians".

    Args:
        generator: a model mapping latent vectors (batch, latent_dim) to samples.
        discriminator: a model mapping samples to one logit each, (batch, 1) or (batch,).
        latent_dim: the size of the latent vector z ~ N(0, I).
        seed: seed of the latent noise drawn during training.
        saturating: if True the generator minimises log(1 - D(G(z))) (the minimax loss);
            by default it minimises -log D(G(z)) (the non-saturating loss).
        label_smoothing: one-sided label smoothing of the real targets, in [0, 1).
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:
        >>> gan = GAN(toy_generator(), toy_discriminator(), latent_dim=2, seed=0)
        >>> gan.compile(d_optimizer=keras.optimizers.Adam(1e-3),
        ...             g_optimizer=keras.optimizers.Adam(1e-3))
        >>> history = gan.fit(points, batch_size=256, epochs=10)
        >>> samples = gan.generate(1000, seed=1)  # (1000, 2)
    """

    def __init__(self, generator, discriminator, *, latent_dim, seed=0, saturating=False,
                 label_smoothing=0.0, **kwargs):
        super().__init__(**kwargs)
        for name, network in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(network, keras.Model):
                raise TypeError(f"`{name}` must be a keras.Model (e.g. toy_{name}()); "
                                f"got {describe(network)}.")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = require_int(latent_dim, "latent_dim", minimum=1)
        self.saturating = bool(saturating)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"`label_smoothing` must lie in [0, 1); got {label_smoothing!r}. "
                             "0.1 is a common choice, 0 switches it off.")
        self.label_smoothing = float(label_smoothing)
        self.seed_generator = keras.random.SeedGenerator(seed)  # Training noise only.
        self.built = generator.built and discriminator.built  # So weights can be saved.
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self._seed = seed

    def get_config(self):
        """The constructor's arguments, sub-networks serialised, so `keras.models.load_model`
        can rebuild the model (call `compile` again before training on)."""
        return {**super().get_config(), "latent_dim": self.latent_dim, "seed": self._seed,
                "saturating": self.saturating, "label_smoothing": self.label_smoothing,
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("generator", "discriminator"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)

    def fit(self, x=None, *args, **kwargs):
        """`keras.Model.fit`, after checking that the data's shape fits the discriminator."""
        kwargs = checked_fit_arguments(x, self.discriminator, "discriminator", kwargs)
        return super().fit(x, *args, **kwargs)

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        """Sets one optimizer per player (the two never share moment estimates)."""
        super().compile(**kwargs)
        # Under mixed_float16, each is wrapped in a LossScaleOptimizer (chapter 09).
        self.d_optimizer = accelerate.loss_scale_optimizer(d_optimizer)
        self.g_optimizer = accelerate.loss_scale_optimizer(g_optimizer)
        accelerate.build_optimizers(self, d_optimizer="discriminator", g_optimizer="generator")

    @property
    def metrics(self):
        # Listed here, Keras resets them at the start of every epoch.
        return [self.d_loss_tracker, self.g_loss_tracker]

    def call(self, z, training=False):
        """Maps latent vectors to samples: the generator."""
        return self.generator(z, training=training)

    def _noise(self, batch_size):
        # z ~ N(0, I), different on each replica under tf.distribute (chapter 09).
        return accelerate.replica_random(keras.random.normal, (batch_size, self.latent_dim),
                                         seed=self.seed_generator)

    def train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data  # Labels, if any, unused.
        batch_size = ops.shape(real)[0]
        # Discriminator step: max_D E_x[log D(x)] + E_z[log(1 - D(G(z)))].
        fake = self.generator(self._noise(batch_size), training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_loss = losses.discriminator_loss(real_logits, fake_logits,
                                               label_smoothing=self.label_smoothing)
            # / replicas, * loss scale: correct on several devices and in float16 (chapter 09).
            scaled = accelerate.scaled_loss(d_loss, self.d_optimizer)
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(scaled, weights), weights)
        # Generator step on fresh noise, through the updated discriminator.
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(
                self.generator(self._noise(batch_size), training=True), training=True)
            g_loss = losses.generator_loss(fake_logits, saturating=self.saturating)
            scaled = accelerate.scaled_loss(g_loss, self.g_optimizer)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(scaled, weights), weights)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {metric.name: metric.result() for metric in self.metrics}

    def generate(self, n, *, seed):
        """Returns `n` samples G(z), z ~ N(0, I), drawn with `seed` (not the training noise).

        Args:
            n: how many samples.
            seed: an int or a `keras.random.SeedGenerator` owned by the caller.

        Returns:
            A NumPy array (n, ...) of the generator's output shape.
        """
        n = require_int(n, "n", minimum=1)
        z = keras.random.normal((n, self.latent_dim), seed=seed)
        return ops.convert_to_numpy(self.generator(z, training=False))


@keras.saving.register_keras_serializable(package="dgm_course")
class MinibatchStdDev(layers.Layer):
    """Appends one feature: the standard deviation of each input feature across the batch,
    averaged over the features (Karras et al., 2018, section 3).

    A discriminator that sees it can tell a batch of near-identical samples (a collapsed
    generator) from a real batch, so collapse no longer fools it. Input (batch, features),
    output (batch, features + 1).
    Explained in notebooks/03_gan_theory.ipynb, section "A remedy: minibatch standard deviation".
    """

    def call(self, x):
        # s = mean_j sqrt(Var_batch[x_j] + 1e-8); the 1e-8 keeps the gradient finite at Var = 0.
        variance = ops.var(x, axis=0)  # (features,)
        s = ops.mean(ops.sqrt(variance + 1e-8))  # scalar
        return ops.concatenate([x, ops.ones_like(x[:, :1]) * s], axis=-1)  # (batch, features + 1)

    def compute_output_shape(self, input_shape):
        features = None if input_shape[-1] is None else input_shape[-1] + 1
        return (*input_shape[:-1], features)


def toy_generator(latent_dim=2, hidden=64, output_dim=2):
    """Returns a dense generator z (batch, latent_dim) -> x (batch, output_dim), linear output.

    Explained in notebooks/03_gan_theory.ipynb, section "Train a GAN on a ring of Gaussians".
    """
    return keras.Sequential([
        keras.Input((require_int(latent_dim, "latent_dim", minimum=1),)),
        layers.Dense(hidden, activation="relu"),
        layers.Dense(hidden, activation="relu"),
        layers.Dense(require_int(output_dim, "output_dim", minimum=1)),  # Points are unbounded.
    ], name="generator")


def toy_discriminator(input_dim=2, hidden=64, minibatch_std=False):
    """Returns a dense discriminator x (batch, input_dim) -> logit (batch, 1).

    Args:
        input_dim: size of a sample.
        hidden: units of each of the two hidden layers.
        minibatch_std: if True, a `MinibatchStdDev` feature joins the input: the spread of
            the batch (the remedy for mode collapse).

    Explained in notebooks/03_gan_theory.ipynb, section "A remedy: minibatch standard deviation".
    """
    stack = [keras.Input((require_int(input_dim, "input_dim", minimum=1),))]
    if minibatch_std:
        # Karras et al. place it before the last block, on image features; for 2-D points the
        # coordinates are the features, and the spread of a batch is plainest there (a feature
        # after a slowly learning hidden layer did not stop collapse in the lecture's runs).
        stack.append(MinibatchStdDev())
    stack += [layers.Dense(hidden), layers.LeakyReLU(0.2),
              layers.Dense(hidden), layers.LeakyReLU(0.2),
              layers.Dense(1)]  # A logit: the losses apply the sigmoid stably.
    return keras.Sequential(stack, name="discriminator")


def optimal_discriminator(log_p_data, log_p_g):
    """Returns D*(x) = p_data(x) / (p_data(x) + p_g(x)) from the two log-densities at x.

    Computed as sigmoid(log p_data(x) - log p_g(x)), which equals the ratio but stays finite
    where both densities underflow to 0. Explained in notebooks/03_gan_theory.ipynb, section
    "The optimal discriminator".

    Example:
        >>> optimal_discriminator(np.log([0.3]), np.log([0.1]))  # 0.3 / 0.4
        array([0.75])
    """
    logit = np.asarray(log_p_data, np.float64) - np.asarray(log_p_g, np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * logit))  # sigmoid(logit), no overflow for large |logit|


def jensen_shannon(p, q, dx):
    """Returns JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2, in nats, from
    two densities on a regular grid (a Riemann sum with spacing `dx`).

    It lies between 0 (p = q) and log 2 (no overlap). Explained in
    notebooks/03_gan_theory.ipynb, section "The value of the game is a Jensen-Shannon divergence".

    Example:
        >>> x = np.linspace(-10, 10, 2001)
        >>> p = np.exp(-x**2 / 2) / np.sqrt(2 * np.pi)
        >>> jensen_shannon(p, p, x[1] - x[0])
        0.0
    """
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if p.shape != q.shape:
        raise ValueError(f"`p` and `q` must be densities on the same grid; got {describe(p)} "
                         f"and {describe(q)}.")
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        # KL(p || m) = integral of p log(p / m), with 0 log 0 = 0.
        kl_pm = np.sum(np.where(p > 0, p * np.log(p / m), 0.0)) * dx
        kl_qm = np.sum(np.where(q > 0, q * np.log(q / m), 0.0)) * dx
    return float(0.5 * kl_pm + 0.5 * kl_qm)


def mode_coverage(samples, mixture, *, n_std=3.0, min_share=0.1):
    """Measures mode collapse of 2-D (or any-D) samples against a Gaussian mixture.

    A sample is *high quality* if it lies within `n_std` standard deviations of its nearest
    component (distance measured in that component's stds); a component is *covered* if it
    holds at least `min_share` of its fair share n / K of the samples in that sense
    (the measure of Srivastava et al., 2017, VEEGAN). Explained in
    notebooks/03_gan_theory.ipynb, section "Measure mode collapse".

    Args:
        samples: (n, d) generated points.
        mixture: a `dgm_course.toy.GaussianMixture` with d-dimensional components.
        n_std: how many stds count as "near" a component.
        min_share: the fraction of the fair share n / K a component needs to count.

    Returns:
        A dict: `modes_covered` (int), `high_quality` (fraction of samples, float) and
        `counts` ((K,) int array: high-quality samples per component).
    """
    samples = np.asarray(samples, np.float64)
    if samples.ndim != 2 or samples.shape[1] != mixture.dim:
        raise ValueError(f"`samples` must have shape (n, {mixture.dim}); got {describe(samples)}.")
    scaled = (samples[:, None, :] - mixture.means[None]) / mixture.stds[None]  # (n, K, d)
    distance = np.sqrt(np.sum(scaled**2, axis=-1))  # (n, K), in stds
    nearest = distance.argmin(axis=1)  # (n,)
    near = distance.min(axis=1) <= n_std  # (n,)
    counts = np.bincount(nearest[near], minlength=mixture.n_components)  # (K,)
    fair_share = len(samples) / mixture.n_components
    return {"modes_covered": int(np.sum(counts >= min_share * fair_share)),
            "high_quality": float(near.mean()), "counts": counts}


class SampleSnapshots(keras.callbacks.Callback):
    """Keeps generated samples at chosen epochs and, in a notebook, redraws them live.

    It draws with its own fixed seed (the same z every time), so watching training never
    changes it. Explained in notebooks/03_gan_theory.ipynb, section "Train a GAN on a ring".

    Args:
        n: samples per snapshot.
        epochs: the epochs (1-based) after which to take a snapshot.
        seed: seed of the preview noise.
        draw: optional function `draw(snapshots) -> Figure`, called after each snapshot; the
            figure is shown in place of the previous one (in IPython), for live plots.

    Attributes:
        snapshots: a dict {epoch: samples (n, ...) NumPy array}.
    """

    def __init__(self, n, epochs, *, seed=1234, draw=None):
        super().__init__()
        self.n, self.epochs, self.seed, self.draw = n, set(epochs), seed, draw
        self.snapshots, self._handle = {}, None

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 not in self.epochs:
            return
        self.snapshots[epoch + 1] = self.model.generate(self.n, seed=self.seed)
        if self.draw is not None:
            figure = self.draw(self.snapshots)
            try:
                from IPython.display import display
            except ImportError:
                return
            from dgm_course import plotting  # noqa: F401  (makes IPython show Figures as PNG)
            if self._handle is None:
                self._handle = display(figure, display_id=True)
            else:
                self._handle.update(figure)


class StopOnDivergence(keras.callbacks.Callback):
    """Stops `fit()` after the first batch whose logged losses are NaN or infinite, and says
    which loss diverged where (like `keras.callbacks.TerminateOnNaN`, with the diagnosis).

    Attributes:
        diverged: None, or a dict {"epoch", "batch", "loss", "value"} (epoch and batch 1-based).
    """

    def __init__(self):
        super().__init__()
        self.diverged, self._epoch = None, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        for key, value in (logs or {}).items():
            if not np.isfinite(float(value)):
                self.diverged = {"epoch": self._epoch, "batch": batch + 1, "loss": key,
                                 "value": float(value)}
                print(f"StopOnDivergence: `{key}` became {float(value)} at epoch {self._epoch}, "
                      f"batch {batch + 1}; training stopped. Check the data for NaN/inf, and "
                      "try a smaller learning rate.")
                self.model.stop_training = True
                return
