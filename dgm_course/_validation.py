"""Input checks shared by every helper: each error says what was passed, what was
expected and how to fix it (STYLE.md rule 8). Not part of the learner-facing API."""

import numbers

import numpy as np


def describe(value):
    """A short description of `value` for an error message: type, and shape/dtype for arrays."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def require_array(value, name, *, ndim=None, dtype_kinds=None, fix=""):
    """Returns `value` as a NumPy array, or raises a clear TypeError/ValueError.

    Args:
        value: what the caller passed.
        name: the argument's name, used in the message.
        ndim: an int or a tuple of allowed numbers of dimensions, or None for any.
        dtype_kinds: NumPy dtype kinds allowed ("u" unsigned int, "i" int, "f" float,
            "b" bool), or None for any numeric kind.
        fix: a sentence telling the caller how to fix a wrong value.
    """
    try:
        array = np.asarray(value)
    except Exception as error:  # A ragged list, for example.
        raise TypeError(
            f"`{name}` must be an array; got {describe(value)} that NumPy cannot convert "
            f"({error}). {fix}".strip()
        ) from None
    allowed_kinds = dtype_kinds or "uifb"
    if array.dtype.kind not in allowed_kinds:
        raise TypeError(
            f"`{name}` must have a dtype of kind {sorted(allowed_kinds)} "
            f"(u=unsigned int, i=int, f=float, b=bool); got {describe(value)}. {fix}".strip()
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            raise ValueError(
                f"`{name}` must have {' or '.join(map(str, allowed))} dimensions; "
                f"got {describe(array)}. {fix}".strip()
            )
    return array


def require_int(value, name, *, minimum=None, maximum=None):
    """Returns `value` as an int, or raises a clear TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer; got {describe(value)}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be at least {minimum}; got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be at most {maximum}; got {value}.")
    return value


def require_fraction(value, name, *, low=0.0, high=1.0):
    """Returns `value` as a float strictly between `low` and `high`, or raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number; got {describe(value)}.")
    if not low < float(value) < high:
        raise ValueError(f"`{name}` must lie strictly between {low} and {high}; got {value}.")
    return float(value)


def require_choice(value, name, choices):
    """Returns `value` if it is one of `choices`, or raises a ValueError listing them."""
    if value not in choices:
        listed = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"`{name}` must be one of {listed}; got {describe(value)}.")
    return value


def require_labels(labels, n_images, *, fix):
    """Returns `labels` as an int64 (N,) array with one label per image, or raises.

    Args:
        labels: integer class labels.
        n_images: how many images they label.
        fix: how to fix a wrong count, e.g. "pass y_train[:16] with x_train[:16]".
    """
    labels = require_array(labels, "labels", ndim=1, dtype_kinds="ui")
    if len(labels) != n_images:
        raise ValueError(
            f"`labels` has {len(labels)} entries but `images` has {n_images}; pass one "
            f"label per image: {fix}."
        )
    return labels.astype(np.int64)
