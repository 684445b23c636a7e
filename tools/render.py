"""Runs notebooks top to bottom in the `cpu` profile and stores their outputs, so that
they read well on GitHub without running. Each rendered notebook records the fingerprint
of its code; a test fails when the code changes after the outputs were made.

Usage:
    python tools/render.py                      # every notebook in notebooks/ and solutions/
    python tools/render.py notebooks/01_*.ipynb --data-dir ../shared/data

Full data comes from --data-dir (default: $DGM_DATA_DIR, else ../shared/data when present).
"""

import argparse
import datetime
import os
import re
import sys
import time
from pathlib import Path

from nbclient import NotebookClient

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import nbtools  # noqa: E402


# TensorFlow's C++ log (oneDNN, CUDA probing, graph warnings) ignores TF_CPP_MIN_LOG_LEVEL since
# TF 2.16; it says nothing about the course, so stored outputs leave it out.
TF_LOG_LINE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called.*\n?"
    # A C++ log line may start in the middle of a progress bar's line: match it anywhere.
    r"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\].*\n?",
    re.MULTILINE,
)


def final_states(text):
    """Keeps what a terminal shows of each line: the text after its last carriage return
    (a progress bar's final state rather than all its updates)."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def merge_streams(outputs):
    """Joins consecutive stream outputs of the same name, as a notebook front end shows them."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.output_type == "stream" and previous is not None
                and previous.output_type == "stream" and previous.name == output.name):
            previous.text += output.text
        else:
            merged.append(output)
    return merged


def strip_tensorflow_logs(notebook):
    """Removes TensorFlow's C++ log lines from stderr outputs, keeps progress bars' final
    states, and drops outputs left empty."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = merge_streams(cell.outputs)
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                output.text = TF_LOG_LINE.sub("", output.text)
            if output.output_type == "stream":
                output.text = final_states(output.text)
        cell.outputs = [
            output for output in cell.outputs
            if not (output.output_type == "stream" and not output.text.strip())
        ]


def default_data_dir():
    """Returns $DGM_DATA_DIR, else ../shared/data beside the repository when it exists."""
    if os.environ.get("DGM_DATA_DIR"):
        return os.environ["DGM_DATA_DIR"]
    shared = nbtools.ROOT.parent / "shared" / "data"
    return str(shared) if shared.is_dir() else None


def render(path, *, profile=nbtools.RENDER_PROFILE, data_dir=None, timeout=1800):
    """Executes one notebook in place and stamps its metadata; returns the seconds taken."""
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
    strip_tensorflow_logs(notebook)
    notebook.metadata["dgm_course"] = {
        "profile": profile,
        "code_sha256": nbtools.code_hash(notebook),
        "seconds": round(seconds, 1),
        "rendered": datetime.date.today().isoformat(),
    }
    nbtools.write(notebook, path)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="default: notebooks/ and solutions/")
    parser.add_argument("--profile", default=nbtools.RENDER_PROFILE, choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--data-dir", default=default_data_dir())
    args = parser.parse_args(argv)
    paths = args.notebooks or nbtools.notebook_paths(*nbtools.RENDERED_DIRS)
    print(f"Rendering {len(paths)} notebook(s), profile {args.profile}, data {args.data_dir}")
    for path in paths:
        seconds = render(path, profile=args.profile, data_dir=args.data_dir)
        print(f"{seconds:7.1f} s  {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
