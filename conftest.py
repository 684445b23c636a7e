"""Test-session settings shared by the unit tests and the notebooks nbval runs.

The suite runs in the `smoke` profile unless DGM_PROFILE says otherwise; the kernels
that nbval starts inherit these variables.
"""

import os

import pytest

os.environ.setdefault("DGM_PROFILE", "smoke")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One TensorFlow thread per process: the suite runs two xdist workers (and their notebook
# kernels) on two cores, and TensorFlow's default of a thread pool per core makes them
# contend. A small gain: on an AMD EPYC with AVX2 and 2 cores, the 2,072 tests of two whole
# runs took 1,313 s of test time instead of 1,332 s (test_conditional, test_wgan and test_gan
# alone: 110 s of wall time instead of 121 s).
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    """Marks notebook cells `slow`, so that `pytest -m "not slow"` leaves them out.

    nbval collects every cell of a notebook as one test, all run in order in one kernel;
    `--dist loadfile` (pyproject.toml) keeps a file's tests on one xdist worker. Tests
    marked `slow` by hand are left out of the fast tier too.
    """
    for item in items:
        if item.nodeid.split("::")[0].endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
