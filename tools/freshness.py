"""What a notebook's outputs depend on, and whether that has changed since they were made.

A rendered notebook's stamp (metadata["dgm_course"]) records the SHA-256 of its code cells and
of every `dgm_course` module its code imports, directly or through other modules of the
package (found by reading the `import` statements, including those inside functions). The
outputs are fresh while both are unchanged; `python tools/render.py --stale` re-renders
exactly the notebooks for which they are not.
"""

import ast
import hashlib
import json
import re

from tools import nbtools

PACKAGE = "dgm_course"
MAGIC_LINE = re.compile(r"^\s*[%!]")  # IPython magics and shell lines are not Python.


def code_hash(notebook):
    """Returns the SHA-256 of a notebook's code cells, the fingerprint of what ran."""
    sources = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    return hashlib.sha256(json.dumps(sources).encode("utf-8")).hexdigest()


def _module_path(name):
    """Returns the file of module `name` ("dgm_course.gan") relative to the repository, or
    None when no such module exists (the name is then an attribute, e.g. a function)."""
    base = nbtools.ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(nbtools.ROOT).as_posix()
    return None


def _imported_names(tree, package=None):
    """Yields the dotted names that the import statements of `tree` may load from the
    package: "a.b" for `import a.b`, and both "a" and "a.x" for `from a import x`.
    `package` resolves relative imports inside the package's own modules."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # from . import x, from .y import x
                parts = (package or "").split(".")
                parts = parts[: len(parts) - node.level + 1]
                module = ".".join(parts + ([module] if module else []))
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _files_of(names):
    """Returns the package's module files that the dotted names load, with the __init__.py of
    every package on the way ("dgm_course.checks.ch03" loads three files)."""
    files = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != PACKAGE:
            continue
        for end in range(1, len(parts) + 1):
            path = _module_path(".".join(parts[:end]))
            if path:
                files.add(path)
    return files


def _parse(source, where):
    """Parses Python source with IPython magics removed; raises ValueError naming `where`."""
    lines = source.split("\n")
    # A magic becomes `pass` at its indentation, so that a block holding only a magic parses.
    source = "\n".join(line[: len(line) - len(line.lstrip())] + "pass" if MAGIC_LINE.match(line)
                       else line for line in lines)
    try:
        return ast.parse(source)
    except SyntaxError as error:
        raise ValueError(f"{where} is not valid Python (line {error.lineno}: {error.msg}); "
                         "fix the cell or module so that its imports can be read.") from None


def package_dependencies(notebook):
    """Returns the sorted repository paths of every package module the notebook's code
    imports, directly or through other package modules."""
    todo = set()
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            todo |= _files_of(_imported_names(_parse(cell.source, f"code cell {index}")))
    done = set()
    while todo:
        path = todo.pop()
        done.add(path)
        module = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        tree = _parse((nbtools.ROOT / path).read_text(encoding="utf-8"), path)
        todo |= _files_of(_imported_names(tree, package)) - done
    return sorted(done)


def fingerprint(notebook):
    """Returns what the outputs depend on: {"code_sha256": ..., "modules": {path: sha256}}."""
    modules = {
        path: hashlib.sha256((nbtools.ROOT / path).read_bytes()).hexdigest()
        for path in package_dependencies(notebook)
    }
    return {"code_sha256": code_hash(notebook), "modules": modules}


def stale_reasons(notebook, profile=nbtools.RENDER_PROFILE):
    """Returns why the notebook's stored outputs are not those of the current code: a list of
    sentences, empty when they are fresh."""
    stamp = notebook.metadata.get("dgm_course")
    if not stamp:
        return ["it was never rendered"]
    reasons = []
    if stamp.get("profile") != profile:
        reasons.append(f"it was rendered in the {stamp.get('profile')!r} profile, not {profile!r}")
    now = fingerprint(notebook)
    if stamp.get("code_sha256") != now["code_sha256"]:
        reasons.append("its code cells changed")
    recorded = stamp.get("modules")
    if recorded is None:
        return reasons + ["its stamp records no package modules (made before they were tracked)"]
    for path in sorted(set(recorded) | set(now["modules"])):
        if path not in now["modules"]:
            reasons.append(f"it no longer imports {path}")
        elif path not in recorded:
            reasons.append(f"it now imports {path}, which the stamp does not record")
        elif recorded[path] != now["modules"][path]:
            reasons.append(f"{path} changed")
    return reasons
