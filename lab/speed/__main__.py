"""``python -m lab.speed``: see :mod:`lab.speed.cli`."""

from lab.speed.cli import main

raise SystemExit(main())
