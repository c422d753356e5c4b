"""``lab/records/make_splits.py``: the class-split files shipped in the package are what it produces
(the splits' sizes are checked in the fast tier, ``tests/unit/data/test_omniglot.py``)."""

from __future__ import annotations

import pytest

from lab.records.make_splits import maml_split, vinyals_split
from metazoo.data.omniglot import split_classes


@pytest.mark.usefixtures("omniglot_data")  # skips, or fails in CI, without it
def test_shipped_split_files_are_what_make_splits_produces():
    for name, make in (("vinyals", vinyals_split), ("maml", maml_split)):
        for split, names in make().items():
            assert split_classes(name, split) == names, (name, split)
