"""Experimental code paths, outside the default path and imported only when asked for.

Nothing here is imported by ``import metazoo`` or by the engine; a module here may import the
engine, never the reverse. Each module says what result would bring it onto the default path.

* :mod:`metazoo.experimental.lowerings`: the ``matmul`` and ``triton`` lowerings of per-task
  convolutions, registered with :func:`metazoo.experimental.taskconv.register_lowering` on import.

Internal: not part of metazoo's public API ("Public names" in docs/design.md).
"""
