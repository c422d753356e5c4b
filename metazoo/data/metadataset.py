"""Meta-Dataset (Triantafillou et al., ICLR 2020) in its converted form, one source at a time.

Layout, as Meta-Dataset's converter writes it and P>M>F (Hu et al., CVPR 2022) republishes it,
under ``<root>/metadataset/<source>/``:

* ``dataset_spec.json``: the converter's spec. It fixes the official class split (class ids
  ``0..train-1`` are meta-train, the next ones meta-validation, the rest meta-test) in one of three
  forms (:func:`read_spec`): ``classes_per_split`` (keys ``TRAIN``/``VALID``/``TEST``, with or
  without a ``Split.`` prefix); bilevel (Omniglot) ``superclasses_per_split`` with
  ``classes_per_superclass`` and ``superclass_names``; hierarchical (ILSVRC) ``split_subgraphs``,
  each split's part of the ImageNet DAG. ``class_names`` maps ids to names (WordNet ids for ILSVRC).
* per class id ``c``: a folder ``<c>/`` of image files, P>M>F's ``<c>.h5`` (groups ``0``,
  ``1``, ... each with an ``image`` dataset, ``(H, W, 3)`` uint8, beside ``label`` and ``id``;
  needs ``h5py``), or the converter's own ``<c>.tfrecords`` (read without TensorFlow,
  :mod:`metazoo.data.tfrecord`).

Per-source quirks of the protocol (:data:`QUIRKS`): Omniglot episodes draw their classes inside
one alphabet, ILSVRC's are the leaves under one node of the DAG (:mod:`metazoo.data.dag`), MSCOCO
and Traffic Sign are test-only, Traffic Sign's images (consecutive video frames) are shuffled.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch

from metazoo._optional import require
from metazoo.data.dag import eligible_groups
from metazoo.data.dataset import ClassDataset
from metazoo.data.images import _class_files, decode_image
from metazoo.data.paths import data_root, require_dir
from metazoo.data.seeding import generator_for
from metazoo.data.tfrecord import parse_example, read_records

__all__ = [
    "SOURCES",
    "QUIRKS",
    "metadataset_split",
    "read_spec",
    "split_classes",
    "source_hierarchy",
]

#: The ten sources, by the converter's names.
SOURCES = (
    "ilsvrc_2012", "omniglot", "aircraft", "cu_birds", "dtd",
    "quickdraw", "fungi", "vgg_flower", "traffic_sign", "mscoco",
)  # fmt: skip
#: source -> its protocol quirks.
QUIRKS: dict[str, dict[str, bool]] = {
    "ilsvrc_2012": {"hierarchy": True},
    "omniglot": {"hierarchy": True},
    "traffic_sign": {"test_only": True, "shuffle": True},
    "mscoco": {"test_only": True},
}
_SPLIT_KEYS = {"train": "TRAIN", "val": "VALID", "test": "TEST"}
_FIX = "convert it with Meta-Dataset's converter (see docs/metadataset.md)"


def read_spec(folder: Path) -> dict:
    """A source's ``dataset_spec.json``, with ``classes_per_split`` keyed ``TRAIN/VALID/TEST``.

    The converter writes one of three specs: ``classes_per_split`` (flat sources);
    ``superclasses_per_split`` with ``classes_per_superclass`` (bilevel: Omniglot's alphabets,
    classes numbered alphabet after alphabet); ``split_subgraphs`` (ILSVRC: each split's DAG,
    whose leaves, named by ``class_names``, are its classes). Split keys may carry ``Split.``.
    """
    path = folder / "dataset_spec.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: every source needs its spec; {_FIX}")
    spec = json.loads(path.read_text())
    if "classes_per_split" in spec:
        per_split = _by_split(spec["classes_per_split"])
    elif "superclasses_per_split" in spec:
        per_split = _bilevel_classes_per_split(spec)
    elif "split_subgraphs" in spec:
        graphs = _by_split(spec["split_subgraphs"], int_values=False)
        per_split = {k: sum(not n.get("children_ids") for n in v) for k, v in graphs.items()}
        spec["split_subgraphs"] = graphs
    else:
        raise ValueError(
            f"{path}: no classes_per_split, superclasses_per_split or split_subgraphs; {_FIX}"
        )
    missing = sorted(set(_SPLIT_KEYS.values()) - set(per_split))
    if missing:
        raise ValueError(f"{path}: the spec's splits lack {missing}; {_FIX}")
    return {**spec, "classes_per_split": per_split}


def _by_split(values: dict, int_values: bool = True) -> dict:
    return {k.split(".")[-1].upper(): int(v) if int_values else v for k, v in values.items()}


def _bilevel_classes_per_split(spec: dict) -> dict[str, int]:
    """Classes per split of a bilevel spec: the classes of each split's consecutive superclasses."""
    superclasses = _by_split(spec["superclasses_per_split"])
    sizes = [int(spec["classes_per_superclass"][str(s)]) for s in range(len(spec["classes_per_superclass"]))]  # fmt: skip
    per_split, start = {}, 0
    for key in ("TRAIN", "VALID", "TEST"):
        count = superclasses.get(key, 0)
        per_split[key] = sum(sizes[start : start + count])
        start += count
    return per_split


def split_classes(spec: dict, split: str) -> range:
    """The class ids of ``split`` (``train``, ``val``, ``test``): the official split."""
    counts = spec["classes_per_split"]
    train, valid = counts["TRAIN"], counts["VALID"]
    start, size = {"train": (0, train), "val": (train, valid), "test": (train + valid, counts["TEST"])}[split]  # fmt: skip
    return range(start, start + size)


def _superclasses(spec: dict, classes: range) -> tuple[torch.Tensor, list[str]] | None:
    per_superclass = spec.get("classes_per_superclass")
    if not per_superclass:
        return None
    sizes = [int(per_superclass[str(s)]) for s in range(len(per_superclass))]
    of_class = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    used, local = torch.unique(of_class[list(classes)], return_inverse=True)
    names = spec.get("superclass_names") or {}
    return local, [str(names.get(str(s), s)) for s in used.tolist()]


def source_hierarchy(source: str, dataset: ClassDataset) -> str:
    """How a source's episodes pick classes: ``dag`` (ILSVRC with its graph), ``within`` one
    superclass (Omniglot's alphabets), else ``uniform``."""
    if not QUIRKS.get(source, {}).get("hierarchy"):
        return "uniform"
    if dataset.class_groups:
        return "dag"
    return "within" if dataset.superclass is not None else "uniform"


def _dag_groups(spec: dict, split: str, classes: range) -> list[list[int]]:
    """The class sets of the split's eligible DAG nodes (indices ``0..len(classes)-1``)."""
    names = spec.get("class_names") or {}
    class_of = {str(names.get(str(c), c)): c - classes.start for c in classes}
    return eligible_groups(spec["split_subgraphs"][_SPLIT_KEYS[split]], class_of, min_ways=2)


def _read_class(folder: Path, class_id: int, size: int, channels: int) -> np.ndarray:
    """``(n, C, size, size)`` uint8 images of one class: its folder, ``.h5`` or ``.tfrecords``."""
    if (folder / str(class_id)).is_dir():
        files = _class_files(folder / str(class_id))
        if not files:
            raise ValueError(f"{folder / str(class_id)} holds no image; {_FIX}")
        return np.stack([decode_image(str(f), size, channels) for f in files])
    if (folder / f"{class_id}.h5").is_file():
        return _read_h5(folder / f"{class_id}.h5", size, channels)
    if (folder / f"{class_id}.tfrecords").is_file():
        return _read_tfrecords(folder / f"{class_id}.tfrecords", size, channels)
    raise FileNotFoundError(
        f"class {class_id}: none of {folder / str(class_id)}/, {class_id}.h5, "
        f"{class_id}.tfrecords in {folder}; {_FIX}"
    )


def _read_h5(path: Path, size: int, channels: int) -> np.ndarray:
    """P>M>F's class file: groups ``0..n-1``, each an ``image`` array ``(H, W[, 3])`` uint8."""
    h5py = require("h5py", "metadataset", "reading Meta-Dataset's .h5 classes")
    from PIL import Image

    images = []
    with h5py.File(path, "r") as f:
        for key in sorted(f, key=int):
            image = Image.fromarray(np.asarray(f[key]["image"])).convert(
                "L" if channels == 1 else "RGB"
            )
            image = (
                image.resize((size, size), Image.LANCZOS) if image.size != (size, size) else image
            )
            array = np.asarray(image, dtype=np.uint8)
            images.append(array[None] if channels == 1 else array.transpose(2, 0, 1))
    return np.stack(images)


def _read_tfrecords(path: Path, size: int, channels: int) -> np.ndarray:
    """Meta-Dataset's own class file: one ``tf.train.Example`` per image (encoded ``image``)."""
    images = []
    for number, record in enumerate(read_records(path)):
        encoded = parse_example(record).get("image")
        if not encoded:
            raise ValueError(f"{path}: record {number} has no 'image' feature; {_FIX}")
        try:
            images.append(decode_image(io.BytesIO(encoded[0]), size, channels))
        except ValueError:
            raise ValueError(f"{path}: record {number} is not a readable image; {_FIX}") from None
    if not images:
        raise ValueError(f"{path} holds no record; {_FIX}")
    return np.stack(images)


def metadataset_split(
    split: str, source: str, root=None, image_size: int = 84, channels: int = 3
) -> ClassDataset:
    """One split of one Meta-Dataset source, in memory.

    Args:
        split: ``train``, ``val`` or ``test``.
        source: a converted source's folder name (e.g. ``omniglot``; :data:`SOURCES`).
        root: the data folder holding ``metadataset/`` (default ``$METAZOO_DATA``).
        image_size: side of the square images (84 in Meta-Dataset).
        channels: 3 (RGB, Meta-Dataset) or 1 (grey).

    Returns:
        The split's classes, with superclasses for hierarchical sources.
    """
    quirks = QUIRKS.get(source, {})
    if quirks.get("test_only") and split != "test":
        raise ValueError(
            f"Meta-Dataset source {source!r} is test-only: evaluate on it (split='test'), and "
            "leave it out of the training sources"
        )
    folder = require_dir(data_root(root) / "metadataset" / source, f"Meta-Dataset {source}", _FIX)
    spec = read_spec(folder)
    classes = split_classes(spec, split)
    if not classes:
        raise ValueError(f"Meta-Dataset {source} has no {split} classes; use another split")
    arrays = [_read_class(folder, c, image_size, channels) for c in classes]
    if quirks.get("shuffle"):  # stored in frame order; a fixed permutation per class
        arrays = [a[torch.randperm(len(a), generator=generator_for(source, c)).numpy()] for c, a in zip(classes, arrays)]  # fmt: skip
    labels = torch.arange(len(arrays)).repeat_interleave(torch.tensor([len(a) for a in arrays]))
    names = spec.get("class_names") or {}
    class_names = [str(names.get(str(c), c)) for c in classes]
    grouping = _superclasses(spec, classes) if quirks.get("hierarchy") else None
    superclass, superclass_names = grouping if grouping else (None, None)
    dag = quirks.get("hierarchy") and "split_subgraphs" in spec
    groups = _dag_groups(spec, split, classes) if dag else None
    images = torch.from_numpy(np.concatenate(arrays))
    return ClassDataset(images, labels, class_names, superclass, superclass_names, source, groups)
