"""Measures the course's time budget: the whole test suite in the `smoke` profile
(target: well under 15 minutes on 2 CPU cores) and each notebook in the `cpu` profile
(target: under 10 minutes; notebook 10, whose targets are set for 30 minutes of training on 2
cores, under 30), as recorded by tools/render.py when it last ran them.

Usage:
    python benchmarks/budget.py            # the rendered notebooks' times only
    python benchmarks/budget.py --suite    # also run the whole suite and time it
    python benchmarks/budget.py --fast     # also time the fast tier (pytest -m "not slow" tests)
    python benchmarks/budget.py --fast --suite --save   # and write benchmarks/results/suite_times.md
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import nbtools  # noqa: E402

NOTEBOOK_BUDGET_SECONDS = 600
# Issue 7 sets notebook 10's accuracy targets (semi-supervised GAN, Bayes classifier) for 30 minutes.
LONGER_BUDGETS = {"10_generative_classification.ipynb": 1800}
SUITE_BUDGET_SECONDS = 900
FAST_TIER_BUDGET_SECONDS = 180  # issue 13: the unit tests for contributors, under 3 minutes
RESULTS = nbtools.ROOT / "benchmarks" / "results" / "suite_times.md"


def notebook_table():
    """Returns rows (notebook, profile, seconds, budget, within budget) from the render stamps."""
    rows = []
    for path in nbtools.notebook_paths(*nbtools.RENDERED_DIRS):
        stamp = nbtools.read(path).metadata.get("dgm_course", {})
        seconds = stamp.get("seconds")
        budget = LONGER_BUDGETS.get(path.name, NOTEBOOK_BUDGET_SECONDS)
        ok = seconds is not None and seconds < budget
        rows.append((f"{path.parent.name}/{path.name}", stamp.get("profile", "-"), seconds, budget,
                     ok))
    return rows


def machine():
    """Returns the CPU's model name, whether it has AVX-512 (and bfloat16), and its core count."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    vector = ("AVX-512 with bfloat16" if "avx512_bf16" in flags else
              "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2")
    return f"{model}, {vector}, {os.cpu_count()} cores"


def time_suite(*pytest_args):
    """Runs `python -m pytest -q ARGS` in the smoke profile; returns (seconds, exit code)."""
    env = dict(os.environ, DGM_PROFILE="smoke")
    start = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", "pytest", "-q", *pytest_args], cwd=nbtools.ROOT,
                           env=env)
    return time.perf_counter() - start, code


def save(lines, argv):
    """Writes the timing lines, with the command, the machine and the date, to benchmarks/results/."""
    import datetime

    command = " ".join(["python benchmarks/budget.py", *argv])
    RESULTS.write_text(f"# Test suite times\n\n`{command}` on "
                       f"{datetime.date.today().isoformat()}, {machine()}:\n\n"
                       + "".join(f"- {line}\n" for line in lines), encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", action="store_true", help="also time the whole test suite")
    parser.add_argument("--fast", action="store_true", help='also time the fast tier, -m "not slow"')
    parser.add_argument("--save", action="store_true",
                        help="write the timed figures to benchmarks/results/suite_times.md")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}, Python {platform.python_version()}")
    print(f"{'notebook':45} {'profile':8} {'seconds':>8} {'budget':>7}  within")
    for name, profile, seconds, budget, ok in notebook_table():
        shown = f"{seconds:8.1f}" if seconds is not None else "   never"
        print(f"{name:45} {profile:8} {shown} {budget:7d}  {'yes' if ok else 'NO'}")
    lines, codes = [], []
    for wanted, name, pytest_args, budget in (
            (args.fast, 'fast tier, `python -m pytest -m "not slow" tests`', ("-m", "not slow", "tests"),
             FAST_TIER_BUDGET_SECONDS),
            (args.suite, "whole suite, `python -m pytest`", (), SUITE_BUDGET_SECONDS)):
        if wanted:
            seconds, code = time_suite(*pytest_args)
            verdict = "within" if seconds < budget else "OVER"
            lines.append(f"{name}: {seconds:.0f} s, exit code {code}, {verdict} its {budget} s budget")
            print(lines[-1])
            codes.append(code)
    if args.save and lines:
        save(lines, sys.argv[1:] if argv is None else argv)
        print(f"saved to {RESULTS.relative_to(nbtools.ROOT)}")
    return max(codes, default=0)


if __name__ == "__main__":
    sys.exit(main())
