"""Omniglot (torchvision's ``omniglot-py`` folders) converted to Meta-Dataset's form, so that the
Meta-Dataset reader (:mod:`metazoo.data.metadataset`) runs here on a real source.

What Meta-Dataset's ``OmniglotConverter`` does, written as a folder per class instead of a
TFRecord: Lake's background alphabets are meta-train and meta-validation (the five smallest,
:data:`VALIDATION_ALPHABETS`), the evaluation alphabets meta-test; classes are numbered alphabet
after alphabet (alphabets and characters in sorted order) and named ``<alphabet>-<character>``;
images are inverted (white strokes on black, ``invert_img=True`` there); the spec is a
``BiLevelDatasetSpecification`` (``superclasses_per_split``, ``classes_per_superclass``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageOps

from metazoo.data.paths import data_root, require_dir

__all__ = ["VALIDATION_ALPHABETS", "convert_omniglot"]

#: Meta-Dataset's validation alphabets: the five background alphabets with the fewest characters.
VALIDATION_ALPHABETS = (
    "Blackfoot_(Canadian_Aboriginal_Syllabics)",
    "Ojibwe_(Canadian_Aboriginal_Syllabics)",
    "Inuktitut_(Canadian_Aboriginal_Syllabics)",
    "Tagalog",
    "Alphabet_of_the_Magi",
)


def _split_alphabets(source: Path, alphabets: Sequence[str] | None) -> dict[str, list[Path]]:
    background = sorted(p for p in (source / "images_background").iterdir() if p.is_dir())
    evaluation = sorted(p for p in (source / "images_evaluation").iterdir() if p.is_dir())
    splits = {
        "TRAIN": [p for p in background if p.name not in VALIDATION_ALPHABETS],
        "VALID": [p for p in background if p.name in VALIDATION_ALPHABETS],
        "TEST": evaluation,
    }
    if alphabets is not None:
        known = {p.name for p in background + evaluation}
        unknown = sorted(set(alphabets) - known)
        if unknown:
            raise ValueError(f"no alphabet {unknown} in {source}; choose from {sorted(known)}")
        splits = {k: [p for p in v if p.name in alphabets] for k, v in splits.items()}
    return splits


def convert_omniglot(
    source: str | Path | None = None,
    root: str | Path | None = None,
    alphabets: Sequence[str] | None = None,
) -> Path:
    """Write Omniglot in Meta-Dataset's converted form under ``<root>/metadataset/omniglot``.

    Args:
        source: the ``omniglot-py`` folder (default ``$METAZOO_DATA/omniglot-py``).
        root: the data folder to write into (default ``$METAZOO_DATA``).
        alphabets: convert only these alphabets (each keeps its split); None: all 50.

    Returns:
        The converted source's folder.

    Raises:
        FileExistsError: the folder already holds a ``dataset_spec.json`` (delete it to redo).
    """
    source = Path(source) if source else data_root() / "omniglot-py"
    require_dir(source / "images_background", "Omniglot", "python -m metazoo.data download omniglot")  # fmt: skip
    out = data_root(root) / "metadataset" / "omniglot"
    if (out / "dataset_spec.json").exists():
        raise FileExistsError(f"{out} is already converted; delete that folder to convert again")
    spec: dict = {"superclasses_per_split": {}, "classes_per_superclass": {}, "images_per_class": {}}  # fmt: skip
    spec.update(superclass_names={}, class_names={})
    for split, folders in _split_alphabets(source, alphabets).items():
        spec["superclasses_per_split"][split] = len(folders)
        for alphabet in folders:
            superclass = len(spec["superclass_names"])
            characters = sorted(p for p in alphabet.iterdir() if p.is_dir())
            spec["superclass_names"][superclass] = alphabet.name
            spec["classes_per_superclass"][superclass] = len(characters)
            for character in characters:
                class_id = len(spec["class_names"])
                spec["class_names"][class_id] = f"{alphabet.name}-{character.name}"
                spec["images_per_class"][class_id] = _write_class(character, out / str(class_id))
    spec = {"__class__": "BiLevelDatasetSpecification", "name": "omniglot", **spec}
    spec.update(path=str(out), file_pattern="{}.tfrecords")
    (out / "dataset_spec.json").write_text(json.dumps(spec, indent=1))
    return out


def _write_class(character: Path, folder: Path) -> int:
    """The character's drawings, inverted, as PNG files in ``folder``; returns their count."""
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(character.glob("*.png"))
    for file in files:
        with Image.open(file) as image:
            ImageOps.invert(image.convert("L")).save(folder / file.name)
    return len(files)
