"""Smoke tests of benchmarks/training_speed.py in a tiny configuration (--quick): a row per
model, a column per setting, a number or a reason in every cell. No timing is asserted: the
numbers are timings and vary from run to run."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "training_speed.py"
_spec = importlib.util.spec_from_file_location("training_speed", SCRIPT)
training_speed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(training_speed)


def table_rows(text):
    """The Markdown table's rows in `text` as lists of cells, header first (no separator)."""
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows if not row[0].startswith("---")]


def test_table_has_a_row_per_model_and_a_column_per_setting():
    args = training_speed.parse([])
    results = [{"model": name, "setting": setting, "policy": "mixed_bfloat16", "gpus": [],
                "seconds": 1.0, "images_per_second": 1234.5, "rounds": [1000.0, 1234.5]}
               for name in training_speed.MODELS for setting in training_speed.SETTINGS]
    results[4] = {"model": "dcgan", "setting": "xla", "gpus": [], "seconds": 1.0,
                  "note": "refused: ValueError: no XLA kernel"}
    facts = training_speed.machine(results, (0.5, 0.7))
    text = training_speed.markdown(facts, results, args)
    rows = table_rows(text)
    assert rows[0] == ["model", "width", *training_speed.SETTINGS.values()]
    assert [row[0] for row in rows[1:]] == list(training_speed.MODELS)
    assert rows[1][2:] == ["1,234", "1,234", "1,234", "1,234", "refused [1]", "1,234"]
    assert "[1] dcgan, XLA: refused: ValueError: no XLA kernel" in text
    for fact in ("CPU:", "cores", "GPUs: none", "TensorFlow", "Keras", facts["date"]):
        assert fact in text


@pytest.mark.slow
def test_quick_run_prints_and_saves_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(training_speed, "ROOT", tmp_path)  # --save writes under tmp_path.
    assert training_speed.main(["--quick", "--models", "dcgan",
                                "--settings", "spe8,replicas2", "--save"]) == 0
    printed = capsys.readouterr().out
    rows = table_rows(printed)
    assert rows[0] == ["model", "width", "steps_per_execution=8", "2 replicas"]
    assert rows[1][:2] == ["dcgan", "4"] and len(rows) == 2
    assert all(float(cell.replace(",", "")) > 0 for cell in rows[1][2:]), printed
    saved = json.loads((tmp_path / "benchmarks/results/training_speed_cpu.json").read_text())
    assert [r["setting"] for r in saved["results"]] == ["spe8", "replicas2"]
    assert all(len(r["rounds"]) == 1 for r in saved["results"])
    markdown = (tmp_path / "benchmarks/results/training_speed_cpu.md").read_text()
    assert markdown in printed


@pytest.mark.parametrize("name", training_speed.MODELS)
def test_every_model_takes_eager_steps(name):
    rates = training_speed.measure(name, "eager", training_speed.parse(["--quick"]), None)
    assert len(rates) == 1 and math.isfinite(rates[0]) and rates[0] > 0


def test_a_failing_cell_becomes_a_note(monkeypatch, capsys):
    def refuse(*args):
        raise ValueError("XLA cannot compile this op\nmore detail")

    monkeypatch.setattr(training_speed, "measure", refuse)
    training_speed.worker(training_speed.parse(["--worker", "--models", "vae,cvae",
                                                "--settings", "xla", "--quick"]))
    lines = capsys.readouterr().out.splitlines()
    results = [json.loads(line[len(training_speed.RESULT_TAG):]) for line in lines
               if line.startswith(training_speed.RESULT_TAG)]
    assert [r["model"] for r in results] == ["vae", "cvae"]
    assert results[0]["note"] == "refused: ValueError: XLA cannot compile this op"


def test_unknown_names_are_refused():
    with pytest.raises(SystemExit):
        training_speed.parse(["--models", "dcgan,stylegan"])
