"""Interactive explorers: move a slider, see what the decoder or generator makes of it.

Three explorers, each returned as an `ipywidgets.VBox` to end a notebook cell with:
`latent_explorer` (sliders over the latent space, decoded live), `interpolation_explorer`
(a slider walking between the codes of two real images) and `class_explorer` (a class
dropdown and a seed slider in front of a conditional generator). Each widget carries an
`.explorer` whose `controls` can be set from code and whose `render()` returns the pixels
shown, so the explorers are tested without a browser (`tests/test_widgets.py`); a browser
test (`tests/test_widgets_browser.py`) moves a slider in JupyterLab in headless Chromium.

Images are shown as PNG in an `ipywidgets.Image`, enlarged by repeating pixels (nearest
neighbour) so that a 28x28 digit stays sharp. On Colab, ipywidgets 8 widgets need Colab's
custom widget manager: every explorer calls `google.colab.output.enable_custom_widget_manager()`
there (a no-op elsewhere). Widgets do not render on GitHub: a notebook that wants a picture
there also shows `explorer.render()` with `plotting.image_grid`.
Explained in notebooks/07_conv_vae.ipynb, section "Explore the latent space".
"""

import io

import ipywidgets
import numpy as np
from PIL import Image

from dgm_course import environment
from dgm_course._validation import describe, require_array, require_int
from dgm_course.plotting import _as_images, detect_value_range

MAX_AXIS_SLIDERS = 8  # More sliders than this need a basis of chosen directions.
DISPLAY_PIXELS = 128  # Images are enlarged by an integer factor to about this height.
GAP_PIXELS = 2  # White columns between images shown side by side.


class Explorer:
    """The state behind an explorer widget: its controls, and the image they choose.

    Setting `controls[name].value` redraws the image (through `observe`); `render()`
    returns the current picture as a uint8 (H, W, C) array at the model's resolution,
    the pixels that the displayed PNG shows enlarged `scale` times.
    """

    def __init__(self, controls, draw, image):
        self.controls = dict(controls)
        self.image = image
        self._draw = draw
        self.scale = 1
        for control in self.controls.values():
            control.observe(self._refresh, names="value")
        self._refresh()

    def render(self):
        """Returns the current image(s) as a uint8 (H, W, C) array."""
        return self._draw()

    def _refresh(self, change=None):
        pixels = self.render()
        self.scale = max(1, DISPLAY_PIXELS // pixels.shape[0])
        self.image.value = to_png(pixels, self.scale)


def to_png(pixels, scale=1):
    """Returns PNG bytes of a uint8 (H, W, C) image enlarged `scale` times by repeating pixels."""
    large = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(large[..., 0] if large.shape[-1] == 1 else large).save(buffer, format="PNG")
    return buffer.getvalue()


def principal_directions(z, k):
    """Returns the `k` principal directions of codes `z`, scaled to one standard deviation.

    Row i is the i-th right singular vector of the centred codes times the standard
    deviation of the codes along it, so `coefficients @ basis` with a coefficient of 1 moves
    one standard deviation along direction i. Signs are fixed (the largest entry of each row
    is positive) so that a re-run gives the same basis. The mean is not added back: a VAE's
    encoded means are centred near 0 by the KL term.
    Explained in notebooks/07_conv_vae.ipynb, section "Explore the latent space".

    Args:
        z: (N, latent_dim) codes, e.g. the encoder's means of training images.
        k: number of directions, 1 <= k <= min(N - 1, latent_dim).

    Returns:
        A float32 (k, latent_dim) array, the `basis` argument of `latent_explorer`.

    Raises:
        ValueError: if `z` is not 2-D or `k` is out of range.

    Example:
        >>> basis = principal_directions(z_mean_train, 4)
    """
    z = require_array(z, "z", ndim=2, dtype_kinds="uif",
                      fix="Pass codes (N, latent_dim), e.g. the encoder's z_mean.")
    k = require_int(k, "k", minimum=1, maximum=min(len(z) - 1, z.shape[1]))
    centred = z.astype(np.float64) - z.mean(axis=0)
    _, singular_values, directions = np.linalg.svd(centred, full_matrices=False)
    # std_i = s_i / sqrt(N - 1)  # the spread of the codes along direction i
    stds = singular_values[:k] / np.sqrt(len(z) - 1)
    directions = directions[:k]
    largest = np.abs(directions).argmax(axis=1)
    signs = np.sign(directions[np.arange(k), largest])
    return (directions * (signs * stds)[:, None]).astype(np.float32)


def latent_explorer(decode, *, latent_dim, basis=None, limit=3.0, n_sliders=None,
                    value_range="auto"):
    """Returns sliders over a latent space and the image `decode` makes of their position.

    Without `basis`, slider i sets z[i] (the others stay 0). With a `basis` of k directions
    (e.g. `principal_directions`), the sliders set k coefficients and z = coefficients @ basis.
    Explained in notebooks/07_conv_vae.ipynb, section "Explore the latent space".

    Args:
        decode: callable, z (n, latent_dim) float32 -> images (n, H, W, C) or (n, H, W).
        latent_dim: size of the latent space.
        basis: optional (k, latent_dim) array of directions.
        limit: sliders span [-limit, limit] (units of the prior's standard deviation).
        n_sliders: use only the first `n_sliders` axes or directions (default: all).
        value_range: "auto" (detected on the first image, see
            `plotting.detect_value_range`) or `(low, high)`; later images are clipped to it.

    Returns:
        An `ipywidgets.VBox` with an `.explorer` (controls "z0", "z1", ...).

    Raises:
        ValueError: on a basis of the wrong shape, too many sliders without a basis,
            or `decode` returning something that is not a batch of images.

    Example:
        >>> latent_explorer(vae.decode, latent_dim=2)
    """
    latent_dim = require_int(latent_dim, "latent_dim", minimum=1)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0:
        raise ValueError(f"`limit` must be a positive number, e.g. 3.0; got {describe(limit)}.")
    if basis is None:
        basis = np.eye(latent_dim, dtype=np.float32)
        if (n_sliders or latent_dim) > MAX_AXIS_SLIDERS:
            raise ValueError(
                f"latent_dim={latent_dim} would need {n_sliders or latent_dim} sliders (at most "
                f"{MAX_AXIS_SLIDERS} without a basis). Pass basis=principal_directions(z_mean, 4) "
                f"to slide along chosen directions, or n_sliders<={MAX_AXIS_SLIDERS}."
            )
    basis = require_array(basis, "basis", ndim=2, dtype_kinds="uif",
                          fix="Pass directions (k, latent_dim), e.g. principal_directions(z, 4).")
    if basis.shape[1] != latent_dim:
        raise ValueError(
            f"`basis` must have latent_dim={latent_dim} columns (one direction per row); got "
            f"{describe(basis)}. Compute it from codes of the same model."
        )
    n_sliders = require_int(len(basis) if n_sliders is None else n_sliders, "n_sliders",
                            minimum=1, maximum=len(basis))
    basis = basis[:n_sliders].astype(np.float32)
    names = [f"z{i}" for i in range(n_sliders)]
    controls = {name: ipywidgets.FloatSlider(value=0.0, min=-limit, max=limit, step=limit / 30,
                                             description=name, continuous_update=True)
                for name in names}
    pixels = _Pixels(decode, value_range)

    def draw():
        coefficients = np.array([[controls[name].value for name in names]], np.float32)
        z = coefficients @ basis  # (1, latent_dim)
        return pixels(z, n=1, call=f"decode(z) for z of shape {z.shape}")[0]

    image = ipywidgets.Image(format="png")
    explorer = Explorer(controls, draw, image)
    return _box([ipywidgets.HBox([image, ipywidgets.VBox(list(controls.values()))])], explorer)


def interpolation_explorer(encode, decode, image_a, image_b, *, value_range="auto"):
    """Returns a slider t in [0, 1] showing decode((1 - t) * z_a + t * z_b) between two images.

    Explained in notebooks/07_conv_vae.ipynb, section "Interpolate between two images".

    Args:
        encode: callable, images (n, H, W, C) -> latent means (n, latent_dim).
        decode: callable, z (n, latent_dim) float32 -> images (n, H, W, C) or (n, H, W).
        image_a: the image at t=0, (H, W) or (H, W, C), preprocessed as `encode` expects.
        image_b: the image at t=1, same shape as `image_a`.
        value_range: "auto" or `(low, high)`, used for the real and the decoded images.

    Returns:
        An `ipywidgets.VBox` with an `.explorer` (control "t"); `render()` returns the
        decoded image.

    Raises:
        ValueError: if the images differ in shape, or `encode`/`decode` return bad shapes.
        TypeError: if `encode` returns a tuple, e.g. (z_mean, z_log_var).

    Example:
        >>> interpolation_explorer(lambda x: vae.encoder(x)[0], vae.decode, x[0], x[1])
    """
    image_a, image_b = np.asarray(image_a), np.asarray(image_b)
    if image_a.shape != image_b.shape:
        raise ValueError(
            f"`image_a` and `image_b` must have the same shape; got {describe(image_a)} and "
            f"{describe(image_b)}. Pass two images of one data set, e.g. x[0] and x[1]."
        )
    pair = _as_images(np.stack([image_a, image_b]), "image_a and image_b")
    codes = _codes(encode, pair)
    control = ipywidgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.02, description="t")
    pixels = _Pixels(decode, value_range)

    def draw():
        t = np.float32(control.value)
        z = (1 - t) * codes[:1] + t * codes[1:]  # z_t = (1 - t) z_a + t z_b  # (1, latent_dim)
        return pixels(z, n=1, call=f"decode(z) for z of shape {z.shape}")[0]

    image = ipywidgets.Image(format="png")
    explorer = Explorer({"t": control}, draw, image)
    real = _to_uint8(pair, detect_value_range(pair, value_range))
    ends = [ipywidgets.Image(value=to_png(pixels, explorer.scale), format="png") for pixels in real]
    captions = ["image A (t=0)", "decoded at t", "image B (t=1)"]
    panels = [ipywidgets.VBox([ipywidgets.Label(text), picture])
              for text, picture in zip(captions, [ends[0], image, ends[1]])]
    return _box([ipywidgets.HBox(panels), control], explorer)


def class_explorer(generate, class_names, *, n=8, value_range="auto"):
    """Returns a class dropdown and a seed slider showing `n` generated images of that class.

    Explained in notebooks/08_conditional.ipynb, section "Generate a chosen class".

    Args:
        generate: callable (label: int, n: int, seed: int) -> images (n, H, W, C), e.g.
            `lambda label, n, seed: model.generate_class(label, n, seed=seed)`.
        class_names: the names of the classes; label i is `class_names[i]`.
        n: images per class shown side by side.
        value_range: "auto" (detected on the first images) or `(low, high)`.

    Returns:
        An `ipywidgets.VBox` with an `.explorer` (controls "class", whose value is a class
        name, and "seed", 0..99); `render()` returns the row of images.

    Raises:
        ValueError: on empty or repeated class names, or `generate` returning bad shapes.
            Setting "class" to a name not in `class_names` raises a `traitlets.TraitError`.

    Example:
        >>> class_explorer(lambda label, n, seed: cvae.generate_class(label, n, seed=seed),
        ...                data.class_names)
    """
    names = [str(name) for name in class_names]
    if not names or len(set(names)) != len(names):
        raise ValueError(
            f"`class_names` must be distinct names, one per class; got {describe(class_names)}. "
            "Pass e.g. data.class_names."
        )
    n = require_int(n, "n", minimum=1, maximum=32)
    dropdown = ipywidgets.Dropdown(options=names, value=names[0], description="class")
    seed = ipywidgets.IntSlider(value=0, min=0, max=99, description="seed")
    pixels = _Pixels(generate, value_range)

    def draw():
        label = names.index(dropdown.value)
        return _side_by_side(pixels(label, n, seed.value, n=n, call="generate(label, n, seed)"))

    image = ipywidgets.Image(format="png")
    explorer = Explorer({"class": dropdown, "seed": seed}, draw, image)
    return _box([ipywidgets.HBox([dropdown, seed]), image], explorer)


class _Pixels:
    """Calls `function` (decode or generate), checks that it returned `n` images, and maps
    them to uint8; the value range is fixed on the first call, later images are clipped."""

    def __init__(self, function, value_range):
        self.function, self.value_range, self.bounds = function, value_range, None

    def __call__(self, *args, n, call):
        images = _check_images(self.function(*args), n, call)
        if self.bounds is None:
            self.bounds = detect_value_range(images, self.value_range)
        return _to_uint8(images, self.bounds)


def _codes(encode, images):
    """Returns encode(images) as a float32 (n, latent_dim) array, or raises a clear error."""
    codes = encode(images)
    if isinstance(codes, (tuple, list)):
        raise TypeError(
            f"`encode` must return the latent means (n, latent_dim); it returned a "
            f"{type(codes).__name__} of {len(codes)} items. For an encoder returning "
            "(z_mean, z_log_var), pass encode=lambda x: encoder(x)[0]."
        )
    codes = require_array(codes, "encode(images)", ndim=2, dtype_kinds="f",
                          fix="`encode` must return latent means (n, latent_dim).")
    return codes.astype(np.float32)


def _check_images(images, n, call):
    """Returns the output of `call` as (n, H, W, C), or raises naming the call."""
    images = _as_images(np.asarray(images), call)
    if len(images) != n:
        raise ValueError(f"`{call}` must return {n} images; got {describe(images)}.")
    return images


def _to_uint8(images, bounds):
    """Maps images from `bounds` = (low, high) to 0..255, clipped and rounded."""
    low, high = bounds
    unit = np.clip((images.astype(np.float32) - low) / (high - low), 0.0, 1.0)
    return np.rint(unit * 255).astype(np.uint8)


def _side_by_side(images):
    """Returns (n, H, W, C) uint8 images as one (H, n*W + gaps, C) row, white between them."""
    gap = np.full((images.shape[1], GAP_PIXELS, images.shape[3]), 255, np.uint8)
    pieces = [piece for image in images for piece in (image, gap)][:-1]
    return np.concatenate(pieces, axis=1)


def _box(children, explorer):
    """Returns a VBox of `children` carrying `explorer`, enabling Colab's widget manager."""
    if environment.on_colab():
        try:  # ipywidgets 8 on Colab renders only through the custom widget manager.
            from google.colab import output

            output.enable_custom_widget_manager()
        except (ImportError, AttributeError):
            pass
    box = ipywidgets.VBox(children)
    box.explorer = explorer
    return box
