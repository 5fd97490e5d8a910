"""Sphinx configuration of gradcheck's docs.

Build them with ``gradcheck docs`` (gradcheck/docs.py): it computes the claim
pages, plots and tables first and runs Sphinx on a staged copy of this folder.
Running sphinx-build on this folder directly would miss those pages.
"""

project = "gradcheck"
author = "the gradcheck authors"
copyright = "the gradcheck authors"  # noqa: A001 - Sphinx's name

extensions = ["myst_parser", "sphinx.ext.autodoc", "gradcheck.docs"]
source_suffix = {".md": "markdown"}
# Generated fragments are included into pages, not pages of their own.
exclude_patterns = ["_build", "_generated/*.md", "tutorial"]

# Math is written in Unicode (∇, Σ, ≤): the site needs no MathJax and no network.
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 2

autodoc_member_order = "bysource"
python_maximum_signature_line_length = 88

html_theme = "alabaster"
html_title = "gradcheck"
html_theme_options = {
    "description": "What summing or averaging a loss over a mini-batch does to its gradient, checked.",
    "page_width": "1180px",
    "sidebar_width": "220px",
    "fixed_sidebar": True,
    "show_relbars": True,
}
html_static_path = ["_static"]
html_css_files = ["gradcheck.css"]
html_show_sourcelink = False
html_copy_source = False
