"""Quality figures for generated images. For now: a classifier trained on real images, applied
to generated ones, says how confidently it recognises them and how evenly they spread over the
classes; the evaluation chapter adds FID and KID to this module.

Explained in notebooks/04_dcgan.ipynb, section "Judge the samples".
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from matplotlib.figure import Figure

from dgm_course._validation import (
    describe,
    require_array,
    require_fraction,
    require_int,
    require_labels,
)

COVERED_SHARE = 0.1  # A class is covered if it gets >= 10% of its fair share n / K.
RANGE_TOLERANCE = 1e-3  # Float rounding may put a pixel a hair outside [-1, 1].


def _check_images(images):
    """Returns `images` as a float32 (N, H, W, C) array in [-1, 1], or raises."""
    fix = ("Pass float images in [-1, 1], shape (N, H, W, C): preprocessing.normalize(x) turns "
           "uint8 pixels into those; greyscale images need a channel axis (x[..., None]).")
    images = require_array(images, "images", ndim=4, dtype_kinds="f", fix=fix)
    if len(images) == 0:
        raise ValueError(f"`images` is empty ({describe(images)}); pass at least one image.")
    if not np.all(np.isfinite(images)):
        raise ValueError(f"`images` hold NaN or infinity ({describe(images)}). A diverged "
                         "generator produces NaN: check its losses before judging its samples.")
    low, high = float(images.min()), float(images.max())
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(
            f"`images` must lie in [-1, 1] (tanh outputs, preprocessing.normalize); got values "
            f"in [{low:g}, {high:g}] ({describe(images)}). Pixels 0..255: use "
            "preprocessing.normalize(x.astype('uint8')) or x / 127.5 - 1; values in [0, 1]: "
            "use x * 2 - 1.")
    return images.astype(np.float32, copy=False)


def _check_classifier(classifier, images):
    """Raises if `classifier` is not a Keras model taking images of `images`' shape."""
    if not isinstance(classifier, keras.Model):
        raise TypeError(f"`classifier` must be a keras.Model returning logits (batch, classes); "
                        f"got {describe(classifier)}. Train one with "
                        "train_reference_classifier(x_train, y_train, epochs=2).")
    expected = tuple(classifier.input_shape[1:])
    if tuple(images.shape[1:]) != expected:
        raise ValueError(f"The classifier takes images of shape {expected} but `images` has "
                         f"{describe(images)}. Judge each dataset's samples with a classifier "
                         "trained on that dataset's real images.")


def _check_labels(labels, n_images, num_classes):
    """Returns `labels` as int64 (N,) with values in 0..num_classes-1, or raises."""
    labels = require_labels(labels, n_images, fix="pass y_test with x_test, or labels=None")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"`labels` must lie in 0..{num_classes - 1} ({num_classes} classes); "
                         f"got values in {labels.min()}..{labels.max()}.")
    return labels


def reference_classifier(image_shape=(28, 28, 1), num_classes=10, *, seed=0):
    """Returns a small compiled CNN images (batch, *image_shape) in [-1, 1] -> logits.

    Two stride-2 convolutions (32 and 64 filters, ReLU) and a hidden dense layer of 128 units:
    on 2 CPU cores it learns Fashion-MNIST to about 88% test accuracy in one epoch and 89-90%
    in two, some 15 s each. Every initializer is seeded from `seed`, so the same seed
    gives the same weights. Compiled with Adam(2e-3) and cross-entropy on logits.
    Explained in notebooks/04_dcgan.ipynb, section "Judge the samples".

    Args:
        image_shape: (height, width, channels), e.g. (28, 28, 1) or (32, 32, 3).
        num_classes: number of classes (logits per image).
        seed: seed of the initial weights.

    Returns:
        A compiled `keras.Sequential` named "reference_classifier".

    Raises:
        TypeError: if a size or `seed` is not an integer.
        ValueError: if `image_shape` is not three sizes with height and width at least 4.

    Example:
        >>> reference_classifier((28, 28, 1)).output_shape
        (None, 10)
    """
    if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3:
        raise ValueError(f"`image_shape` must be (height, width, channels); got "
                         f"{describe(image_shape)}. Example: (28, 28, 1).")
    height, width, channels = (require_int(size, "image_shape", minimum=1) for size in image_shape)
    if min(height, width) < 4:
        raise ValueError(f"`image_shape` must be at least 4x4; got {tuple(image_shape)}.")
    num_classes = require_int(num_classes, "num_classes", minimum=2)
    seed = require_int(seed, "seed", minimum=0)

    def init(offset):  # One seed per layer: same seed, same weights, no global state.
        return keras.initializers.GlorotUniform(seed=seed + offset)

    model = keras.Sequential([
        keras.Input((height, width, channels)),
        # Stride 2, no pooling: 28x28 -> 14x14 -> 7x7, 3x faster on CPU, as accurate.
        layers.Conv2D(32, 3, strides=2, padding="same", activation="relu",
                      kernel_initializer=init(0)),
        layers.Conv2D(64, 3, strides=2, padding="same", activation="relu",
                      kernel_initializer=init(1)),
        layers.Flatten(),
        layers.Dense(128, activation="relu", kernel_initializer=init(2)),
        layers.Dense(num_classes, kernel_initializer=init(3)),  # Logits: no softmax here.
    ], name="reference_classifier")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def train_reference_classifier(images, labels, *, epochs, batch_size=128, seed=0,
                               num_classes=10, verbose=True):
    """Returns a `reference_classifier` trained on real `images` with `labels`.

    The batches are shuffled anew each epoch by a tf.data shuffle seeded with `seed`, which
    also seeds the initial weights: the same call gives the same classifier.
    Explained in notebooks/04_dcgan.ipynb, section "Judge the samples".

    Args:
        images: float images (N, H, W, C) in [-1, 1], e.g. `preprocessing.normalize(x_train)`.
        labels: (N,) integer labels in 0..num_classes-1.
        epochs: passes over the data (1 or 2 suffice for (Fashion-)MNIST).
        batch_size: images per step.
        seed: seed of the initial weights and of the shuffle.
        num_classes: number of classes of the classifier.
        verbose: if True, Keras prints one line per epoch.

    Returns:
        The trained, compiled `keras.Sequential`.

    Raises:
        TypeError: for uint8 (not yet normalised) images or non-integer labels.
        ValueError: for images outside [-1, 1] or of the wrong rank, labels out of range,
            or a different number of labels than images.

    Example:
        >>> classifier = train_reference_classifier(normalize(data.x_train), data.y_train,
        ...                                         epochs=2)
    """
    images = _check_images(images)
    labels = _check_labels(labels, len(images), require_int(num_classes, "num_classes", minimum=2))
    epochs = require_int(epochs, "epochs", minimum=1)
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    classifier = reference_classifier(images.shape[1:], num_classes, seed=seed)
    examples, targets = tf.constant(images), tf.constant(labels)
    # Shuffle indices, not images: the shuffle buffer then holds N ints instead of N images.
    order = tf.data.Dataset.range(len(images)).shuffle(len(images), seed=seed,
                                                       reshuffle_each_iteration=True)
    dataset = order.batch(batch_size).map(lambda i: (tf.gather(examples, i), tf.gather(targets, i)))
    classifier.fit(dataset.prefetch(tf.data.AUTOTUNE), epochs=epochs, shuffle=False,  # Done above.
                   verbose=2 if verbose else 0)
    return classifier


def _probabilities(outputs):
    """Returns softmax(outputs) in float64; outputs that already are probabilities (every row
    non-negative, summing to 1) are returned as they are."""
    outputs = np.asarray(outputs, np.float64)
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        raise ValueError(f"The classifier must return one logit per class, (batch, classes); "
                         f"it returned {describe(outputs)}.")
    if np.all(outputs >= 0) and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-4):
        return outputs  # A classifier ending in a softmax.
    # p_k = exp(l_k - max l) / sum_j exp(l_j - max l): the softmax, shifted so exp never overflows.
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))  # (n, K)
    return shifted / shifted.sum(axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class ClassifierReport:
    """What a classifier trained on real images makes of a set of images.

    Read it against two other reports: the real test images' (what good looks like) and an
    untrained generator's (the floor). A caveat: a classifier's confidence is not proof of
    quality. It may be sure about images no person would accept, and one perfect image per
    class drawn over and over scores as well as a varied generator. The class spread catches
    a generator that draws only some classes (mode collapse), not one that repeats itself
    within a class. FID (evaluation chapter) compares whole feature distributions instead.
    Explained in notebooks/04_dcgan.ipynb, section "Judge the samples".

    Attributes:
        n: number of images judged.
        mean_confidence: mean over images of the largest softmax probability.
        confident_fraction: fraction of images whose largest probability is >= `threshold`.
        threshold: the confidence threshold used.
        class_counts: images predicted as each class, a tuple of K ints.
        class_entropy_bits: entropy of the predicted classes' shares, in bits; log2(K) when
            every class gets the same share, 0 when one class gets everything.
        classes_covered: classes that get at least `COVERED_SHARE` of their fair share n / K.
        accuracy: fraction predicted as the given label, or None when no labels were given.
        class_names: optional names of the K classes.
    """

    n: int
    mean_confidence: float
    confident_fraction: float
    threshold: float
    class_counts: tuple
    class_entropy_bits: float
    classes_covered: int
    accuracy: float | None = None
    class_names: tuple | None = None

    @property
    def class_shares(self):
        """The predicted classes' shares of the images, a (K,) float array summing to 1."""
        return np.asarray(self.class_counts, np.float64) / self.n

    def summary(self):
        """Returns the report as one line of text."""
        k = len(self.class_counts)
        line = (f"{self.n:,} images: mean confidence {self.mean_confidence:.3f}, "
                f"{self.confident_fraction:.1%} at >= {self.threshold:g}, "
                f"{self.classes_covered}/{k} classes covered, class entropy "
                f"{self.class_entropy_bits:.2f} of {math.log2(k):.2f} bits")
        return line if self.accuracy is None else f"{line}, accuracy {self.accuracy:.1%}"

    def __str__(self):
        return self.summary()

    def figure(self, title=None):
        """Returns a bar chart of the predicted classes' shares, the fair share 1 / K dashed."""
        k = len(self.class_counts)
        names = self.class_names or [str(index) for index in range(k)]
        fig = Figure(figsize=(max(4.0, 0.55 * k), 3.2))
        ax = fig.add_subplot(1, 1, 1)
        ax.bar(np.arange(k), self.class_shares)
        ax.axhline(1 / k, linestyle="--", color="grey", label="fair share 1/K")
        ax.set_xticks(np.arange(k), names, rotation=45 if self.class_names else 0, ha="right"
                      if self.class_names else "center")
        ax.set_ylabel("share of images")
        ax.set_title(title or f"mean confidence {self.mean_confidence:.2f}")
        ax.legend()
        fig.tight_layout()
        return fig


def classifier_report(classifier, images, labels=None, *, class_names=None, threshold=0.9,
                      batch_size=256):
    """Judges `images` with a classifier trained on real images; returns a `ClassifierReport`.

    Confidence (the largest softmax probability) says how much an image looks like *some*
    class to this classifier; the shares of the predicted classes say whether the images
    cover every class; with `labels` (real test images, or a conditional generator's
    requested classes) the accuracy says whether they look like the right class.
    Explained in notebooks/04_dcgan.ipynb, section "Judge the samples".

    Args:
        classifier: a `keras.Model` returning logits (or probabilities), such as
            `train_reference_classifier(...)`.
        images: float images (N, H, W, C) in [-1, 1], the classifier's input shape.
        labels: optional (N,) integer labels; then the report has an accuracy.
        class_names: optional K names of the classes, for the figure.
        threshold: the confidence counted in `confident_fraction`, in (0, 1).
        batch_size: images per prediction batch.

    Returns:
        A frozen `ClassifierReport`; `print(report)` gives one line, `report.figure()` a chart.

    Raises:
        TypeError: for uint8 images, non-integer labels or a classifier that is no Keras model.
        ValueError: for images outside [-1, 1] or of another shape than the classifier
            takes, NaN, labels out of range or of another length, or the wrong number of names.

    Example:
        >>> print(classifier_report(classifier, gan.generate(1000, seed=1)))
        1,000 images: mean confidence 0.871, 62.3% at >= 0.9, 10/10 classes covered, ...
    """
    images = _check_images(images)
    _check_classifier(classifier, images)
    threshold = require_fraction(threshold, "threshold")
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    p = _probabilities(classifier.predict(images, batch_size=batch_size, verbose=0))  # (n, K)
    n, k = p.shape
    if class_names is not None and len(class_names) != k:
        raise ValueError(f"`class_names` must name the classifier's {k} classes; got "
                         f"{describe(class_names)}. Pass e.g. data.class_names, or None.")
    confidence, predicted = p.max(axis=1), p.argmax(axis=1)  # (n,), (n,)
    counts = np.bincount(predicted, minlength=k)  # (K,)
    shares = counts[counts > 0] / n
    # H = sum_k share_k log2(1 / share_k), in bits, over the classes with share_k > 0.
    entropy = float(np.sum(shares * np.log2(1 / shares)))
    accuracy = None
    if labels is not None:
        accuracy = float(np.mean(predicted == _check_labels(labels, n, k)))
    return ClassifierReport(
        n=n, mean_confidence=float(confidence.mean()),
        confident_fraction=float(np.mean(confidence >= threshold)), threshold=threshold,
        class_counts=tuple(int(count) for count in counts), class_entropy_bits=entropy,
        classes_covered=int(np.sum(counts >= COVERED_SHARE * n / k)), accuracy=accuracy,
        class_names=None if class_names is None else tuple(str(name) for name in class_names))
