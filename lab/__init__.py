"""Benchmarks of metazoo itself, run from a checkout: ``python -m benchmarks.speedlab``, the scripts."""
