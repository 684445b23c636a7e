"""Test-session settings shared by the unit tests and the notebooks nbval runs.

The suite runs in the `smoke` profile unless DGM_PROFILE says otherwise; the kernels
that nbval starts inherit these variables.
"""

import os

os.environ.setdefault("DGM_PROFILE", "smoke")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
