"""Feature spaces for judging generated images. FID, KID and precision/recall compare generated
and real images not pixel by pixel but as vectors of a network's features: by default the
penultimate layer of a classifier trained in the course (it works offline and takes seconds),
or the papers' InceptionV3 pool features where its ImageNet weights can be downloaded (Colab).
Explained in notebooks/11_evaluating_generative_models.ipynb, section "Feature spaces".
"""

import keras
import numpy as np

from dgm_course._progress import progress
from dgm_course._validation import describe, require_int
from dgm_course.metrics import _check_classifier, _check_images

INCEPTION_SIZE = 299  # InceptionV3 was trained on 299x299 RGB images.
BATCH, INCEPTION_BATCH = 256, 50  # Default images per forward pass.
PROGRESS_BATCHES = 10  # With show_progress=None, a bar appears above 10 batches.


def _layer_model(classifier, layer):
    """Returns a model from `classifier`'s input to the output of `layer` (default: the
    penultimate layer), or raises."""
    if not isinstance(classifier, keras.Model):
        raise TypeError(f"`classifier` must be a keras.Model or the string 'inception'; got "
                        f"{describe(classifier)}. Train one with metrics."
                        "train_reference_classifier(x_train, y_train, epochs=2).")
    try:
        if layer is None:  # The penultimate layer: the last one before the logits.
            chosen = classifier.layers[-2]
        elif isinstance(layer, str):
            chosen = classifier.get_layer(name=layer)
        else:
            chosen = classifier.get_layer(index=require_int(layer, "layer"))
        inputs = classifier.inputs  # A list; one input goes in alone, as the model takes it.
        return keras.Model(inputs[0] if len(inputs) == 1 else inputs, chosen.output)
    except (AttributeError, IndexError, ValueError) as error:
        names = [each.name for each in classifier.layers]
        raise ValueError(f"Cannot read the features of layer {layer!r} of `classifier` "
                         f"({error}). Pass the name or index of one of its layers {names}, "
                         "or None for the penultimate one; the model must be a Sequential "
                         "or Functional model built on keras.Input.") from None


def _inception_model():
    """Returns InceptionV3 with ImageNet weights and 2048 average-pooled features, or raises."""
    try:
        return keras.applications.InceptionV3(
            weights="imagenet", include_top=False, pooling="avg",
            input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
    except Exception as error:  # Offline, Keras raises a bare Exception("URL fetch failure").
        raise RuntimeError(
            f"InceptionV3's ImageNet weights could not be downloaded or loaded ({error}). "
            "Keras fetches them (about 90 MB) from storage.googleapis.com on first use and "
            "keeps them in ~/.keras/models; this needs the internet, e.g. on Colab. Offline, "
            "use the course's own feature space: feature_extractor(metrics."
            "train_reference_classifier(x_train, y_train, epochs=2)).") from error


def _inception_batch(images):
    """(b, H, W, 1 or 3) in [-1, 1] -> (b, 299, 299, 3), preprocessed as Inception expects."""
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)  # Greyscale: the same grey in R, G and B.
    images = keras.ops.image.resize(images, (INCEPTION_SIZE, INCEPTION_SIZE),
                                    interpolation="bilinear")
    # preprocess_input maps pixels p in 0..255 to p / 127.5 - 1, so p = (x + 1) * 127.5.
    return keras.applications.inception_v3.preprocess_input((images + 1.0) * 127.5)


def _check_inception_images(images):
    """Returns `images` as float32 (N, H, W, 1 or 3) in [-1, 1], or raises."""
    images = _check_images(images)
    if images.shape[-1] not in (1, 3):
        raise ValueError(f"InceptionV3 takes greyscale or RGB images; `images` has "
                         f"{describe(images)}. Pass (N, H, W, 1) or (N, H, W, 3).")
    return images


def feature_extractor(classifier, *, layer=None, batch_size=None, show_progress=None):
    """Returns a function images (n, H, W, C) in [-1, 1] -> features (n, d) in float64.

    The features are the outputs of one layer of `classifier` (flattened), by default the
    penultimate one: for `metrics.reference_classifier` the 128 ReLU units before the logits.
    With `classifier="inception"` they are the 2048 pool features of InceptionV3 trained on
    ImageNet, as in the FID and KID papers: images are tiled to RGB, resized bilinearly to
    299x299 and scaled as `inception_v3.preprocess_input` expects. Its weights (about 90 MB)
    are downloaded on first use, so that needs the internet. Images go through the network
    `batch_size` at a time, with a progress bar for large inputs.
    Explained in notebooks/11_evaluating_generative_models.ipynb, section "Feature spaces".

    Args:
        classifier: a trained `keras.Model` (Sequential or Functional), e.g.
            `metrics.train_reference_classifier(...)`, or the string "inception".
        layer: name or index of the layer whose outputs are the features; None for the
            penultimate layer. Must be None with "inception".
        batch_size: images per forward pass; None for 256, or 50 with "inception" (its
            299x299 inputs and activations fill memory fast).
        show_progress: True or False to show a progress bar or not; None shows one for
            more than 10 batches.

    Returns:
        A function `features(images)` returning a float64 (n, d) array.

    Raises:
        TypeError: if `classifier` is neither a Keras model nor "inception".
        ValueError: for an unknown `layer`; the returned function raises for images outside
            [-1, 1], uint8 images or images of another shape than the classifier takes.
        RuntimeError: with "inception", if the weights cannot be downloaded (offline).

    Example:
        >>> features = feature_extractor(train_reference_classifier(x, y, epochs=2))
        >>> features(normalize(x_test[:100])).shape
        (100, 128)
    """
    inception = isinstance(classifier, str) and classifier == "inception"
    if batch_size is None:
        batch_size = INCEPTION_BATCH if inception else BATCH
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    if inception:
        if layer is not None:
            raise ValueError(f"`layer` must be None with 'inception' (the pool features); "
                             f"got {layer!r}.")
        return _batched(_inception_model(), _check_inception_images, _inception_batch,
                        batch_size, show_progress, "InceptionV3 features")
    model = _layer_model(classifier, layer)

    def check(images):
        images = _check_images(images)
        _check_classifier(classifier, images)
        return images

    return _batched(model, check, lambda batch: batch, batch_size, show_progress, "features")


def _batched(model, check, prepare, batch_size, show_progress, description):
    """Returns features(images): `check` the images, then `model(prepare(batch))` by batch."""

    def features(images):
        images = check(images)
        starts = range(0, len(images), batch_size)
        enabled = len(starts) > PROGRESS_BATCHES if show_progress is None else show_progress
        batches = []
        for start in progress(starts, enabled=bool(enabled), description=description):
            outputs = model(prepare(images[start:start + batch_size]), training=False)
            outputs = keras.ops.convert_to_numpy(outputs)
            batches.append(outputs.reshape(len(outputs), -1))  # Flattened: (b, d).
        return np.concatenate(batches).astype(np.float64)

    return features
