"""Sphinx configuration of the skinfluence documentation (``make docs``).

The site is built with warnings as errors (``-W``): a broken docstring, a
dangling cross-reference or a failing gallery example fails the build.

Intersphinx links to scikit-learn, NumPy, SciPy and pandas need their
``objects.inv`` from the web. CI has no network beyond the package registries,
so the mapping is only used when ``SKINFLUENCE_DOCS_INTERSPHINX=1`` is set
(``make docs-online``); offline, references to those projects render as plain
code instead of links, and the build neither waits on the network nor warns.

``SKINFLUENCE_QUICK=1`` runs the gallery in the examples' quick mode (smaller
data, fewer refits): what CI does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import skinfluence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the examples import skinfluence from the checkout

project = "skinfluence"
author = "the skinfluence developers"
copyright = "2026, the skinfluence developers"
version = release = skinfluence.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb"]
templates_path: list[str] = []

# -- API reference -----------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections say it in words
numpydoc_show_class_members = False  # autosummary lists the methods
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False



def _skip_scikit_learn_members(app, what, name, obj, skip, options):
    """Leave out what scikit-learn adds to every estimator (``set_*_request``,
    ``get_params``, ``score``, ...): documented there, and their docstrings
    refer to scikit-learn's own glossary, unresolvable here."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    module = getattr(obj, "__module__", None) or ""
    if module.startswith("sklearn."):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_scikit_learn_members)


# benchmarks.md is generated (benchmarks/make_tables.py) with ####-level
# case headings under ## sections
suppress_warnings = ["myst.header"]

# -- Markdown pages (the user guide) ------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 4  # the guide links to its own sections by slug

# -- intersphinx: only with network (see the module docstring) ---------------
if os.environ.get("SKINFLUENCE_DOCS_INTERSPHINX") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "scipy": ("https://docs.scipy.org/doc/scipy/", None),
        "pandas": ("https://pandas.pydata.org/docs/", None),
        "sklearn": ("https://scikit-learn.org/stable/", None),
        "matplotlib": ("https://matplotlib.org/stable/", None),
    }
else:
    intersphinx_mapping = {}

# -- gallery -----------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # every plot_*.py is executed
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "show_memory": False,
    "plot_gallery": "True",
}

# -- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skinfluence {release}"
html_theme_options = {
    "navbar_end": ["navbar-icon-links"],
    "secondary_sidebar_items": ["page-toc"],
    "show_toc_level": 2,
}
html_static_path: list[str] = []
html_show_sourcelink = False
