"""Test-session settings shared by the unit tests and the notebooks nbval runs.

The suite runs in the `smoke` profile unless DGM_PROFILE says otherwise; the kernels
that nbval starts inherit these variables.
"""

import os

import pytest

os.environ.setdefault("DGM_PROFILE", "smoke")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.hookimpl(tryfirst=True)  # Before xdist's own hook reads the groups.
def pytest_collection_modifyitems(config, items):
    """Marks what the fast tier leaves out, and keeps each notebook on one xdist worker.

    nbval collects every cell of a notebook as one test, all run in order in one kernel, so
    they share an xdist group (`--dist loadgroup`); other tests spread one by one. Notebook
    cells and tests marked `slow` by hand are left out of `pytest -m "not slow"`.
    """
    for item in items:
        path = item.nodeid.split("::")[0]
        if path.endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group(path))
