"""Run profiles: one switch that sizes every run in the course.

`smoke` takes seconds per notebook (CI and nbval), `cpu` takes minutes on a laptop,
`gpu` is the full run the course quotes. The environment variable `DGM_PROFILE`
chooses; without it the profile is `gpu` where TensorFlow sees a GPU, else `cpu`.
Explained in notebooks/00_setup.ipynb, section "Run profiles".
"""

import functools
import os

PROFILES = ("smoke", "cpu", "gpu")
PROFILE_ENV_VAR = "DGM_PROFILE"


@functools.lru_cache(maxsize=1)
def gpu_names():
    """Returns the names of the GPUs TensorFlow can see (an empty tuple on a CPU machine)."""
    import tensorflow as tf

    return tuple(device.name for device in tf.config.list_physical_devices("GPU"))


def get_profile():
    """Returns the current run profile: "smoke", "cpu" or "gpu".

    Returns:
        The value of `DGM_PROFILE` if set, else "gpu" when a GPU is visible, else "cpu".

    Raises:
        ValueError: if `DGM_PROFILE` is set to anything else.

    Example:
        >>> import os; os.environ["DGM_PROFILE"] = "smoke"
        >>> get_profile()
        'smoke'
    """
    value = os.environ.get(PROFILE_ENV_VAR, "").strip().lower()
    if value:
        if value not in PROFILES:
            raise ValueError(
                f"{PROFILE_ENV_VAR}={os.environ[PROFILE_ENV_VAR]!r} is not a run profile; "
                f"expected one of {', '.join(PROFILES)}. Fix it with e.g. "
                f"`export {PROFILE_ENV_VAR}=cpu`, or unset it to auto-detect."
            )
        return value
    return "gpu" if gpu_names() else "cpu"


def describe_profile():
    """Returns one line that says which profile is in force and why."""
    profile = get_profile()
    if os.environ.get(PROFILE_ENV_VAR, "").strip():
        why = f"set by {PROFILE_ENV_VAR}"
    elif profile == "gpu":
        why = f"auto-detected: GPU {', '.join(gpu_names())}"
    else:
        why = "auto-detected: no GPU visible"
    return (
        f"Run profile: {profile} ({why}). "
        f"Choose with {PROFILE_ENV_VAR}=smoke|cpu|gpu before starting the kernel."
    )


def by_profile(*, smoke, cpu, gpu):
    """Returns the value given for the current run profile.

    Every notebook's hyperparameter cell uses it, so that the sizes of all three
    profiles can be read in one place.

    Args:
        smoke: the value for CI and nbval (seconds per notebook).
        cpu: the value for a laptop without GPU (minutes per notebook).
        gpu: the value for a Colab GPU (the full run).

    Returns:
        One of the three values.

    Example:
        >>> EPOCHS = by_profile(smoke=1, cpu=10, gpu=50)
    """
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[get_profile()]
