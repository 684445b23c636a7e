"""Every notebook reads cleanly: short cells, no unused imports, no authoring notes, and stored
outputs free of ANSI escape codes, TensorFlow logs, warnings and progress bars printed twice
(tools/outputs.py cleans them at render time; this checks what is committed)."""

import re
import subprocess
import sys

import pytest

from tools import nbtools, outputs

ALL = nbtools.notebook_paths()
RENDERED = nbtools.notebook_paths(*nbtools.RENDERED_DIRS)
MAX_LINES = {"code": 30, "markdown": 40}
AUTHORING_NOTE = re.compile(r"\b(STYLE|TODO|FIXME|XXX|NOTE TO SELF)\b")


def _id(path):
    return f"{path.parent.name}/{path.name}"


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_cells_are_short(path):
    long_cells = [
        f"cell {index} ({cell.cell_type}, {len(cell.source.splitlines())} lines)"
        for index, cell in enumerate(nbtools.read(path).cells)
        if cell.cell_type in MAX_LINES and len(cell.source.splitlines()) > MAX_LINES[cell.cell_type]
    ]
    assert not long_cells, (f"{path.name}: {', '.join(long_cells)} exceed {MAX_LINES} lines. "
                            "Split code at a natural boundary; give a long explanation its own "
                            "section with a heading.")


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_no_authoring_notes(path):
    notes = [f"cell {index}: {match.group(0)!r}"
             for index, cell in enumerate(nbtools.read(path).cells)
             for match in AUTHORING_NOTE.finditer(cell.source)]
    assert not notes, f"{path.name} holds notes to the authors: {', '.join(notes)}"


@pytest.mark.parametrize("path", nbtools.rendered_params("clean"))
def test_stored_outputs_are_clean(path):
    found = outputs.noise(nbtools.read(path))
    assert not found, (f"{path.name}: " + "; ".join(f"cell {index}: {what}" for index, what in found)
                       + ". Fix the cause in the cell (a warning), then re-render: "
                       f"python tools/render.py {path.relative_to(nbtools.ROOT)}")


def test_outputs_noise_check_catches_what_it_names():
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    cell = new_code_cell("x")
    cell.outputs = [new_output("stream", name="stdout", text="\x1b[1mbold\x1b[0m 10%\r100%\n")]
    kinds = {what for _, what in outputs.noise(new_notebook(cells=[cell]))}
    assert kinds == {"an ANSI escape code", "a carriage return (a progress bar's updates)"}


def test_outputs_noise_check_catches_a_figure_without_its_picture():
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    text = {"text/plain": "<Figure size 1100x360 with 2 Axes>"}
    blind, shown = new_code_cell("fig"), new_code_cell("fig")
    blind.outputs = [new_output("execute_result", data=text, execution_count=1)]
    shown.outputs = [new_output("execute_result", data={**text, "image/png": "iVBOR"},
                                execution_count=2)]
    found = outputs.noise(new_notebook(cells=[blind, shown]))
    assert [index for index, _ in found] == [0]
    assert "no picture" in found[0][1]


def test_no_unused_imports_or_variables_in_notebooks():
    # Ruff reads .ipynb; F401 unused import, F811 redefinition, F841 unused local variable.
    # Not exercises/: their setup cells import what the learner's answers will use.
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F401,F811,F841", "--output-format", "concise",
         *map(str, RENDERED)],
        capture_output=True, text=True, cwd=nbtools.ROOT,
    )
    assert "No module named ruff" not in result.stderr, "Install the test tools: pip install -r requirements.txt"
    assert result.returncode == 0, result.stdout + result.stderr
