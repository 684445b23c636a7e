"""Losses of GANs, Wasserstein GANs and VAEs in `keras.ops`, numerically stable (softplus of
logits, log-sum-exp). Per-example values have shape (batch,) and the caller takes the mean;
the GAN and critic losses return the batch mean. Computed in float32 (float64 if every input
is float64, as in the finite-difference tests). Explained in notebooks/03_gan_theory.ipynb,
notebooks/06_vae_theory.ipynb and, for the Wasserstein losses, chapter 05.
"""

import math
import numbers

import keras
import tensorflow as tf
from keras import ops

from dgm_course import accelerate
from dgm_course._validation import describe


def _float_tensors(**named):
    """Returns the inputs as float tensors of one dtype (float64 only if all are float64),
    or raises a TypeError that names the input that is not float."""
    tensors = []
    for name, value in named.items():
        try:
            tensor = ops.convert_to_tensor(value)
        except (TypeError, ValueError) as error:
            raise TypeError(f"`{name}` must be a float array or tensor; got {describe(value)} "
                            f"({error}).") from None
        if "float" not in keras.backend.standardize_dtype(tensor.dtype):
            raise TypeError(f"`{name}` must hold floats; got {describe(tensor)}. Convert it "
                            f"first, e.g. ops.cast({name}, 'float32').")
        tensors.append(tensor)
    all_float64 = all(keras.backend.standardize_dtype(t.dtype) == "float64" for t in tensors)
    dtype = "float64" if all_float64 else "float32"
    return [ops.cast(tensor, dtype) for tensor in tensors]


def _same_shape(a, b, name_a, name_b, *, min_ndim=1):
    """Raises a ValueError unless `a` and `b` have the same static shape (None matches)."""
    for tensor, name in ((a, name_a), (b, name_b)):
        if len(tensor.shape) < min_ndim:
            raise ValueError(f"`{name}` must have at least {min_ndim} dimensions, batch first; "
                             f"got {describe(tensor)}. Add a feature axis: {name}[:, None].")
    if len(a.shape) != len(b.shape) or any(
            i is not None and j is not None and i != j for i, j in zip(a.shape, b.shape)):
        raise ValueError(f"`{name_a}` and `{name_b}` must have the same shape; got "
                         f"{describe(a)} and {describe(b)}. Pass matching tensors (one value "
                         "per element, batch first); do not rely on broadcasting here.")


def _per_example(tensor, name):
    """Returns one logit or score per example as a (batch,) tensor, or raises."""
    shape = tuple(tensor.shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise ValueError(f"`{name}` must hold one value per example, shape (batch,) or "
                         f"(batch, 1); got {describe(tensor)}. The network should end in "
                         "Dense(1) with no activation (raw logits, not probabilities).")
    return ops.reshape(tensor, (-1,))


def _sum_per_example(values):
    """Sums over every axis but the first (the batch axis): (batch, ...) -> (batch,)."""
    return ops.sum(ops.reshape(values, (ops.shape(values)[0], -1)), axis=1)


def _check_number(value, name, *, low, high, fix):
    """Raises a ValueError unless `value` is a real number with low <= value < high."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value < high:
        raise ValueError(f"`{name}` must be a number in [{low:g}, {high:g}); got {describe(value)}. "
                         f"{fix}")


def _check_seed(seed):
    """Raises a TypeError unless `seed` is an int or a keras.random.SeedGenerator."""
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, keras.random.SeedGenerator)):
        raise TypeError(f"`seed` must be an int or a keras.random.SeedGenerator; got "
                        f"{describe(seed)}. In a train_step pass the model's own SeedGenerator "
                        "(an int draws the same noise on every call).")


def discriminator_loss(real_logits, fake_logits, *, label_smoothing=0.0):
    """The discriminator's loss -V(D, G), the minimax value negated, as a batch mean.

    -[log D(x) + log(1 - D(G(z)))] with D = sigmoid(logits) (Goodfellow et al. 2014, eq. 1),
    written with softplus so that no logit overflows. One-sided label smoothing makes the
    target of real data 1 - s. Explained in notebooks/03_gan_theory.ipynb, "The minimax game".

    Args:
        real_logits: (batch,) or (batch, 1) logits of the discriminator on real data.
        fake_logits: (batch,) or (batch, 1) logits on generated data (any batch size).
        label_smoothing: s in [0, 1).

    Returns:
        A scalar tensor.

    Example:
        >>> float(discriminator_loss([0.0], [0.0]))  # 2 log 2: D = 1/2 everywhere
        1.3862943649291992
    """
    _check_number(label_smoothing, "label_smoothing", low=0.0, high=1.0, fix="Use 0 or 0.1.")
    real, fake = _float_tensors(real_logits=real_logits, fake_logits=fake_logits)
    real, fake = _per_example(real, "real_logits"), _per_example(fake, "fake_logits")
    target = 1.0 - label_smoothing
    # -log sigmoid(l) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l), so
    # real: -[t log D(x) + (1 - t) log(1 - D(x))] = t softplus(-l) + (1 - t) softplus(l)  # (batch,)
    real_loss = target * ops.softplus(-real) + (1.0 - target) * ops.softplus(real)
    # fake: -log(1 - D(G(z))) = softplus(l)  # (batch_fake,)
    fake_loss = ops.softplus(fake)
    return ops.mean(real_loss) + ops.mean(fake_loss)


def generator_loss(fake_logits, *, saturating=False):
    """The generator's loss as a batch mean: non-saturating -log D(G(z)) (default) or
    saturating log(1 - D(G(z))), whose gradient vanishes when D rejects the fakes
    (Goodfellow et al. 2014, section 3). Explained in notebooks/03_gan_theory.ipynb,
    "Saturating and non-saturating losses".

    Args:
        fake_logits: (batch,) or (batch, 1) logits of the discriminator on generated data.
        saturating: True for log(1 - D(G(z))), the minimax game's own term.

    Returns:
        A scalar tensor.

    Example:
        >>> float(generator_loss([0.0]))  # log 2
        0.6931471824645996
    """
    [fake] = _float_tensors(fake_logits=fake_logits)
    fake = _per_example(fake, "fake_logits")  # (batch,)
    if saturating:
        # log(1 - sigmoid(l)) = -softplus(l)  # (batch,)
        return ops.mean(-ops.softplus(fake))
    # -log sigmoid(l) = softplus(-l)  # (batch,)
    return ops.mean(ops.softplus(-fake))


def critic_loss(real_scores, fake_scores):
    """The Wasserstein critic's loss mean(D(G(z))) - mean(D(x)); minimising it maximises the
    critic's estimate of the Wasserstein-1 distance (Arjovsky et al. 2017). Explained in
    chapter 05.

    Args:
        real_scores: (batch,) or (batch, 1) critic scores on real data (no sigmoid).
        fake_scores: (batch,) or (batch, 1) critic scores on generated data.

    Returns:
        A scalar tensor.
    """
    real, fake = _float_tensors(real_scores=real_scores, fake_scores=fake_scores)
    real, fake = _per_example(real, "real_scores"), _per_example(fake, "fake_scores")
    # loss = mean(D(G(z))) - mean(D(x))  # scalar
    return ops.mean(fake) - ops.mean(real)


def critic_generator_loss(fake_scores):
    """The Wasserstein generator's loss -mean(D(G(z))). Explained in chapter 05.

    Args:
        fake_scores: (batch,) or (batch, 1) critic scores on generated data.

    Returns:
        A scalar tensor.
    """
    [fake] = _float_tensors(fake_scores=fake_scores)
    # loss = -mean(D(G(z)))  # scalar
    return -ops.mean(_per_example(fake, "fake_scores"))


def gradient_penalty(critic, real, fake, *, seed):
    """WGAN-GP's penalty mean((||grad D(x_hat)||_2 - 1)^2) (Gulrajani et al. 2017, Algorithm 1);
    the caller multiplies it by lambda (10 in the paper). Explained in chapter 05.

    x_hat = eps * real + (1 - eps) * fake, eps ~ U(0, 1) per example. The gradient is taken per
    example, so the critic must treat examples independently (no batch norm). Called inside
    the critic step's GradientTape, the penalty is differentiable in the critic's weights.

    Args:
        critic: a keras Model or Layer (called with training=True) or a function mapping
            (batch, ...) to (batch,) or (batch, 1) scores.
        real: (batch, ...) real data. fake: generated data of the same shape.
        seed: an int or a keras.random.SeedGenerator for eps.

    Returns:
        A scalar tensor.

    Example:
        >>> critic = lambda x: 3.0 * x[:, :1]  # slope 3, so (3 - 1)^2
        >>> float(gradient_penalty(critic, [[1.0, 1.0]], [[0.0, 0.0]], seed=0))
        4.0
    """
    _check_seed(seed)
    real, fake = _float_tensors(real=real, fake=fake)
    _same_shape(real, fake, "real", "fake")
    # eps ~ U(0, 1), one per example  # (batch, 1, ..., 1)
    eps_shape = (ops.shape(real)[0],) + (1,) * (len(real.shape) - 1)
    eps = accelerate.replica_random(keras.random.uniform, eps_shape, dtype=real.dtype, seed=seed)
    # x_hat = eps * x + (1 - eps) * x_tilde  # (batch, ...)
    x_hat = eps * real + (1.0 - eps) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        is_layer = isinstance(critic, keras.layers.Layer)
        scores = critic(x_hat, training=True) if is_layer else critic(x_hat)
    # grad D(x_hat), per example as the examples' scores are independent  # (batch, ...)
    grads = tape.gradient(scores, x_hat)
    # ||grad||_2 = sqrt(sum(grad**2) + 1e-12); 1e-12 keeps sqrt's own gradient finite at 0  # (batch,)
    norms = ops.sqrt(_sum_per_example(ops.square(grads)) + 1e-12)
    # penalty = mean((||grad||_2 - 1)^2)  # scalar
    return ops.mean(ops.square(norms - 1.0))


def gaussian_kl(z_mean, z_log_var):
    """KL(N(mu, sigma^2) || N(0, I)) per example in closed form (Kingma & Welling 2014,
    appendix B), summed over the latent axes. Explained in notebooks/06_vae_theory.ipynb,
    "Gaussian KL in closed form".

    Args:
        z_mean: (batch, latent_dim) means mu. z_log_var: the same shape, log sigma^2.

    Returns:
        A (batch,) tensor, >= 0.

    Example:
        >>> gaussian_kl([[1.0, 0.0]], [[0.0, 0.0]]).numpy()
        array([0.5], dtype=float32)
    """
    z_mean, z_log_var = _float_tensors(z_mean=z_mean, z_log_var=z_log_var)
    _same_shape(z_mean, z_log_var, "z_mean", "z_log_var", min_ndim=2)
    # kl = -0.5 * sum(1 + log_var - mean**2 - exp(log_var))  # (batch,)
    return -0.5 * _sum_per_example(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))


def gaussian_kl_between(mean_q, log_var_q, mean_p, log_var_p):
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) per example for diagonal Gaussians, summed over
    the latent axes; `gaussian_kl` is the case mean_p = 0, log_var_p = 0. Explained in
    notebooks/06_vae_theory.ipynb, "Gaussian KL in closed form".

    Args:
        mean_q, log_var_q, mean_p, log_var_p: (batch, latent_dim) tensors of one shape.

    Returns:
        A (batch,) tensor, >= 0 (inf in float32 if log_var_q - log_var_p exceeds about 88).
    """
    mean_q, log_var_q, mean_p, log_var_p = _float_tensors(
        mean_q=mean_q, log_var_q=log_var_q, mean_p=mean_p, log_var_p=log_var_p)
    for tensor, name in ((log_var_q, "log_var_q"), (mean_p, "mean_p"), (log_var_p, "log_var_p")):
        _same_shape(mean_q, tensor, "mean_q", name, min_ndim=2)
    # kl = 0.5 * sum(log_var_p - log_var_q + (var_q + (mean_q - mean_p)**2) / var_p - 1)  # (batch,)
    # with var_q / var_p = exp(log_var_q - log_var_p): no overflow of var_q alone.
    terms = (log_var_p - log_var_q + ops.exp(log_var_q - log_var_p)
             + ops.square(mean_q - mean_p) * ops.exp(-log_var_p) - 1.0)
    return 0.5 * _sum_per_example(terms)


def bernoulli_log_likelihood(x, logits):
    """log p(x | z) of independent Bernoullis with p = sigmoid(logits), summed over every
    non-batch axis. Explained in notebooks/06_vae_theory.ipynb, "The ELBO".

    Args:
        x: (batch, ...) floats in [0, 1] (binary pixels, or grey levels read as probabilities).
        logits: the decoder's logits, the same shape as `x`.

    Returns:
        A (batch,) tensor; finite for logits of any size (e.g. +-1e4).

    Example:
        >>> bernoulli_log_likelihood([[1.0]], [[0.0]]).numpy()  # log 1/2
        array([-0.6931472], dtype=float32)
    """
    x, logits = _float_tensors(x=x, logits=logits)
    _same_shape(x, logits, "x", "logits", min_ndim=2)
    # x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) = -(softplus(l) - x * l)  # (batch,)
    return -_sum_per_example(ops.softplus(logits) - x * logits)


def gaussian_log_likelihood(x, mean, log_var):
    """log N(x; mean, exp(log_var)) of independent Gaussians, summed over every non-batch
    axis. Explained in notebooks/06_vae_theory.ipynb, "The ELBO".

    Args:
        x: (batch, ...) data. mean: the decoder's means, the same shape as `x`.
        log_var: log variances of x's shape or broadcastable to it: one learned value per
            feature, shape (features,), or a scalar.

    Returns:
        A (batch,) tensor.

    Example:
        >>> gaussian_log_likelihood([[0.0]], [[0.0]], 0.0).numpy()  # -0.5 log(2 pi)
        array([-0.9189385], dtype=float32)
    """
    x, mean, log_var = _float_tensors(x=x, mean=mean, log_var=log_var)
    _same_shape(x, mean, "x", "mean", min_ndim=2)
    if len(log_var.shape) > len(x.shape) or any(
            j not in (1, None) and i is not None and i != j
            for i, j in zip(tuple(x.shape)[::-1], tuple(log_var.shape)[::-1])):
        raise ValueError(f"`log_var` must have the shape of `x` or one that broadcasts to it; "
                         f"got {describe(log_var)} for `x` {describe(x)}. Pass one log-variance "
                         "per element, per feature, or a scalar.")
    # log N(x; mean, var) = -0.5 * (log(2 pi) + log_var + (x - mean)**2 / exp(log_var))  # (batch, ...)
    log_density = -0.5 * (math.log(2 * math.pi) + log_var + ops.square(x - mean) * ops.exp(-log_var))
    return _sum_per_example(log_density)  # (batch,)


def elbo(log_likelihood, kl, *, beta=1.0):
    """The evidence lower bound log p(x | z) - beta * KL(q(z | x) || p(z)) per example
    (Kingma & Welling 2014, eq. 10, at beta = 1; Higgins et al. 2017 for beta != 1). The VAE's
    loss is -mean(elbo). Explained in notebooks/06_vae_theory.ipynb, "The ELBO".

    Args:
        log_likelihood: (batch,), e.g. from `bernoulli_log_likelihood` with z ~ q(z | x).
        kl: (batch,), e.g. from `gaussian_kl`.
        beta: a number >= 0 weighting the KL term.

    Returns:
        A (batch,) tensor.
    """
    _check_number(beta, "beta", low=0.0, high=math.inf, fix="Use 1.0 for the ELBO itself.")
    log_likelihood, kl = _float_tensors(log_likelihood=log_likelihood, kl=kl)
    _same_shape(log_likelihood, kl, "log_likelihood", "kl")
    if len(kl.shape) != 1:
        raise ValueError(f"`log_likelihood` and `kl` must be per-example, shape (batch,); got "
                         f"{describe(kl)}. Sum over the other axes first, as the helpers do.")
    # elbo = log p(x | z) - beta * KL(q(z | x) || p(z))  # (batch,)
    return log_likelihood - beta * kl


def importance_weighted_bound(log_weights):
    """The importance-weighted bound L_k = log (1/k) sum_i w_i on log p(x) (Burda et al. 2016,
    eq. 8), computed with log-sum-exp. L_1 is the ELBO estimate; L_k grows towards log p(x)
    with k. Explained in notebooks/06_vae_theory.ipynb, "The importance-weighted bound".

    Args:
        log_weights: (k, batch) log w_i = log p(x, z_i) - log q(z_i | x), z_i ~ q(z | x).

    Returns:
        A (batch,) tensor.

    Example:
        >>> importance_weighted_bound([[0.0], [1.0986123]]).numpy()  # log((1 + 3) / 2)
        array([0.6931472], dtype=float32)
    """
    [log_weights] = _float_tensors(log_weights=log_weights)
    if len(log_weights.shape) != 2 or log_weights.shape[0] == 0:
        raise ValueError(f"`log_weights` must have shape (k, batch) with k >= 1 samples; got "
                         f"{describe(log_weights)}. Stack the k log-weights on axis 0: "
                         "ops.stack(list_of_k_batch_tensors, axis=0).")
    k = ops.cast(ops.shape(log_weights)[0], log_weights.dtype)
    # L_k = logsumexp_i(log w_i) - log k  # (batch,)
    return ops.logsumexp(log_weights, axis=0) - ops.log(k)


def reparameterize(z_mean, z_log_var, *, seed):
    """Draws z ~ N(mean, exp(log_var)) as a differentiable function of mean and log_var
    (Kingma & Welling 2014, section 2.4). Explained in notebooks/06_vae_theory.ipynb,
    "The reparameterisation trick".

    Args:
        z_mean: (batch, latent_dim) means. z_log_var: the same shape, log variances.
        seed: an int or a keras.random.SeedGenerator (in a train_step the model's own
            SeedGenerator: an int draws the same eps on every call).

    Returns:
        A tensor of z_mean's shape.

    Example:
        >>> reparameterize([[0.0, 0.0]], [[0.0, 0.0]], seed=0).shape
        TensorShape([1, 2])
    """
    _check_seed(seed)
    z_mean, z_log_var = _float_tensors(z_mean=z_mean, z_log_var=z_log_var)
    _same_shape(z_mean, z_log_var, "z_mean", "z_log_var", min_ndim=2)
    # eps ~ N(0, I)  # (batch, latent_dim)
    # (different on each replica under tf.distribute, chapter 09)
    eps = accelerate.replica_random(keras.random.normal, ops.shape(z_mean), dtype=z_mean.dtype,
                                    seed=seed)
    # z = mean + exp(0.5 * log_var) * eps  # (batch, latent_dim)
    return z_mean + ops.exp(0.5 * z_log_var) * eps
