"""show_source, and every stored show_source output in the rendered notebooks is the
helper's current code (a notebook never shows code the package no longer runs)."""

import importlib
import re

import pytest

from dgm_course.source import source_code
from tools import nbtools

CALL = re.compile(r"^show_source\(([\w.]+)\)$")


def example(x):
    """A docstring
    on two lines."""
    return x + 1


class Example:
    """A class docstring."""

    def method(self):
        """A method docstring."""
        return 2


def test_source_code_leaves_out_the_docstring():
    assert source_code(example) == "def example(x):\n    return x + 1"
    assert source_code(Example.method) == "    def method(self):\n        return 2"
    assert "A class docstring" not in source_code(Example)


def test_source_code_of_something_without_source_says_what_to_pass():
    with pytest.raises(TypeError, match=r"got int 3.*show_source\(preprocessing.normalize\)"):
        source_code(3)


def resolve(dotted):
    """`toy.GaussianMixture.sample` -> the object, importing dgm_course.toy."""
    first, *rest = dotted.split(".")
    obj = importlib.import_module(f"dgm_course.{first}")
    for name in rest:
        obj = getattr(obj, name)
    return obj


def shown_sources():
    """Yields (notebook, cell index, names shown, stored stdout) for pure show_source cells."""
    for path in nbtools.notebook_paths(*nbtools.RENDERED_DIRS):
        for index, cell in enumerate(nbtools.read(path).cells):
            lines = [line for line in cell.source.splitlines() if line.strip()]
            if cell.cell_type != "code" or not lines:
                continue
            matches = [CALL.match(line.strip()) for line in lines]
            if all(matches):
                stdout = "".join(output.get("text", "") for output in cell.outputs
                                 if output.get("name") == "stdout")
                yield path, index, [match.group(1) for match in matches], stdout


CELLS = list(shown_sources())


def test_the_notebooks_show_sources():
    assert len(CELLS) >= 5


@pytest.mark.parametrize("path, index, names, stdout", CELLS,
                         ids=[f"{c[0].name}:{c[1]}" for c in CELLS])
def test_shown_source_is_the_current_code(path, index, names, stdout):
    expected = "".join(source_code(resolve(name)) + "\n" for name in names)
    assert stdout == expected, (
        f"{path.name} cell {index} shows old code of {', '.join(names)}. "
        f"Fix: python tools/render.py {path.relative_to(nbtools.ROOT)}"
    )
