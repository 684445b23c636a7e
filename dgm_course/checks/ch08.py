"""Checks for the exercises of chapter 08, "Conditional generation" (exercises/08_conditional.ipynb;
the lecture is notebooks/08_conditional.ipynb).

The label conditioning is checked against concat(z, E[y]) on a known embedding table, the
auxiliary loss against a NumPy transcription of -L_C, and `generate_class` by a generator that
records what it is called with; each check names the typical mistake behind a wrong answer.
"""

import keras
import numpy as np
from keras import layers

from dgm_course import conditional
from dgm_course.checks import fail, passed

_K = 10


def _numbers(value, exercise, what):
    try:
        return np.asarray(keras.ops.convert_to_numpy(value), np.float64)
    except Exception:  # noqa: BLE001  (anything that is not an array)
        fail(exercise, f"{what} returned {type(value).__name__}, not an array or tensor.")


def _embedding(dim, seed):
    """A built Embedding(10, dim) with a known table."""
    embedding = layers.Embedding(_K, dim)
    embedding.build((None,))
    table = np.random.default_rng(seed).normal(size=(_K, dim)).astype("float32")
    embedding.set_weights([table])
    return embedding, table.astype(np.float64)


def _conditioned(conditional_input, z, labels, embedding, exercise, hint):
    try:
        return _numbers(conditional_input(keras.ops.convert_to_tensor(z), labels, embedding),
                        exercise, "conditional_input")
    except (ValueError, TypeError) as error:
        fail(exercise, f"conditional_input raised {type(error).__name__}: {error}", hint)


def check_conditional_input(conditional_input):
    """Exercise 1: `conditional_input(z, labels, embedding)` -> concat([z, embedding(labels)], -1)."""
    exercise = "Exercise 1"
    hint = "ops.concatenate([z, embedding(labels)], axis=-1): z first, the label's row of E after."
    labels = np.array([0, 3, 3, 9], "int32")
    z = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    square, _ = _embedding(5, 1)  # As wide as z: a batch-axis concatenation then runs.
    out = _conditioned(conditional_input, z, labels, square, exercise, hint)
    if out.shape == (8, 5):
        fail(exercise, "concatenated along the batch axis (axis=0): that makes 8 examples of 5 "
             "numbers instead of 4 examples of 10. Concatenate features: axis=-1.", hint)
    if out.shape == (4, 5):
        fail(exercise, "the embedding was added to z (or z was dropped): concatenate them, so "
             "that the first layer sees z and the label side by side.", hint)
    embedding, table = _embedding(3, 2)
    out = _conditioned(conditional_input, z, labels, embedding, exercise, hint)
    _name_conditioning_mistake(out, z.astype(np.float64), labels, table, exercise, hint)
    again = _conditioned(conditional_input, z, labels, embedding, exercise, hint)
    if not np.allclose(out, again):
        fail(exercise, "two calls on the same input differ: a new layers.Embedding is made inside "
             "the function, with new random weights on every call, never trained. Use the "
             "`embedding` passed in: the network owns it.", hint)
    expected = np.concatenate([z, table[labels]], axis=1)
    if not np.allclose(out, expected, atol=1e-5):
        fail(exercise, "the label part is not embedding(labels), the rows of the embedding passed "
             "in: another embedding (a global one shared between networks?) or a changed z.", hint)
    passed("conditional_input is concat(z, E[y]) along the feature axis, with the network's own "
           "embedding.")


def _name_conditioning_mistake(out, z, labels, table, exercise, hint):
    """Names the mistake behind an output of the wrong shape or layout (latent 5, embedding 3)."""
    if out.ndim != 2 or out.shape[0] != 4:
        fail(exercise, f"expected shape (4, 8) for z of shape (4, 5) and 4 labels; got {out.shape}.",
             hint)
    extra = out[:, 5:] if np.allclose(out[:, :5], z, atol=1e-5) else None
    if extra is not None and extra.shape[1] == 1 and np.allclose(extra[:, 0], labels):
        fail(exercise, "the label went in as one float number: that tells the network that 9 is "
             "'more' than 3. A class is a category; embed it: embedding(labels).", hint)
    if extra is not None and extra.shape[1] > 1 and np.allclose(extra, np.eye(extra.shape[1])[
            np.minimum(labels, extra.shape[1] - 1)]):
        size = extra.shape[1]
        detail = (f"of the wrong size ({size} for {_K} classes)" if size != _K
                  else "instead of the embedding passed in")
        fail(exercise, f"the label went in one-hot, {detail}. Use embedding(labels): a learned "
             "row per class (an embedding is a one-hot vector times a learned matrix).", hint)
    if out.shape[1] == 8 and np.allclose(out[:, 3:], z, atol=1e-5) and np.allclose(
            out[:, :3], table[labels], atol=1e-5):
        fail(exercise, "the embedding comes first and z after: the order is concat(z, E[y]), "
             "which the networks' first layers are built for.", hint)
    if out.shape[1] != 8:
        fail(exercise, f"expected 5 + 3 = 8 features (z, then the 3-dimensional embedding); "
             f"got {out.shape[1]}.", hint)


def _log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _cross_entropies(logits, labels):
    """-log softmax(logits)[y] per example, in float64."""
    return -_log_softmax(logits)[np.arange(len(labels)), labels]


def _keras_probabilities_loss(logits, labels):
    """What sparse cross-entropy with from_logits=False makes of logits (Keras's own)."""
    values = keras.ops.sparse_categorical_crossentropy(labels, logits.astype("float32"))
    return float(np.mean(keras.ops.convert_to_numpy(values)))


def _auxiliary_mistakes(real, real_labels, fake, fake_labels):
    """Wrong answers' values for one case: {problem: value}."""
    ce_real, ce_fake = _cross_entropies(real, real_labels), _cross_entropies(fake, fake_labels)
    softmax = lambda x: np.exp(_log_softmax(x))
    mistakes = {
        "only the real images' term: L_C also scores the fakes, P(C = c | G(z, c)), which is "
        "how the class head learns what the generator's classes look like.": ce_real.mean(),
        "only the fake images' term: L_C also scores the real images with their labels, which "
        "is what teaches the class head the classes in the first place.": ce_fake.mean(),
        "from_logits=False on logits: Keras then reads the logits as probabilities.":
            _keras_probabilities_loss(real, real_labels)
            + _keras_probabilities_loss(fake, fake_labels),
        "a softmax was applied before a from_logits=True loss, which applies it again.":
            _cross_entropies(softmax(real), real_labels).mean()
            + _cross_entropies(softmax(fake), fake_labels).mean(),
        "summed over the batches instead of averaged: the loss then grows with the batch size.":
            ce_real.sum() + ce_fake.sum(),
        "the real and fake batches were averaged together in one cross-entropy: the lecture's "
        "-L_C is the sum of two batch means.":
            (ce_real.sum() + ce_fake.sum()) / (len(ce_real) + len(ce_fake)),
        "flipped sign: that is L_C, which the players maximise; the loss is -L_C.":
            -(ce_real.mean() + ce_fake.mean()),
    }
    if len(real_labels) == len(fake_labels):
        mistakes["the labels are swapped: real images must be scored against their own labels, "
                 "fakes against the labels they were generated for."] = (
            _cross_entropies(real, fake_labels).mean() + _cross_entropies(fake, real_labels).mean())
    return mistakes


def check_auxiliary_loss(auxiliary_loss):
    """Exercise 2: `auxiliary_loss(real_outputs, real_labels, fake_outputs, fake_labels)`, each
    outputs the AC-GAN discriminator's pair [source logits (b, 1), class logits (b, K)] -> -L_C."""
    exercise = "Exercise 2"
    hint = ("The class logits are outputs[1]. ops.mean(ops.sparse_categorical_crossentropy("
            "real_labels, real_outputs[1], from_logits=True)) + the same for the fakes.")
    rng = np.random.default_rng(0)
    for n_real, n_fake in ((6, 4), (5, 5)):
        real, fake = rng.normal(0, 3, (n_real, _K)), rng.normal(0, 3, (n_fake, _K))
        real_labels, fake_labels = rng.integers(1, _K, n_real), rng.integers(1, _K, n_fake)
        out = _auxiliary_value(auxiliary_loss, real, real_labels, fake, fake_labels, exercise, hint)
        right = _cross_entropies(real, real_labels).mean() + _cross_entropies(fake, fake_labels).mean()
        for problem, value in _auxiliary_mistakes(real, real_labels, fake, fake_labels).items():
            if abs(out - value) < 1e-4 * max(1.0, abs(value)) and abs(value - right) > 1e-6:
                fail(exercise, problem, hint)
        if abs(out - right) > 1e-4 * max(1.0, abs(right)):
            fail(exercise, f"with {n_real} real and {n_fake} fake images expected -L_C = "
                 f"{right:.5f}; got {out:.5f}.", hint)
    extreme = np.array([[100.0] + [-100.0] * (_K - 1)])
    out = _auxiliary_value(auxiliary_loss, extreme, np.array([1]), extreme, np.array([2]),
                           exercise, hint)
    if not np.isfinite(out) or abs(out - 400.0) > 0.1:
        fail(exercise, f"with logits of ±100 expected 400 (two cross-entropies of 200); got "
             f"{out}: a softmax followed by log underflows to log(0), or clipped probabilities "
             "cap the loss. Let the loss take logits (from_logits=True).", hint)
    passed("auxiliary_loss is -L_C: cross-entropy of the class head on real and on fake images, "
           "each a batch mean, exact for any logit.")


def _auxiliary_value(auxiliary_loss, real, real_labels, fake, fake_labels, exercise, hint):
    def outputs(class_logits):
        source = np.zeros((len(class_logits), 1), "float32")  # A logit of 0: D(x) = 1/2.
        return [keras.ops.convert_to_tensor(source),
                keras.ops.convert_to_tensor(class_logits.astype("float32"))]

    try:
        out = auxiliary_loss(outputs(real), keras.ops.convert_to_tensor(real_labels, "int32"),
                             outputs(fake), keras.ops.convert_to_tensor(fake_labels, "int32"))
    except Exception as error:
        if "valid range" in str(error) or "is not in [0, 1)" in str(error):  # TF's two wordings
            fail(exercise, "the loss was computed on outputs[0], the source logit (real or fake, "
                 "one number): the class head is outputs[1], one logit per class.", hint)
        if "same shape" in str(error):
            fail(exercise, f"{error}: the labels do not fit the batch. Are real and fake labels "
                 "swapped? Score real_outputs with real_labels, fake_outputs with fake_labels.",
                 hint)
        if isinstance(error, NotImplementedError):
            raise
        if "Shapes of all inputs must match" in str(error):
            fail(exercise, "the loss was given the whole outputs pair [source logit, class logits] "
                 "(shapes (b, 1) and (b, K) cannot be stacked into one tensor); it needs the "
                 "class logits only, outputs[1].", hint)
        fail(exercise, f"auxiliary_loss raised {type(error).__name__}: {str(error)[:200]}. Each "
             "outputs argument is a pair [source logits (b, 1), class logits (b, K)] and each "
             "labels argument (b,) integers.", hint)
    out = _numbers(out, exercise, "auxiliary_loss")
    if out.shape not in ((), (1,)):
        fail(exercise, f"auxiliary_loss returned shape {out.shape}; expected a scalar (the sum "
             "of two batch means).", hint)
    return float(out.reshape(()))


class _RecordingGenerator:
    """A conditional generator that remembers the inputs and `training` flag of each call."""

    def __init__(self, latent_dim):
        keras.utils.set_random_seed(8)
        self.network = conditional.build_conditional_generator(latent_dim=latent_dim, width=4)
        self.calls = []

    def __call__(self, inputs, training=False):
        z, labels = inputs
        self.calls.append((np.asarray(keras.ops.convert_to_numpy(z)),
                           np.asarray(keras.ops.convert_to_numpy(labels)), training))
        return self.network([keras.ops.convert_to_tensor(z), keras.ops.convert_to_tensor(labels)],
                            training=training)

    def predict(self, inputs, verbose=0, **kwargs):
        return keras.ops.convert_to_numpy(self(inputs))


def _call_generate(generate_class, generator, label, n, seed, exercise, hint):
    generator.calls.clear()
    try:
        out = generate_class(generator, label, n, latent_dim=8, seed=seed)
    except NotImplementedError:  # Not done yet: pass through unchanged.
        raise
    except Exception as error:  # noqa: BLE001  (TensorFlow raises its own error classes)
        _check_recorded(generator, label, n, exercise, hint)
        fail(exercise, f"generate_class raised {type(error).__name__}: {error}", hint)
    _check_recorded(generator, label, n, exercise, hint)
    if not isinstance(out, np.ndarray):
        fail(exercise, f"generate_class returned {type(out).__name__}; return a NumPy array "
             "(ops.convert_to_numpy(...)), as the course's generate_class does.", hint)
    if out.shape != (n, 28, 28, 1):
        fail(exercise, f"expected {n} images of shape (28, 28, 1); got shape {out.shape}.", hint)
    return out


def _check_recorded(generator, label, n, exercise, hint):
    if len(generator.calls) != 1:
        fail(exercise, f"the generator was called {len(generator.calls)} times; once, on all n "
             "latent vectors together, is enough.", hint)
    z, labels, training = generator.calls[0]
    if labels.ndim != 1 or len(labels) != n:
        fail(exercise, f"the labels went in with shape {labels.shape}; the generator needs one "
             f"label per image: a vector of n = {n} labels, ops.full((n,), label).", hint)
    if not np.all(labels == label):
        fail(exercise, f"the labels given to the generator are {np.unique(labels).tolist()}, not "
             f"all {label}: every image must be of the requested class.", hint)
    if z.shape != (n, 8):
        fail(exercise, f"z has shape {z.shape}; expected (n, latent_dim) = ({n}, 8).", hint)
    if training:
        fail(exercise, "training=True: batch norm then normalises with this batch's statistics "
             "(and images depend on the batch). Generate in inference mode, training=False.",
             hint)


def check_generate_class(generate_class):
    """Exercise 3: `generate_class(generator, label, n, *, latent_dim, seed)` -> NumPy images."""
    exercise = "Exercise 3"
    hint = ("z = keras.random.normal((n, latent_dim), seed=seed); labels = ops.full((n,), label, "
            "dtype='int32'); return ops.convert_to_numpy(generator([z, labels], training=False)).")
    generator = _RecordingGenerator(8)
    first = _call_generate(generate_class, generator, 3, 400, 1, exercise, hint)
    z = generator.calls[0][0]
    if abs(z.mean()) > 0.1 or abs(z.std() - 1.0) > 0.1:
        fail(exercise, f"z has mean {z.mean():.2f} and standard deviation {z.std():.2f}: it must "
             "come from the prior N(0, I), keras.random.normal (not uniform).", hint)
    expected = keras.ops.convert_to_numpy(generator.network([z, np.full(400, 3, "int32")]))
    if not np.allclose(first, expected, atol=1e-5):
        fail(exercise, "the returned images are not the generator's images of the recorded z.", hint)
    again = _call_generate(generate_class, generator, 3, 400, 1, exercise, hint)
    if not np.array_equal(first, again):
        fail(exercise, "two calls with the same seed gave different images: the noise is not "
             "seeded. Pass seed=seed to keras.random.normal.", hint)
    other = _call_generate(generate_class, generator, 3, 400, 2, exercise, hint)
    if np.allclose(first, other):
        fail(exercise, "seeds 1 and 2 gave the same images: the seed argument is ignored (a "
             "fixed seed inside the function?).", hint)
    _call_generate(generate_class, generator, 7, 3, 0, exercise, hint)
    passed("generate_class draws z ~ N(0, I) with the seed and generates n images of the label.")


__all__ = ["check_auxiliary_loss", "check_conditional_input", "check_generate_class"]
