"""Runs notebooks top to bottom in the `cpu` profile and stores their outputs, so that
they read well on GitHub without running. Each rendered notebook records the fingerprint
of its code and of the package modules it imports (tools/freshness.py); a test fails when
either changes after the outputs were made.

Usage:
    python tools/render.py                      # every notebook in notebooks/ and solutions/
    python tools/render.py notebooks/01_*.ipynb --data-dir ../shared/data
    python tools/render.py --list-stale         # which outputs are stale, and why
    python tools/render.py --stale              # render exactly those

Full data comes from --data-dir (default: $DGM_DATA_DIR, else ../shared/data when present).
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

from nbclient import NotebookClient

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import freshness, nbtools, outputs  # noqa: E402


def default_data_dir():
    """Returns $DGM_DATA_DIR, else ../shared/data beside the repository when it exists."""
    if os.environ.get("DGM_DATA_DIR"):
        return os.environ["DGM_DATA_DIR"]
    shared = nbtools.ROOT.parent / "shared" / "data"
    return str(shared) if shared.is_dir() else None


def _keep_edits_made_while_running(executed, path):
    """Takes the markdown cells and metadata of the file on disk, which may have been edited
    while the notebook ran, into `executed`; raises ValueError if its code changed meanwhile."""
    current = nbtools.read(path)
    if freshness.code_hash(current) != freshness.code_hash(executed):
        raise ValueError(f"{path}: code cells changed while it was rendering; its outputs would not "
                         "be those of the code on disk. Nothing was written: render it again.")
    code_cells = iter(cell for cell in executed.cells if cell.cell_type == "code")
    executed.cells = [next(code_cells) if cell.cell_type == "code" else cell
                      for cell in current.cells]
    executed.metadata = {**current.metadata, "dgm_course": executed.metadata["dgm_course"]}


def render(path, *, profile=nbtools.RENDER_PROFILE, data_dir=None, timeout=1800):
    """Executes one notebook, cleans its outputs, stamps what they depend on (its code and the
    package modules it imports) and writes it in place; returns the seconds taken."""
    path = Path(path).resolve()
    notebook = nbtools.read(path)
    env_before = dict(os.environ)
    os.environ["DGM_PROFILE"] = profile
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if data_dir:
        os.environ["DGM_DATA_DIR"] = str(Path(data_dir).resolve())
    start = time.perf_counter()
    try:
        client = NotebookClient(
            notebook, timeout=timeout, kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}}, record_timing=False,
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    seconds = time.perf_counter() - start
    outputs.clean_outputs(notebook)
    notebook.metadata["dgm_course"] = {
        "profile": profile,
        **freshness.fingerprint(notebook),
        "seconds": round(seconds, 1),
        "rendered": datetime.date.today().isoformat(),
    }
    _keep_edits_made_while_running(notebook, path)
    nbtools.write(notebook, path)
    return seconds


def stale_notebooks(paths, profile=nbtools.RENDER_PROFILE):
    """Returns {path: reasons} for the notebooks among `paths` whose outputs are not those of
    the current code (see tools/freshness.py)."""
    found = {}
    for path in paths:
        reasons = freshness.stale_reasons(nbtools.read(path), profile)
        if reasons:
            found[path] = reasons
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="default: notebooks/ and solutions/")
    parser.add_argument("--profile", default=nbtools.RENDER_PROFILE, choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--stale", action="store_true",
                        help="render only those whose outputs are not those of the current code")
    parser.add_argument("--list-stale", action="store_true",
                        help="list those whose outputs are stale, and why; render nothing")
    args = parser.parse_args(argv)
    paths = args.notebooks or nbtools.notebook_paths(*nbtools.RENDERED_DIRS)
    if args.stale or args.list_stale:
        stale = stale_notebooks(paths, args.profile)
        for path, reasons in stale.items():
            print(f"{Path(path).resolve().relative_to(nbtools.ROOT)}: {'; '.join(reasons)}")
        print(f"{len(stale)} of {len(paths)} notebook(s) stale")
        if args.list_stale:
            return 1 if stale else 0
        paths = list(stale)
    print(f"Rendering {len(paths)} notebook(s), profile {args.profile}, data {args.data_dir}")
    for path in paths:
        seconds = render(path, profile=args.profile, data_dir=args.data_dir)
        print(f"{seconds:7.1f} s  {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
