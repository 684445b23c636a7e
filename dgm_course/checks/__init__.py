"""Exercise checks: each runs a learner's answer on cases with known answers and says
what is wrong with a wrong one. One module per chapter (`ch00`, `ch01`, ...).

A check either prints a line starting with "✅" or raises `ExerciseError` whose message
names the exercise, the mistake it recognised and a hint. `NotImplementedError` from an
exercise that has not been done yet passes through unchanged.
"""


class ExerciseError(Exception):
    """Raised by a check when an answer is wrong; the message says what is wrong."""


def passed(message):
    """Prints the success line of a check."""
    print(f"✅ {message}")


def fail(exercise, problem, hint=""):
    """Raises `ExerciseError` for `exercise` ("Exercise 2") with a problem and a hint."""
    text = f"{exercise}: {problem}"
    if hint:
        text += f"\nHint: {hint}"
    raise ExerciseError(text)


__all__ = ["ExerciseError", "fail", "passed"]
