"""Tests for dgm_course.plotting: figures of images and curves, value-range detection."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from dgm_course.plotting import (
    class_montage,
    detect_value_range,
    image_grid,
    image_pairs,
    loss_curves,
)

RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (10, 8, 8, 1)).astype(np.uint8)
LABELS = np.arange(10) % 3
NAMES = ("zero", "one", "two")


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_detect_value_range_rules():
    assert detect_value_range(GRAY) == (0.0, 255.0)
    assert detect_value_range(GRAY.astype(np.int64)) == (0.0, 255.0)
    assert detect_value_range(GRAY / 255.0) == (0.0, 1.0)
    assert detect_value_range(GRAY / 127.5 - 1) == (-1.0, 1.0)
    assert detect_value_range(GRAY.astype(np.float32), (0, 255)) == (0.0, 255.0)


def test_detect_value_range_ambiguous_explains():
    with pytest.raises(ValueError, match=r"values from 0 to 255\).*Pass value_range=\(low, high\)"):
        detect_value_range(GRAY.astype(np.float32))
    with pytest.raises(ValueError, match="values from -2 to 1"):
        detect_value_range(np.array([-2.0, 1.0]))
    with pytest.raises(ValueError, match="NaN or infinity.*find_corrupt"):
        detect_value_range(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match=r"pair \(low, high\) with low < high; got tuple \(1, 0\)"):
        detect_value_range(GRAY, (1, 0))


def test_image_grid_axes_and_titles():
    fig = image_grid(GRAY, LABELS, class_names=NAMES, ncols=4, title="Samples")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 10
    assert _titles(fig)[:4] == ["zero", "one", "two", "zero"]
    assert fig._suptitle.get_text() == "Samples"
    assert _titles(image_grid(GRAY[:3], LABELS[:3])) == ["0", "1", "2"]
    assert len(image_grid(GRAY[:3, ..., 0] / 255.0).axes) == 3  # (N, H, W) floats in 0..1.
    rgb = RNG.uniform(-1, 1, (5, 8, 8, 3)).astype(np.float32)
    assert len(image_grid(rgb).axes) == 5


def test_image_grid_bad_inputs_explain():
    with pytest.raises(ValueError, match="`labels` has 3 entries but `images` has 10"):
        image_grid(GRAY, LABELS[:3])
    with pytest.raises(ValueError, match="`images` is empty"):
        image_grid(GRAY[:0])
    with pytest.raises(ValueError, match=r"1 \(grayscale\) or 3 \(RGB\) channels"):
        image_grid(np.zeros((2, 8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="Label 2 has no entry in `class_names`"):
        image_grid(GRAY[:3], LABELS[:3], class_names=("a", "b"))
    with pytest.raises(ValueError, match="Cannot detect the value range"):
        image_grid(GRAY.astype(np.float32))


def test_class_montage_rows_per_class():
    fig = class_montage(GRAY, LABELS, class_names=NAMES, per_class=5, seed=0)
    assert len(fig.axes) == 3 * 5
    assert [fig.axes[row * 5].get_ylabel() for row in range(3)] == list(NAMES)
    drawn = [bool(ax.images) for ax in fig.axes]
    assert drawn == [True] * 4 + [False] + [True] * 3 + [False] * 2 + [True] * 3 + [False] * 2
    with pytest.raises(ValueError, match=r"`images` \(10\) and `labels` \(3\)"):
        class_montage(GRAY, LABELS[:3])


def test_image_pairs_layout():
    after = (GRAY[:4] / 127.5 - 1).astype(np.float32)  # Each row's range is detected separately.
    fig = image_pairs(GRAY[:4], after, captions=["a", "b", "c", "d"], row_titles=("original", "augmented"))
    assert len(fig.axes) == 8
    assert _titles(fig) == ["a", "b", "c", "d", "", "", "", ""]
    assert fig.axes[0].get_ylabel() == "original" and fig.axes[4].get_ylabel() == "augmented"
    distances = np.array([0.0123, 0.05, 0.1, 0.2], np.float32)
    assert _titles(image_pairs(GRAY[:4], GRAY[:4], captions=distances))[:4] == ["0.012", "0.050", "0.100", "0.200"]
    with pytest.raises(ValueError, match="same shape"):
        image_pairs(GRAY[:4], GRAY[:3])
    with pytest.raises(ValueError, match="`captions` has 1 entries for 4 pairs"):
        image_pairs(GRAY[:4], GRAY[:4], captions=["x"])


class _History:
    """Stands in for keras.callbacks.History: only the `history` dict is used."""

    history = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6]}


def test_loss_curves_lines_and_labels():
    fig = loss_curves(_History(), title="Training")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["loss", "val_loss"]
    assert ax.get_lines()[1].get_linestyle() == "--"
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2, 3])
    assert ax.get_xlabel() == "epoch" and ax.get_title() == "Training"
    fig = loss_curves({"d_loss": [0.7, 0.6], "g_loss": [0.8, 0.9]}, keys="g_loss")
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["g_loss"]
    assert loss_curves({"d_loss": [0.7]}, xlabel="block of 10 steps").axes[0].get_xlabel() == (
        "block of 10 steps")


def test_loss_curves_bad_inputs_explain():
    with pytest.raises(TypeError, match="keras History .* got list"):
        loss_curves([1, 2, 3])
    with pytest.raises(ValueError, match=r"not found in the history; available: \['loss', 'val_loss'\]"):
        loss_curves(_History(), keys=["acc"])
    with pytest.raises(ValueError, match="'loss' is empty"):
        loss_curves({"loss": []})


def test_returned_figures_display_as_png_in_ipython():
    import importlib

    from IPython.core.interactiveshell import InteractiveShell

    from dgm_course import plotting

    shell = InteractiveShell.instance()
    try:
        importlib.reload(plotting)  # Registers the formatter for this shell.
        figure = plotting.image_grid(np.zeros((4, 8, 8, 1), np.uint8))
        data, _ = shell.display_formatter.format(figure)
        assert data["image/png"].startswith("iVBOR")  # Base64 of the PNG signature.
    finally:
        InteractiveShell.clear_instance()
