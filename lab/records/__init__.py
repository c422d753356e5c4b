"""Scripts that write files this repository commits: the learning records
(``benchmarks/results/learning-*.json``), the Omniglot class splits shipped in the package, and the
machine paths stripped from result files."""
