"""How the shipped Omniglot class-split files were produced (``python -m lab.records.make_splits [ROOT]``).

Both procedures are deterministic functions of the sorted list of the 1623 character folders; the
result is frozen into ``metazoo/data/splits/omniglot/<split>/{train,val,test}.txt`` and the sampler
only ever reads those files. A test regenerates them and checks they are unchanged. This is a tool of
the repository (it writes into the checkout), not part of the installed package.

* ``vinyals`` (Vinyals et al. 2016, as shipped by Torchmeta's ``omniglot/{train,val,test}.json`` and
  used by Prototypical Networks): test = the last 423 characters of the sorted evaluation set (from
  ``Gurmukhi/character42`` to ``ULOG``); val = the five background alphabets Armenian, Bengali,
  Early_Aramaic, Hebrew and Mkhedruli_(Georgian) (172 characters); train = the other 1028.
* ``maml`` (Finn et al. 2017, reference code ``data_generator.py``): all 1623 characters shuffled by
  ``random.seed(1); random.shuffle(...)``, then 1100 train, 100 val, 423 test. The reference shuffled
  the order of ``os.listdir`` (filesystem dependent), so its exact list cannot be recovered; we shuffle
  the sorted list with ``random.Random(1)`` instead, which is reproducible everywhere.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from metazoo.data.omniglot import SETS, list_characters

__all__ = ["vinyals_split", "maml_split", "write_splits"]

VINYALS_VAL_ALPHABETS = ("Armenian", "Bengali", "Early_Aramaic", "Hebrew", "Mkhedruli_(Georgian)")
VINYALS_TEST_SIZE = 423
MAML_SIZES = (1100, 100, 423)


def _sets(root: str | None) -> tuple[list[str], list[str]]:
    """Sorted ``alphabet/character`` names of the background and the evaluation set."""
    characters = list_characters(root)
    background = {a for a, _, ps in characters if f"/{SETS[0]}/" in ps[0]}
    names = [f"{a}/{c}" for a, c, _ in characters]
    return [n for n in names if n.split("/")[0] in background], [
        n for n in names if n.split("/")[0] not in background
    ]


def vinyals_split(root: str | None = None) -> dict[str, list[str]]:
    """The Vinyals split: ``{"train": 1028, "val": 172, "test": 423}`` character names."""
    background, evaluation = _sets(root)
    test = evaluation[-VINYALS_TEST_SIZE:]
    val = [n for n in background if n.split("/")[0] in VINYALS_VAL_ALPHABETS]
    train = [n for n in background + evaluation if n not in set(val) | set(test)]
    return {"train": train, "val": val, "test": test}


def maml_split(root: str | None = None) -> dict[str, list[str]]:
    """MAML's split procedure over the sorted characters: 1100 / 100 / 423."""
    background, evaluation = _sets(root)
    names = background + evaluation
    random.Random(1).shuffle(names)
    train, val, _ = MAML_SIZES
    return {"train": names[:train], "val": names[train : train + val], "test": names[train + val :]}


def write_splits(out: Path, root: str | None = None) -> None:
    """Write ``out/<vinyals|maml>/<split>.txt``, one ``alphabet/character`` per line."""
    for name, make in (("vinyals", vinyals_split), ("maml", maml_split)):
        for split, names in make(root).items():
            path = out / name / f"{split}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(names) + "\n")


SPLITS = Path(__file__).resolve().parents[2] / "metazoo" / "data" / "splits" / "omniglot"

if __name__ == "__main__":
    write_splits(SPLITS, *sys.argv[1:2])
