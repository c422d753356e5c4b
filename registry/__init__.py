"""The cards and built-in suites, shipped inside the package as ``metazoo.registry``.

This folder is where cards are edited (``learners/``, ``benchmarks/``) and where the built-in suites
live (``suites/``); ``pyproject.toml`` maps it to ``metazoo.registry`` so that a wheel carries it and
:mod:`metazoo.cards` reads it with ``importlib.resources``, in a checkout or installed anywhere.
"""
