"""The forward (noising) process of a denoising diffusion model and its noise-prediction loss
(Ho et al. 2020, "DDPM"): enough to see where diffusion models fit next to GANs and VAEs,
not a diffusion model to train. Time steps are numbered t = 1..T as in the paper.
Explained in notebooks/12_outlook.ipynb, section "Where diffusion models fit".
"""

import keras
import numpy as np
from keras import ops

from dgm_course._validation import describe, require_array, require_int


def linear_beta_schedule(steps=1000, *, beta_start=1e-4, beta_end=0.02):
    """Returns the noise variances beta_1..beta_T of the forward process, evenly spaced.

    Ho et al. (2020) use T = 1000 steps from 1e-4 to 0.02: each step adds a little noise, and
    after T steps almost nothing of the image is left (alpha_bar_T is about 4e-5).
    Explained in notebooks/12_outlook.ipynb, section "Where diffusion models fit".

    Args:
        steps: T, the number of noising steps.
        beta_start: beta_1, in (0, 1).
        beta_end: beta_T, in [beta_start, 1).

    Returns:
        A float64 NumPy array (T,): beta_t is entry t - 1.

    Raises:
        ValueError: if T < 1 or the betas are not 0 < beta_start <= beta_end < 1.

    Example:
        >>> betas = linear_beta_schedule(1000)
        >>> float(betas[0]), float(betas[-1])
        (0.0001, 0.02)
    """
    steps = require_int(steps, "steps", minimum=1)
    if not 0.0 < float(beta_start) <= float(beta_end) < 1.0:
        raise ValueError(f"The betas must satisfy 0 < beta_start <= beta_end < 1; got "
                         f"beta_start={beta_start!r}, beta_end={beta_end!r}. Ho et al. use "
                         "1e-4 and 0.02.")
    return np.linspace(float(beta_start), float(beta_end), steps, dtype=np.float64)


def cumulative_alphas(betas):
    """Returns alpha_bar_t = prod_{s <= t} (1 - beta_s), the signal kept after t steps.

    Explained in notebooks/12_outlook.ipynb, section "Where diffusion models fit".

    Args:
        betas: (T,) noise variances in (0, 1), e.g. `linear_beta_schedule()`.

    Returns:
        A float64 NumPy array (T,), decreasing from 1 - beta_1 towards 0.

    Raises:
        ValueError: if `betas` is not 1-D or holds values outside (0, 1).
    """
    betas = require_array(betas, "betas", ndim=1, dtype_kinds="f",
                          fix="Pass linear_beta_schedule(T).").astype(np.float64)
    if betas.size == 0 or not np.all((betas > 0) & (betas < 1)):
        raise ValueError(f"`betas` must be non-empty with every value in (0, 1); got "
                         f"{describe(betas)}. Pass linear_beta_schedule(T).")
    return np.cumprod(1.0 - betas)  # (T,)


def _check_steps(t, count, name="t"):
    """Returns `t` as an int32 array of time steps in 1..count, or raises."""
    t = require_array(t, name, ndim=(0, 1), dtype_kinds="ui", fix="Pass integer steps 1..T.")
    if t.size and (t.min() < 1 or t.max() > count):
        raise ValueError(f"`{name}` must lie in 1..{count} (T = {count} steps); got values "
                         f"{t.min()}..{t.max()}. Steps are numbered from 1 as in Ho et al.")
    return t.astype(np.int32)


def _per_example(values, t, x):
    """Picks values[t - 1] for each example and shapes it (batch, 1, 1, ...) to broadcast."""
    picked = ops.convert_to_tensor(np.asarray(values, np.float32)[t - 1])  # () or (batch,)
    if picked.ndim == 0:
        return picked
    if x.shape[0] is not None and len(t) != x.shape[0]:
        raise ValueError(f"`t` holds {len(t)} steps for a batch of {x.shape[0]} examples "
                         f"(shape {tuple(x.shape)}). Pass one step for all, or one per example.")
    return ops.reshape(picked, (-1,) + (1,) * (len(x.shape) - 1))


def noise_images(x0, t, alpha_bars, *, seed):
    """Draws x_t ~ q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) in one step.

    Explained in notebooks/12_outlook.ipynb, section "Where diffusion models fit".

    Args:
        x0: clean data (batch, ...), e.g. images in [-1, 1].
        t: one step for the whole batch, or one step per example (batch,), in 1..T.
        alpha_bars: (T,) from `cumulative_alphas`.
        seed: an int or a `keras.random.SeedGenerator`.

    Returns:
        (x_t, epsilon): two float32 tensors shaped like x0, the noised data and the standard
        normal noise epsilon that made it.

    Raises:
        ValueError: for steps outside 1..T.

    Example:
        >>> alpha_bars = cumulative_alphas(linear_beta_schedule())
        >>> x_t, epsilon = noise_images(x0, 500, alpha_bars, seed=0)
    """
    x0 = ops.convert_to_tensor(x0, "float32")
    t = _check_steps(t, len(alpha_bars))
    alpha_bar = _per_example(alpha_bars, t, x0)
    epsilon = keras.random.normal(ops.shape(x0), seed=seed)
    # x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * epsilon  # (batch, ...)
    return ops.sqrt(alpha_bar) * x0 + ops.sqrt(1.0 - alpha_bar) * epsilon, epsilon


def noising_step(x_previous, t, betas, *, seed):
    """Draws x_t ~ q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I): one step of the
    chain, which `noise_images` composes t times in closed form.

    Explained in notebooks/12_outlook.ipynb, section "Where diffusion models fit".

    Args:
        x_previous: x_{t-1} (batch, ...).
        t: the step in 1..T (an int, or one per example).
        betas: (T,) from `linear_beta_schedule`.
        seed: an int or a `keras.random.SeedGenerator`.

    Returns:
        A float32 tensor shaped like `x_previous`.
    """
    x_previous = ops.convert_to_tensor(x_previous, "float32")
    beta = _per_example(betas, _check_steps(t, len(betas)), x_previous)
    epsilon = keras.random.normal(ops.shape(x_previous), seed=seed)
    # x_t = sqrt(1 - beta_t) * x_{t-1} + sqrt(beta_t) * epsilon
    return ops.sqrt(1.0 - beta) * x_previous + ops.sqrt(beta) * epsilon


def noise_prediction_loss(predict_noise, x0, alpha_bars, *, seed):
    """The simplified DDPM objective, one value per example:

    L_simple = E_{t, epsilon} || epsilon - epsilon_theta(x_t, t) ||^2 / D,
    t ~ Uniform{1..T}, x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) epsilon,
    with one (t, epsilon) per example and the mean (not the sum) over the D pixels.
    A network that predicts 0 scores 1 (the variance of epsilon); the perfect one scores 0.
    Explained in notebooks/12_outlook.ipynb, section "Where diffusion models fit".

    Args:
        predict_noise: a callable (x_t, t) -> predicted epsilon shaped like x_t; t is an
            int32 (batch,) tensor of steps in 1..T.
        x0: clean data (batch, ...).
        alpha_bars: (T,) from `cumulative_alphas`.
        seed: an int or a `keras.random.SeedGenerator` (draws t and epsilon).

    Returns:
        A float32 tensor (batch,).

    Raises:
        TypeError: if `predict_noise` is not callable.
    """
    if not callable(predict_noise):
        raise TypeError(f"`predict_noise` must be a callable (x_t, t) -> epsilon, e.g. a Keras "
                        f"model; got {describe(predict_noise)}.")
    x0 = ops.convert_to_tensor(x0, "float32")
    seed = seed if isinstance(seed, keras.random.SeedGenerator) else keras.random.SeedGenerator(seed)
    count = len(alpha_bars)
    t = keras.random.randint((int(x0.shape[0]),), 1, count + 1, seed=seed)  # t ~ U{1..T}
    t = ops.convert_to_numpy(t).astype(np.int32)
    x_t, epsilon = noise_images(x0, t, alpha_bars, seed=seed)
    squared_error = ops.square(epsilon - predict_noise(x_t, ops.convert_to_tensor(t)))
    return ops.mean(ops.reshape(squared_error, (int(x0.shape[0]), -1)), axis=1)  # (batch,)
