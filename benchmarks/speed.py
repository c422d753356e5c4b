"""``python benchmarks/speed.py [--quick] [--device cuda] ...``: the same as ``metazoo speed``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from metazoo.cli.main import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["speed", *sys.argv[1:]]))
