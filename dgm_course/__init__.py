"""dgm_course: the tested helpers behind the course "Deep Generative Models for Image
Classification". Each module holds one idea; notebooks import from them.

Importing the package is cheap: TensorFlow is imported only by the modules that need it.
"""

from dgm_course.profiles import by_profile, describe_profile, get_profile

__version__ = "0.1.0"

__all__ = ["__version__", "by_profile", "describe_profile", "get_profile"]
