"""Build the compiled kernels.

Metadata lives in pyproject.toml; this file only lists the extension modules and
the Cython compiler directives, in one place.  Set ``RNNFAST_DEBUG_CYTHON=1`` at
build time to turn bounds, wraparound and initialisation checks on (slower;
for debugging memory errors; division stays C's, so results do not change)::

    RNNFAST_DEBUG_CYTHON=1 pip install -v .

On x86-64 Linux with glibc's vector math library (libmvec), the elementwise
loops (tanh, exp) are vectorised through it; ``RNNFAST_NO_LIBMVEC=1`` builds
without it.

With LIBXSMM installed (its header ``libxsmm.h`` and library ``libxsmm`` plus
``libxsmmnoblas``, e.g. Debian/Ubuntu's ``libxsmm-dev``), the recurrent
products of the Elman time loops can run in its JIT-compiled kernels (see the
product policy in rnnfast/_blas.pxd).  The build looks under ``/usr`` and
``/usr/local``, or under the prefix ``RNNFAST_LIBXSMM=/path`` names;
``RNNFAST_NO_LIBXSMM=1`` builds without it.
"""

import os
import platform
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name):
    return os.environ.get(name, "0") not in ("", "0")


DEBUG = _flag("RNNFAST_DEBUG_CYTHON")


def _libmvec_available():
    """glibc's libmvec can be linked (x86-64 Linux with the C library's dev files)."""
    if _flag("RNNFAST_NO_LIBMVEC") or not sys.platform.startswith("linux"):
        return False
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    dirs = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64",
            "/usr/lib", "/lib"]
    return any(os.path.exists(os.path.join(d, "libmvec.so")) for d in dirs)


def _libxsmm_location():
    """(include dir, library dir) of an installed LIBXSMM, or None."""
    if _flag("RNNFAST_NO_LIBXSMM") or sys.platform == "win32":
        return None
    prefix = os.environ.get("RNNFAST_LIBXSMM", "")
    for root in ([prefix] if prefix else ["/usr", "/usr/local"]):
        include = os.path.join(root, "include")
        if not os.path.exists(os.path.join(include, "libxsmm.h")):
            continue
        for sub in ("lib", "lib64", os.path.join("lib", "x86_64-linux-gnu")):
            lib = os.path.join(root, sub)
            found = {name: any(os.path.exists(os.path.join(lib, name + ext))
                               for ext in (".so", ".a"))
                     for name in ("libxsmm", "libxsmmnoblas")}
            if all(found.values()):
                return include, lib
    if prefix:
        raise SystemExit(f"RNNFAST_LIBXSMM={prefix}: no include/libxsmm.h with "
                         "libxsmm and libxsmmnoblas under it")
    return None


macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
libraries = []
if sys.platform.startswith("linux"):
    libraries.append("dl")      # dlopen, to call NumPy's own BLAS (_blas_numpy.h)
# -fno-math-errno lets exp() vectorise (nothing here reads errno); it changes no result.
compile_args = [] if sys.platform == "win32" else ["-fno-math-errno"]
if _libmvec_available():
    macros.append(("RNNFAST_USE_LIBMVEC", "1"))
    libraries.append("mvec")

# LIBXSMM: JIT-compiled small GEMM kernels for the recurrent products.  It wants
# BLAS symbols for its fallbacks: libxsmmnoblas provides stubs, so that no
# second BLAS is loaded next to NumPy's.  Its symbols stay inside the extension.
kernel_macros, kernel_libraries = list(macros), list(libraries)
if sys.platform != "win32":
    kernel_libraries.append("pthread")      # the thread team of the time loops (_team.h)
kernel_include_dirs, kernel_library_dirs, kernel_link_args = [np.get_include(), "rnnfast"], [], []
LIBXSMM = _libxsmm_location()
if LIBXSMM is not None:
    kernel_macros.append(("RNNFAST_HAVE_LIBXSMM", "1"))
    if LIBXSMM[0] != "/usr/include":        # the compiler's own; never ahead of it
        kernel_include_dirs.append(LIBXSMM[0])
    kernel_library_dirs.append(LIBXSMM[1])
    kernel_libraries += ["xsmm", "xsmmnoblas", "pthread", "rt", "m"]
    if sys.platform.startswith("linux"):
        kernel_link_args.append("-Wl,--exclude-libs,ALL")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    # C division in every build: IEEE results (0/0 is NaN, x/0 is inf, as in NumPy
    # and torch) rather than Python's ZeroDivisionError, so the debug build
    # computes what the release build does.
    "cdivision": True,
    "embedsignature": True,
    "autotestdict": False,      # no doctest dict (__test__): nothing here runs doctests
}

# rnnfast._kernels is one extension built from the include files of
# rnnfast/_kernel_src/ (see CONTRIBUTING.md); listed here so that editing one
# rebuilds the extension.
KERNEL_INCLUDES = sorted(os.path.join("rnnfast", "_kernel_src", name)
                         for name in os.listdir(os.path.join("rnnfast", "_kernel_src"))
                         if name.endswith(".pxi"))

extensions = [
    Extension("rnnfast._kernels", ["rnnfast/_kernels.pyx"],
              include_dirs=kernel_include_dirs, library_dirs=kernel_library_dirs,
              define_macros=kernel_macros, libraries=kernel_libraries,
              extra_compile_args=compile_args, extra_link_args=kernel_link_args,
              depends=KERNEL_INCLUDES + ["rnnfast/_vecmath.h", "rnnfast/_vecmath_impl.h",
                                         "rnnfast/_blas.pxd", "rnnfast/_blas_numpy.h",
                                         "rnnfast/_xsmm.h", "rnnfast/_team.h"]),
    Extension("rnnfast._updates", ["rnnfast/_updates.pyx"], extra_compile_args=compile_args),
    # the benchmark's FMA peak (python -m rnnfast bench): each ISA's loop has its own
    # target attribute in _peak.h, so no -march flag is needed
    Extension("rnnfast._peak", ["rnnfast/_peak.pyx"], include_dirs=["rnnfast"],
              depends=["rnnfast/_peak.h"]),
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
