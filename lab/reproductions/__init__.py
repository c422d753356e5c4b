"""Reproduction drivers (``python lab/reproductions/<script>.py``) and their configs
(``lab/reproductions/configs``): short runs against a paper's numbers, each writing
``benchmarks/results/reproduction-*.json``."""
