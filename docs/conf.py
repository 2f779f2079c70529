"""Sphinx configuration of rnnfast's documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` after
``pip install -e ".[docs]"``. The build runs offline: links into other projects' documentation
come from inventories on this machine (Python's, when the python3-doc package is installed)
and from the small inventories in ``_inventories/`` (the NumPy and PyTorch names these pages
refer to).
"""

import os
import sys
import zlib
from pathlib import Path

import rnnfast

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))               # _ext, the local extensions

project = "rnnfast"
author = "the rnnfast developers"
copyright = "the rnnfast developers"
version = release = rnnfast.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",      # MathJax served from the built site: math renders offline
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_inventories", "examples/README.rst", "**/README.md"]
templates_path = ["_templates"]
html_static_path = ["_static"]

# -- MyST: Markdown pages -----------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- autodoc and numpydoc -----------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"            # the numpydoc sections give the types
numpydoc_show_class_members = False   # each class page lists its members through autodoc
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = True
numpydoc_xref_ignore = {"or", "of", "optional", "default", "shape", "dtype", "array",
                        "like", "array-like", "None", "callable", "int", "float", "bool",
                        "str", "dict", "list", "tuple", "sequence", "iterable", "path-like",
                        "the", "same", "as", "a", "an", "each", "any"}
numpydoc_xref_aliases = {
    "ndarray": "numpy.ndarray",
    "Tensor": "torch.Tensor",
    "RNNModel": "rnnfast.RNNModel",
    "ForwardCache": "rnnfast.ForwardCache",
    "Optimizer": "rnnfast.optim.Optimizer",
}
# Every public docstring has these sections complete; a missing or mis-ordered one is a
# build warning, and the build treats warnings as errors (-W).
numpydoc_validation_checks = {"all", "ES01", "EX01", "SA01", "SA04", "RT02", "GL08", "PR09",
                              "RT05", "SS05", "SS06", "GL01", "GL02", "YD01"}
numpydoc_validation_exclude = {
    r"\.__init__$", r"\.__repr__$", r"\.__len__$", r"\.__getitem__$", r"\.__iter__$",
    r"\.__call__$", r"\.__enter__$", r"\.__exit__$",
}

# -- sphinx-gallery: the executed examples -------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "min_reported_time": 1,
    "matplotlib_animations": False,
    "reference_url": {"rnnfast": None},
    "within_subsection_order": "FileNameSortKey",
}
os.environ.setdefault("MPLBACKEND", "Agg")

# -- intersphinx, offline ------------------------------------------------------------------


def _inventory(name):
    """Compile ``_inventories/<name>.txt`` (lines ``object domain:role page``) into the binary
    inventory format intersphinx reads; return its path."""
    lines = []
    for line in (HERE / "_inventories" / f"{name}.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            obj, role, page = line.split()
            lines.append(f"{obj} {role} 1 {page} -\n")
    out = HERE / "_build" / "inventories" / f"{name}.inv"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Sphinx inventory version 2\n# Project: {name}\n# Version: \n"
              "# The remainder of this file is compressed using zlib.\n").encode()
    out.write_bytes(header + zlib.compress("".join(lines).encode()))
    return str(out)


intersphinx_mapping = {
    "numpy": ("https://numpy.org/doc/stable/", _inventory("numpy")),
    "torch": ("https://docs.pytorch.org/docs/stable/",
              _inventory("torch")),
    # numpydoc (1.11 and later) links "bool", "iterable" and "sequence" in parameter types
    # to Python's documentation; the full inventory when the system has Python's docs
    "python": ("https://docs.python.org/3/", _inventory("python")),
}
for _python_inventory in sorted(Path("/usr/share/doc").glob("python3*/html/objects.inv")):
    intersphinx_mapping["python"] = ("https://docs.python.org/3/", str(_python_inventory))
intersphinx_timeout = 1

# -- HTML ----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"rnnfast {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
html_show_sourcelink = False
