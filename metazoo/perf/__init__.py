"""The speed benchmark behind ``metazoo speed``: peers' task loops against metazoo's executors.

* :mod:`~metazoo.perf.shapes`: the timed problem shapes, synthetic episodes and models;
* :mod:`~metazoo.perf.loops`: the peers' loops (plain PyTorch, ``higher``, learn2learn);
* :mod:`~metazoo.perf.contenders`: every implementation behind one interface;
* :mod:`~metazoo.perf.timing`: warm-up, medians, synchronised timings, peak memory;
* :mod:`~metazoo.perf.runner`: correctness pre-check against float64, interleaved timing rounds;
* :mod:`~metazoo.perf.report`: result file names, targets, Markdown tables.
"""

from metazoo.perf.report import render_markdown, result_stem, write_result
from metazoo.perf.runner import SpeedConfig, run_speed
from metazoo.perf.shapes import SHAPES, SpeedShape

__all__ = [
    "SHAPES",
    "SpeedShape",
    "SpeedConfig",
    "run_speed",
    "write_result",
    "render_markdown",
    "result_stem",
]
