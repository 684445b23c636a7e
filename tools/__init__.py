"""Authoring tools of the course (not installed with the package): generate exercises
from solutions, render notebooks with their outputs, and the checks the tests share."""
