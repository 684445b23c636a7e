"""The notebooks as files: exercises in step with solutions, outputs fresh, the shared
setup cell, the README's syllabus; and exercises/ executed with the learner's cells failing
only with NotImplementedError."""


import pytest
from nbclient import NotebookClient

from tools import exercises, freshness, nbtools

RENDERED = nbtools.notebook_paths(*nbtools.RENDERED_DIRS)
EXERCISES = nbtools.notebook_paths("exercises")
ALL = nbtools.notebook_paths()


def test_there_are_notebooks_in_every_folder():
    for folder in nbtools.NOTEBOOK_DIRS:
        assert nbtools.notebook_paths(folder), f"no notebooks in {folder}/"


def test_exercises_are_generated_from_solutions():
    problems = exercises.drift()
    assert not problems, "\n".join(problems) + "\nRun: python tools/exercises.py"


@pytest.mark.parametrize("path", nbtools.rendered_params("fresh"))
def test_outputs_were_made_by_the_current_code(path):
    """The stamp records the code cells and every package module they import, directly or
    not (tools/freshness.py); a change in either makes the stored outputs stale."""
    reasons = freshness.stale_reasons(nbtools.read(path))
    assert not reasons, (f"{path.name}'s outputs are stale: {'; '.join(reasons)}. "
                         f"Run: python tools/render.py {path.relative_to(nbtools.ROOT)} "
                         "(or python tools/render.py --stale for every stale notebook)")


@pytest.mark.parametrize("path", RENDERED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_rendered_outputs_hold_no_errors(path):
    for index, cell in enumerate(nbtools.read(path).cells):
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{path.name} cell {index}: {output.ename}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_notebook_starts_with_the_setup_cell(path):
    assert nbtools.first_code_cell(nbtools.read(path)) == nbtools.SETUP_CELL


def test_readme_lists_every_lecture_with_a_colab_link():
    readme = (nbtools.ROOT / "README.md").read_text(encoding="utf-8")
    for path in nbtools.notebook_paths("notebooks"):
        link = f"colab.research.google.com/github/{nbtools.REPOSITORY}/blob/main/notebooks/{path.name}"
        assert link in readme, f"README has no Colab link for {path.name}"


def test_strip_solutions_keeps_indentation_and_rejects_unclosed_blocks():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\nprint(1)"
    assert exercises.strip_solutions(source) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\nprint(1)"
    )
    assert exercises.strip_solutions("a\n### BEGIN SOLUTION\nb\n### END SOLUTION", markdown=True) == (
        "a\nYOUR ANSWER HERE"
    )
    with pytest.raises(ValueError, match="never closed"):
        exercises.strip_solutions("### BEGIN SOLUTION\nx = 1")
    with pytest.raises(ValueError, match="without"):
        exercises.strip_solutions("x = 1\n### END SOLUTION")


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_exercise_notebook_runs_and_fails_only_where_the_learner_works(path):
    notebook = nbtools.read(path)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    errors = [
        (index, output)
        for index, cell in enumerate(notebook.cells)
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert errors, f"{path.name}: no exercise raised NotImplementedError; is a solution left in?"
    for index, output in errors:
        assert output.ename == "NotImplementedError", (
            f"{path.name} cell {index} failed with {output.ename}: {output.evalue}"
        )
