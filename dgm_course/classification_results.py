"""The results table of notebook 10: the accuracies a run measured, beside the published ones.

The notebook and `benchmarks/generative_classification.py` both print their table with
`results_table`, so the two show the same rows, in the same order, formatted the same way.
Explained in notebooks/10_generative_classification.ipynb, section "Results beside the papers".
"""

import dataclasses
import math

from dgm_course._validation import describe, require_int


@dataclasses.dataclass(frozen=True)
class Published:
    """A test accuracy from the literature: `accuracy` in [0, 1] with `labels` labelled
    training images, and where it comes from (`source`)."""

    accuracy: float
    labels: int
    source: str


# Salimans et al. (2016), table 1: 93 +- 6.5 errors in the 10,000 MNIST test images, 100 labels.
# Kingma et al. (2014), table 1: M1+M2 errs on 3.33% of them with 100 labels.
PUBLISHED = {
    "semi_supervised_gan/mnist": Published(1 - 93 / 10_000, 100, "Salimans et al. 2016"),
    "m1_m2/mnist": Published(1 - 0.0333, 100, "Kingma et al. 2014, M1+M2"),
    "supervised/mnist": Published(0.857, 100, "supervised CNN, same 100 labels (quoted)"),
    "supervised/fashion_mnist": Published(0.713, 100, "supervised CNN, same 100 labels (quoted)"),
}

# (key, method, dataset), in the order of the table.
METHODS = (
    ("semi_supervised_gan/mnist", "semi-supervised GAN, feature matching", "MNIST"),
    ("m1_m2/mnist", "M1+M2 (semi-supervised VAE)", "MNIST"),
    ("supervised/mnist", "supervised, same network and labels", "MNIST"),
    ("semi_supervised_gan/fashion_mnist", "semi-supervised GAN, feature matching",
     "Fashion-MNIST"),
    ("supervised/fashion_mnist", "supervised, same network and labels", "Fashion-MNIST"),
    ("bayes_elbo/mnist", "Bayes classifier, conditional VAE, ELBO", "MNIST"),
    ("bayes_iw/mnist", "Bayes classifier, conditional VAE, importance-weighted", "MNIST"),
    ("cnn/mnist", "discriminative CNN", "MNIST"),
    ("augmentation_real/mnist", "CNN on the few real labelled images", "MNIST"),
    ("augmentation_mixed/mnist", "CNN on them + conditional-GAN images", "MNIST"),
    ("cas/mnist", "CNN on conditional-GAN images only (CAS)", "MNIST"),
)
KEYS = tuple(key for key, _, _ in METHODS)


@dataclasses.dataclass(frozen=True)
class Measured:
    """A test accuracy this run measured, with `labels` labelled training images (the
    generated images of the augmentation rows are not counted)."""

    accuracy: float
    labels: int


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table; `measured` or `published` is None where there is none."""

    method: str
    dataset: str
    measured: Measured | None
    published: Published | None


def _check_measured(measured):
    """Returns `measured` as {key: Measured}, or raises a clear error."""
    if not isinstance(measured, dict):
        raise TypeError(f"`measured` must be a dict {{key: Measured(accuracy, labels)}}; got "
                        f"{describe(measured)}. Keys: {', '.join(KEYS)}.")
    checked = {}
    for key, value in measured.items():
        if key not in KEYS:
            raise ValueError(f"Unknown result {key!r}; the table has rows for: "
                             f"{', '.join(KEYS)}.")
        if not isinstance(value, Measured):
            raise TypeError(f"`measured[{key!r}]` must be a Measured(accuracy, labels); got "
                            f"{describe(value)}.")
        accuracy = value.accuracy
        if (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float))
                or not math.isfinite(accuracy) or not 0.0 <= accuracy <= 1.0):
            raise ValueError(f"The accuracy of {key!r} must be a share in [0, 1]; got "
                             f"{describe(accuracy)}. Pass 0.9812, not 98.12.")
        require_int(value.labels, f"measured[{key!r}].labels", minimum=1)
        checked[key] = value
    return checked


def results_rows(measured):
    """The table's rows: every method this run measured or a paper published, in table order.

    Explained in notebooks/10_generative_classification.ipynb, section
    "Results beside the papers".

    Args:
        measured: a dict {key: Measured(accuracy, labels)} with keys from `KEYS`, e.g.
            "semi_supervised_gan/mnist"; methods not run are left out.

    Returns:
        A list of `Row`; methods with neither a measurement nor a published figure are skipped.

    Raises:
        TypeError: if `measured` is no dict or a value no `Measured`.
        ValueError: for an unknown key, an accuracy outside [0, 1] or labels below 1.

    Example:
        >>> rows = results_rows({"semi_supervised_gan/mnist": Measured(0.98, 100)})
        >>> rows[0].published.accuracy
        0.9907
    """
    measured = _check_measured(measured)
    rows = [Row(method, dataset, measured.get(key), PUBLISHED.get(key))
            for key, method, dataset in METHODS]
    return [row for row in rows if row.measured is not None or row.published is not None]


def _percent(value):
    return "—" if value is None else f"{value.accuracy:.2%}"


def results_table(measured):
    """The rows of `results_rows(measured)` as a Markdown table: method, dataset, labelled
    images, this run's test accuracy, the published one and its source ("—" where none).

    Explained in notebooks/10_generative_classification.ipynb, section
    "Results beside the papers".

    Args and Raises: as `results_rows`.

    Returns:
        A str, one line per row after the header.

    Example:
        >>> print(results_table({"cnn/mnist": Measured(0.981, 60_000)}))  # doctest: +SKIP
    """
    lines = ["| method | dataset | labels | this run | published | source |",
             "|---|---|---:|---:|---:|---|"]
    for row in results_rows(measured):
        labels = (row.measured or row.published).labels
        if row.measured and row.published and row.published.labels != row.measured.labels:
            labels = f"{row.measured.labels:,} (paper: {row.published.labels:,})"
        else:
            labels = f"{labels:,}"
        source = row.published.source if row.published else "—"
        lines.append(f"| {row.method} | {row.dataset} | {labels} | {_percent(row.measured)} | "
                     f"{_percent(row.published)} | {source} |")
    return "\n".join(lines)


__all__ = ["KEYS", "METHODS", "PUBLISHED", "Measured", "Published", "Row", "results_rows",
           "results_table"]
