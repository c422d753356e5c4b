"""The ``metazoo`` command line: one module per subcommand, each with ``register(subparsers)``.

Internal: not part of metazoo's public API ("Public names" in docs/design.md).
"""
