"""Shows the code a notebook explains, exactly as the package runs it (STYLE rule 5).

Every lecture calls `show_source(helper)` where it teaches a helper; a test compares each
stored output with the helper's current code, so a notebook never shows stale code.
"""

import ast
import inspect
import textwrap


def source_code(obj):
    """Returns the source of a function, method or class, without its docstring.

    Args:
        obj: a function, method or class defined in Python code.

    Returns:
        The source lines as one string (the docstring is left out; `help(obj)` shows it).

    Raises:
        TypeError: if `obj` has no Python source (a built-in, an instance, a number).

    Example:
        >>> from dgm_course import profiles
        >>> print(source_code(profiles.by_profile))  # doctest: +SKIP
    """
    try:
        lines = inspect.getsource(obj).splitlines()
    except (TypeError, OSError):
        raise TypeError(
            f"show_source needs a function, method or class written in Python; got "
            f"{type(obj).__name__} {obj!r:.60}. Pass the helper itself, e.g. "
            "show_source(preprocessing.normalize), not the result of calling it."
        ) from None
    first = ast.parse(textwrap.dedent("\n".join(lines))).body[0].body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        del lines[first.lineno - 1 : first.end_lineno]
    return "\n".join(lines)


def show_source(obj):
    """Prints `source_code(obj)`: the code of a course helper without its docstring."""
    print(source_code(obj))
