"""Development tools that edit this repository (``python tools/docs.py``); not part of the package."""
