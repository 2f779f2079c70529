"""Build the compiled kernels.

Metadata lives in pyproject.toml; this file only lists the extension modules and
the Cython compiler directives, in one place.  Set ``RNNFAST_DEBUG_CYTHON=1`` at
build time to turn bounds, wraparound and initialisation checks on (slower;
for debugging memory errors)::

    RNNFAST_DEBUG_CYTHON=1 pip install -v .
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("RNNFAST_DEBUG_CYTHON", "0") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
}

extensions = [
    Extension("rnnfast._kernels", ["rnnfast/_kernels.pyx"]),
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
