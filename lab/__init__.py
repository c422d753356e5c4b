"""The lab: this project's own code, run from a checkout and never installed with metazoo.

* :mod:`lab.speed`: the speed lab (``python -m lab.speed``) and the speed, profile and lowering scripts;
* :mod:`lab.gpu`: the scripts run on a GPU machine (checks, sessions, paper rows, Triton kernels);
* :mod:`lab.reproductions`: the reproduction drivers and their configs;
* :mod:`lab.docs`: the README and site generators (``python -m lab.docs.generate``), mkdocs hooks;
* :mod:`lab.records`: scripts that write committed files (learning records, splits, path stripping).

What they measure and write is data, kept apart from this code in ``benchmarks/results`` and
``benchmarks/tables``. The lab imports metazoo; metazoo never imports the lab (a test checks both
ways, ``tests/unit/test_lab_boundary.py``).
"""
