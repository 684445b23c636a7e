"""The learner's machine: versions, devices, Colab, seeds.
Explained in notebooks/00_setup.ipynb, sections "Check the environment" and "Seeds"."""

import os
import platform
import sys

from dgm_course import profiles

MINIMUM_VERSIONS = {"tensorflow": (2, 16), "keras": (3, 3)}


def on_colab():
    """Returns True inside a Google Colab runtime."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def _version_tuple(text):
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def environment_report():
    """Returns the facts a learner (or an instructor reading a bug report) needs first.

    Returns:
        A dict of short strings: python, platform, cpus, tensorflow, keras, backend,
        gpus, colab, profile.

    Raises:
        RuntimeError: if TensorFlow or Keras is older than the course needs, saying
            which version was found and how to upgrade.

    Example:
        >>> report = environment_report()
        >>> report["keras"]  # e.g. '3.15.1'
    """
    import keras
    import tensorflow as tf

    for name, module in (("tensorflow", tf), ("keras", keras)):
        if _version_tuple(module.__version__) < MINIMUM_VERSIONS[name]:
            wanted = ".".join(map(str, MINIMUM_VERSIONS[name]))
            raise RuntimeError(
                f"{name} {module.__version__} is installed; the course needs {name}>={wanted}. "
                f"Fix: pip install --upgrade '{name}>={wanted}', then restart the kernel."
            )
    gpus = profiles.gpu_names()
    return {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": str(os.cpu_count()),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "gpus": ", ".join(gpus) if gpus else "none",
        "colab": "yes" if on_colab() else "no",
        "profile": profiles.get_profile(),
    }


def gpu_advice():
    """Returns one line about the GPU: which one is attached, or how to get one."""
    gpus = profiles.gpu_names()
    if gpus:
        return f"GPU attached: {', '.join(gpus)}. The gpu profile runs the full experiments."
    if on_colab():
        return (
            "No GPU attached. In Colab: Runtime > Change runtime type > T4 GPU, then rerun. "
            "Without one the cpu profile runs everything, smaller and slower."
        )
    return "No GPU visible to TensorFlow: the cpu profile runs everything, smaller and slower."


def set_seed(seed=0):
    """Seeds Python, NumPy, TensorFlow and Keras and makes TensorFlow ops deterministic.

    With it, a re-run in the same profile gives the same numbers on the CPU. It also
    clears Keras's global state (layer-name counters, the generator behind unseeded
    `keras.random` calls; older Keras 3 releases do not reset the latter on their own),
    so that a model rebuilt after `set_seed` gets the same names and weights.

    Args:
        seed: a non-negative integer.

    Raises:
        TypeError: if `seed` is not an integer.
    """
    import keras
    import tensorflow as tf

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TypeError(f"`seed` must be a non-negative int; got {seed!r}. Example: set_seed(0).")
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
