"""Figures for images and training curves: grids, class montages, before/after pairs, losses.

Every function returns a `matplotlib.figure.Figure` built without `pyplot`, so nothing is
shown twice in a notebook and everything works headless: end a cell with the figure (or call
`display(fig)`) to see it, `fig.savefig(path)` to keep it.
Explained in notebooks/01_data_preprocessing.ipynb, section "Clean the data".
"""

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dgm_course._validation import describe, require_array, require_int, require_labels


def _show_figures_in_notebooks():
    """Makes IPython render a returned Figure as PNG, even when pyplot was never imported
    (IPython registers that formatter only when a pyplot backend starts)."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:  # Plain Python: nothing to display.
        return
    shell = get_ipython()
    if shell is not None:
        select_figure_formats(shell, {"png"}, bbox_inches="tight")


_show_figures_in_notebooks()

# Value ranges that "auto" can detect, and how an image in each is mapped to [0, 1].
NAMED_RANGES = {"uint8": (0.0, 255.0), "unit": (0.0, 1.0), "tanh": (-1.0, 1.0)}
_PANEL_INCHES = 1.3


def detect_value_range(images, value_range="auto"):
    """Returns the `(low, high)` pixel range of `images`, detecting it when asked.

    Rules for `value_range="auto"`: uint8 (or any integer dtype with values in 0..255)
    -> (0, 255); float within [0, 1] -> (0, 1) (Bernoulli decoders, `normalize(...,
    value_range=(0, 1))`); float with negatives, within [-1, 1] -> (-1, 1) (tanh
    generators, the default `normalize`). Anything else is ambiguous and raises.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Normalise".

    Args:
        images: an array of images (any shape).
        value_range: "auto", or an explicit `(low, high)` pair with low < high.

    Returns:
        A tuple `(low, high)` of floats.

    Raises:
        ValueError: if the range cannot be detected, the images hold NaN or infinity,
            or an explicit range is not a pair with low < high.

    Example:
        >>> detect_value_range(np.zeros((2, 28, 28, 1), "uint8"))
        (0.0, 255.0)
    """
    images = require_array(images, "images")
    if not isinstance(value_range, str):
        try:
            low, high = (float(bound) for bound in value_range)
        except (TypeError, ValueError):
            low = high = None
        if low is None or not low < high:
            raise ValueError(
                f'`value_range` must be "auto" or a pair (low, high) with low < high; got '
                f"{describe(value_range)}. Pass e.g. value_range=(-1, 1) for tanh outputs."
            )
        return (low, high)
    if value_range != "auto":
        raise ValueError(
            f'`value_range` must be "auto" or a pair (low, high); got {value_range!r}.'
        )
    if images.size and not np.all(np.isfinite(images)):
        raise ValueError(
            f"`images` contain NaN or infinity ({describe(images)}); they cannot be drawn. "
            "Find them with dgm_course.cleaning.find_corrupt(images)."
        )
    low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
    if images.dtype.kind in "uib" and low >= 0 and high <= 255:
        return NAMED_RANGES["uint8"]
    if images.dtype.kind == "f" and low >= 0 and high <= 1:
        return NAMED_RANGES["unit"]
    if images.dtype.kind == "f" and low >= -1 and high <= 1:
        return NAMED_RANGES["tanh"]
    raise ValueError(
        f"Cannot detect the value range of `images` ({describe(images)}, values from {low:g} "
        f"to {high:g}): auto-detection knows uint8 0..255, float 0..1 and float -1..1. "
        "Pass value_range=(low, high) explicitly, e.g. value_range=(0, 255) for float "
        "images that still hold 0..255 pixel values."
    )


def _as_images(images, name):
    """Returns `images` as an (N, H, W, C) array, adding C=1 to (N, H, W) grayscale stacks."""
    images = require_array(
        images, name, ndim=(3, 4), fix="Pass a batch of images (N, H, W) or (N, H, W, C)."
    )
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.shape[-1] not in (1, 3):
        raise ValueError(
            f"`{name}` must have 1 (grayscale) or 3 (RGB) channels in the last axis; got "
            f"{describe(images)}. Images are laid out (N, H, W, C)."
        )
    return images


def _draw(ax, image, value_range, title=None):
    """Draws one (H, W, C) image on `ax` scaled from `value_range` to [0, 1], axis off."""
    low, high = value_range
    # pixel_in_unit = (pixel - low) / (high - low), clipped so rounding never wraps.
    unit = np.clip((image.astype(np.float32) - low) / (high - low), 0.0, 1.0)
    if unit.shape[-1] == 1:
        ax.imshow(unit[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(unit)
    ax.set_xticks([])
    ax.set_yticks([])
    if isinstance(title, (float, np.floating)):
        title = f"{title:.3f}"  # E.g. a distance from find_duplicates.
    if title is not None:
        ax.set_title(str(title), fontsize=8)


def _label_text(label, class_names):
    """Returns the title for one label: its class name when names are given."""
    if class_names is None:
        return str(label)
    if not 0 <= int(label) < len(class_names):
        raise ValueError(
            f"Label {label} has no entry in `class_names` ({len(class_names)} names); "
            "pass class_names with one name per class, or class_names=None."
        )
    return class_names[int(label)]


def image_grid(images, labels=None, *, class_names=None, ncols=8, title=None, value_range="auto"):
    """Returns a figure showing `images` in a grid, each titled with its label.

    Explained in notebooks/01_data_preprocessing.ipynb, section "Clean the data".

    Args:
        images: (N, H, W, C) or (N, H, W) array, uint8 or float.
        labels: optional (N,) integer labels, shown as panel titles.
        class_names: optional sequence of names indexed by label.
        ncols: panels per row (fewer when N is smaller).
        title: optional figure title.
        value_range: "auto" (see `detect_value_range`) or `(low, high)`.

    Returns:
        A `matplotlib.figure.Figure` with exactly N axes.

    Raises:
        ValueError: on an empty batch, mismatched labels or an undetectable value range.
        TypeError: if `images` is not numeric.

    Example:
        >>> fig = image_grid(x_train[:16], y_train[:16], class_names=data.class_names)
    """
    images = _as_images(images, "images")
    ncols = require_int(ncols, "ncols", minimum=1)
    if len(images) == 0:
        raise ValueError("`images` is empty; pass at least one image, e.g. x_train[:16].")
    if labels is not None:
        labels = require_labels(labels, len(images),
                                fix="e.g. y_train[:16] with x_train[:16], or labels=None")
    bounds = detect_value_range(images, value_range)
    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    fig = Figure(figsize=(ncols * _PANEL_INCHES, nrows * _PANEL_INCHES + 0.4 * bool(title)))
    for index, image in enumerate(images):
        ax = fig.add_subplot(nrows, ncols, index + 1)
        text = None if labels is None else _label_text(labels[index], class_names)
        _draw(ax, image, bounds, text)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_montage(images, labels, *, class_names=None, per_class=8, seed=0):
    """Returns a figure with one row per class showing `per_class` random examples of it.

    A quick look at every class catches wrong labels, odd classes and corrupt images.
    Explained in notebooks/01_data_preprocessing.ipynb, section "Clean the data".

    Args:
        images: (N, H, W, C) or (N, H, W) array, uint8 or float.
        labels: (N,) integer labels.
        class_names: optional sequence of names indexed by label (used as row labels).
        per_class: examples per row; a class with fewer images leaves blank panels.
        seed: seed of the random choice of examples.

    Returns:
        A `matplotlib.figure.Figure` with `n_classes * per_class` axes; the first axis of
        each row carries the class name as its y-label.

    Raises:
        ValueError: if labels do not match images or `per_class` < 1.

    Example:
        >>> fig = class_montage(x_train, y_train, class_names=data.class_names, per_class=10)
    """
    images = _as_images(images, "images")
    labels = require_array(labels, "labels", ndim=1, dtype_kinds="ui")
    per_class = require_int(per_class, "per_class", minimum=1)
    if len(labels) != len(images) or len(images) == 0:
        raise ValueError(
            f"`images` ({len(images)}) and `labels` ({len(labels)}) must be non-empty and of "
            "the same length; pass the matching arrays, e.g. x_train and y_train."
        )
    bounds = detect_value_range(images)
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(per_class * _PANEL_INCHES, len(classes) * _PANEL_INCHES))
    for row, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        chosen = np.sort(rng.choice(members, min(per_class, len(members)), replace=False))
        for column in range(per_class):
            ax = fig.add_subplot(len(classes), per_class, row * per_class + column + 1)
            if column < len(chosen):
                _draw(ax, images[chosen[column]], bounds)
            else:
                ax.axis("off")  # The class has fewer than `per_class` images.
            if column == 0:
                ax.set_ylabel(_label_text(label, class_names), rotation=0, ha="right", fontsize=9)
    fig.tight_layout()
    return fig


def image_pairs(before, after, *, captions=None, row_titles=("before", "after"),
                value_range="auto"):
    """Returns a figure with `before[i]` above `after[i]` in column i.

    For augmentations (an image and its augmented copy) and for duplicate pairs found by
    `dgm_course.cleaning.find_duplicates` (pass `images[pairs[:, 0]]`, `images[pairs[:, 1]]`).
    Explained in notebooks/01_data_preprocessing.ipynb, sections "Clean the data" and "Augment".

    Args:
        before: (N, H, W, C) or (N, H, W) images for the top row.
        after: images of the same shape for the bottom row; their value range is detected
            separately, so uint8 originals can sit above float augmentations.
        captions: optional N strings or numbers (numbers are shown with 3 decimals, e.g.
            the distances of duplicate pairs), shown above each column.
        row_titles: two strings shown as y-labels of the two rows.
        value_range: "auto" or `(low, high)`, applied to both rows.

    Returns:
        A `matplotlib.figure.Figure` with 2 * N axes (top row first).

    Raises:
        ValueError: if the two batches differ in length or shape, or captions do not match.

    Example:
        >>> augmented = augment(x[:8], training=True)
        >>> fig = image_pairs(x[:8], augmented, row_titles=("original", "augmented"))
    """
    before, after = _as_images(before, "before"), _as_images(after, "after")
    if before.shape != after.shape or len(before) == 0:
        raise ValueError(
            f"`before` and `after` must be non-empty and of the same shape; got "
            f"{describe(before)} and {describe(after)}. Pass matching batches, one pair per column."
        )
    if captions is not None and len(captions) != len(before):
        raise ValueError(
            f"`captions` has {len(captions)} entries for {len(before)} pairs; pass one per pair."
        )
    bounds = [detect_value_range(batch, value_range) for batch in (before, after)]
    count = len(before)
    fig = Figure(figsize=(count * _PANEL_INCHES + 0.6, 2 * _PANEL_INCHES + 0.3))
    for row, batch in enumerate((before, after)):
        for column in range(count):
            ax = fig.add_subplot(2, count, row * count + column + 1)
            caption = captions[column] if captions is not None and row == 0 else None
            _draw(ax, batch[column], bounds[row], caption)
            if column == 0:
                ax.set_ylabel(row_titles[row], fontsize=9)
    fig.tight_layout()
    return fig


def loss_curves(history, *, keys=None, title=None, xlabel="epoch"):
    """Returns a figure plotting training curves per epoch, validation curves dashed.

    First used in solutions/01_data_preprocessing.ipynb, exercise 5 (a classifier fed by
    the learner's `tf.data` pipeline).

    Args:
        history: the `keras.callbacks.History` returned by `fit()`, or a dict mapping
            a name (e.g. "d_loss") to a list of per-epoch values.
        keys: optional names to plot; default: every name in the history.
        title: optional axes title.
        xlabel: what one point is, e.g. "block of 10 steps" when each value covers 10 steps.

    Returns:
        A `matplotlib.figure.Figure` with one axes, x-label `xlabel`, one line per key.

    Raises:
        TypeError: if `history` is neither a History nor a dict.
        ValueError: if a key is missing or a curve is empty.

    Example:
        >>> fig = loss_curves(model.fit(dataset, epochs=5), keys=["loss", "val_loss"])
    """
    curves = getattr(history, "history", history)
    if not isinstance(curves, dict):
        raise TypeError(
            f"`history` must be a keras History (what fit() returns) or a dict of name -> "
            f"list of values; got {describe(history)}."
        )
    keys = list(curves) if keys is None else [keys] if isinstance(keys, str) else list(keys)
    missing = [key for key in keys if key not in curves]
    if missing or not keys:
        raise ValueError(
            f"`keys` {missing or keys} not found in the history; available: {sorted(curves)}. "
            "Pass some of those names, or keys=None for all."
        )
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    for key in keys:
        values = np.asarray(curves[key], dtype=float).ravel()
        if values.size == 0:
            raise ValueError(f"The curve {key!r} is empty; train for at least one epoch first.")
        style = "--" if key.startswith("val_") else "-"
        ax.plot(np.arange(1, values.size + 1), values, style, marker=".", label=key)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # Epochs (or blocks) are counted.
    ax.set_ylabel("value")
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
