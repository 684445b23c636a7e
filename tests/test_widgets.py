"""Tests of dgm_course.widgets without a browser: set a control's value, check the pixels.

The decoders here are linear, so the image each slider position should give is computed
exactly by an independent NumPy transcription.
"""

import io

import ipywidgets
import numpy as np
import pytest
import traitlets
from PIL import Image

from dgm_course import widgets

LATENT_DIM = 3
HEIGHT, WIDTH = 4, 5
LIMIT = 3.0
WEIGHTS = np.random.default_rng(0).uniform(-1, 1, (LATENT_DIM, HEIGHT * WIDTH))


def linear_decode(z):
    """images = 0.5 + z @ W / (2 * limit * latent_dim), inside [0, 1] for |z| <= limit."""
    pixels = 0.5 + np.asarray(z, np.float64) @ WEIGHTS / (2 * LIMIT * LATENT_DIM)
    return pixels.reshape(len(z), HEIGHT, WIDTH, 1).astype(np.float32)


def expected_uint8(z):
    """The pixels the explorer should show for code z (value range (0, 1))."""
    return np.rint(linear_decode(np.atleast_2d(z))[0] * 255).astype(np.uint8)


def png_pixels(image_widget):
    """Decodes an ipywidgets.Image's PNG bytes to an (H, W, C) uint8 array."""
    pixels = np.asarray(Image.open(io.BytesIO(image_widget.value)))
    return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels


def assert_png_shows(explorer):
    """The displayed PNG is render() enlarged `scale` times by repeating pixels."""
    large = np.repeat(np.repeat(explorer.render(), explorer.scale, 0), explorer.scale, 1)
    np.testing.assert_array_equal(png_pixels(explorer.image), large)


def test_latent_explorer_sliders_move_the_decoded_image():
    box = widgets.latent_explorer(linear_decode, latent_dim=LATENT_DIM, limit=LIMIT)
    explorer = box.explorer
    assert isinstance(box, ipywidgets.VBox)
    assert sorted(explorer.controls) == ["z0", "z1", "z2"]
    np.testing.assert_array_equal(explorer.render(), expected_uint8(np.zeros(LATENT_DIM)))
    before = explorer.image.value
    explorer.controls["z1"].value = 2.0
    assert explorer.image.value != before
    np.testing.assert_array_equal(explorer.render(), expected_uint8([0.0, 2.0, 0.0]))
    assert_png_shows(explorer)
    assert explorer.scale == widgets.DISPLAY_PIXELS // HEIGHT


def test_latent_explorer_with_a_basis_decodes_coefficients_times_basis():
    basis = np.array([[1.0, 1.0, 0.0], [0.0, 0.5, -1.0]])
    explorer = widgets.latent_explorer(linear_decode, latent_dim=3, basis=basis,
                                       limit=LIMIT).explorer
    explorer.controls["z0"].value = 1.0
    explorer.controls["z1"].value = -2.0
    np.testing.assert_array_equal(explorer.render(),
                                  expected_uint8(np.array([1.0, -2.0]) @ basis))
    assert_png_shows(explorer)


def test_latent_explorer_n_sliders_keeps_the_first_directions():
    explorer = widgets.latent_explorer(linear_decode, latent_dim=3, n_sliders=2).explorer
    assert sorted(explorer.controls) == ["z0", "z1"]
    assert explorer.controls["z0"].min == -3.0 and explorer.controls["z0"].max == 3.0


def test_value_range_is_fixed_on_the_first_image_and_later_images_are_clipped():
    def tanh_decode(z):  # In [-1, 1] at z = 0, then far outside it.
        return np.tile(np.float32([-1.0, 1.0]), (len(z), 2, 1)) * (1 + z[:, :1, None])

    explorer = widgets.latent_explorer(tanh_decode, latent_dim=1).explorer
    np.testing.assert_array_equal(explorer.render()[..., 0], [[0, 255], [0, 255]])
    explorer.controls["z0"].value = -0.5  # Pixels -0.5 and 0.5 in range (-1, 1).
    np.testing.assert_array_equal(explorer.render()[..., 0], [[64, 191], [64, 191]])
    explorer.controls["z0"].value = 2.0  # Pixels -3 and 3: clipped.
    np.testing.assert_array_equal(explorer.render()[..., 0], [[0, 255], [0, 255]])


def test_interpolation_explorer_decodes_the_line_between_the_codes():
    rng = np.random.default_rng(1)
    image_a, image_b = rng.uniform(0, 1, (2, HEIGHT, WIDTH, 1)).astype(np.float32)
    projection = rng.normal(size=(HEIGHT * WIDTH, LATENT_DIM)) * 0.1

    def encode(images):
        return np.asarray(images).reshape(len(images), -1) @ projection

    explorer = widgets.interpolation_explorer(encode, linear_decode, image_a, image_b).explorer
    z_a, z_b = encode(np.stack([image_a, image_b]))
    for t in (0.0, 0.3, 1.0):
        explorer.controls["t"].value = t
        np.testing.assert_array_equal(explorer.render(), expected_uint8((1 - t) * z_a + t * z_b))
        assert_png_shows(explorer)


def test_interpolation_explorer_shows_the_two_real_images():
    image_a = np.zeros((HEIGHT, WIDTH), np.uint8)
    image_b = np.full((HEIGHT, WIDTH), 255, np.uint8)
    box = widgets.interpolation_explorer(lambda x: np.zeros((len(x), LATENT_DIM)),
                                         linear_decode, image_a, image_b)
    pictures = [child for child in box.children[0].children]
    first, last = (png_pixels(panel.children[1]) for panel in (pictures[0], pictures[2]))
    assert first.max() == 0 and last.min() == 255
    assert first.shape[0] == HEIGHT * box.explorer.scale


def test_class_explorer_follows_class_and_seed():
    calls = []

    def generate(label, n, seed):  # Image value = label/10 + seed/1000, exactly predictable.
        calls.append((label, n, seed))
        return np.full((n, HEIGHT, WIDTH, 1), label / 10 + seed / 1000, np.float32)

    names = ["zero", "one", "two"]
    explorer = widgets.class_explorer(generate, names, n=3).explorer
    before = explorer.image.value
    explorer.controls["class"].value = "two"
    assert explorer.image.value != before
    explorer.controls["seed"].value = 7
    assert calls[-1] == (2, 3, 7)
    row = explorer.render()
    gap = widgets.GAP_PIXELS
    assert row.shape == (HEIGHT, 3 * WIDTH + 2 * gap, 1)
    assert np.all(row[:, :WIDTH] == round(0.207 * 255))
    assert np.all(row[:, WIDTH:WIDTH + gap] == 255)
    assert_png_shows(explorer)


def test_class_explorer_rejects_an_unknown_class():
    explorer = widgets.class_explorer(
        lambda label, n, seed: np.zeros((n, 2, 2)), ["a", "b"], n=2).explorer
    with pytest.raises(traitlets.TraitError, match="Invalid selection"):
        explorer.controls["class"].value = "c"


def test_explorers_draw_rgb_images():
    explorer = widgets.class_explorer(
        lambda label, n, seed: np.random.default_rng(seed).uniform(0, 1, (n, 3, 3, 3)),
        ["a"], n=2).explorer
    assert explorer.render().shape == (3, 6 + widgets.GAP_PIXELS, 3)
    assert_png_shows(explorer)


def test_principal_directions_match_numpy_svd():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(500, 4)) @ np.diag([3.0, 2.0, 1.0, 0.5]) @ np.linalg.qr(
        rng.normal(size=(4, 4)))[0] + 1.0
    basis = widgets.principal_directions(z, 2)
    assert basis.shape == (2, 4) and basis.dtype == np.float32
    centred = z - z.mean(axis=0)
    _, singular_values, directions = np.linalg.svd(centred)
    for row, direction, s in zip(basis, directions, singular_values):
        scale = s / np.sqrt(len(z) - 1)
        assert np.allclose(np.abs(row @ direction), scale, rtol=1e-5)  # Same line, one std.
        assert row[np.abs(row).argmax()] > 0  # Sign convention.
    # One slider unit is one standard deviation: projections on unit directions / std.
    units = basis / np.linalg.norm(basis, axis=1, keepdims=True)
    coefficients = centred @ units.T / np.linalg.norm(basis, axis=1)
    np.testing.assert_allclose(coefficients.std(axis=0, ddof=1), 1.0, rtol=1e-5)


def test_principal_directions_rejects_bad_k():
    with pytest.raises(ValueError, match="`k` must be at most 3"):
        widgets.principal_directions(np.zeros((10, 3)), 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"latent_dim": 16}, r"latent_dim=16 would need 16 sliders.*principal_directions"),
        ({"latent_dim": 3, "basis": np.eye(2)}, r"`basis` must have latent_dim=3 columns"),
        ({"latent_dim": 3, "basis": np.ones(3)}, r"`basis` must have 2 dimensions"),
        ({"latent_dim": 3, "n_sliders": 4}, r"`n_sliders` must be at most 3"),
        ({"latent_dim": 3, "limit": 0}, r"`limit` must be a positive number"),
    ],
)
def test_latent_explorer_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        widgets.latent_explorer(linear_decode, **kwargs)


def test_latent_explorer_with_many_dimensions_accepts_a_basis():
    explorer = widgets.latent_explorer(lambda z: np.zeros((len(z), 2, 2)), latent_dim=16,
                                       basis=np.eye(16)[:4]).explorer
    assert len(explorer.controls) == 4


@pytest.mark.parametrize(
    "decode, match",
    [
        (lambda z: np.zeros((len(z), 4)), r"decode\(z\) for z of shape \(1, 3\).*dimensions"),
        (lambda z: np.zeros((len(z) + 1, 4, 4)), r"must return 1 images"),
        (lambda z: np.zeros((len(z), 4, 4, 2)), r"1 \(grayscale\) or 3 \(RGB\) channels"),
        (lambda z: np.full((len(z), 4, 4), 7.0), r"Cannot detect the value range"),
    ],
)
def test_a_bad_decode_is_reported_when_the_explorer_is_built(decode, match):
    with pytest.raises(ValueError, match=match):
        widgets.latent_explorer(decode, latent_dim=3)


def test_interpolation_explorer_rejects_bad_encoders_and_images():
    image = np.zeros((4, 4))
    with pytest.raises(TypeError, match=r"encode=lambda x: encoder\(x\)\[0\]"):
        widgets.interpolation_explorer(lambda x: (x, x), linear_decode, image, image)
    with pytest.raises(ValueError, match="must have the same shape"):
        widgets.interpolation_explorer(lambda x: x, linear_decode, image, np.zeros((5, 4)))


def test_class_explorer_rejects_repeated_names_and_bad_generators():
    with pytest.raises(ValueError, match="distinct names"):
        widgets.class_explorer(lambda label, n, seed: None, ["a", "a"])
    with pytest.raises(ValueError, match=r"must return 8 images"):
        widgets.class_explorer(lambda label, n, seed: np.zeros((1, 2, 2)), ["a"])
