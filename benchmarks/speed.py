"""``python benchmarks/speed.py [--quick] [--device cuda] ...``: the same as
``python -m benchmarks.speedlab`` (the speed lab; ``--help`` lists its options)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.speedlab.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
