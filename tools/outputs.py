"""Stored outputs as a reader should see them: what a terminal would show of each stream, with
no TensorFlow start-up logs and no ANSI escape codes.

`tools/render.py` applies `clean_outputs` to every notebook it renders; tests/test_hygiene.py
checks that every stored output is clean.
"""

import re

# TensorFlow's C++ log (oneDNN, CUDA probing, graph warnings) ignores TF_CPP_MIN_LOG_LEVEL since
# TF 2.16; it says nothing about the course, so stored outputs leave it out.
TF_LOG_LINE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called.*\n?"
    # A C++ log line may start in the middle of a progress bar's line: match it anywhere.
    r"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\].*\n?",
    re.MULTILINE,
)
# Colours and bold of Keras's progress bars and model summaries (ECMA-48 CSI sequences).
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# A Keras progress bar's line: "599/599 ━━━━ 48s 70ms/step - loss: ...".
PROGRESS_BAR = re.compile(r"^\s*\d+/\d+ [━─]")


def final_states(text):
    """Keeps what a terminal shows of each line: the text after its last carriage return
    (a progress bar's final state rather than all its updates)."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def _join(earlier, later):
    """Joins two pieces of one stream. A piece that starts with a carriage return, or (in outputs
    stored before this rule, whose carriage returns are gone) a progress bar that follows an
    unfinished progress bar, overwrites the unfinished last line, as a terminal does."""
    if not earlier.endswith("\n"):
        head, _, last = earlier.rpartition("\n")
        first = later.split("\n", 1)[0]
        bars = [PROGRESS_BAR.match(ANSI_ESCAPE.sub("", line)) for line in (last, first)]
        if later.startswith("\r") or all(bars):
            return head + ("\n" if head else "") + later.lstrip("\r")
    return earlier + later


def merge_streams(outputs):
    """Joins consecutive stream outputs of the same name, as a notebook front end shows them."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.output_type == "stream" and previous is not None
                and previous.output_type == "stream" and previous.name == output.name):
            previous.text = _join(previous.text, output.text)
        else:
            merged.append(output)
    return merged


def _is_empty_stream(output):
    return output.output_type == "stream" and not output.text.strip()


def clean_outputs(notebook):
    """Removes TensorFlow's C++ log lines from stderr, drops the streams left empty, joins the
    rest as a front end shows them, keeps progress bars' final states and removes ANSI escape
    codes from streams and plain-text results. Changes `notebook` in place and returns it."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                output.text = TF_LOG_LINE.sub("", output.text)
        cell.outputs = merge_streams([output for output in cell.outputs
                                      if not _is_empty_stream(output)])
        for output in cell.outputs:
            if output.output_type == "stream":
                output.text = ANSI_ESCAPE.sub("", final_states(output.text))
            elif "text/plain" in output.get("data", {}):
                output.data["text/plain"] = ANSI_ESCAPE.sub("", output.data["text/plain"])
        cell.outputs = [output for output in cell.outputs if not _is_empty_stream(output)]
    return notebook


FIGURE_REPR = re.compile(r"<Figure size \d+x\d+ with \d+ Axes>")


def noise(notebook):
    """Returns what a clean stored output may not hold, as (cell index, what) pairs: ANSI
    escape codes, TensorFlow logs, carriage returns, warnings, progress bars printed twice,
    and figures stored as their text alone."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            data = output.get("data", {})
            if FIGURE_REPR.match(data.get("text/plain", "")) and "image/png" not in data:
                found.append((index, "a Figure stored as text, with no picture (IPython had no "
                                     "PNG formatter for it: import dgm_course.plotting)"))
        texts, previous = [], None  # Consecutive pieces of one stream are read as one text.
        for output in cell.outputs:
            name = output.get("name") if output.output_type == "stream" else None
            piece = output.get("text", "") + output.get("data", {}).get("text/plain", "")
            if name is not None and name == previous:
                texts[-1] = (name, texts[-1][1] + piece)
            else:
                texts.append((name, piece))
            previous = name
        for name, text in texts:
            if ANSI_ESCAPE.search(text):
                found.append((index, "an ANSI escape code"))
            if TF_LOG_LINE.search(text) and name == "stderr":
                found.append((index, "a TensorFlow log line"))
            if "\r" in text:
                found.append((index, "a carriage return (a progress bar's updates)"))
            if re.search(r"\w*Warning\b[:(]", text):
                found.append((index, "a warning: " + re.search(r".*Warning\b.*", text)[0][:120]))
            lines = ANSI_ESCAPE.sub("", text).split("\n")
            if (any(PROGRESS_BAR.match(a) and PROGRESS_BAR.match(b) for a, b in zip(lines, lines[1:]))
                    or any(len(re.findall(r"\d+/\d+ [━─]", line)) > 1 for line in lines)):
                found.append((index, "a progress bar printed twice"))
    return found
