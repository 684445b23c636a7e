"""A Wasserstein GAN as a `keras.Model` whose `train_step` takes n_critic critic steps and one
generator step, with either the gradient penalty (WGAN-GP, Gulrajani et al., 2017) or weight
clipping (WGAN, Arjovsky et al., 2017) keeping the critic (roughly) 1-Lipschitz.

The critic estimates the Wasserstein-1 distance (Kantorovich-Rubinstein duality):
    W(p_data, p_g) = max_{||D||_L <= 1} E_x[D(x)] - E_z[D(G(z))]
Explained in notebooks/05_wasserstein.ipynb, sections "The WGAN objective and its training step",
"Keep the critic Lipschitz: clipping or a penalty" and "Weight clipping vs gradient penalty,
measured" (`critic_gradient_norms`).
"""

import keras
import tensorflow as tf
from keras import ops

from dgm_course import accelerate, losses
from dgm_course._validation import describe, require_int
from dgm_course.gan import GAN, check_batch_shape, checked_fit_arguments


@keras.saving.register_keras_serializable(package="dgm_course")
class WGAN(keras.Model):
    """A generator and a Wasserstein critic trained with `fit()`.

    Each `train_step` takes `n_critic` critic steps, then one generator step. Every critic
    step reuses the batch of real images that `fit()` passed (one batch per train_step, so
    an epoch still means one pass over the data) with fresh latent noise and, with the
    penalty, fresh interpolation weights; the papers draw a fresh real batch for each critic
    step instead. All of this noise comes from the model's own `keras.random.SeedGenerator`.

    Two ways to keep the critic Lipschitz:
      - gradient penalty (`clip_value=None`, the default): d_loss = critic_loss + gp_weight * gp,
        gp = mean((||grad D(x_hat)||_2 - 1)^2) on interpolates x_hat; gp_weight defaults to 10.
      - weight clipping (`clip_value=c`): every critic weight is clipped to [-c, c] after each
        critic step; no penalty, so `gp_weight` must be None or 0.
    `fit()` logs `d_loss`, `g_loss`, `wasserstein` (mean(D(x)) - mean(D(G(z))), the critic's
    estimate of W) and, with the penalty, `gp`; the critic's values are from its last step.
    Explained in notebooks/05_wasserstein.ipynb, section "The WGAN objective and its training
    step"; trained on the ring and on Fashion-MNIST in its later sections.

    Args:
        generator: a model mapping latent vectors (batch, latent_dim) to samples.
        critic: a model mapping samples to one score each, (batch, 1) or (batch,); no batch
            norm with the penalty (e.g. `dcgan.build_critic`).
        latent_dim: the size of the latent vector z ~ N(0, I).
        n_critic: critic steps per generator step (5 in both papers).
        gp_weight: lambda, the penalty's weight; None means 10 with the penalty, 0 with clipping.
        clip_value: c for weight clipping (0.01 in Arjovsky et al.), or None for the penalty.
        seed: seed of the training noise.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:
        >>> wgan = WGAN(dcgan.build_generator(latent_dim=64), dcgan.build_critic(),
        ...             latent_dim=64, seed=0)
        >>> wgan.compile(d_optimizer=keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9),
        ...              g_optimizer=keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9))
        >>> history = wgan.fit(images, batch_size=64, epochs=1)
    """

    def __init__(self, generator, critic, *, latent_dim, n_critic=5, gp_weight=None,
                 clip_value=None, seed=0, **kwargs):
        super().__init__(**kwargs)
        for name, network in (("generator", generator), ("critic", critic)):
            if not isinstance(network, keras.Model):
                raise TypeError(f"`{name}` must be a keras.Model (e.g. dcgan.build_{name}()); "
                                f"got {describe(network)}.")
        self.generator, self.critic = generator, critic
        self.latent_dim = require_int(latent_dim, "latent_dim", minimum=1)
        self.n_critic = require_int(n_critic, "n_critic", minimum=1)
        self.clip_value, self.gp_weight = _lipschitz_rule(clip_value, gp_weight)
        self._seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)  # Training noise only.
        self.built = generator.built and critic.built  # So weights can be saved.
        names = ["d_loss", "g_loss", "wasserstein"] + (["gp"] if clip_value is None else [])
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    def get_config(self):
        """The constructor's arguments, sub-networks serialised (compile again after loading)."""
        return {**super().get_config(), "latent_dim": self.latent_dim, "n_critic": self.n_critic,
                "gp_weight": self.gp_weight, "clip_value": self.clip_value, "seed": self._seed,
                "generator": keras.saving.serialize_keras_object(self.generator),
                "critic": keras.saving.serialize_keras_object(self.critic)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("generator", "critic"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)

    def fit(self, x=None, *args, **kwargs):
        """`keras.Model.fit`, after checking that the data's shape fits the critic."""
        kwargs = checked_fit_arguments(x, self.critic, "critic", kwargs)
        return super().fit(x, *args, **kwargs)

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        """Sets the critic's optimizer `d_optimizer` and the generator's `g_optimizer`."""
        super().compile(**kwargs)
        # Under mixed_float16, each is wrapped in a LossScaleOptimizer (chapter 09).
        self.d_optimizer = accelerate.loss_scale_optimizer(d_optimizer)
        self.g_optimizer = accelerate.loss_scale_optimizer(g_optimizer)
        accelerate.build_optimizers(self, d_optimizer="critic", g_optimizer="generator")

    @property
    def metrics(self):
        return list(self.trackers.values())  # Reset by Keras at every epoch.

    # The same as GAN's: the generator, its training noise, and samples drawn with a caller's
    # seed (never the training noise, so looking at samples never changes training).
    call, _noise, generate = GAN.call, GAN._noise, GAN.generate

    def _critic_step(self, real):
        fake = self.generator(self._noise(ops.shape(real)[0]), training=True)
        with tf.GradientTape() as tape:
            # critic_loss = mean(D(G(z))) - mean(D(x)) = -(Wasserstein estimate)
            critic_loss = losses.critic_loss(self.critic(real, training=True),
                                             self.critic(fake, training=True))
            gp = ops.zeros(())
            if self.clip_value is None:
                gp = losses.gradient_penalty(self.critic, real, fake, seed=self.seed_generator)
            # d_loss = critic_loss + lambda * gp
            d_loss = critic_loss + self.gp_weight * gp
            scaled = accelerate.scaled_loss(d_loss, self.d_optimizer)  # / replicas, * scale
        weights = self.critic.trainable_weights
        self.d_optimizer.apply(tape.gradient(scaled, weights), weights)
        if self.clip_value is not None:  # w <- clip(w, -c, c), Arjovsky et al., Algorithm 1.
            for weight in weights:
                weight.assign(ops.clip(weight, -self.clip_value, self.clip_value))
        # wasserstein = mean(D(x)) - mean(D(G(z))) = -critic_loss, the critic's estimate of W.
        return d_loss, -critic_loss, gp

    def train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data  # Labels, if any, unused.
        check_batch_shape(real, self.critic, "critic")
        for _ in range(self.n_critic):  # Unrolled in the graph: n_critic is a Python int.
            d_loss, wasserstein, gp = self._critic_step(real)
        # Generator step: min_G -mean(D(G(z))), on fresh noise, through the updated critic.
        with tf.GradientTape() as tape:
            fake = self.generator(self._noise(ops.shape(real)[0]), training=True)
            g_loss = losses.critic_generator_loss(self.critic(fake, training=True))
            scaled = accelerate.scaled_loss(g_loss, self.g_optimizer)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(scaled, weights), weights)
        # The critic's values are those of its last step, after n_critic - 1 updates.
        values = {"d_loss": d_loss, "g_loss": g_loss, "wasserstein": wasserstein, "gp": gp}
        for name, tracker in self.trackers.items():
            tracker.update_state(values[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def _lipschitz_rule(clip_value, gp_weight):
    """Returns (clip_value, gp_weight) as floats or None, or raises for a mixed or bad choice."""
    if clip_value is None:
        gp_weight = 10.0 if gp_weight is None else float(gp_weight)
        if gp_weight < 0:
            raise ValueError(f"`gp_weight` must be >= 0; got {gp_weight!r}. The paper uses 10.")
        return None, gp_weight
    if isinstance(clip_value, bool) or not isinstance(clip_value, (int, float)) or clip_value <= 0:
        raise ValueError(f"`clip_value` must be a positive number (0.01 in Arjovsky et al.) or "
                         f"None for the gradient penalty; got {describe(clip_value)}.")
    if gp_weight not in (None, 0, 0.0):
        raise ValueError(f"Choose one way to keep the critic Lipschitz: got clip_value="
                         f"{clip_value!r} and gp_weight={gp_weight!r}. Pass clip_value=None "
                         "for WGAN-GP, or leave gp_weight=None (or 0) for weight clipping.")
    return float(clip_value), 0.0


def critic_gradient_norms(critic, real, fake, *, seed):
    """Returns ||grad D(x_hat)||_2 per example at interpolates x_hat = eps * real +
    (1 - eps) * fake, eps ~ U(0, 1) per example: the norms whose distance from 1 the gradient
    penalty punishes (a 1-Lipschitz critic has them all <= 1). Explained in
    notebooks/05_wasserstein.ipynb, section "Weight clipping vs gradient penalty, measured".

    Args:
        critic: a keras Model mapping (batch, ...) to (batch,) or (batch, 1) scores.
        real: (batch, ...) real data. fake: generated data of the same shape.
        seed: an int (or a keras.random.SeedGenerator) for eps.

    Returns:
        A (batch,) float NumPy array.

    Raises:
        TypeError: if `critic` is not a keras Model. ValueError: if the shapes differ.

    Example:
        >>> critic = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> critic_gradient_norms(critic, points, fake_points, seed=0)  # ||kernel|| each
    """
    if not isinstance(critic, keras.Model):
        raise TypeError(f"`critic` must be a keras.Model (e.g. model.critic); got "
                        f"{describe(critic)}.")
    real = ops.convert_to_tensor(real, "float32")
    fake = ops.convert_to_tensor(fake, "float32")
    if tuple(real.shape) != tuple(fake.shape):
        raise ValueError(f"`real` and `fake` must have the same shape; got {describe(real)} and "
                         f"{describe(fake)}. Generate as many fakes as there are real examples.")
    # eps ~ U(0, 1), one per example; x_hat = eps * x + (1 - eps) * x_tilde  # (batch, ...)
    eps = keras.random.uniform((real.shape[0],) + (1,) * (len(real.shape) - 1), seed=seed)
    x_hat = eps * real + (1.0 - eps) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat, training=False)
    grads = ops.reshape(tape.gradient(scores, x_hat), (real.shape[0], -1))  # (batch, features)
    return ops.convert_to_numpy(ops.sqrt(ops.sum(ops.square(grads), axis=1)))  # (batch,)
