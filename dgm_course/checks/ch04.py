"""Checks for the exercises of chapter 04, "DCGAN" (exercises/04_dcgan.ipynb; the lecture is
notebooks/04_dcgan.ipynb).

The losses are checked against NumPy transcriptions (softplus of logits, in float64), the
generator's step against a reference step on an identical small GAN, and the debugged GAN by
calling the learner's builders; each check names the typical mistake behind a wrong answer.
"""

import keras
import numpy as np
import tensorflow as tf

from dgm_course import gan, losses
from dgm_course._validation import describe
from dgm_course.checks import fail, passed
from dgm_course.checks.ch03 import _fresh_gan, _numbers, _softplus, _weights

_IMAGE_SHAPE = (28, 28, 1)

_FROM_PROBABILITIES = (
    "from_logits=False on logits: Keras then reads each logit as a probability and clips it "
    "into [1e-7, 1 - 1e-7], so every negative logit counts as D = 1e-7, every logit above 1 as "
    "D ≈ 1, and the gradient is 0 outside [0, 1].")
_DOUBLE_SIGMOID = (
    "a sigmoid was applied before a from_logits=True loss, which applies the sigmoid itself: "
    "D = sigmoid(sigmoid(l)) then stays between 0.5 and 0.73, never sure of anything.")
_SUMMED = ("summed over the batch instead of averaged: the loss (and the step size) then grows "
           "with the batch size.")


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _bce_of_probabilities(logits, target):
    """What BinaryCrossentropy(from_logits=False) computes on logits, in float32 like Keras."""
    eps = np.float32(keras.config.epsilon())
    p = np.clip(np.asarray(logits, np.float32), eps, np.float32(1.0) - eps)
    return float(np.mean(-(target * np.log(p) + (1 - target) * np.log(np.float32(1.0) - p))))


def _column(values):
    """Logits as the discriminator returns them: a float32 tensor of shape (batch, 1)."""
    return tf.constant(np.asarray(values, np.float32).reshape(-1, 1))


def _scalar(value, exercise, what):
    out = _numbers(value, exercise, what)
    if out.shape not in ((), (1,)):
        fail(exercise, f"{what} returned shape {out.shape}; expected a scalar (the batch mean).",
             "Keep the loss's default reduction, or take ops.mean(...) of each term.")
    return float(out.reshape(()))


def _name_mistake(out, right, mistakes, exercise, hint, case):
    """Fails with the first mistake whose value `out` matches, or if `out` is not `right`."""
    for problem, value in mistakes.items():
        if abs(out - value) < 1e-4 * max(1.0, abs(value)):
            fail(exercise, problem, hint)
    if abs(out - right) > 1e-4 * max(1.0, abs(right)):
        fail(exercise, f"{case} expected {right:.5f}; got {out:.5f}.", hint)


def _check_extremes(loss, what, args, right, exercise, hint):
    """The loss must be exact (finite, unclipped) for logits of +-100."""
    out = _scalar(loss(*[_column(a) for a in args]), exercise, what)
    if not np.isfinite(out):
        fail(exercise, "with logits of ±100 the loss is not finite: sigmoid(-100) rounds to 0 "
             "in float32 and log(0) = -inf.", hint)
    if abs(out - right) > 1e-3 * right:
        fail(exercise, f"with logits of ±100 expected {right:.2f}; got {out:.2f}: a probability "
             "clipped into [1e-7, 1 - 1e-7] (a sigmoid, then from_logits=False or a clip) caps "
             "each term near 16.", hint)


def check_discriminator_loss(discriminator_loss):
    """Exercise 1: `discriminator_loss(real_logits, fake_logits)` -> BCE(1, real) + BCE(0, fake)."""
    exercise = "Exercise 1"
    hint = ("bce = keras.losses.BinaryCrossentropy(from_logits=True); "
            "bce(ops.ones_like(real_logits), real_logits) "
            "+ bce(ops.zeros_like(fake_logits), fake_logits).")
    real = np.array([2.0, -0.5, 1.0, 4.0, 0.3, -2.5])
    fake = np.array([-1.0, 0.5, -3.0, 0.8, 2.2, -0.2])
    for r, f in ((real, fake), (real[:5], fake[:3])):  # Then batches of different sizes.
        try:
            out = discriminator_loss(_column(r), _column(f))
        except ValueError as error:  # Keras: targets and logits of different shapes.
            fail(exercise, f"with {len(r)} real and {len(f)} fake logits: {error}", "Give each "
                 "batch targets of its own shape: ops.ones_like(real_logits) for the real "
                 "logits, ops.zeros_like(fake_logits) for the fakes.")
        out = _scalar(out, exercise, "discriminator_loss")
        right = np.mean(_softplus(-r)) + np.mean(_softplus(f))
        mistakes = {
            "real and fake targets are swapped: real images get target 1, fakes target 0.":
                np.mean(_softplus(r)) + np.mean(_softplus(-f)),
            "the fake term is missing: D must also learn to reject the generator's images.":
                np.mean(_softplus(-r)),
            "the real and fake batches went into one BCE call (concatenated): that averages over "
            "both batches together, which halves the loss when they are the same size (and "
            "weighs the larger one more when not). The lecture's loss is the sum of the two "
            "means.": (np.sum(_softplus(-r)) + np.sum(_softplus(f))) / (len(r) + len(f)),
            _FROM_PROBABILITIES: _bce_of_probabilities(r, 1.0) + _bce_of_probabilities(f, 0.0),
            _DOUBLE_SIGMOID: np.mean(_softplus(-_sigmoid(r))) + np.mean(_softplus(_sigmoid(f))),
            _SUMMED: np.sum(_softplus(-r)) + np.sum(_softplus(f)),
            "flipped sign: D minimises the cross-entropy, it does not maximise it.": -right,
        }
        _name_mistake(out, right, mistakes, exercise, hint,
                      f"on {len(r)} real and {len(f)} fake logits")
    _check_extremes(discriminator_loss, "discriminator_loss", ([100.0, -100.0], [-100.0, 100.0]),
                    100.0, exercise, hint)
    passed("discriminator_loss is BCE(1, real logits) + BCE(0, fake logits), each a batch mean, "
           "exact for any logit.")


def _check_generator_loss(generator_loss, exercise, same_labels):
    """Exercise 2's logic, also used by Exercise 4: the non-saturating loss from logits."""
    hint = ("keras.losses.BinaryCrossentropy(from_logits=True)(ops.ones_like(fake_logits), "
            "fake_logits): the generator wants D to call its fakes real.")
    logits = np.array([-3.0, -0.5, 0.2, 0.7, 1.5, 4.0])
    out = _scalar(generator_loss(_column(logits)), exercise, "generator_loss")
    right = np.mean(_softplus(-logits))
    mistakes = {
        same_labels: np.mean(_softplus(logits)),
        "that is the saturating (minimax) loss mean log(1 - D(G(z))): its gradient vanishes "
        "when D rejects the fakes, which is how every GAN starts.": np.mean(-_softplus(logits)),
        _FROM_PROBABILITIES: _bce_of_probabilities(logits, 1.0),
        _DOUBLE_SIGMOID: np.mean(_softplus(-_sigmoid(logits))),
        _SUMMED: np.sum(_softplus(-logits)),
        "flipped sign: that is log D(G(z)), which the generator should make large, not small.":
            -right,
    }
    _name_mistake(out, right, mistakes, exercise, hint, f"on logits {logits.tolist()}")
    _check_extremes(generator_loss, "generator_loss", ([100.0, -100.0],), 50.0, exercise,
                    hint)


def check_generator_loss(generator_loss):
    """Exercise 2: `generator_loss(fake_logits)` -> BCE(1, fake_logits), non-saturating."""
    _check_generator_loss(
        generator_loss, "Exercise 2",
        "the fakes get target 0, the discriminator's label for them: minimising that teaches "
        "the generator to make its images look *fake*. The generator wants D(G(z)) = 1.")
    passed("generator_loss is the non-saturating BCE(1, fake logits) = -log D(G(z)), exact for "
           "any logit.")


class _ShapeRecorder(keras.layers.Layer):
    """The identity, remembering the shape of each batch it sees (the generator's z)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shapes = []

    def call(self, z):
        self.shapes.append(tuple(z.shape))
        return z


def _recording_gan():
    """Chapter 03's small GAN with SGD, with a first generator layer that records z's shape."""
    base = _fresh_gan()
    recorder = _ShapeRecorder()
    generator = keras.Sequential([keras.Input((base.latent_dim,)), recorder,
                                  *base.generator.layers], name="generator")
    recorder.shapes.clear()  # Building the model called it on a symbolic z.
    model = gan.GAN(generator, base.discriminator, latent_dim=base.latent_dim, seed=3)
    model.compile(d_optimizer=base.d_optimizer, g_optimizer=base.g_optimizer)
    return model, recorder


def _reference_generator_step(model, batch_size):
    """The generator's half of gan.GAN.train_step; returns g_loss and the logits before it."""
    z = keras.random.normal((batch_size, model.latent_dim), seed=model.seed_generator)
    with tf.GradientTape() as tape:
        fake_logits = model.discriminator(model.generator(z, training=True), training=True)
        g_loss = losses.generator_loss(fake_logits)
    weights = model.generator.trainable_weights
    model.g_optimizer.apply(tape.gradient(g_loss, weights), weights)
    return float(g_loss), fake_logits.numpy().ravel().astype(np.float64)


def _same(a, b, atol=1e-6):
    return all(np.allclose(x, y, rtol=0.0, atol=atol) for x, y in zip(a, b, strict=True))


def _step_loss(generator_step, model, batch_size, exercise, hint):
    """Runs the learner's step and returns the loss it returns, as a float."""
    try:
        out = generator_step(model, batch_size)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - the learner's code may fail in any way.
        if "No gradients provided" not in str(error):
            fail(exercise, f"generator_step raised {type(error).__name__}: {str(error)[:200]}. "
                 "It is called as generator_step(model, batch_size) with a gan.GAN model.", hint)
        fail(exercise, f'no gradient reached the generator ("{error}"): the forward pass must '
             "happen inside the `with tf.GradientTape() as tape:` block, which records only "
             "what runs inside it.", hint)
    if out is None:
        fail(exercise, "generator_step returned nothing: return g_loss, so that train_step can "
             "report it.", hint)
    out = _numbers(out, exercise, "generator_step")
    if out.shape not in ((), (1,)):
        fail(exercise, f"generator_step returned an array of shape {out.shape}, not the loss "
             "(a scalar).", hint)
    return float(out.reshape(()))


def _check_step_bookkeeping(model, before, exercise, hint):
    """Which networks and optimizers the step touched, and where its noise came from."""
    g_before, d_before, state, reference_state = before
    if not _same(d_before, _weights(model.discriminator), 0.0):
        fail(exercise, "the discriminator's weights changed: the generator's step updates the "
             "generator only (D is held fixed while G moves).", hint)
    if int(model.d_optimizer.iterations):
        fail(exercise, "model.d_optimizer was used: the generator has its own optimizer, "
             "model.g_optimizer (its own learning rate and moment estimates).", hint)
    if _same(g_before, _weights(model.generator), 0.0) or not int(model.g_optimizer.iterations):
        fail(exercise, "the generator's weights did not change: no update was applied.", hint)
    if int(model.g_optimizer.iterations) != 1:
        fail(exercise, f"model.g_optimizer took {int(model.g_optimizer.iterations)} steps; "
             "one call is one step.", hint)
    now = model.seed_generator.state.numpy()
    if np.array_equal(now, state):
        fail(exercise, "the model's SeedGenerator did not advance: the noise was drawn without "
             "seed=model.seed_generator (unseeded, or with a fixed int seed, which repeats the "
             "same z on every step).", hint)
    if not np.array_equal(now, reference_state):
        fail(exercise, "the noise was drawn more than once from model.seed_generator: draw one "
             "z per step.", hint)


def check_generator_step(generator_step):
    """Exercise 3: `generator_step(model, batch_size)`, one generator update of a gan.GAN."""
    exercise, batch_size = "Exercise 3", 16
    hint = ("z = keras.random.normal((batch_size, model.latent_dim), "
            "seed=model.seed_generator); under tf.GradientTape: g_loss = losses.generator_loss("
            "model.discriminator(model.generator(z, training=True), training=True)); "
            "model.g_optimizer.apply(gradients, model.generator.trainable_weights); "
            "return g_loss.")
    (mine, recorder), (reference, _) = _recording_gan(), _recording_gan()
    right, logits = _reference_generator_step(reference, batch_size)
    g_before = _weights(mine.generator)
    before = (g_before, _weights(mine.discriminator), mine.seed_generator.state.numpy().copy(),
              reference.seed_generator.state.numpy())
    out = _step_loss(generator_step, mine, batch_size, exercise, hint)
    _check_step_bookkeeping(mine, before, exercise, hint)
    sizes = sorted({shape[0] for shape in recorder.shapes if shape[0] is not None})
    if sizes != [batch_size]:
        fail(exercise, f"with batch_size={batch_size} the generator got z of batch size "
             f"{sizes}: draw z of shape (batch_size, model.latent_dim).", hint)
    g_after, g_right = _weights(mine.generator), _weights(reference.generator)
    if _same([2 * b - a for a, b in zip(g_right, g_before)], g_after, 1e-5):
        fail(exercise, "the step went uphill: the generator *minimises* its loss; the gradient's "
             "sign (or the loss's) is flipped.", hint)
    mistakes = {
        "that is the saturating loss mean log(1 - D(G(z))): use the non-saturating "
        "losses.generator_loss (target 1 for the fakes).": np.mean(-_softplus(logits)),
        "the fakes get target 0, the discriminator's label: that step makes the images look "
        "more fake.": np.mean(_softplus(logits)),
    }
    _name_mistake(out, right, mistakes, exercise, hint, "the returned loss:")
    if not _same(g_after, g_right, 1e-5):
        fail(exercise, "the update differs from one step of model.g_optimizer on "
             "losses.generator_loss of the fakes' logits.", hint)
    passed("generator_step updates the generator alone with g_optimizer, downhill on the "
           "non-saturating loss, with noise from the model's own SeedGenerator.")


def _built(builder, exercise, name, *args):
    """Calls a learner's builder and returns the keras.Model it makes, or fails."""
    call = f"{name}({', '.join(map(str, args))})"
    if isinstance(builder, keras.layers.Layer) or not callable(builder):
        fail(exercise, f"{name} is {describe(builder)}, not a function that builds a model.",
             f"Pass the function itself: {name}, not {call}.")
    model = builder(*args)
    if not isinstance(model, keras.Model):
        fail(exercise, f"{call} returned {describe(model)}, not a keras.Model.",
             "Return keras.Sequential([...]) (or keras.Model(inputs, outputs)).")
    return model


def _declared_input(model):
    try:
        return tuple(model.input_shape)
    except (AttributeError, ValueError):  # A subclassed model declares none.
        return None


def _outputs(model, inputs, exercise, name):
    try:
        return keras.ops.convert_to_numpy(model(inputs, training=False)).astype(np.float64)
    except (ValueError, TypeError, tf.errors.InvalidArgumentError) as error:
        fail(exercise, f"the {name} cannot take inputs of shape {inputs.shape}: "
             f"{type(error).__name__}: {str(error)[:300]}")


def _check_generator(generator, latent_dim, exercise):
    hint = ("End in an image layer: Reshape((7, 7, channels)) then Conv2DTranspose(..., "
            "strides=2) up to Conv2DTranspose(1, 4, strides=2, padding='same', "
            "activation='tanh'), or Dense(28 * 28, activation='tanh') then Reshape((28, 28, 1)).")
    declared = _declared_input(generator)
    if declared is not None and declared != (None, latent_dim):
        fail(exercise, f"build_generator({latent_dim}) made a generator that takes z of shape "
             f"{declared}: it ignores latent_dim.", "keras.Input((latent_dim,)).")
    z = np.random.default_rng(0).normal(size=(64, latent_dim)).astype("float32")
    images = _outputs(generator, z, exercise, "generator")
    per_example = images.reshape(len(images), -1)
    softmax = np.allclose(per_example.sum(axis=1), 1.0, atol=1e-3) or np.allclose(images, 1.0)
    if images.shape[1:] != _IMAGE_SHAPE:
        fail(exercise, f"the generator outputs shape {(None, *images.shape[1:])}, not images "
             f"{(None, *_IMAGE_SHAPE)}"
             + (": each row sums to 1, the head of a classifier (softmax probabilities)."
                if softmax else "."), hint)
    if softmax:
        fail(exercise, "the generator's outputs sum to 1 per image (or are all 1): a softmax is "
             "left in. Images are in [-1, 1]: end in tanh.", hint)
    far = _outputs(generator, 30.0 * z, exercise, "generator")
    if np.abs(far).max() > 1.0 + 1e-5 or not np.all(np.isfinite(far)):
        fail(exercise, f"the generator's outputs reach {np.abs(far).max():.3g}, outside [-1, 1], "
             "where the training images lie: its last activation must be tanh.", hint)
    if images.min() >= 0.0:
        fail(exercise, "the generator's outputs all lie in [0, 1]: a sigmoid (or ReLU) is left "
             "at the end. The images are scaled to [-1, 1], so the last activation is tanh.", hint)


def _check_discriminator(discriminator, exercise):
    hint = ("keras.Input((28, 28, 1)), Conv2D(..., strides=2) blocks with LeakyReLU(0.2), "
            "Flatten(), then Dense(1) with no activation: a raw logit.")
    declared = _declared_input(discriminator)
    if declared is not None and declared != (None, *_IMAGE_SHAPE):
        flat = ": flat vectors" if len(declared) == 2 else ""
        fail(exercise, f"the discriminator takes inputs of shape {declared}{flat}, but the "
             f"images are {(None, *_IMAGE_SHAPE)}.", hint)
    scales = np.geomspace(1.0, 1000.0, 32)[:, None, None, None]
    noise = np.random.default_rng(1).normal(size=(32, *_IMAGE_SHAPE))
    images = np.concatenate([noise * scales, np.ones_like(noise) * scales,
                             -np.ones_like(noise) * scales]).astype("float32")
    logits = _outputs(discriminator, images, exercise, "discriminator")
    if logits.shape[1:] != (1,):
        fail(exercise, f"the discriminator outputs shape {(None, *logits.shape[1:])}; it must "
             "output one logit per image, (None, 1).", hint)
    last = getattr((getattr(discriminator, "layers", None) or [None])[-1], "activation", None)
    name = getattr(last, "__name__", "")
    spread = logits.max() - logits.min() > 1e-3
    if name in ("sigmoid", "softmax") or (logits.min() >= 0.0 and logits.max() <= 1.0 and spread):
        fail(exercise, f"the discriminator ends in a {name or 'sigmoid'}: it outputs "
             "probabilities, and a loss from logits (softplus) would apply the sigmoid a second "
             "time.", hint)


def check_debugged_gan(build_generator, build_discriminator, generator_loss):
    """Exercise 4: the broken GAN, fixed: two builders and the generator's loss."""
    exercise, latent_dim = "Exercise 4", 7
    _check_generator(_built(build_generator, exercise, "build_generator", latent_dim),
                     latent_dim, exercise)
    _check_discriminator(_built(build_discriminator, exercise, "build_discriminator"), exercise)
    _check_generator_loss(
        generator_loss, exercise,
        "generator_loss still gives the fakes the discriminator's label 0: both players then "
        "push the fakes towards 'fake', and nothing pulls them towards the data. The generator's "
        "target is 1.")
    passed("the GAN is fixed: tanh images of shape (28, 28, 1) from z of any latent_dim, a "
           "discriminator from images to one raw logit, and the non-saturating generator loss.")
