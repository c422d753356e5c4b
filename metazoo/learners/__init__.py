"""Built-in learners, one module per algorithm (variants register extra names in the same module).

Every public module here is imported on first use of the registry, so adding a module registers
its learners; no list to keep in sync.

Internal: not part of metazoo's public API ("Public names" in docs/design.md).
"""
