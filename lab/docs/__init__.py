"""The generators of this repository's README and documentation site, which edit this checkout:
``python -m lab.docs.generate [--check]`` rewrites every generated section and page from cards,
presets and the committed results; the paper rows, the task study and the mkdocs hooks live here
because only these pages use them."""
