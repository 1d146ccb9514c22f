"""Sphinx configuration of tensorlite's documentation site.

Build it from the repository's root (``pip install -e ".[docs]"`` first):

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Pages are MyST Markdown; the API reference is autodoc reading the docstrings (napoleon for their
sections). The guide's output blocks are written by ``scripts/make_docs_outputs.py`` and checked
by ``tests/test_docs.py``: an ``output`` block is what the Python block above it prints, a ``timing``
block what it printed when it measured time, a ``sample`` block text sampled from a model, a ``pytb`` block the
error it raises.
"""

from __future__ import annotations

import tensorlite

project = "tensorlite"
author = "the tensorlite authors"
copyright = "the tensorlite authors"
release = version = tensorlite.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_copybutton",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "description"  # type hints in the parameter list, signatures stay short
autodoc_typehints_format = "short"
autodoc_class_signature = "separated"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"tensorlite {release}"
html_static_path = ["_static"]
html_css_files = ["output.css"]

# The guide's outputs are not code: the copy button skips them, and the prompt of console blocks.
copybutton_selector = ("div:not(.highlight-output):not(.highlight-timing):not(.highlight-sample):not(.highlight-pytb)"
                       " > div.highlight > pre")
copybutton_prompt_text = "$ "


def setup(app):
    from pygments.lexers.special import TextLexer

    app.add_lexer("output", TextLexer)  # what a guide block printed: shown as plain text, styled apart
    app.add_lexer("timing", TextLexer)  # the same for blocks that measure time
    app.add_lexer("sample", TextLexer)  # and for text sampled from a model
