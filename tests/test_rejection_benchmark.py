"""benchmarks/rejection.py without training: its outlier sets and its report."""

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "rejection.py"
_spec = importlib.util.spec_from_file_location("rejection", SCRIPT)
rejection = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rejection)


def test_outlier_sets_are_constant_noise_and_inverted_uint8_images():
    known = np.random.default_rng(0).integers(0, 256, (50, 28, 28, 1)).astype(np.uint8)
    sets = rejection.outlier_sets(known, 20, seed=3)
    assert set(sets) == {"constant images", "uniform noise", "inverted images"}
    for images in sets.values():
        assert images.shape == (20, 28, 28, 1) and images.dtype == np.uint8
    constant = sets["constant images"].reshape(20, -1)
    assert np.all(constant == constant[:, :1]) and len(np.unique(constant[:, 0])) > 1
    np.testing.assert_array_equal(sets["inverted images"], 255 - known[:20])
    assert len(np.unique(sets["uniform noise"][0])) > 100


def test_report_gives_mean_and_spread_over_seeds_per_direction_and_set():
    args = rejection.parse(["--seeds", "0,1"])
    runs = [({"Fashion-MNIST": (0.9, 0.2, 0.5), "uniform noise": (1.0, 0.8, 1.0)}, 80.0, 100.0),
            ({"Fashion-MNIST": (0.7, 0.4, 0.5), "uniform noise": (1.0, 0.6, 1.0)}, 82.0, 120.0)]
    text = rejection.report({("mnist", "fashion_mnist"): runs}, args)
    assert "| MNIST | Fashion-MNIST | 0.800 ± 0.141 | 0.300 ± 0.141 | 0.500 ± 0.000 |" in text
    assert "| MNIST | uniform noise | 1.000 ± 0.000 | 0.700 ± 0.141 | 1.000 ± 0.000 |" in text
    assert "test NLL 81.000 ± 1.414 nats" in text and "110 s per seed" in text
