"""The authoring tools behind the stored outputs: what a stamp depends on (tools/freshness.py),
how outputs are cleaned (tools/outputs.py), and that a render keeps prose edited meanwhile."""

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tools import freshness, nbtools, outputs, render


def _notebook(*sources):
    return new_notebook(cells=[new_code_cell(source) for source in sources])


def _stamped(notebook):
    notebook.metadata["dgm_course"] = {"profile": nbtools.RENDER_PROFILE,
                                       **freshness.fingerprint(notebook)}
    return notebook


def test_dependencies_follow_imports_through_the_package():
    notebook = _notebook('import sys\nif "google.colab" in sys.modules:\n    %pip install x',
                         "from dgm_course import gan")
    dependencies = freshness.package_dependencies(notebook)
    # gan imports losses and accelerate; every import loads the package's __init__.py.
    for path in ("dgm_course/__init__.py", "dgm_course/gan.py", "dgm_course/losses.py",
                 "dgm_course/accelerate.py"):
        assert path in dependencies
    assert "dgm_course/vae.py" not in dependencies


def test_dependencies_of_names_and_subpackages():
    notebook = _notebook("from dgm_course.environment import set_seed",
                         "def f():\n    from dgm_course.checks import ch00\n    return ch00")
    dependencies = freshness.package_dependencies(notebook)
    assert {"dgm_course/environment.py", "dgm_course/checks/__init__.py",
            "dgm_course/checks/ch00.py"} <= set(dependencies)
    assert not any(path.endswith("set_seed.py") for path in dependencies)


def test_a_changed_module_makes_the_outputs_stale():
    notebook = _stamped(_notebook("from dgm_course import gan"))
    assert freshness.stale_reasons(notebook) == []
    notebook.metadata["dgm_course"]["modules"]["dgm_course/losses.py"] = "0" * 64
    assert freshness.stale_reasons(notebook) == ["dgm_course/losses.py changed"]


def test_changed_code_a_new_import_and_an_old_stamp_are_stale():
    notebook = _stamped(_notebook("from dgm_course import toy"))
    notebook.cells[0].source += "\nfrom dgm_course import vae"
    reasons = freshness.stale_reasons(notebook)
    assert "its code cells changed" in reasons
    assert "it now imports dgm_course/vae.py, which the stamp does not record" in reasons
    del notebook.metadata["dgm_course"]["modules"]
    assert freshness.stale_reasons(notebook)[-1].startswith("its stamp records no package modules")
    assert freshness.stale_reasons(new_notebook()) == ["it was never rendered"]


def test_unparsable_code_is_named():
    with pytest.raises(ValueError, match="code cell 0 is not valid Python"):
        freshness.package_dependencies(_notebook("def f(:"))


def test_clean_outputs_drops_tensorflow_logs_and_keeps_final_states():
    logs = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795644218.667628   25876 port.cc:153] oneDNN custom operations are on.\n"
    )
    cell = new_code_cell("import tensorflow")
    cell.outputs = [
        new_output("stream", name="stderr", text=logs + "UserWarning: a real warning\n"),
        new_output("stream", name="stderr", text=logs),
        new_output("stream", name="stdout", text="I0000 00:00:1.2   1 a.cc:1] stdout stays\n"),
        new_output("stream", name="stderr", text="\rbar  10%"),
        new_output("stream", name="stderr", text="\rbar  50%" + logs.splitlines()[1] + "\n"),
        new_output("stream", name="stderr", text="\rbar 100%\nnext\n"),
    ]
    outputs.clean_outputs(new_notebook(cells=[cell]))
    assert [output.text for output in cell.outputs] == [
        "UserWarning: a real warning\n", "I0000 00:00:1.2   1 a.cc:1] stdout stays\n",
        "bar 100%\nnext\n",
    ]


def test_clean_outputs_removes_ansi_codes_and_progress_bars_printed_twice():
    bar = "\x1b[1m599/599\x1b[0m \x1b[32m━━━━\x1b[0m \x1b[1m{}\x1b[0m 70ms/step - loss: 0.5"
    cell = new_code_cell("model.fit(x)")
    cell.outputs = [
        new_output("stream", name="stdout", text="Epoch 1/2\n" + bar.format("0s")),
        new_output("stream", name="stderr", text="I0000 00:00:1.2   1 a.cc:1] log\n"),
        # Stored before carriage returns were kept: the final bar follows the unfinished one.
        new_output("stream", name="stdout", text=bar.format("48s") + "\nEpoch 2/2\n"),
        new_output("display_data", data={"text/plain": "\x1b[1mModel: \"g\"\x1b[0m"}),
    ]
    notebook = new_notebook(cells=[cell])
    kinds = {what for _, what in outputs.noise(notebook)}
    assert {"an ANSI escape code", "a TensorFlow log line"} <= kinds
    without_log = new_notebook(cells=[new_code_cell("model.fit(x)")])
    without_log.cells[0].outputs = [cell.outputs[0], cell.outputs[2]]
    assert (0, "a progress bar printed twice") in outputs.noise(without_log)
    outputs.clean_outputs(notebook)
    assert cell.outputs[0].text == "Epoch 1/2\n599/599 ━━━━ 48s 70ms/step - loss: 0.5\nEpoch 2/2\n"
    assert cell.outputs[1].data["text/plain"] == 'Model: "g"'
    assert outputs.noise(notebook) == []


def test_noise_finds_warnings():
    cell = new_code_cell("f()")
    cell.outputs = [new_output("stream", name="stderr", text="x.py:3: UserWarning: careful\n")]
    assert outputs.noise(new_notebook(cells=[cell])) == [(0, "a warning: x.py:3: UserWarning: careful")]


def test_a_render_keeps_prose_edited_while_it_ran(tmp_path):
    path = tmp_path / "n.ipynb"
    on_disk = new_notebook(cells=[new_markdown_cell("new prose"), new_code_cell("1 + 1")])
    on_disk.metadata["dgm_course_prose"] = {"fixed": {"7": "why"}}
    nbtools.write(on_disk, path)
    executed = new_notebook(cells=[new_markdown_cell("old prose"), new_code_cell("1 + 1")])
    executed.cells[1].outputs = [new_output("execute_result", data={"text/plain": "2"})]
    executed.metadata["dgm_course"] = {"profile": "cpu"}
    render._keep_edits_made_while_running(executed, path)
    assert executed.cells[0].source == "new prose"
    assert executed.cells[1].outputs[0].data["text/plain"] == "2"
    assert executed.metadata["dgm_course_prose"] == {"fixed": {"7": "why"}}
    on_disk.cells[1].source = "1 + 2"  # Code edited while it ran: the outputs would not fit.
    nbtools.write(on_disk, path)
    with pytest.raises(ValueError, match="code cells changed while it was rendering"):
        render._keep_edits_made_while_running(executed, path)
