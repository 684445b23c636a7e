"""The results table of notebook 10 (dgm_course.classification_results) and the one command
that reproduces it (benchmarks/generative_classification.py --quick)."""

import subprocess
import sys
from pathlib import Path

import pytest

from dgm_course.classification_results import (
    KEYS,
    PUBLISHED,
    Measured,
    results_rows,
    results_table,
)

ROOT = Path(__file__).resolve().parent.parent


def test_published_figures_are_the_papers():
    # Salimans et al. 2016: 93 errors in 10,000 test images; Kingma et al. 2014: 3.33% error.
    assert PUBLISHED["semi_supervised_gan/mnist"].accuracy == pytest.approx(0.9907)
    assert PUBLISHED["m1_m2/mnist"].accuracy == pytest.approx(0.9667)
    assert PUBLISHED["supervised/mnist"].accuracy == pytest.approx(0.857)
    assert PUBLISHED["supervised/fashion_mnist"].accuracy == pytest.approx(0.713)
    assert all(published.labels == 100 for published in PUBLISHED.values())
    assert set(PUBLISHED) <= set(KEYS)


def test_rows_follow_the_table_order_and_skip_what_nobody_has():
    rows = results_rows({"cnn/mnist": Measured(0.98, 60_000),
                         "semi_supervised_gan/mnist": Measured(0.975, 100)})
    assert [row.method for row in rows][:3] == ["semi-supervised GAN, feature matching",
                                                "M1+M2 (semi-supervised VAE)",
                                                "supervised, same network and labels"]
    assert rows[0].measured.accuracy == 0.975 and rows[0].published.accuracy == 0.9907
    assert rows[1].measured is None  # M1+M2 is published only.
    assert rows[-1].method == "discriminative CNN" and rows[-1].published is None
    assert len(rows) == len(PUBLISHED) + 1  # Bayes, augmentation... were not measured.


def test_table_prints_measured_and_published_side_by_side():
    table = results_table({"semi_supervised_gan/mnist": Measured(0.98123, 100),
                           "supervised/fashion_mnist": Measured(0.7, 100),
                           "bayes_elbo/mnist": Measured(0.9831, 60_000)})
    lines = table.splitlines()
    assert lines[0].startswith("| method | dataset | labels | this run | published")
    assert ("| semi-supervised GAN, feature matching | MNIST | 100 | 98.12% | 99.07% | "
            "Salimans et al. 2016 |") in lines
    assert "| M1+M2 (semi-supervised VAE) | MNIST | 100 | — | 96.67% | Kingma et al. 2014, M1+M2 |" \
        in lines
    assert "| Bayes classifier, conditional VAE, ELBO | MNIST | 60,000 | 98.31% | — | — |" in lines
    assert len(lines) == 2 + len(PUBLISHED) + 1


def test_table_says_when_the_run_had_other_labels_than_the_paper():
    table = results_table({"supervised/mnist": Measured(0.5, 20)})
    assert "| 20 (paper: 100) | 50.00% | 85.70% |" in table


@pytest.mark.parametrize("measured, error, match", [
    ([("cnn/mnist", 0.9)], TypeError, "must be a dict"),
    ({"ssgan": Measured(0.9, 100)}, ValueError, "Unknown result 'ssgan'"),
    ({"cnn/mnist": 0.98}, TypeError, "must be a Measured"),
    ({"cnn/mnist": Measured(98.1, 100)}, ValueError, "not 98.12"),
    ({"cnn/mnist": Measured(float("nan"), 100)}, ValueError, "share in \\[0, 1\\]"),
    ({"cnn/mnist": Measured(0.9, 0)}, ValueError, "labels"),
])
def test_bad_measurements_are_refused(measured, error, match):
    with pytest.raises(error, match=match):
        results_table(measured)


@pytest.mark.slow
def test_benchmark_quick_prints_the_table():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "generative_classification.py"), "--quick"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| method | dataset | labels | this run | published | source |" in result.stdout
    for method in ("semi-supervised GAN, feature matching",
                   "Bayes classifier, conditional VAE, ELBO", "discriminative CNN",
                   "CNN on conditional-GAN images only (CAS)"):
        assert f"| {method} |" in result.stdout
