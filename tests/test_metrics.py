"""dgm_course.metrics: the reference classifier's shapes and seeds, the classifier report's numbers
against a NumPy computation on a classifier with known logits, clear errors for bad input, and a
one-epoch fit on a tiny synthetic dataset that beats chance."""

import dataclasses

import keras
import numpy as np
import pytest
from matplotlib.figure import Figure

from dgm_course import metrics

# A classifier with known logits: an image of constant value v gets l = v * W + B.
W, B = np.array([3.0, 0.0, -3.0]), np.array([0.0, 0.5, 0.0])
VALUES = np.array([-1.0] * 3 + [-0.5] * 2 + [0.0] + [0.75] * 4 + [1.0] * 10)


def known_classifier(activation=None):
    """(4, 4, 1) images -> v * W + B (logits), or their softmax; v = the image's mean."""
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation=activation)])
    model.layers[-1].set_weights([W[None].astype("float32"), B.astype("float32")])
    return model


def constant_images(values):
    return np.broadcast_to(np.asarray(values, "float32")[:, None, None, None],
                           (len(values), 4, 4, 1)).copy()


def numpy_report(values, labels, threshold):
    """The report's numbers computed independently, in float64."""
    logits = values[:, None] * W + B
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predicted = p.argmax(axis=1)
    shares = np.array([np.mean(predicted == k) for k in range(3)])
    nonzero = shares[shares > 0]
    return {"mean_confidence": p.max(axis=1).mean(),
            "confident_fraction": np.mean(p.max(axis=1) >= threshold),
            "class_counts": tuple(int(np.sum(predicted == k)) for k in range(3)),
            "class_entropy_bits": -np.sum(nonzero * np.log(nonzero)) / np.log(2),
            "accuracy": np.mean(predicted == labels)}


@pytest.fixture(scope="module")
def classifier():
    return metrics.reference_classifier((28, 28, 1), seed=0)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_reference_classifier_shapes_and_weight_count(shape):
    model = metrics.reference_classifier(shape, num_classes=10)
    assert model.output_shape == (None, 10) and model.compiled
    h, c = shape[0] // 4, shape[2]  # Two stride-2 convolutions: 28 -> 7, 32 -> 8.
    expected = (9 * c * 32 + 32) + (9 * 32 * 64 + 64) + (h * h * 64 * 128 + 128) + (128 * 10 + 10)
    assert model.count_params() == expected


def test_same_seed_same_weights():
    first, again, other = (metrics.reference_classifier(seed=s) for s in (3, 3, 4))
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first.get_weights()[0], other.get_weights()[0])


@pytest.mark.parametrize("activation", [None, "softmax"])  # Logits or probabilities.
def test_report_matches_numpy(activation):
    labels = np.array([2, 2, 2, 0, 0, 1, 0, 0, 0, 0] + [0] * 10)
    report = metrics.classifier_report(known_classifier(activation), constant_images(VALUES),
                                       labels, threshold=0.9)
    expected = numpy_report(VALUES, labels, 0.9)
    assert report.class_counts == expected["class_counts"] == (14, 1, 5)
    for name in ("mean_confidence", "confident_fraction", "class_entropy_bits", "accuracy"):
        assert getattr(report, name) == pytest.approx(expected[name], rel=1e-5), name
    assert report.n == 20 and report.classes_covered == 3
    np.testing.assert_allclose(report.class_shares, np.array([14, 1, 5]) / 20)


def test_entropy_and_coverage_extremes():
    collapsed = metrics.classifier_report(known_classifier(), constant_images([1.0] * 40))
    assert collapsed.class_counts == (40, 0, 0) and collapsed.classes_covered == 1
    assert collapsed.class_entropy_bits == 0.0 and collapsed.accuracy is None
    even = metrics.classifier_report(known_classifier(), constant_images([1.0, 0.0, -1.0] * 5))
    assert even.classes_covered == 3
    assert even.class_entropy_bits == pytest.approx(np.log2(3))


def test_summary_figure_and_frozen():
    report = metrics.classifier_report(known_classifier(), constant_images(VALUES),
                                       np.zeros(20, int), class_names=["a", "b", "c"])
    assert str(report) == report.summary()
    assert "20 images" in str(report) and "3/3 classes covered" in str(report)
    assert "accuracy 70.0%" in str(report)
    assert "accuracy" not in str(metrics.classifier_report(known_classifier(),
                                                           constant_images(VALUES)))
    fig = report.figure(title="test")
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 3
    assert [label.get_text() for label in fig.axes[0].get_xticklabels()] == ["a", "b", "c"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.n = 3


@pytest.mark.parametrize("images, error, words", [
    (np.zeros((2, 28, 28, 1), "uint8"), TypeError, "normalize"),
    (np.full((2, 28, 28, 1), 255.0, "float32"), ValueError, "x / 127.5 - 1"),
    (np.zeros((2, 28, 28), "float32"), ValueError, "x[..., None]"),
    (np.full((2, 28, 28, 1), np.nan, "float32"), ValueError, "NaN"),
    (np.zeros((2, 32, 32, 3), "float32"), ValueError, "(28, 28, 1)"),
    (np.zeros((0, 28, 28, 1), "float32"), ValueError, "empty"),
])
def test_bad_images_are_explained(classifier, images, error, words):
    with pytest.raises(error, match="images") as caught:
        metrics.classifier_report(classifier, images)
    assert words in str(caught.value)


def test_bad_arguments_are_explained(classifier):
    images = np.zeros((4, 28, 28, 1), "float32")
    with pytest.raises(ValueError, match="3 entries but `images` has 4"):
        metrics.classifier_report(classifier, images, [0, 1, 2])
    with pytest.raises(ValueError, match=r"0\.\.9"):
        metrics.classifier_report(classifier, images, [0, 1, 2, 10])
    with pytest.raises(ValueError, match="10 classes"):
        metrics.classifier_report(classifier, images, class_names=["a", "b"])
    with pytest.raises(TypeError, match="keras.Model"):
        metrics.classifier_report(lambda x: x, images)
    with pytest.raises(ValueError, match="threshold"):
        metrics.classifier_report(classifier, images, threshold=90)
    with pytest.raises(TypeError, match="normalize"):
        metrics.train_reference_classifier(images.astype("uint8"), [0] * 4, epochs=1)
    with pytest.raises(ValueError, match="image_shape"):
        metrics.reference_classifier((28, 28))


def quadrants(n, seed):
    """8x8 images of 4 classes: class k lights up quadrant k; background -1, noise added."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = np.full((n, 8, 8, 1), -1.0)
    for index, label in enumerate(labels):
        row, column = divmod(int(label), 2)
        images[index, 4 * row:4 * row + 4, 4 * column:4 * column + 4] = 1.0
    images += rng.normal(0, 0.3, images.shape)
    return np.clip(images, -1, 1).astype("float32"), labels


@pytest.mark.slow
def test_one_epoch_fit_beats_chance_and_is_seeded():
    x, y = quadrants(512, seed=0)
    x_test, y_test = quadrants(200, seed=1)
    first, again = (metrics.train_reference_classifier(x, y, epochs=1, batch_size=32, seed=5,
                                                       verbose=False) for _ in range(2))
    report = metrics.classifier_report(first, x_test, y_test)
    assert report.accuracy > 0.6  # Chance: 0.25 (4 classes).
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert metrics.classifier_report(again, x_test, y_test).accuracy == report.accuracy
