"""What the authoring tools and the tests share: where notebooks live, how they are read and
written, and the setup cell every notebook starts with (tools/freshness.py fingerprints them)."""

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIRS = ("notebooks", "solutions", "exercises")
RENDERED_DIRS = ("notebooks", "solutions")
RENDER_PROFILE = "cpu"
REPOSITORY = "dgm-course/dgm-course"

# Every notebook's first code cell: on Colab it installs the course package, whose
# version ranges accept what Colab preinstalls, so TensorFlow is not reinstalled.
SETUP_CELL = f"""\
# On Colab, install the course package first (about 30 s; TensorFlow is already there).
import sys

if "google.colab" in sys.modules:
    %pip install --quiet "dgm-course @ git+https://github.com/{REPOSITORY}"\
"""


def notebook_paths(*dirs):
    """Returns the sorted .ipynb paths under the given top-level folders."""
    dirs = dirs or NOTEBOOK_DIRS
    return sorted(path for name in dirs for path in (ROOT / name).glob("*.ipynb"))


def read(path):
    """Reads a notebook (nbformat 4)."""
    return nbformat.read(str(path), as_version=4)


def write(notebook, path):
    """Writes a notebook with stable formatting, so that diffs stay small."""
    Path(path).write_text(nbformat.writes(notebook) + "\n", encoding="utf-8")


def first_code_cell(notebook):
    """Returns the source of the first code cell, or None."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            return cell.source
    return None


# Work still to come on a notebook, by check: "fresh" (its re-render), "clean" (outputs without
# warnings, which that re-render brings) or "prose" (its numbers checked against new outputs).
# Those tests are expected to fail until then and fail when they pass (strict), so the list
# only ever shrinks. Empty when every render and prose check is done.
AWAITING = {}


def rendered_params(check):
    """The rendered notebooks as pytest parameters, those awaiting `check` marked xfail."""
    import pytest

    params = []
    for path in notebook_paths(*RENDERED_DIRS):
        waiting = check in AWAITING.get(path.relative_to(ROOT).as_posix(), ())
        marks = [pytest.mark.xfail(strict=True, reason=f"awaiting {check!r} (nbtools.AWAITING)")]
        params.append(pytest.param(path, id=f"{path.parent.name}/{path.name}",
                                   marks=marks if waiting else []))
    return params
