"""Generates exercises/ from solutions/, the single source of every exercise.

Solution code stands between `### BEGIN SOLUTION` and `### END SOLUTION` lines (nbgrader's
convention). In the exercise notebook each such block becomes `# YOUR CODE HERE` and
`raise NotImplementedError()` at the block's indentation; markdown blocks become
"YOUR ANSWER HERE"; cells tagged `solutions-only` are dropped; outputs are cleared.

Usage:
    python tools/exercises.py          # write exercises/ from solutions/
    python tools/exercises.py --check  # exit 1 if exercises/ differs from what solutions/ gives
"""

import argparse
import copy
import sys
from pathlib import Path

import nbformat

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import nbtools  # noqa: E402

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def strip_solutions(source, *, markdown=False, where="cell"):
    """Returns `source` with each solution block replaced by the learner's placeholder.

    Raises:
        ValueError: if a block is not closed, or an END comes without a BEGIN.
    """
    lines, out, indent = source.split("\n"), [], None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if indent is not None:
                raise ValueError(f"{where}, line {number}: {BEGIN} inside another block.")
            indent = line[: len(line) - len(line.lstrip())]
            if markdown:
                out.append(f"{indent}YOUR ANSWER HERE")
            else:
                out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
        elif stripped == END:
            if indent is None:
                raise ValueError(f"{where}, line {number}: {END} without {BEGIN}.")
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise ValueError(f"{where}: {BEGIN} is never closed by {END}; add the END line.")
    return "\n".join(out)


def make_exercise(solution):
    """Returns the exercise notebook made from a solution notebook."""
    exercise = copy.deepcopy(solution)
    # Only what choosing a kernel needs: rendering the solutions must not change exercises.
    exercise.metadata = nbformat.from_dict({
        "kernelspec": solution.metadata.get("kernelspec", {}),
        "language_info": {"name": "python"},
    })
    cells = []
    for index, cell in enumerate(exercise.cells):
        if "solutions-only" in cell.metadata.get("tags", []):
            continue
        where = f"cell {index}"
        cell.source = strip_solutions(cell.source, markdown=cell.cell_type == "markdown", where=where)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
        cells.append(cell)
    exercise.cells = cells
    return exercise


def expected_exercises():
    """Returns {exercise path: notebook text} for every notebook in solutions/."""
    expected = {}
    for path in nbtools.notebook_paths("solutions"):
        exercise = make_exercise(nbtools.read(path))
        expected[nbtools.ROOT / "exercises" / path.name] = nbformat.writes(exercise) + "\n"
    return expected


def drift():
    """Returns a list of sentences, one per exercise notebook out of step with solutions/."""
    expected = expected_exercises()
    problems = [
        f"{path.relative_to(nbtools.ROOT)} differs from what solutions/{path.name} generates"
        for path, text in expected.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    problems += [
        f"{path.relative_to(nbtools.ROOT)} has no solutions/{path.name}"
        for path in nbtools.notebook_paths("exercises")
        if path not in expected
    ]
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report drift, exit 1 if any")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for problem in problems:
            print(f"drift: {problem}. Fix: python tools/exercises.py")
        return 1 if problems else 0
    (nbtools.ROOT / "exercises").mkdir(exist_ok=True)
    for path, text in expected_exercises().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(nbtools.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
