"""Tests of dgm_course.losses against independent references: NumPy transcriptions of the
papers' formulas, scipy.stats densities, Monte Carlo estimates and central finite differences."""

import doctest

import numpy as np
import pytest
from scipy import stats

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from dgm_course import losses  # noqa: E402

RNG = np.random.default_rng(0)


def numpy_of(tensor):
    return keras.ops.convert_to_numpy(tensor)


def sigmoid(logits):
    return 1.0 / (1.0 + np.exp(-logits))


def central_difference(function, x, h=1e-6):
    """d sum(function(x)) / dx by central differences, in float64."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        grad[index] = (np.sum(numpy_of(function(x + step)))
                       - np.sum(numpy_of(function(x - step)))) / (2 * h)
    return grad


def tape_gradient(function, *inputs):
    """Gradients of sum(function(*inputs)) with respect to each float64 input."""
    variables = [tf.constant(np.asarray(x, dtype=np.float64)) for x in inputs]
    with tf.GradientTape() as tape:
        tape.watch(variables)
        total = tf.reduce_sum(function(*variables))
    return [g.numpy() for g in tape.gradient(total, variables)]


# ----- GAN losses (Goodfellow et al. 2014, eq. 1) -------------------------------------------

def test_discriminator_loss_matches_the_minimax_value():
    real, fake = RNG.normal(0, 3, 16), RNG.normal(0, 3, 9)  # Batch sizes may differ.
    # V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]; the discriminator minimises -V.
    value = np.mean(np.log(sigmoid(real))) + np.mean(np.log(1 - sigmoid(fake)))
    loss = losses.discriminator_loss(real.astype("float32"), fake[:, None].astype("float32"))
    assert loss.shape == () and loss.dtype == "float32"
    np.testing.assert_allclose(float(loss), -value, rtol=1e-5)


def test_discriminator_loss_label_smoothing_is_cross_entropy_with_target_one_minus_s():
    real, fake, s = RNG.normal(0, 2, 8), RNG.normal(0, 2, 8), 0.1
    t = 1 - s
    expected = (np.mean(-(t * np.log(sigmoid(real)) + (1 - t) * np.log(1 - sigmoid(real))))
                + np.mean(-np.log(1 - sigmoid(fake))))
    loss = losses.discriminator_loss(real, fake, label_smoothing=s)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)


def test_generator_losses_match_their_formulas():
    fake = RNG.normal(0, 3, 12)
    np.testing.assert_allclose(float(losses.generator_loss(fake)),
                               np.mean(-np.log(sigmoid(fake))), rtol=1e-6)
    np.testing.assert_allclose(float(losses.generator_loss(fake, saturating=True)),
                               np.mean(np.log(1 - sigmoid(fake))), rtol=1e-6)


def test_generator_loss_gradients_match_finite_differences_and_saturate():
    fake = np.array([-8.0, -2.0, 0.0, 3.0])
    for saturating in (False, True):
        def loss(logits, saturating=saturating):
            return losses.generator_loss(logits, saturating=saturating)
        [grad] = tape_gradient(loss, fake)
        np.testing.assert_allclose(grad, central_difference(loss, fake), rtol=1e-5, atol=1e-9)
    # When D rejects a fake (logit -8, D ~ 3e-4) the saturating gradient vanishes,
    # the non-saturating one does not: d/dl log(1 - sigmoid(l)) = -sigmoid(l).
    [saturating] = tape_gradient(lambda logits: losses.generator_loss(logits, saturating=True), fake)
    [non_saturating] = tape_gradient(losses.generator_loss, fake)
    np.testing.assert_allclose(saturating, -sigmoid(fake) / 4, rtol=1e-10)
    np.testing.assert_allclose(non_saturating, -(1 - sigmoid(fake)) / 4, rtol=1e-10)
    assert abs(saturating[0]) < 1e-3 < abs(non_saturating[0])


def test_gan_losses_are_finite_for_extreme_logits():
    extreme = np.array([-1e4, 1e4], dtype=np.float32)
    for value in (losses.discriminator_loss(extreme, extreme, label_smoothing=0.1),
                  losses.generator_loss(extreme), losses.generator_loss(extreme, saturating=True)):
        assert np.isfinite(float(value))
    np.testing.assert_allclose(float(losses.generator_loss(extreme)), 1e4 / 2)


# ----- Wasserstein losses and the gradient penalty (Gulrajani et al. 2017) -----------------

def test_critic_losses_match_their_formulas():
    real, fake = RNG.normal(size=(10, 1)), RNG.normal(size=7)
    np.testing.assert_allclose(float(losses.critic_loss(real, fake)),
                               fake.mean() - real.mean(), rtol=1e-6)
    np.testing.assert_allclose(float(losses.critic_generator_loss(fake)), -fake.mean(), rtol=1e-6)


def linear_critic(weight):
    """D(x) = w . x: its gradient is w everywhere, so ||grad D|| = ||w||."""
    weight = np.asarray(weight, dtype=np.float32)
    return lambda x: keras.ops.sum(x * weight, axis=-1, keepdims=True)


def test_gradient_penalty_of_linear_critics():
    real = RNG.normal(size=(16, 3)).astype("float32")
    fake = RNG.normal(size=(16, 3)).astype("float32")
    unit = np.array([0.6, 0.0, 0.8])  # norm 1: exactly 1-Lipschitz along every direction
    assert float(losses.gradient_penalty(linear_critic(unit), real, fake, seed=0)) == \
        pytest.approx(0.0, abs=1e-10)
    norm_three = np.array([0.0, 3.0, 0.0])
    assert float(losses.gradient_penalty(linear_critic(norm_three), real, fake, seed=0)) == \
        pytest.approx((3 - 1) ** 2, rel=1e-6)


def test_gradient_penalty_matches_numpy_on_a_quadratic_critic():
    # D(x) = 0.5 * ||x||^2 has grad D(x_hat) = x_hat, so the penalty is mean((||x_hat|| - 1)^2).
    real = RNG.normal(size=(8, 2, 2, 1)).astype("float32")
    fake = RNG.normal(size=(8, 2, 2, 1)).astype("float32")
    critic = lambda x: 0.5 * keras.ops.sum(x ** 2, axis=(1, 2, 3))  # noqa: E731
    penalty = float(losses.gradient_penalty(critic, real, fake, seed=3))
    eps = numpy_of(keras.random.uniform((8, 1, 1, 1), seed=3))  # the same draw
    x_hat = eps * real + (1 - eps) * fake
    expected = np.mean((np.sqrt(np.sum(x_hat ** 2, axis=(1, 2, 3))) - 1) ** 2)
    np.testing.assert_allclose(penalty, expected, rtol=1e-5)
    assert float(losses.gradient_penalty(critic, real, fake, seed=3)) == penalty  # seeded
    assert float(losses.gradient_penalty(critic, real, fake, seed=4)) != penalty


@pytest.mark.parametrize("compiled", [False, True])
def test_gradient_penalty_is_differentiable_with_respect_to_the_critic(compiled):
    critic = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    weight = np.array([[3.0], [4.0]], dtype=np.float32)  # norm 5
    critic.layers[0].kernel.assign(weight)
    seed_generator = keras.random.SeedGenerator(1)

    def critic_step(real, fake):  # as in a WGAN-GP train_step
        with tf.GradientTape() as tape:
            penalty = losses.gradient_penalty(critic, real, fake, seed=seed_generator)
        return penalty, tape.gradient(penalty, critic.trainable_variables)[0]

    step = tf.function(critic_step) if compiled else critic_step
    penalty, grad = step(np.ones((4, 2), "float32"), np.zeros((4, 2), "float32"))
    assert float(penalty) == pytest.approx(16.0)
    # d (||w|| - 1)^2 / dw = 2 (||w|| - 1) w / ||w||
    np.testing.assert_allclose(grad.numpy(), 2 * (5 - 1) * weight / 5, rtol=1e-5)


# ----- Gaussian KL (Kingma & Welling 2014, appendix B) --------------------------------------

def test_gaussian_kl_matches_appendix_b():
    mean, log_var = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 3))
    # -D_KL = 0.5 * sum_j (1 + log(sigma_j^2) - mu_j^2 - sigma_j^2)
    expected = -0.5 * np.sum(1 + log_var - mean ** 2 - np.exp(log_var), axis=1)
    kl = losses.gaussian_kl(mean.astype("float32"), log_var.astype("float32"))
    assert kl.shape == (5,) and kl.dtype == "float32"
    np.testing.assert_allclose(numpy_of(kl), expected, rtol=1e-5)
    between = losses.gaussian_kl_between(mean, log_var, np.zeros_like(mean), np.zeros_like(mean))
    np.testing.assert_allclose(numpy_of(between), expected, rtol=1e-6)


def monte_carlo_kl(mean_q, std_q, mean_p, std_p, n, seed):
    """E_q[log q(z) - log p(z)] from n samples (per example), and its standard error."""
    z = stats.norm(mean_q, std_q).rvs(size=(n,) + mean_q.shape, random_state=seed)
    log_ratio = np.sum(stats.norm(mean_q, std_q).logpdf(z) - stats.norm(mean_p, std_p).logpdf(z),
                       axis=-1)
    return log_ratio.mean(axis=0), log_ratio.std(axis=0) / np.sqrt(n)


def test_gaussian_kl_closed_forms_match_monte_carlo():
    mean_q, log_var_q = RNG.normal(size=(4, 2)), RNG.normal(0, 0.5, size=(4, 2))
    mean_p, log_var_p = RNG.normal(size=(4, 2)), RNG.normal(0, 0.5, size=(4, 2))
    estimate, error = monte_carlo_kl(mean_q, np.exp(log_var_q / 2), 0.0, 1.0, 200_000, seed=1)
    assert np.all(np.abs(numpy_of(losses.gaussian_kl(mean_q, log_var_q)) - estimate) < 5 * error)
    estimate, error = monte_carlo_kl(mean_q, np.exp(log_var_q / 2), mean_p,
                                     np.exp(log_var_p / 2), 200_000, seed=2)
    kl = numpy_of(losses.gaussian_kl_between(mean_q, log_var_q, mean_p, log_var_p))
    assert np.all(np.abs(kl - estimate) < 5 * error)
    reverse = numpy_of(losses.gaussian_kl_between(mean_p, log_var_p, mean_q, log_var_q))
    assert not np.allclose(kl, reverse)  # KL is not symmetric
    np.testing.assert_allclose(
        numpy_of(losses.gaussian_kl_between(mean_q, log_var_q, mean_q, log_var_q)), 0, atol=1e-12)


def test_gaussian_kl_is_finite_for_extreme_log_variances():
    log_var = np.array([[50.0, -50.0]], dtype=np.float32)
    mean = np.zeros_like(log_var)
    expected = 0.5 * (np.exp(50.0) - 1 - 50) + 0.5 * (np.exp(-50.0) - 1 + 50)
    np.testing.assert_allclose(numpy_of(losses.gaussian_kl(mean, log_var)), [expected], rtol=1e-5)
    between = losses.gaussian_kl_between(mean, log_var, mean, np.zeros_like(log_var))
    assert np.all(np.isfinite(numpy_of(between)))


# ----- Log-likelihoods ----------------------------------------------------------------------

def test_bernoulli_log_likelihood_matches_scipy():
    x = (RNG.random((6, 4, 4, 1)) < 0.5).astype("float32")
    logits = RNG.normal(0, 3, size=x.shape).astype("float32")
    expected = stats.bernoulli(sigmoid(logits.astype(np.float64))).logpmf(x).sum(axis=(1, 2, 3))
    result = losses.bernoulli_log_likelihood(x, logits)
    assert result.shape == (6,) and result.dtype == "float32"
    np.testing.assert_allclose(numpy_of(result), expected, rtol=1e-5)


def test_bernoulli_log_likelihood_is_exact_for_extreme_logits():
    x = np.array([[1.0, 0.0, 1.0, 0.0]], dtype=np.float32)
    logits = np.array([[1e4, -1e4, -1e4, 1e4]], dtype=np.float32)
    # log sigmoid(1e4) = 0, log(1 - sigmoid(-1e4)) = 0, log sigmoid(-1e4) = -1e4, ...
    np.testing.assert_allclose(numpy_of(losses.bernoulli_log_likelihood(x, logits)), [-2e4])


def test_bernoulli_log_likelihood_gradient_is_x_minus_sigmoid():
    x, logits = RNG.random((2, 3)), RNG.normal(size=(2, 3))
    [grad] = tape_gradient(lambda l_: losses.bernoulli_log_likelihood(x, l_), logits)
    np.testing.assert_allclose(grad, x - sigmoid(logits), rtol=1e-10)


def test_gaussian_log_likelihood_matches_scipy():
    x, mean = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 3))
    log_var = RNG.normal(size=(5, 3))
    expected = stats.norm(mean, np.exp(log_var / 2)).logpdf(x).sum(axis=1)
    np.testing.assert_allclose(numpy_of(losses.gaussian_log_likelihood(x, mean, log_var)),
                               expected, rtol=1e-10)
    per_feature = np.array([0.5, -1.0, 2.0])  # one learned log-variance per feature
    expected = stats.norm(mean, np.exp(per_feature / 2)).logpdf(x).sum(axis=1)
    np.testing.assert_allclose(numpy_of(losses.gaussian_log_likelihood(x, mean, per_feature)),
                               expected, rtol=1e-10)


def test_gaussian_log_likelihood_is_finite_for_extreme_log_variances():
    extreme = np.array([[50.0, -50.0]], dtype=np.float32)
    value = losses.gaussian_log_likelihood(np.ones_like(extreme), np.zeros_like(extreme), extreme)
    assert np.all(np.isfinite(numpy_of(value)))


# ----- ELBO, importance-weighted bound, reparameterisation ----------------------------------

def test_elbo_is_log_likelihood_minus_beta_kl():
    log_likelihood, kl = RNG.normal(size=4), RNG.random(4)
    np.testing.assert_allclose(numpy_of(losses.elbo(log_likelihood, kl)), log_likelihood - kl)
    np.testing.assert_allclose(numpy_of(losses.elbo(log_likelihood, kl, beta=4.0)),
                               log_likelihood - 4 * kl)


def test_importance_weighted_bound_matches_burda_eq_8_and_is_stable():
    log_weights = RNG.normal(size=(5, 3))
    # L_k = log (1/k) sum_i p(x, h_i) / q(h_i | x)
    expected = np.log(np.mean(np.exp(log_weights), axis=0))
    np.testing.assert_allclose(numpy_of(losses.importance_weighted_bound(log_weights)), expected,
                               rtol=1e-10)
    shifted = log_weights.astype("float32") - 1e4  # exp underflows to 0 without log-sum-exp
    np.testing.assert_allclose(numpy_of(losses.importance_weighted_bound(shifted)),
                               expected - 1e4, rtol=1e-6)
    single = log_weights[:1].astype("float32")
    np.testing.assert_allclose(numpy_of(losses.importance_weighted_bound(single)), single[0])


def linear_gaussian_log_weights(x, q_mean, q_log_var, k, seed):
    """log p(x, z) - log q(z | x) for p(z) = N(0, 1), p(x | z) = N(z, 1), so p(x) = N(0, 2)
    and p(z | x) = N(x / 2, 1 / 2); z ~ q drawn with `reparameterize`. Returns (k, batch)."""
    batch = x.shape[0]
    q_mean = np.broadcast_to(q_mean, (k * batch, 1)).astype("float32")
    q_log_var = np.broadcast_to(q_log_var, (k * batch, 1)).astype("float32")
    z = losses.reparameterize(q_mean, q_log_var, seed=seed)
    xs = np.tile(x, (k, 1)).astype("float32")
    log_joint = (losses.gaussian_log_likelihood(xs, z, np.zeros_like(xs))
                 + losses.gaussian_log_likelihood(z, np.zeros_like(xs), np.zeros_like(xs)))
    log_q = losses.gaussian_log_likelihood(z, q_mean, q_log_var)
    return keras.ops.reshape(log_joint - log_q, (k, batch))


def test_importance_weighted_bound_with_the_exact_posterior_is_log_p_x():
    x = np.array([[-1.0], [0.5], [2.0]])
    log_p_x = stats.norm(0, np.sqrt(2)).logpdf(x[:, 0])
    for k in (1, 5, 50):
        log_weights = linear_gaussian_log_weights(x, np.tile(x / 2, (k, 1)), np.log(0.5), k, seed=k)
        np.testing.assert_allclose(numpy_of(losses.importance_weighted_bound(log_weights)),
                                   log_p_x, rtol=1e-5)


def test_importance_weighted_bound_grows_with_k_towards_log_p_x():
    x = np.full((2000, 1), 1.5)  # 2,000 independent replicates of one data point
    log_p_x = stats.norm(0, np.sqrt(2)).logpdf(1.5)
    means = []
    for k in (1, 4, 32):
        # q(z | x) = N(0, 1), the prior: a poor posterior, so the bound is loose at k = 1.
        log_weights = linear_gaussian_log_weights(x, 0.0, 0.0, k, seed=10 + k)
        bound = numpy_of(losses.importance_weighted_bound(log_weights))
        if k == 1:  # L_1 is the ELBO estimate: log p(x | z) + log p(z) - log q(z | x)
            np.testing.assert_allclose(bound, numpy_of(log_weights)[0])
        means.append((bound.mean(), bound.std() / np.sqrt(len(bound))))
    for (low, low_error), (high, high_error) in zip(means[:-1], means[1:], strict=True):
        assert high - low > 3 * np.hypot(low_error, high_error)
    assert means[-1][0] < log_p_x + 3 * means[-1][1]


def test_reparameterize_is_seeded_distributed_and_differentiable():
    mean = np.array([[1.0, -2.0]], dtype=np.float32).repeat(50_000, axis=0)
    log_var = np.array([[0.0, np.log(4.0)]], dtype=np.float32).repeat(50_000, axis=0)
    z = numpy_of(losses.reparameterize(mean, log_var, seed=7))
    assert z.shape == mean.shape and z.dtype == np.float32
    np.testing.assert_array_equal(z, numpy_of(losses.reparameterize(mean, log_var, seed=7)))
    np.testing.assert_allclose(z.mean(axis=0), [1.0, -2.0], atol=5 * 2 / np.sqrt(50_000))
    np.testing.assert_allclose(z.std(axis=0), [1.0, 2.0], rtol=0.02)
    generator = keras.random.SeedGenerator(0)
    first = numpy_of(losses.reparameterize(mean[:4], log_var[:4], seed=generator))
    assert not np.array_equal(first, numpy_of(losses.reparameterize(mean[:4], log_var[:4],
                                                                    seed=generator)))
    mean_t, log_var_t = tf.Variable(mean[:3]), tf.Variable(log_var[:3])
    with tf.GradientTape(persistent=True) as tape:
        z = losses.reparameterize(mean_t, log_var_t, seed=7)
    np.testing.assert_allclose(tape.gradient(z, mean_t).numpy(), 1.0)  # dz/dmean = 1
    # dz/dlog_var = 0.5 * exp(0.5 * log_var) * eps = 0.5 * (z - mean)
    np.testing.assert_allclose(tape.gradient(z, log_var_t).numpy(), 0.5 * (z.numpy() - mean[:3]),
                               rtol=1e-6)


# ----- Every loss: autodiff against central finite differences (float64) -------------------

def quadratic_critic(x):
    """D(x) = 0.5 * sum(x**2) + sum(x): a critic whose gradient x + 1 varies with x."""
    return 0.5 * keras.ops.sum(x ** 2, axis=-1) + keras.ops.sum(x, axis=-1)


FINITE_DIFFERENCE_CASES = {
    "discriminator_loss": (lambda r, f: losses.discriminator_loss(r, f, label_smoothing=0.1),
                           [(5,), (3, 1)]),
    "generator_loss": (losses.generator_loss, [(4,)]),
    "critic_loss": (losses.critic_loss, [(4, 1), (3,)]),
    "critic_generator_loss": (losses.critic_generator_loss, [(4,)]),
    "gradient_penalty": (lambda r, f: losses.gradient_penalty(quadratic_critic, r, f, seed=0),
                         [(3, 2), (3, 2)]),
    "gaussian_kl": (losses.gaussian_kl, [(3, 2), (3, 2)]),
    "gaussian_kl_between": (losses.gaussian_kl_between, [(2, 2)] * 4),
    "bernoulli_log_likelihood": (losses.bernoulli_log_likelihood, [(2, 3), (2, 3)]),
    "gaussian_log_likelihood": (losses.gaussian_log_likelihood, [(2, 3), (2, 3), (3,)]),
    "elbo": (lambda ll, kl: losses.elbo(ll, kl, beta=0.5), [(3,), (3,)]),
    "importance_weighted_bound": (losses.importance_weighted_bound, [(4, 2)]),
    "reparameterize": (lambda m, v: losses.reparameterize(m, v, seed=1), [(2, 2), (2, 2)]),
}


@pytest.mark.parametrize("name", sorted(FINITE_DIFFERENCE_CASES))
def test_gradients_match_central_finite_differences(name):
    function, shapes = FINITE_DIFFERENCE_CASES[name]
    rng = np.random.default_rng(len(name))
    inputs = [rng.normal(size=shape) for shape in shapes]
    for index, grad in enumerate(tape_gradient(function, *inputs)):
        def of_one_input(value, index=index):
            return function(*inputs[:index], value, *inputs[index + 1:])
        np.testing.assert_allclose(grad, central_difference(of_one_input, inputs[index]),
                                   rtol=1e-6, atol=1e-8, err_msg=f"input {index} of {name}")


def test_dtypes_float32_by_default_float64_when_every_input_is():
    half, single, double = (np.ones((2, 2), dtype) for dtype in ("float16", "float32", "float64"))
    assert losses.gaussian_kl(half, half).dtype == "float32"
    assert losses.gaussian_kl(single, double).dtype == "float32"
    assert losses.gaussian_kl(double, double).dtype == "float64"
    assert losses.discriminator_loss([0.0], double[:, 0]).dtype == "float32"


def test_docstring_examples_run():
    failures, attempted = doctest.testmod(losses, extraglobs={"np": np}, verbose=False)
    assert attempted >= 8 and failures == 0


# ----- Bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, message", [
    (lambda: losses.discriminator_loss(np.zeros(2, "int32"), np.zeros(2)), TypeError,
     r"`real_logits` must hold floats.*ops.cast"),
    (lambda: losses.discriminator_loss(np.zeros((2, 10)), np.zeros(2)), ValueError,
     r"one value per example.*Dense\(1\)"),
    (lambda: losses.discriminator_loss(np.zeros(2), np.zeros(2), label_smoothing=1.0), ValueError,
     r"`label_smoothing` must be a number in \[0, 1\); got float 1.0"),
    (lambda: losses.discriminator_loss(np.zeros(2), np.zeros(2), label_smoothing=-0.1),
     ValueError, r"in \[0, 1\)"),
    (lambda: losses.gaussian_kl(np.zeros((2, 3)), np.zeros((2, 4))), ValueError,
     r"`z_mean` and `z_log_var` must have the same shape.*\(2, 3\).*\(2, 4\)"),
    (lambda: losses.gaussian_kl(np.zeros(3), np.zeros(3)), ValueError,
     r"at least 2 dimensions.*z_mean\[:, None\]"),
    (lambda: losses.bernoulli_log_likelihood(np.zeros((2, 3), "uint8"), np.zeros((2, 3))),
     TypeError, r"`x` must hold floats; got .*uint8"),
    (lambda: losses.gaussian_log_likelihood(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(4)),
     ValueError, r"`log_var` must have the shape of `x` or one that broadcasts"),
    (lambda: losses.importance_weighted_bound(np.zeros((0, 3))), ValueError,
     r"k >= 1 samples; got .*\(0, 3\)"),
    (lambda: losses.importance_weighted_bound(np.zeros(3)), ValueError, r"shape \(k, batch\)"),
    (lambda: losses.elbo(np.zeros(3), np.zeros(3), beta=-1.0), ValueError, r"`beta` must be"),
    (lambda: losses.elbo(np.zeros((3, 2)), np.zeros((3, 2))), ValueError, r"per-example"),
    (lambda: losses.reparameterize(np.zeros((2, 2)), np.zeros((2, 2)), seed=None), TypeError,
     r"`seed` must be an int or a keras.random.SeedGenerator; got NoneType"),
    (lambda: losses.gradient_penalty(linear_critic([1.0]), np.zeros((2, 1)), np.zeros((3, 1)),
                                     seed=0), ValueError, r"`real` and `fake` must have the same"),
])
def test_bad_input_says_what_and_how_to_fix(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_losses_work_inside_tf_function():
    @tf.function
    def step(real, fake, mean, log_var):
        return (losses.discriminator_loss(real, fake),
                losses.gradient_penalty(linear_critic([0.0, 2.0]), mean, log_var, seed=0),
                losses.gaussian_kl(mean, log_var))
    ones = np.ones((4, 2), "float32")
    d_loss, penalty, kl = step(np.zeros(4, "float32"), np.zeros(4, "float32"), ones, 0 * ones)
    assert float(d_loss) == pytest.approx(2 * np.log(2)) and float(penalty) == pytest.approx(1.0)
    assert kl.shape == (4,)
