"""Finds the numbers in a notebook's prose that no output and no code of that notebook backs.

A number in a markdown cell is backed when an output (stream, text/plain, text/html,
text/markdown) or a code cell of the same notebook holds a number that rounds to it, so changing
a result and not the sentence that quotes it leaves a finding. Numbers that are not results (a
setting stated only in prose, a published figure, a constant) are listed with their source in
the notebook's metadata: `"dgm_course_prose": {"fixed": {"99.07%": "Salimans et al. 2016"}}`.
`MASKED` says what is not prose, `IGNORED` which numbers in prose are not results.

Usage:
    python tools/prose.py                # every notebook in notebooks/ and solutions/
    python tools/prose.py NOTEBOOK ...   # exit 1 if any number is unbacked
"""

import argparse
import bisect
import re
import sys
from collections import namedtuple
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import nbtools  # noqa: E402

METADATA_KEY = "dgm_course_prose"
CONTEXT_CHARACTERS = 60

# What is not prose, blanked in this order (code first: code may hold `$`).
MASKED = [re.compile(pattern, re.DOTALL | re.MULTILINE) for pattern in (
    r"^(```|~~~).*?^\1",  # fenced code blocks
    r"(`+).+?\1",  # inline code
    r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)",  # display math, \[ \] and \( \)
    r"(?<![\\$])\$(?![\s$])(?:[^$\\\n]|\\.|\n(?!\s*\n))+?(?<![\s\\])\$",  # inline math
    r"!\[[^\]]*\]\([^)]*\)",  # image embeds
    r"\[[^\]]*\]\([^)]*\.ipynb(?:#[^)]*)?\)",  # links to notebooks, text included: references
    r"(?<=\])\([^)]*\)",  # link targets
    r"<!--.*?-->|</?[A-Za-z][^>\n]*>",  # HTML comments, and tags with their attributes
    r"https?://\S+|www\.\S+",  # raw URLs
)]

# Numbers in prose that are not results; a pattern with a group `hide` blanks only that group.
IGNORED = [re.compile(pattern, flags) for pattern, flags in (
    # References: "notebook 04", "chapters 03 to 05", "Exercise 2", "section 5.2", "table 1".
    ((r"\b(?:notebook|chapter|section|exercise|figure|fig\.|step|cell|table|part|issue|example"
      r"|algorithm|theorem|equation|eq\.|appendix)s?\s+\d+(?:\.\d+)*[a-z]?"
      r"(?:\s*(?:,|and|or|to|–|-|&)\s*\d+(?:\.\d+)*[a-z]?)*"), re.IGNORECASE),
    (r"^#{1,6}\s+\d+", re.MULTILINE),  # a heading's chapter number: "# 04 · DCGAN"
    (r"^\s*\d+[.)](?=\s)", re.MULTILINE),  # ordered-list markers
    # Citation years: "et al. (2016)", "Jordan (2002)", "(Villani, 2009)", "(Song & Ermon, 2019)".
    ((r"(?:et\s+al\.?,?\s*\(?|[A-Z]\w*\s*\(|[(;][^();]*?[A-Z]\w*\.?,?\s+)"
      r"(?P<hide>(?:19[5-9]\d|20[0-3]\d)[a-z]?)\b"), 0),
    # Versions after a product's name: "Python 3.10–3.12", "TensorFlow 2.16", "Keras 3".
    ((r"\b(?:Python|TensorFlow|Keras|NumPy|SciPy|JupyterLab|Jupyter|CUDA|cuDNN|matplotlib"
      r"|nbformat|version)\s+\d+(?:\.\d+)*(?:\s*(?:–|-|to|or|and)\s*\d+(?:\.\d+)*)?"), 0),
    # Names with a number in them: "ResNet-50", "CIFAR-10", "K+1", "float16", "2-D", "1st".
    (r"(?<=[A-Za-z])(?<!\de)[-+]?\d+(?:\.\d+)*|\b\d+-D\b|\b\d+(?:st|nd|rd|th)\b", 0),
    (r"\b\d{4}-\d{2}-\d{2}\b|\barXiv:\S+", 0),  # dates and arXiv identifiers
)]

# A number as written: sign, digits (thousands separators allowed), exponent, suffix, "/n".
NUMBER = re.compile(r"""
    (?<![\w,])(?<!\d\.)(?:(?<=[\s(\[])[-−+])?
    (?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
    (?P<exponent>e[-−+]?\d+|\s?×\s?10[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)?
    (?P<suffix>\s?%|×(?!\d)|x\b|\s(?:minutes|min|million|billion)\b)?
    (?P<denominator>/\d+(?:\.\d+)?)?
    (?!\d|[.,]\d)
""", re.VERBOSE)
# Units that may follow a number unspaced ("19s", "10k"); other letters make a name ("3D").
GLUED_UNITS = re.compile(r"(?:ms|s|k|M|GB|MB|KB|px)\b")
# Words after a number that scale it: "6.6 min" is also backed by 396 (seconds) shown.
SCALES = {"min": 60, "minutes": 60, "million": 1e6, "billion": 1e9}
SHOWN_NUMBER = re.compile(r"\d+(?:[,_]\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+")
SHOWN_KINDS = ("text/plain", "text/html", "text/markdown")
SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺−", "0123456789-+-")

Number = namedtuple("Number", "text value decimals percent scale start end")
Finding = namedtuple("Finding", "cell number context")


def blank(text, pattern):
    """Returns `text` with each match of `pattern` (or of its group `hide`) made spaces.

    Newlines stay, so every other character keeps its position for quoting context.
    """
    def spaces(match):
        start, end = match.span("hide" if "hide" in pattern.groupindex else 0)
        return text[match.start():start] + re.sub(r"[^\n]", " ", text[start:end]) + \
            text[end:match.end()]
    return pattern.sub(spaces, text)


def parse(text):
    """Returns (value, decimals) of a number as written: "1,818" gives (1818.0, 0)."""
    text = text.translate(SUPERSCRIPTS).replace(",", "").replace("_", "").replace(" ", "")
    mantissa, _, exponent = text.replace("×10", "e").partition("e")
    shift = int(exponent) if exponent else 0
    return abs(float(mantissa)) * 10.0**shift, len(mantissa.partition(".")[2]) - shift


def prose_numbers(markdown):
    """Returns the numbers in the prose of a markdown text, as `Number`s.

    A range "16–19" gives two numbers; a fraction "4/8" gives one, with value None.
    """
    prose = markdown
    for pattern in MASKED + IGNORED:
        prose = blank(prose, pattern)
    numbers = []
    for match in NUMBER.finditer(prose):
        before = markdown[max(0, match.start() - 1):match.start()]
        after = markdown[match.end():match.end() + 4]
        if re.match(r"\w", before) or re.match(r"\w", after) and not GLUED_UNITS.match(after):
            continue  # Glued to a name ("3x3", "V100"), which blanking may have cut.
        suffix = (match.group("suffix") or "").strip()
        value = decimals = None
        if not match.group("denominator"):
            value, decimals = parse(match.group("digits") + (match.group("exponent") or ""))
        numbers.append(Number(match.group(0).strip(), value, decimals, suffix == "%",
                              SCALES.get(suffix, 1), match.start(), match.end()))
    return numbers


class Backing:
    """The numbers some texts show, for telling whether a prose number is backed.

    Args:
        texts: the texts (outputs, code) whose numbers back prose numbers.
        fixed: {number as written: where it comes from}, backed whatever the texts say.
    """

    def __init__(self, texts, fixed=None):
        self.text = "\n".join(texts)
        self.values = sorted(parse(shown)[0] for shown in SHOWN_NUMBER.findall(self.text))
        self.fixed = fixed or {}

    def shows(self, value, tolerance):
        """Returns whether a shown number lies within `tolerance` of `value`."""
        tolerance *= 1 + 1e-9
        index = bisect.bisect_left(self.values, value - tolerance)
        return index < len(self.values) and self.values[index] <= value + tolerance

    def backs(self, number):
        """Returns whether `number` is fixed, or is a rounding of a shown number.

        A percentage is also backed by a shown fraction, "6.6 min" by 396 shown, "2.2 million"
        by 2,238,588, and a fraction by itself shown as written or by both its parts.
        """
        if number.text in self.fixed:
            return True
        if number.value is None:
            shown = re.escape(number.text.lstrip("+-−"))
            return bool(re.search(rf"(?<![\d.]){shown}(?![\d.])", self.text)) or all(
                self.backs(Number(part, *parse(part), False, 1, 0, 0))
                for part in number.text.split("/"))
        tolerance = 0.5 * 10.0**-number.decimals
        return (self.shows(number.value, tolerance)
                or number.percent and self.shows(number.value / 100, tolerance / 100)
                or self.shows(number.value * number.scale, tolerance * number.scale))


def fixed_numbers(notebook):
    """Returns the notebook's fixed numbers, {number as written: where it comes from}.

    Raises:
        ValueError: if the metadata is not a mapping of numbers to non-empty reasons.
    """
    fixed = notebook.metadata.get(METADATA_KEY, {})
    fixed = fixed.get("fixed", {}) if isinstance(fixed, dict) else fixed
    example = '{"fixed": {"99.07%": "Salimans et al. 2016, Table 2"}}'
    if not isinstance(fixed, dict):
        raise ValueError(f"metadata {METADATA_KEY} holds {fixed!r}; write {example}.")
    for number, reason in fixed.items():
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"metadata {METADATA_KEY}.fixed[{number!r}] is {reason!r}; say "
                             f"where the number comes from, as in {example}.")
    return fixed


def output_texts(notebook):
    """Returns the text of every output of a notebook (not images; HTML tags removed)."""
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            texts.append(output.get("text", ""))
            texts += [re.sub(r"<[^>]*>", " ", str(data[kind])) for kind in SHOWN_KINDS
                      if kind in data]
    return texts


def unbacked_numbers(notebook):
    """Returns a `Finding` for every number in the prose that the notebook does not back.

    Args:
        notebook: an nbformat notebook.

    Returns:
        A list of `Finding(cell, number, context)`: the markdown cell's index, the number as
        written and about 60 characters around it. A fixed entry that no longer occurs in
        the prose is a finding too, with `cell` None.
    """
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    backing = Backing(code + output_texts(notebook), fixed_numbers(notebook))
    findings, written = [], set()
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            continue
        for number in prose_numbers(cell.source):
            written.add(number.text)
            if not backing.backs(number):
                findings.append(Finding(index, number.text, context(cell.source, number)))
    findings += [Finding(None, number, f"fixed entry no longer in the prose ({reason})")
                 for number, reason in backing.fixed.items() if number not in written]
    return findings


def context(text, number):
    """Returns about `CONTEXT_CHARACTERS` characters of `text` around a number, on one line."""
    half = CONTEXT_CHARACTERS // 2
    return " ".join(text[max(0, number.start - half):number.end + half].split())


def report(name, findings):
    """Returns the printed report of one notebook's findings."""
    lines = [f"{name}: {len(findings)} unbacked number{'' if len(findings) == 1 else 's'}"]
    for finding in findings:
        where = "metadata" if finding.cell is None else f"cell {finding.cell}"
        lines.append(f"  {where}: {finding.number!r}  ... {finding.context} ...")
    return "\n".join(lines)


def main(argv=None):
    """Prints the unbacked numbers of the given notebooks; returns 1 if there are any."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to check (default: all in notebooks/ and solutions/)")
    paths = parser.parse_args(argv).notebooks or nbtools.notebook_paths(*nbtools.RENDERED_DIRS)
    total = 0
    for path in paths:
        if path.suffix != ".ipynb" or not path.is_file():
            raise ValueError(f"{path} is not a notebook file; pass paths such as "
                             "notebooks/04_dcgan.ipynb, or none for all of them.")
        findings = unbacked_numbers(nbtools.read(path))
        total += len(findings)
        resolved = path.resolve()
        print(report(resolved.relative_to(nbtools.ROOT) if resolved.is_relative_to(nbtools.ROOT)
                     else path, findings))
    print(f"{total} unbacked numbers in {len(paths)} notebooks.")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
