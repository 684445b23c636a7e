"""The variational autoencoder: a `keras.Model` whose `train_step` maximises the ELBO, and
an importance-weighted estimate of log p(x). Generic: Dense networks on 2-D toy data here,
convolutional encoders and decoders on images later. Also the two exact pieces the theory is
checked on: a linear-Gaussian latent model and the two gradient estimators of E_q[f(z)].
Explained in notebooks/06_vae_theory.ipynb.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from dgm_course import accelerate, losses
from dgm_course._validation import require_choice, require_int

LIKELIHOODS = ("gaussian", "bernoulli")
_ROWS_PER_CHUNK = 65_536  # Decoder rows per pass in log_likelihood_bound, to bound memory.


class VAE(keras.Model):
    """A VAE (Kingma & Welling 2014) with a standard normal prior p(z) = N(0, I).

    The encoder maps x to the mean and log-variance of q(z | x) = N(z_mean, exp(z_log_var)).
    The decoder maps z to the parameters of p(x | z):
    - `likelihood="gaussian"`: the mean; the variance is a *learned* weight of the VAE, one
      log-variance per output dimension that does not depend on z (`decoder_log_var`,
      initialised at 0, i.e. variance 1), so that log p(x | z) is a real density;
    - `likelihood="bernoulli"`: the logits of independent Bernoulli pixels (x in [0, 1]).

    The loss is -ELBO_beta = -log p(x | z) + beta * KL(q(z | x) || p(z)), with one
    reparameterised sample z per example and the closed-form KL. Trackers: `loss`,
    `reconstruction` (-log p(x | z)) and `kl` (before the factor beta), batch means.
    Explained in notebooks/06_vae_theory.ipynb, section "A VAE on toy data".

    Args:
        encoder: a Keras model x -> [z_mean, z_log_var], each (batch, latent_dim).
        decoder: a Keras model z -> mean (gaussian) or logits (bernoulli), shaped like x.
        beta: the weight of the KL term (1 is the ELBO; beta != 1 a beta-VAE).
        likelihood: "gaussian" or "bernoulli".
        seed: seeds the VAE's own `keras.random.SeedGenerator` (the noise of training).
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Raises:
        ValueError: for an unknown likelihood or a negative beta.

    Example:
        >>> vae = VAE(toy_encoder(), toy_decoder(), beta=1.0, seed=0)
        >>> vae.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> vae.fit(x_train, epochs=10, batch_size=128)
    """

    def __init__(self, encoder, decoder, *, beta=1.0, likelihood="gaussian", seed=0, **kwargs):
        super().__init__(**kwargs)
        self.likelihood = require_choice(likelihood, "likelihood", LIKELIHOODS)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta < 0:
            raise ValueError(f"`beta` must be a number >= 0; got {beta!r}. beta=1 is the ELBO.")
        _check_networks(encoder, decoder)
        self.encoder, self.decoder, self.beta = encoder, decoder, float(beta)
        self.latent_dim = int(encoder.outputs[0].shape[-1])
        self.seed_generator = keras.random.SeedGenerator(seed)
        if likelihood == "gaussian":
            self.decoder_log_var = self.add_weight(
                shape=tuple(decoder.outputs[0].shape[1:]), initializer="zeros",
                name="decoder_log_var")
        # Every weight exists now. Marked built, `fit` under a tf.distribute strategy skips its
        # trial call `self(x)`, which a conditional VAE (inputs [x, labels]) cannot take.
        self.built = True
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def call(self, x, training=False):
        """Reconstructs x from the posterior mean: the decoder's mean (or probabilities)."""
        z_mean, _ = self.encoder(x, training=training)
        return self.decode(z_mean, training=training)

    def decode(self, z, training=False):
        """Returns E[x | z]: the decoder's mean (gaussian) or sigmoid(logits) (bernoulli)."""
        output = self.decoder(z, training=training)
        return ops.sigmoid(output) if self.likelihood == "bernoulli" else output

    def log_likelihood(self, x, decoder_output):
        """log p(x | z) from the decoder's output, summed over all but the batch axis (batch,)."""
        if self.likelihood == "bernoulli":
            return losses.bernoulli_log_likelihood(x, decoder_output)
        log_var = ops.broadcast_to(self.decoder_log_var, ops.shape(decoder_output))
        return losses.gaussian_log_likelihood(x, decoder_output, log_var)

    def compute_terms(self, x, training=False):
        """Returns (-log p(x | z), KL(q(z | x) || p(z))), each (batch,), for one z per example."""
        z_mean, z_log_var = self.encoder(x, training=training)
        # z = z_mean + exp(0.5 * z_log_var) * epsilon: the reparameterisation trick.
        z = losses.reparameterize(z_mean, z_log_var, seed=self.seed_generator)
        reconstruction = -self.log_likelihood(x, self.decoder(z, training=training))
        kl = losses.gaussian_kl(z_mean, z_log_var)
        return reconstruction, kl

    def _loss(self, reconstruction, kl):
        # loss = -ELBO_beta = mean(-log p(x | z) + beta * kl)  # scalar
        return -ops.mean(losses.elbo(-reconstruction, kl, beta=self.beta))

    def _record(self, reconstruction, kl):
        self.loss_tracker.update_state(self._loss(reconstruction, kl))
        self.reconstruction_tracker.update_state(ops.mean(reconstruction))
        self.kl_tracker.update_state(ops.mean(kl))
        return {metric.name: metric.result() for metric in self.metrics}

    def compile(self, optimizer="adam", **kwargs):
        """`keras.Model.compile`; under mixed_float16 the optimizer is wrapped in
        `accelerate.ReplicaSafeLossScaleOptimizer` (chapter 09) rather than Keras's own."""
        if isinstance(optimizer, keras.optimizers.Optimizer):
            optimizer = accelerate.loss_scale_optimizer(optimizer)
        super().compile(optimizer=optimizer, **kwargs)

    def train_step(self, data):
        x = _features(data, self.encoder)
        with tf.GradientTape() as tape:
            reconstruction, kl = self.compute_terms(x, training=True)
            loss = self._loss(reconstruction, kl)
            # / replicas, * loss scale: correct on several devices and in float16 (chapter 09).
            scaled = accelerate.scaled_loss(loss, self.optimizer)
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._record(reconstruction, kl)

    def test_step(self, data):
        return self._record(*self.compute_terms(_features(data, self.encoder), training=False))

    def generate(self, n, *, seed, noise=False):
        """Samples n points: z ~ p(z), then E[x | z], or x ~ p(x | z) with `noise=True`.

        Args:
            n: how many samples.
            seed: an int or a `keras.random.SeedGenerator`.
            noise: False returns the decoder's mean (probabilities for bernoulli);
                True draws x from p(x | z) (Gaussian noise, or 0/1 pixels).

        Returns:
            A float32 tensor (n, ...) shaped like the data.
        """
        n = require_int(n, "n", minimum=1)
        z = keras.random.normal((n, self.latent_dim), seed=seed)
        mean = self.decode(z)
        if not noise:
            return mean
        if self.likelihood == "bernoulli":
            return ops.cast(keras.random.uniform(ops.shape(mean), seed=seed) < mean, "float32")
        std = ops.exp(0.5 * self.decoder_log_var)
        return mean + std * keras.random.normal(ops.shape(mean), seed=seed)

    def log_likelihood_bound(self, x, *, k, seed):
        """The importance-weighted bound (Burda et al. 2016) on log p(x), one per example.

        log p(x) >= L_k = E[log (1/k) sum_i p(x, z_i) / q(z_i | x)],  z_1..z_k ~ q(z | x).
        L_1 is the ELBO (with a sampled KL), L_k grows with k and tends to log p(x).
        Explained in notebooks/06_vae_theory.ipynb, section "The importance-weighted bound".

        Args:
            x: a batch of data (batch, ...).
            k: the number of importance samples per example, k >= 1.
            seed: an int or a `keras.random.SeedGenerator`.

        Returns:
            A float32 tensor (batch,): one draw of L_k for each example.

        Raises:
            ValueError: if k < 1.
        """
        k = require_int(k, "k", minimum=1)
        x = ops.convert_to_tensor(x, "float32")
        z_mean, z_log_var = self.encoder(x, training=False)
        seed = seed if isinstance(seed, keras.random.SeedGenerator) else keras.random.SeedGenerator(seed)
        batch = int(x.shape[0])
        per_chunk = max(1, _ROWS_PER_CHUNK // batch)
        log_weights = [self._log_weights(x, z_mean, z_log_var, min(per_chunk, k - start), seed)
                       for start in range(0, k, per_chunk)]
        return losses.importance_weighted_bound(ops.concatenate(log_weights, axis=0))

    def _log_weights(self, x, z_mean, z_log_var, k, seed):
        """log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x) for k samples (k, batch)."""
        batch = int(x.shape[0])
        epsilon = keras.random.normal((k, batch, self.latent_dim), seed=seed)
        z = z_mean + ops.exp(0.5 * z_log_var) * epsilon  # (k, batch, latent_dim)
        z_flat = ops.reshape(z, (k * batch, self.latent_dim))
        x_flat = ops.reshape(ops.broadcast_to(x, (k,) + tuple(x.shape)), (k * batch,) + tuple(x.shape[1:]))
        log_px_given_z = self.log_likelihood(x_flat, self.decoder(z_flat, training=False))
        zeros = ops.zeros_like(z_flat)
        log_pz = losses.gaussian_log_likelihood(z_flat, zeros, zeros)
        log_q = losses.gaussian_log_likelihood(
            z_flat, ops.reshape(ops.broadcast_to(z_mean, z.shape), z_flat.shape),
            ops.reshape(ops.broadcast_to(z_log_var, z.shape), z_flat.shape))
        return ops.reshape(log_px_given_z + log_pz - log_q, (k, batch))


def _features(data, encoder):
    """The x of a batch that fit() passes: x, (x,), (x, y) or (x, y, sample_weight),
    checked against the encoder's input shape (at trace time, so it costs nothing per step)."""
    x = data[0] if isinstance(data, (tuple, list)) else data
    expected = tuple(encoder.inputs[0].shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"The VAE's encoder takes examples of shape {expected}, but fit() passed a batch of "
            f"shape {tuple(x.shape)}. Fix: pass data of shape (N, {', '.join(map(str, expected))}), "
            "or build the encoder and decoder for your data's shape."
        )
    return x


def _check_networks(encoder, decoder):
    """Raises a clear ValueError when the encoder and decoder do not fit together."""
    outputs = getattr(encoder, "outputs", None)
    if not outputs or len(outputs) != 2 or outputs[0].shape != outputs[1].shape:
        raise ValueError(
            "The encoder must output a pair [z_mean, z_log_var] of one shape (batch, latent_dim); "
            f"got outputs {[tuple(o.shape) for o in outputs or []]}. Fix: end it with two Dense "
            "layers of latent_dim units, as vae.toy_encoder does."
        )
    latent, given = tuple(outputs[0].shape[1:]), tuple(decoder.inputs[0].shape[1:])
    if latent != given:
        raise ValueError(
            f"The encoder's latent shape {latent} differs from the decoder's input shape {given}. "
            "Fix: build both with the same latent_dim."
        )
    if tuple(decoder.outputs[0].shape[1:]) != tuple(encoder.inputs[0].shape[1:]):
        raise ValueError(
            f"The decoder outputs shape {tuple(decoder.outputs[0].shape[1:])} but the encoder "
            f"takes {tuple(encoder.inputs[0].shape[1:])}; a VAE reconstructs its input. Fix: "
            "give the decoder the data's shape as its output."
        )


def toy_encoder(input_dim=2, latent_dim=2, hidden=64):
    """A Dense encoder x (batch, input_dim) -> [z_mean, z_log_var] (batch, latent_dim) each."""
    x = keras.Input((input_dim,), name="x")
    h = layers.Dense(hidden, activation="relu")(x)
    h = layers.Dense(hidden, activation="relu")(h)
    z_mean = layers.Dense(latent_dim, name="z_mean")(h)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(h)
    return keras.Model(x, [z_mean, z_log_var], name="encoder")


def toy_decoder(latent_dim=2, output_dim=2, hidden=64):
    """A Dense decoder z (batch, latent_dim) -> mean or logits (batch, output_dim)."""
    z = keras.Input((latent_dim,), name="z")
    h = layers.Dense(hidden, activation="relu")(z)
    h = layers.Dense(hidden, activation="relu")(h)
    return keras.Model(z, layers.Dense(output_dim, name="output")(h), name="decoder")


class LinearGaussian:
    """z ~ N(0, 1), x | z ~ N(a z + b, s^2): a latent-variable model with p(x) and p(z | x)
    in closed form, on which the ELBO identity and the importance-weighted bound are exact.
    NumPy, float64. Explained in notebooks/06_vae_theory.ipynb, section "The ELBO".

    Example:
        >>> model = LinearGaussian(a=1.5, b=0.3, s=0.5)
        >>> model.log_px(np.array([0.3]))  # -0.5 log(2 pi (a^2 + s^2))
    """

    def __init__(self, a=1.5, b=0.3, s=0.5):
        if not s > 0:
            raise ValueError(f"`s` is the noise's standard deviation and must be > 0; got {s!r}.")
        self.a, self.b, self.s = float(a), float(b), float(s)

    def log_px(self, x):
        """log p(x) = log N(x; b, a^2 + s^2), elementwise."""
        variance = self.a**2 + self.s**2
        return -0.5 * (np.log(2 * np.pi * variance) + (np.asarray(x) - self.b) ** 2 / variance)

    def posterior(self, x):
        """p(z | x) = N(a (x - b) / (a^2 + s^2), s^2 / (a^2 + s^2)): (mean, log_var) arrays."""
        x = np.asarray(x, np.float64)
        variance = self.a**2 + self.s**2
        return self.a * (x - self.b) / variance, np.full_like(x, np.log(self.s**2 / variance))

    def elbo(self, x, q_mean, q_log_var):
        """The ELBO of q(z | x) = N(q_mean, exp(q_log_var)) in closed form, elementwise."""
        x, m, q_var = np.asarray(x), np.asarray(q_mean), np.exp(q_log_var)
        # E_q[log p(x | z)] = -0.5 * (log(2 pi s^2) + ((x - a m - b)^2 + a^2 var_q) / s^2)
        expected_log_likelihood = -0.5 * (np.log(2 * np.pi * self.s**2)
                                          + ((x - self.a * m - self.b) ** 2 + self.a**2 * q_var) / self.s**2)
        # KL(q || p(z)) = 0.5 * (m^2 + var_q - 1 - log var_q)
        return expected_log_likelihood - 0.5 * (m**2 + q_var - 1 - q_log_var)

    def as_vae(self, *, mean_offset=0.0, log_var_offset=0.0):
        """This model as a `VAE` whose encoder is the exact posterior, shifted by the offsets."""
        gain = self.a / (self.a**2 + self.s**2)
        encoder = toy_linear([gain, -gain * self.b + mean_offset],
                             [0.0, math.log(self.s**2 / (self.a**2 + self.s**2)) + log_var_offset])
        model = VAE(encoder, toy_linear([self.a, self.b]), likelihood="gaussian")
        model.decoder_log_var.assign(np.full((1,), 2 * math.log(self.s), np.float32))
        return model


def toy_linear(*weight_bias_pairs):
    """A Keras model x (batch, 1) -> one output w x + c per [w, c] pair (a list if several)."""
    x = keras.Input((1,))
    outputs = []
    for weight, bias in weight_bias_pairs:
        dense = layers.Dense(1)
        outputs.append(dense(x))
        dense.set_weights([np.array([[weight]], np.float32), np.array([bias], np.float32)])
    return keras.Model(x, outputs if len(outputs) > 1 else outputs[0])


def gradient_samples(f, z_mean, z_log_var, n, *, estimator, seed):
    """n one-sample estimates of the gradient of E_q[f(z)], q = N(z_mean, exp(z_log_var)) in 1-D,
    with respect to (z_mean, z_log_var). Explained in notebooks/06_vae_theory.ipynb, section
    "The reparameterisation trick".

    - "reparameterization": z = mean + exp(0.5 log_var) eps, gradient of f(z) by autodiff.
    - "score_function" (REINFORCE): f(z) * grad log q(z), z held fixed.

    Args:
        f: a function of a tensor z (n, 1) -> (n, 1), written with keras.ops.
        z_mean, z_log_var: floats. n: how many estimates. estimator: one of the two names.
        seed: an int or a `keras.random.SeedGenerator`.

    Returns:
        A NumPy array (n, 2): column 0 the estimates of d/d mean, column 1 of d/d log_var.
    """
    require_choice(estimator, "estimator", ("reparameterization", "score_function"))
    n = require_int(n, "n", minimum=1)
    # One copy of the parameters per sample, so that one gradient call gives all n estimates.
    mean = tf.Variable(np.full((n, 1), z_mean, np.float32))
    log_var = tf.Variable(np.full((n, 1), z_log_var, np.float32))
    with tf.GradientTape() as tape:
        z = losses.reparameterize(mean, log_var, seed=seed)  # (n, 1)
        if estimator == "reparameterization":
            objective = ops.sum(f(z))
        else:
            z = ops.stop_gradient(z)
            # grad E_q[f] = E_q[f(z) grad log q(z)]: f(z) is a constant weight here.
            log_q = losses.gaussian_log_likelihood(z, mean, log_var)  # (n,)
            objective = ops.sum(ops.stop_gradient(f(z))[:, 0] * log_q)
    gradients = tape.gradient(objective, [mean, log_var])
    return np.concatenate([g.numpy() for g in gradients], axis=1).astype(np.float64)


__all__ = ["LIKELIHOODS", "LinearGaussian", "VAE", "gradient_samples", "toy_decoder",
           "toy_encoder", "toy_linear"]
