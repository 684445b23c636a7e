"""One `fit()` step of gan.GAN, wgan.WGAN and vae.VAE against references written from the papers.

What this file proves:
- For tiny dense networks with fixed weights, a fixed batch of 8 and plain SGD, one step of
  `model.fit` leaves every weight of every network, and every logged loss, where an
  independent reference puts them. The references are written from the papers' equations in
  plain TensorFlow on tf.Variables copied from the networks, with the networks' forward
  passes written out (tanh hidden layer, linear output) and the critic's input gradient in
  closed form; they call no method of the classes and nothing of dgm_course.losses:
    GAN     Goodfellow et al. 2014, Algorithm 1 (k = 1) and section 3 (non-saturating loss);
            one-sided label smoothing of Salimans et al. 2016, section 3.4;
    WGAN    Arjovsky et al. 2017, Algorithm 1 (weight clipping);
    WGAN-GP Gulrajani et al. 2017, Algorithm 1 (gradient penalty at interpolates);
    VAE     Kingma & Welling 2014, eq. 7 and 10, appendix B (closed-form KL), appendix C.
- Each model, trained for a few dozen steps on an easy problem, moves the right way.
- Each reference comparison fails on the classic mistake it guards against: the mutants below
  are the classes' own train steps with one mistake each (`test_reference_catches_*`).

The noise. The GAN's and the WGAN's latent vectors come from the model instance's `_noise`
method, replaced here by a queue of fixed arrays (`NoiseQueue`): the reference reads the
same arrays, in the order of the paper's algorithm (critic or discriminator steps first, then
the generator's), and nothing depends on how the model's SeedGenerator is consumed. The
WGAN-GP interpolation weights and the VAE's epsilon are drawn inside the package's loss
functions from the model's `seed_generator` and cannot be injected without changing the
package, so the reference reproduces them: a fresh `keras.random.SeedGenerator` of the model's
seed, the same draws (shape and dtype) in the same order. With `_noise` replaced, these are
the only draws from the model's generator, so the order is the algorithm's; and the helpers
also compare the generator's state (and the queue's count) after the step, so a different
number of draws shows up as a mismatch of its own, next to the differences in the weights.
"""

import collections
import functools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers, ops

# dgm_course.losses is used by the mutants only, never by a reference.
from dgm_course import gan, losses, vae, wgan

BATCH, LATENT, DATA_DIM, HIDDEN = 8, 2, 2, 4
RTOL, ATOL = 1e-5, 1e-6
NOISE_SEED = 3  # The models' SeedGenerator seed.
SPARE_DRAWS = 2  # Extra rows in a NoiseQueue, so a mutant that draws more is caught, not crashed.


# Networks with fixed weights, and their forward passes written out for the references.


def dense_network(prefix, input_dim, output_dims, hidden=HIDDEN):
    """x (batch, input_dim) -> tanh Dense(hidden) -> one linear Dense per entry of output_dims.

    Variables are named "<prefix>_hidden/kernel", "<prefix>_out0/bias", ...
    """
    x = keras.Input((input_dim,))
    h = layers.Dense(hidden, activation="tanh", name=f"{prefix}_hidden")(x)
    outputs = [layers.Dense(units, name=f"{prefix}_out{i}")(h)
               for i, units in enumerate(output_dims)]
    return keras.Model(x, outputs if len(outputs) > 1 else outputs[0], name=prefix)


def set_fixed_weights(network, seed, *, scale=0.5, uniform=False):
    """Fills every weight from NumPy's generator `seed`: N(0, scale^2), or U(-scale, scale)."""
    rng = np.random.default_rng(seed)
    for weight in network.weights:
        if uniform:
            weight.assign(rng.uniform(-scale, scale, weight.shape).astype("float32"))
        else:
            weight.assign(rng.normal(0.0, scale, weight.shape).astype("float32"))


def copy_variables(network):
    """{variable path: a tf.Variable holding a copy of its value}: the reference's parameters."""
    return {weight.path: tf.Variable(weight.numpy()) for weight in network.weights}


def layer(params, prefix, x, activation=None):
    # y = activation(x W + b)
    y = x @ params[f"{prefix}/kernel"] + params[f"{prefix}/bias"]
    return activation(y) if activation is not None else y


def forward(params, prefix, x, head=0):
    """The written-out network of `dense_network`: tanh(x W_h + b_h) W_out + b_out."""
    h = layer(params, f"{prefix}_hidden", x, tf.tanh)
    return layer(params, f"{prefix}_out{head}", h)


def critic_input_gradient(params, prefix, x):
    """grad_x D(x) in closed form for D(x) = tanh(x W1 + b1) W2 + b2, one row per example:
    grad_x D = ((1 - h^2) * W2[:, 0]) W1^T with h = tanh(x W1 + b1)  # (batch, input_dim)."""
    h = layer(params, f"{prefix}_hidden", x, tf.tanh)
    w1, w2 = params[f"{prefix}_hidden/kernel"], params[f"{prefix}_out0/kernel"]
    return ((1.0 - h**2) * w2[:, 0]) @ tf.transpose(w1)


def sgd_update(params, loss_fn, learning_rate):
    """Plain SGD on `params` (a dict of tf.Variables): w <- w - lr * d loss / d w."""
    names = sorted(params)
    with tf.GradientTape() as tape:
        loss = loss_fn()
    gradients = tape.gradient(loss, [params[name] for name in names])
    for name, gradient in zip(names, gradients, strict=True):
        if gradient is not None:  # None: the loss does not depend on this weight.
            params[name].assign_sub(learning_rate * gradient)
    return float(loss)


# Injected latent noise, and the comparison helper.


class NoiseQueue:
    """A stand-in for a model's `_noise(batch_size)`: returns row `count` of a fixed table
    and counts the calls, in the graph (a tf.Variable), so it serves the right row however
    often Keras traces the train step, and counts the draws actually made."""

    def __init__(self, draws):
        self.table = tf.constant(np.stack(draws + [np.zeros_like(draws[0])] * SPARE_DRAWS))
        self.count = tf.Variable(0, dtype="int32")

    def __call__(self, batch_size):
        index = self.count.assign_add(1) - 1
        return tf.gather(self.table, index)


def latent_draws(n, seed=11):
    """n fixed latent batches z ~ N(0, I), each (BATCH, LATENT), from NumPy."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(BATCH, LATENT)).astype("float32") for _ in range(n)]


def real_batch(seed=5, binary=False):
    rng = np.random.default_rng(seed)
    if binary:
        return (rng.uniform(size=(BATCH, DATA_DIM)) < 0.5).astype("float32")
    return rng.normal(1.0, 1.0, (BATCH, DATA_DIM)).astype("float32")


def mismatches(triples):
    """The (name, actual, expected) triples whose values differ beyond RTOL and ATOL, as
    readable lines ("discriminator d_hidden/kernel: max |difference| 3.1e-03")."""
    found = []
    for name, actual, expected in triples:
        actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
        if actual.shape != expected.shape:
            found.append(f"{name}: shape {actual.shape}, expected {expected.shape}")
        elif not np.allclose(actual, expected, rtol=RTOL, atol=ATOL):
            found.append(f"{name}: max |difference| {np.max(np.abs(actual - expected)):.3g}")
    return found


def weight_triples(label, network, reference_params):
    return [(f"{label} {weight.path}", weight.numpy(), reference_params[weight.path].numpy())
            for weight in network.weights]


def history_triples(history, expected):
    return [(f"logged {name}", history.history[name][-1], value)
            for name, value in expected.items()]


def fit_one_step(model, real):
    return model.fit(real, batch_size=len(real), epochs=1, shuffle=False, verbose=0)


def snapshot(networks):
    """{label: {variable path: NumPy copy}} of the networks' weights now."""
    return {label: {w.path: w.numpy().copy() for w in network.weights}
            for label, network in networks.items()}


def largest_changes(networks, before):
    """{label: the largest |change| of any of the network's weights since `before`}."""
    return {label: max(float(np.max(np.abs(w.numpy() - before[label][w.path])))
                       for w in network.weights)
            for label, network in networks.items()}


# What a step helper returns: the mismatches with the reference (an empty list if none), how
# far each network moved (to show a comparison is not vacuous), and the trained model.
Step = collections.namedtuple("Step", "mismatches moved model")
MOVED = 100 * ATOL  # Each network must move by far more than the tolerance.


def assert_matches_and_moves(step, what):
    """The main assertion: no mismatch with the reference, and not vacuously (all moved)."""
    assert not step.mismatches, f"{what} differs from the paper's:\n" + "\n".join(step.mismatches)
    assert all(change > MOVED for change in step.moved.values()), (
        f"{what}: a network hardly moved, so the comparison would prove little: {step.moved}")


# The GAN: Goodfellow et al. 2014, Algorithm 1 with k = 1.

GAN_RATES = {"d": 0.1, "g": 0.2}  # Different, so that swapped optimizers would show.


def build_gan(model_class=gan.GAN, rates=GAN_RATES, run_eagerly=False, **options):
    generator = dense_network("g", LATENT, [DATA_DIM])
    discriminator = dense_network("d", DATA_DIM, [1])
    set_fixed_weights(generator, 0)
    set_fixed_weights(discriminator, 1)
    model = model_class(generator, discriminator, latent_dim=LATENT, seed=NOISE_SEED, **options)
    model.compile(d_optimizer=keras.optimizers.SGD(rates["d"]),
                  g_optimizer=keras.optimizers.SGD(rates["g"]), run_eagerly=run_eagerly)
    return model


def reference_gan_step(g, d, real, z_d, z_g, *, rates=GAN_RATES, saturating=False,
                       label_smoothing=0.0):
    """One round of the minimax game on copies `g`, `d` of the weights (updated in place):
    a discriminator step on z_d, then a generator step on fresh z_g through the new D.

    Returns the logged losses {"d_loss", "g_loss"}."""
    log_d = tf.math.log_sigmoid  # log D(x) = log sigmoid(logit)

    def log_one_minus_d(logits):  # log(1 - D(x)) = log sigmoid(-logit)
        return tf.math.log_sigmoid(-logits)

    real_target = 1.0 - label_smoothing  # One-sided smoothing: fake targets stay 0.
    fake = tf.constant(forward(g, "g", z_d))  # A constant: this step moves D only.

    # d_loss = -mean(t log D(x) + (1 - t) log(1 - D(x))) - mean(log(1 - D(G(z)))), t = 1 - s
    def d_loss():
        real_logits, fake_logits = forward(d, "d", real), forward(d, "d", fake)
        real_term = (real_target * log_d(real_logits)
                     + (1 - real_target) * log_one_minus_d(real_logits))
        return -tf.reduce_mean(real_term) - tf.reduce_mean(log_one_minus_d(fake_logits))

    # g_loss = mean(log(1 - D(G(z')))) (saturating) or -mean(log D(G(z'))) (non-saturating),
    # on fresh noise z', through the discriminator just updated.
    def g_loss():
        fake_logits = forward(d, "d", forward(g, "g", z_g))
        return (tf.reduce_mean(log_one_minus_d(fake_logits)) if saturating
                else -tf.reduce_mean(log_d(fake_logits)))

    logged = {"d_loss": sgd_update(d, d_loss, rates["d"])}
    logged["g_loss"] = sgd_update(g, g_loss, rates["g"])
    return logged


def gan_step(model_class=gan.GAN, run_eagerly=False, **options):
    """Runs one fit() step of `model_class` and the reference from the same weights and noise."""
    model = build_gan(model_class, run_eagerly=run_eagerly, **options)
    networks = {"generator": model.generator, "discriminator": model.discriminator}
    before = snapshot(networks)
    g, d = copy_variables(model.generator), copy_variables(model.discriminator)
    real, draws = real_batch(), latent_draws(2)  # z for the D step, fresh z' for the G step.
    noise = NoiseQueue(draws)
    model._noise = noise
    history = fit_one_step(model, real)
    expected = reference_gan_step(g, d, real, *draws, **options)
    found = mismatches(weight_triples("generator", model.generator, g)
                       + weight_triples("discriminator", model.discriminator, d)
                       + history_triples(history, expected)
                       + [("noise draws", int(noise.count.numpy()), 2),
                          ("SeedGenerator state (no draws of its own)",
                           model.seed_generator.state.numpy(),
                           keras.random.SeedGenerator(NOISE_SEED).state.numpy())])
    return Step(found, largest_changes(networks, before), model)


GAN_OPTIONS = {"non_saturating": {}, "saturating": {"saturating": True},
               "label_smoothing": {"label_smoothing": 0.1}}


@pytest.mark.parametrize("options", GAN_OPTIONS.values(), ids=GAN_OPTIONS.keys())
def test_gan_step_matches_the_reference(options):
    assert_matches_and_moves(gan_step(**options), "the GAN step")


# The WGAN: Arjovsky et al. 2017, Algorithm 1; Gulrajani et al. 2017, Algorithm 1.

WGAN_OPTIONS = {
    "gradient_penalty": {"n_critic": 2, "clip_value": None},
    "weight_clipping": {"n_critic": 2, "clip_value": 0.01},
}
WGAN_RATES = {"gradient_penalty": {"d": 0.05, "g": 0.1},
              # Critic weights of order c = 0.01 have gradients of order c: larger steps, so
              # that an update leaves [-c, c] and the generator moves measurably.
              "weight_clipping": {"d": 1.0, "g": 5.0}}


def build_wgan(model_class=wgan.WGAN, *, rates, n_critic, clip_value, hidden=HIDDEN,
               run_eagerly=False):
    generator = dense_network("g", LATENT, [DATA_DIM], hidden)
    critic = dense_network("c", DATA_DIM, [1], hidden)
    set_fixed_weights(generator, 0)
    if clip_value is None:
        set_fixed_weights(critic, 1)
    else:  # In [-2c, 2c], as a fresh critic's: the first clip already matters.
        set_fixed_weights(critic, 1, scale=2 * clip_value, uniform=True)
    model = model_class(generator, critic, latent_dim=LATENT, n_critic=n_critic,
                        clip_value=clip_value, seed=NOISE_SEED)
    model.compile(d_optimizer=keras.optimizers.SGD(rates["d"]),
                  g_optimizer=keras.optimizers.SGD(rates["g"]), run_eagerly=run_eagerly)
    return model


def reference_critic_loss(c, real, fake, x_hat, gp_weight, logged):
    """The critic's loss on copies `c`; x_hat is None with weight clipping (no penalty).
    Records the Wasserstein estimate and the penalty in `logged`."""
    # critic_loss = mean(D(G(z))) - mean(D(x)) = -(the Wasserstein estimate)
    critic_loss = tf.reduce_mean(forward(c, "c", fake)) - tf.reduce_mean(forward(c, "c", real))
    logged["wasserstein"] = -float(critic_loss)
    if x_hat is None:
        return critic_loss
    # gp = mean((||grad_x_hat D(x_hat)||_2 - 1)^2); d_loss = critic_loss + lambda * gp
    norms = tf.sqrt(tf.reduce_sum(critic_input_gradient(c, "c", x_hat) ** 2, axis=1))
    gp = tf.reduce_mean((norms - 1.0) ** 2)
    logged["gp"] = float(gp)
    return critic_loss + gp_weight * gp


def reference_wgan_step(g, c, real, draws, *, rates, n_critic, clip_value, gp_weight=10.0):
    """n_critic critic steps then one generator step, on copies `g`, `c` (updated in place).

    `draws` holds n_critic + 1 latent batches. Returns the logged values of the last critic
    step and the generator step, and the reference's SeedGenerator (to compare its state)."""
    eps_generator = keras.random.SeedGenerator(NOISE_SEED)
    logged = {}
    for z in draws[:n_critic]:
        fake = tf.constant(forward(g, "g", z))  # A constant: critic steps move the critic only.
        x_hat = None
        if clip_value is None:
            # eps ~ U(0, 1), one per example: the model's draw, reproduced.
            eps = keras.random.uniform((BATCH, 1), seed=eps_generator)
            x_hat = eps * real + (1.0 - eps) * fake  # x_hat = eps x + (1 - eps) x~
        d_loss = functools.partial(reference_critic_loss, c, real, fake, x_hat, gp_weight, logged)
        logged["d_loss"] = sgd_update(c, d_loss, rates["d"])
        if clip_value is not None:  # w <- clip(w, -c, c), every weight, after every critic step.
            for weight in c.values():
                weight.assign(tf.clip_by_value(weight, -clip_value, clip_value))
    # g_loss = -mean(D(G(z'))) on fresh noise z', through the updated critic.
    def g_loss():
        return -tf.reduce_mean(forward(c, "c", forward(g, "g", draws[n_critic])))

    logged["g_loss"] = sgd_update(g, g_loss, rates["g"])
    return logged, eps_generator


def wgan_step(case, model_class=wgan.WGAN, run_eagerly=False):
    """Runs one fit() step of `model_class` with WGAN_OPTIONS[case] and the reference."""
    options = WGAN_OPTIONS[case]
    model = build_wgan(model_class, rates=WGAN_RATES[case], run_eagerly=run_eagerly, **options)
    networks = {"generator": model.generator, "critic": model.critic}
    before = snapshot(networks)
    g, c = copy_variables(model.generator), copy_variables(model.critic)
    real, draws = real_batch(), latent_draws(options["n_critic"] + 1)
    noise = NoiseQueue(draws)
    model._noise = noise
    history = fit_one_step(model, real)
    expected, eps_generator = reference_wgan_step(g, c, real, draws, rates=WGAN_RATES[case],
                                                  **options)
    found = mismatches(weight_triples("generator", model.generator, g)
                       + weight_triples("critic", model.critic, c)
                       + history_triples(history, expected)
                       + [("noise draws", int(noise.count.numpy()), len(draws)),
                          ("interpolation draws (SeedGenerator state)",
                           model.seed_generator.state.numpy(), eps_generator.state.numpy())])
    return Step(found, largest_changes(networks, before), model)


@pytest.mark.parametrize("case", WGAN_OPTIONS)
def test_wgan_step_matches_the_reference(case):
    step = wgan_step(case)
    assert_matches_and_moves(step, f"the WGAN step ({case})")
    clip_value = WGAN_OPTIONS[case]["clip_value"]
    if clip_value is not None:  # Weights reached the boundary: the clipping was exercised.
        largest = max(float(np.max(np.abs(w.numpy()))) for w in step.model.critic.weights)
        assert largest == pytest.approx(clip_value), f"largest critic weight {largest}"


# The VAE: Kingma & Welling 2014.

VAE_OPTIONS = {"gaussian": {"likelihood": "gaussian", "beta": 1.0},
               "gaussian_beta_0.5": {"likelihood": "gaussian", "beta": 0.5},
               "bernoulli_beta_2": {"likelihood": "bernoulli", "beta": 2.0}}
VAE_RATE = 0.1
GAUSSIAN_LOG_VAR = np.array([0.3, -0.4], "float32")  # The decoder's log-variances at the start.


def build_vae(model_class=vae.VAE, *, likelihood, beta, run_eagerly=False):
    encoder = dense_network("e", DATA_DIM, [LATENT, LATENT])  # [z_mean, z_log_var]
    decoder = dense_network("p", LATENT, [DATA_DIM])  # mean (gaussian) or logits (bernoulli)
    set_fixed_weights(encoder, 2)
    set_fixed_weights(decoder, 3)
    model = model_class(encoder, decoder, beta=beta, likelihood=likelihood, seed=NOISE_SEED)
    if likelihood == "gaussian":  # Away from its initial 0, so that it enters the reference.
        model.decoder_log_var.assign(GAUSSIAN_LOG_VAR)
    model.compile(optimizer=keras.optimizers.SGD(VAE_RATE), run_eagerly=run_eagerly)
    return model


def vae_terms(params, x, eps, likelihood):
    """(-log p(x | z), KL(q(z | x) || N(0, I))), each (batch,), for z = mu + sigma * eps."""
    mu, log_var = forward(params, "e", x, head=0), forward(params, "e", x, head=1)
    z = mu + tf.exp(0.5 * log_var) * eps  # z = mu + sigma * eps, sigma = exp(log_var / 2) (eq. 10)
    out = forward(params, "p", z)
    if likelihood == "gaussian":
        # -log N(x; m, s^2) = 0.5 * sum(log(2 pi) + log s^2 + (x - m)^2 / s^2), s^2 learned
        log_var_x = params["decoder_log_var"]
        reconstruction = 0.5 * tf.reduce_sum(
            math.log(2 * math.pi) + log_var_x + (x - out) ** 2 / tf.exp(log_var_x), axis=1)
    else:
        # -log p(x | z) = -sum(x log y + (1 - x) log(1 - y)), y = sigmoid(logits) (appendix C.1)
        reconstruction = -tf.reduce_sum(
            x * tf.math.log_sigmoid(out) + (1 - x) * tf.math.log_sigmoid(-out), axis=1)
    # KL = -0.5 * sum(1 + log sigma^2 - mu^2 - sigma^2) (appendix B)
    kl = -0.5 * tf.reduce_sum(1.0 + log_var - mu**2 - tf.exp(log_var), axis=1)
    return reconstruction, kl


def reference_vae_step(params, x, *, likelihood, beta):
    """One SGD step on -ELBO_beta, on `params` (updated in place). Returns the logged values."""
    eps_generator = keras.random.SeedGenerator(NOISE_SEED)
    eps = keras.random.normal((BATCH, LATENT), seed=eps_generator)  # The model's draw, reproduced.
    logged = {}

    # loss = mean(-log p(x | z) + beta * KL) = -mean(ELBO_beta)
    def loss():
        reconstruction, kl = vae_terms(params, x, eps, likelihood)
        logged["reconstruction"] = float(tf.reduce_mean(reconstruction))
        logged["kl"] = float(tf.reduce_mean(kl))
        return tf.reduce_mean(reconstruction + beta * kl)

    logged["loss"] = sgd_update(params, loss, VAE_RATE)
    return logged, eps_generator


def vae_params(model):
    params = {**copy_variables(model.encoder), **copy_variables(model.decoder)}
    if model.likelihood == "gaussian":
        params["decoder_log_var"] = tf.Variable(model.decoder_log_var.numpy())
    return params


def vae_step(case, model_class=vae.VAE, run_eagerly=False):
    """Runs one fit() step of `model_class` with VAE_OPTIONS[case] and the reference."""
    options = VAE_OPTIONS[case]
    model = build_vae(model_class, run_eagerly=run_eagerly, **options)
    networks = {"encoder": model.encoder, "decoder": model.decoder}
    before = snapshot(networks)
    params = vae_params(model)
    x = real_batch(binary=options["likelihood"] == "bernoulli")
    history = fit_one_step(model, x)
    expected, eps_generator = reference_vae_step(params, x, **options)
    triples = (weight_triples("encoder", model.encoder, params)
               + weight_triples("decoder", model.decoder, params)
               + history_triples(history, expected)
               + [("epsilon draws (SeedGenerator state)", model.seed_generator.state.numpy(),
                   eps_generator.state.numpy())])
    moved = largest_changes(networks, before)
    if options["likelihood"] == "gaussian":
        log_var = model.decoder_log_var.numpy()
        triples.append(("decoder_log_var", log_var, params["decoder_log_var"].numpy()))
        moved["decoder_log_var"] = float(np.max(np.abs(log_var - GAUSSIAN_LOG_VAR)))
    return Step(mismatches(triples), moved, model)


@pytest.mark.parametrize("case", VAE_OPTIONS)
def test_vae_step_matches_the_reference(case):
    assert_matches_and_moves(vae_step(case), f"the VAE step ({case})")


# Direction: a few dozen steps on an easy problem move each model the right way.


def gaussian_points(n, seed=0, mean=(2.0, 2.0), std=0.3):
    return np.random.default_rng(seed).normal(mean, std, (n, DATA_DIM)).astype("float32")


def test_gan_discriminator_learns_to_tell_real_from_fake():
    """After 30 steps on a Gaussian blob, D(real) > D(fake) on average (fixed fresh fakes),
    and the fakes moved towards the blob. The generator learns slower than the discriminator,
    so that it cannot catch up in 30 steps (with equal rates D is back at 1/2 on both)."""
    model = build_gan(rates={"d": 0.2, "g": 0.05})
    real = gaussian_points(256, seed=1)
    z = np.random.default_rng(2).normal(size=(256, LATENT)).astype("float32")

    def distance_of_fakes():  # || mean G(z) - mean of the data ||
        return float(np.linalg.norm(np.mean(model.generator(z), axis=0) - 2.0))

    before = distance_of_fakes()
    model.fit(gaussian_points(30 * 32), batch_size=32, epochs=1, shuffle=False, verbose=0)
    d_real = float(ops.mean(ops.sigmoid(model.discriminator(real))))
    d_fake = float(ops.mean(ops.sigmoid(model.discriminator(model.generator(z)))))
    assert d_real > d_fake + 0.05, f"mean D(real) = {d_real:.3f}, mean D(fake) = {d_fake:.3f}"
    after = distance_of_fakes()
    assert after < before - 0.3, f"the fakes' distance from the data: {before:.3f} -> {after:.3f}"


def test_wgan_critic_estimate_grows_positive():
    """After 30 steps (n_critic = 2, penalty) the critic's estimate of W, mean D(x) - mean
    D(G(z)) on fixed samples, is positive and larger than the fresh critic's."""
    # A slow generator, so that the critic can pull ahead (larger critic rates diverge here).
    model = build_wgan(rates={"d": 0.05, "g": 0.01}, **WGAN_OPTIONS["gradient_penalty"])
    real = gaussian_points(256, seed=1)
    z = np.random.default_rng(2).normal(size=(256, LATENT)).astype("float32")

    def estimate():
        return float(ops.mean(model.critic(real)) - ops.mean(model.critic(model.generator(z))))

    before = estimate()
    model.fit(gaussian_points(30 * 32), batch_size=32, epochs=1, shuffle=False, verbose=0)
    after = estimate()
    assert after > 0.5 and after > before + 0.5, f"estimate {before:.3f} -> {after:.3f}"


def test_vae_elbo_rises_on_the_training_batch():
    """After 40 steps, -ELBO on the training batch (the reference's, averaged over 32 fixed
    epsilon draws per example) is lower than before."""
    model = build_vae(**VAE_OPTIONS["gaussian"])
    x = gaussian_points(64, mean=(1.0, -1.0), std=1.0)
    eps = np.random.default_rng(4).normal(size=(32, 64, LATENT)).astype("float32")

    def negative_elbo():  # mean(-log p(x | z) + KL), beta = 1
        params = vae_params(model)
        terms = [vae_terms(params, x, e, "gaussian") for e in eps]
        return float(np.mean([tf.reduce_mean(reconstruction + kl) for reconstruction, kl in terms]))

    before = negative_elbo()
    model.fit(np.tile(x, (5, 1)), batch_size=8, epochs=1, shuffle=False, verbose=0)
    after = negative_elbo()
    assert after < before - 0.1, f"-ELBO {before:.3f} -> {after:.3f}"


# Mutants: the classes' train steps with one classic mistake each. Each must fail the reference.
# They run eagerly (run_eagerly=True: the same step, not traced), to keep the file fast; the
# unmutated mutant classes pass the same comparison eagerly, the classes themselves in graph
# mode above.


def bce(logits, target):
    # -[t log sigmoid(l) + (1 - t) log(1 - sigmoid(l))]  # (batch,)
    logits = ops.reshape(logits, (-1,))
    return target * ops.softplus(-logits) + (1.0 - target) * ops.softplus(logits)


class MutantGAN(gan.GAN):
    """gan.GAN.train_step with the mistake named by the class attribute `mistake`."""

    mistake = None

    def train_step(self, real):
        mistake, s = self.mistake, self.label_smoothing
        z = self._noise(ops.shape(real)[0])
        d_weights = self.discriminator.trainable_weights
        g_weights = self.generator.trainable_weights
        fake = self.generator(z, training=True)
        with tf.GradientTape() as tape:
            if mistake == "generator_updated_in_d_step":  # No stop-gradient: G inside D's tape.
                fake = self.generator(z, training=True)
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            if mistake == "real_and_fake_swapped":
                real_logits, fake_logits = fake_logits, real_logits
            real_target = {"smoothing_on_fake": 1.0}.get(mistake, 1.0 - s)
            fake_target = s if mistake in ("smoothing_on_fake", "smoothing_on_both_sides") else 0.0
            d_loss = (ops.mean(bce(real_logits, real_target))
                      + ops.mean(bce(fake_logits, fake_target)))
        if mistake == "generator_updated_in_d_step":
            gradients = tape.gradient(d_loss, d_weights + g_weights)
            self.d_optimizer.apply(gradients[:len(d_weights)], d_weights)
            self.g_optimizer.apply(gradients[len(d_weights):], g_weights)
        else:
            d_gradients = tape.gradient(d_loss, d_weights)
            if mistake != "old_discriminator_in_g_step":
                self.d_optimizer.apply(d_gradients, d_weights)
        g_z = z if mistake == "same_noise_in_g_step" else self._noise(ops.shape(real)[0])
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(g_z, training=True), training=True)
            saturating = not self.saturating if mistake == "saturating_swapped" else self.saturating
            g_loss = losses.generator_loss(fake_logits, saturating=saturating)
            if mistake == "generator_loss_sign_flipped":
                g_loss = -g_loss
        if mistake == "discriminator_updated_in_g_step":
            gradients = tape.gradient(g_loss, g_weights + d_weights)
            self.g_optimizer.apply(gradients[:len(g_weights)], g_weights)
            self.d_optimizer.apply(gradients[len(g_weights):], d_weights)
        else:
            self.g_optimizer.apply(tape.gradient(g_loss, g_weights), g_weights)
        if mistake == "old_discriminator_in_g_step":
            self.d_optimizer.apply(d_gradients, d_weights)  # D updated only after G's step.
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {metric.name: metric.result() for metric in self.metrics}


GAN_MISTAKES = {  # mistake: the options it is tested with
    "real_and_fake_swapped": {},
    "generator_loss_sign_flipped": {},
    "saturating_swapped": {"saturating": True},
    "smoothing_on_fake": {"label_smoothing": 0.1},
    "smoothing_on_both_sides": {"label_smoothing": 0.1},
    "old_discriminator_in_g_step": {},
    "same_noise_in_g_step": {},
    "generator_updated_in_d_step": {},
    "discriminator_updated_in_g_step": {},
}


def numeric_mismatches(found):
    """The mismatches in weights and logged losses (not only in counts of random draws)."""
    return [line for line in found if "draws" not in line]


def mutant(base, mistake):
    return type(f"{base.__name__}_{mistake}", (base,), {"mistake": mistake})


def test_the_unmutated_gan_step_passes_through_the_mutant_harness():
    """The mutant class without a mistake is the class's own step and passes the reference,
    so the failures below come from the mistakes, not from the harness."""
    for name, options in GAN_OPTIONS.items():
        found = gan_step(mutant(MutantGAN, None), run_eagerly=True, **options).mismatches
        assert not found, f"{name}: {found}"


@pytest.mark.parametrize("mistake", GAN_MISTAKES)
def test_reference_catches_gan_mistake(mistake):
    step = gan_step(mutant(MutantGAN, mistake), run_eagerly=True, **GAN_MISTAKES[mistake])
    found = step.mismatches
    assert numeric_mismatches(found), f"the reference did not catch {mistake}: {found}"


class MutantWGAN(wgan.WGAN):
    """wgan.WGAN.train_step with the mistake named by the class attribute `mistake`."""

    mistake = None

    def _penalty(self, real, fake):
        mistake = self.mistake
        shape = (1, 1) if mistake == "eps_shared_across_the_batch" else (BATCH, 1)
        eps = keras.random.uniform(shape, seed=self.seed_generator)  # Drawn in every variant.
        x_hat = {"penalty_at_real_points": real, "penalty_at_fake_points": fake}.get(
            mistake, eps * real + (1.0 - eps) * fake)
        with tf.GradientTape() as tape:
            tape.watch(x_hat)
            scores = self.critic(x_hat, training=True)
        squared_norms = ops.sum(ops.square(tape.gradient(scores, x_hat)), axis=1)
        if mistake == "penalty_on_squared_norm":
            return ops.mean(squared_norms)
        return ops.mean(ops.square(ops.sqrt(squared_norms + 1e-12) - 1.0))

    def _clip(self):
        for weight in self.critic.trainable_weights:
            weight.assign(ops.clip(weight, -self.clip_value, self.clip_value))

    def train_step(self, real):
        mistake = self.mistake
        weights = self.critic.trainable_weights
        for _ in range(1 if mistake == "one_critic_step_only" else self.n_critic):
            fake = self.generator(self._noise(ops.shape(real)[0]), training=True)
            if self.clip_value is not None and mistake == "clip_before_the_update":
                self._clip()
            with tf.GradientTape() as tape:
                critic_loss = losses.critic_loss(self.critic(real, training=True),
                                                 self.critic(fake, training=True))
                if mistake == "critic_loss_sign_flipped":
                    critic_loss = -critic_loss
                gp = self._penalty(real, fake) if self.clip_value is None else ops.zeros(())
                d_loss = critic_loss + self.gp_weight * gp
            self.d_optimizer.apply(tape.gradient(d_loss, weights), weights)
            clip_after = mistake not in ("clipping_skipped", "clip_before_the_update")
            if self.clip_value is not None and clip_after:
                self._clip()
        with tf.GradientTape() as tape:
            fake = self.generator(self._noise(ops.shape(real)[0]), training=True)
            g_loss = losses.critic_generator_loss(self.critic(fake, training=True))
            if mistake == "generator_loss_sign_flipped":
                g_loss = -g_loss
        g_weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(g_loss, g_weights), g_weights)
        values = {"d_loss": d_loss, "g_loss": g_loss, "wasserstein": -critic_loss, "gp": gp}
        for name, tracker in self.trackers.items():
            tracker.update_state(values[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}


WGAN_MISTAKES = {  # mistake: the case it is tested with
    "critic_loss_sign_flipped": "gradient_penalty",
    "generator_loss_sign_flipped": "gradient_penalty",
    "penalty_at_real_points": "gradient_penalty",
    "penalty_at_fake_points": "gradient_penalty",
    "penalty_on_squared_norm": "gradient_penalty",
    "eps_shared_across_the_batch": "gradient_penalty",
    "one_critic_step_only": "gradient_penalty",
    "clipping_skipped": "weight_clipping",
    "clip_before_the_update": "weight_clipping",
}


def test_the_unmutated_wgan_step_passes_through_the_mutant_harness():
    for case in WGAN_OPTIONS:
        found = wgan_step(case, mutant(MutantWGAN, None), run_eagerly=True).mismatches
        assert not found, f"{case}: {found}"


@pytest.mark.slow
@pytest.mark.parametrize("mistake", WGAN_MISTAKES)
def test_reference_catches_wgan_mistake(mistake):
    step = wgan_step(WGAN_MISTAKES[mistake], mutant(MutantWGAN, mistake), run_eagerly=True)
    found = step.mismatches
    assert numeric_mismatches(found), f"the reference did not catch {mistake}: {found}"


class MutantVAE(vae.VAE):
    """vae.VAE's loss terms with the mistake named by the class attribute `mistake`."""

    mistake = None

    def compute_terms(self, x, training=False):
        mistake = self.mistake
        z_mean, z_log_var = self.encoder(x, training=training)
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)  # Always drawn.
        if mistake == "epsilon_missing":
            z = z_mean
        elif mistake == "log_var_used_as_std":
            z = z_mean + z_log_var * eps
        else:
            z = z_mean + ops.exp(0.5 * z_log_var) * eps
        reconstruction = -self.log_likelihood(x, self.decoder(z, training=training))
        if mistake == "reconstruction_averaged_over_features":
            reconstruction = reconstruction / DATA_DIM
        return reconstruction, losses.gaussian_kl(z_mean, z_log_var)

    def _loss(self, reconstruction, kl):
        beta = 1.0 if self.mistake == "beta_ignored" else self.beta
        sign = -1.0 if self.mistake == "kl_sign_flipped" else 1.0
        return ops.mean(reconstruction + sign * beta * kl)


VAE_MISTAKES = {  # mistake: the case it is tested with
    "kl_sign_flipped": "gaussian",
    "beta_ignored": "gaussian_beta_0.5",
    "epsilon_missing": "gaussian",
    "log_var_used_as_std": "bernoulli_beta_2",
    "reconstruction_averaged_over_features": "gaussian",
}


def test_the_unmutated_vae_step_passes_through_the_mutant_harness():
    for case in VAE_OPTIONS:
        found = vae_step(case, mutant(MutantVAE, None), run_eagerly=True).mismatches
        assert not found, f"{case}: {found}"


@pytest.mark.parametrize("mistake", VAE_MISTAKES)
def test_reference_catches_vae_mistake(mistake):
    step = vae_step(VAE_MISTAKES[mistake], mutant(MutantVAE, mistake), run_eagerly=True)
    found = step.mismatches
    assert numeric_mismatches(found), f"the reference did not catch {mistake}: {found}"
