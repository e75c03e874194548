"""Sphinx configuration of the nemo_jax documentation site (docs/README.md says how to build it).

The pages are MyST Markdown; the API reference is autodoc over the installed package. The build is
strict (``sphinx-build -W``): a warning, a broken link or an unresolved cross-reference fails it.
"""

project = "nemo_jax"
author = "nemo_jax contributors"
copyright = "nemo_jax contributors"  # noqa: A001 (the name Sphinx reads)

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
root_doc = "index"
# docs/README.md is about the site's sources, not a page of it.
exclude_patterns = ["_build", "README.md"]

# Links to a heading of another page ("data.md#the-crop-protocol") resolve, and are checked.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# Docstrings are Google style (Args:, Returns:, Attributes:) with reST inline markup.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"

html_theme = "sphinx_book_theme"
html_title = "nemo_jax"
html_static_path = []
html_theme_options = {"show_toc_level": 2}
