"""Progress bars for the helpers that take more than a few seconds (text bars, so that
they read the same in a terminal, in JupyterLab, on Colab and in a rendered notebook)."""

import sys

from tqdm.std import tqdm


def progress(iterable, *, enabled, description, total=None):
    """Returns `iterable` wrapped in a text progress bar when `enabled`, else unchanged."""
    if not enabled:
        return iterable
    return tqdm(iterable, desc=description, total=total, file=sys.stderr, mininterval=1.0,
                dynamic_ncols=False, ncols=90)
