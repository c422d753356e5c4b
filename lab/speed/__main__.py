"""``python -m benchmarks.speedlab``: see :mod:`benchmarks.speedlab.cli`."""

from benchmarks.speedlab.cli import main

raise SystemExit(main())
