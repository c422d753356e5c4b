"""ILSVRC's hierarchy-based episodes: the DAG walk on a small generated graph, and the reader on
ILSVRC's hierarchical spec (``split_subgraphs``) generated in the converter's layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metazoo.data import EpisodeSampler, SamplerConfig, make_sampler
from metazoo.data.dag import draw_dag_classes, eligible_groups, spanning_leaves
from metazoo.data.metadataset import metadataset_split

SIZE = 12


#: A small DAG in the converter's export form. Train leaves l0..l11: node a spans l0-l5, node b
#: spans l5-l11 (l5 has two parents), node c (under b) spans l9-l11, the root spans all twelve.
TRAIN_GRAPH = [
    {"wn_id": "root", "words": "entity", "children_ids": ["a", "b"], "parents_ids": []},
    {
        "wn_id": "a",
        "words": "animal",
        "children_ids": [f"l{i}" for i in range(6)],
        "parents_ids": ["root"],
    },  # fmt: skip
    {
        "wn_id": "b",
        "words": "device",
        "children_ids": ["l5", "l6", "l7", "l8", "c"],
        "parents_ids": ["root"],
    },  # fmt: skip
    {"wn_id": "c", "words": "tool", "children_ids": ["l9", "l10", "l11"], "parents_ids": ["b"]},
    *[
        {
            "wn_id": f"l{i}",
            "words": f"leaf {i}",
            "children_ids": [],
            "parents_ids": ["a"] if i < 5 else ["a", "b"] if i == 5 else ["b"] if i < 9 else ["c"],
        }
        for i in range(12)
    ],  # fmt: skip
]


def _flat_graph(prefix: str, leaves: int) -> list[dict]:
    names = [f"{prefix}{i}" for i in range(leaves)]
    leaf_nodes = [{"wn_id": n, "words": n, "children_ids": [], "parents_ids": [prefix]} for n in names]  # fmt: skip
    return [{"wn_id": prefix, "words": prefix, "children_ids": names, "parents_ids": []}, *leaf_nodes]  # fmt: skip


def test_spanning_leaves_and_eligible_nodes_of_a_dag():
    spans = spanning_leaves(TRAIN_GRAPH)
    assert spans["b"] == {"l5", "l6", "l7", "l8", "l9", "l10", "l11"}
    assert spans["root"] == {f"l{i}" for i in range(12)} and spans["l3"] == {"l3"}
    class_of = {f"l{i}": i for i in range(12)}
    groups = eligible_groups(TRAIN_GRAPH, class_of, min_ways=5)
    assert groups == [list(range(6)), list(range(5, 12)), list(range(12))]
    assert eligible_groups(TRAIN_GRAPH, class_of, 2, max_leaves=7) == [
        list(range(6)),
        [9, 10, 11],
        list(range(5, 12)),
    ]
    with pytest.raises(ValueError, match="no node of the split graph spans between 13 and 392"):
        eligible_groups(TRAIN_GRAPH, class_of, min_ways=13)
    cycle = [{"wn_id": "x", "children_ids": ["y"]}, {"wn_id": "y", "children_ids": ["x"]}]
    with pytest.raises(ValueError, match="the split graph has a cycle through"):
        spanning_leaves(cycle)
    with pytest.raises(ValueError, match="node c has child l12, which is not in the split graph"):
        spanning_leaves([{"wn_id": "c", "children_ids": ["l11", "l12"]}, {"wn_id": "l11"}])


def test_dag_draw_takes_every_leaf_of_a_node_or_max_ways_of_them():
    groups = [list(range(6)), list(range(5, 12)), list(range(12))]
    seen = set()
    for index in range(40):
        generator = torch.Generator().manual_seed(index)
        classes = draw_dag_classes(groups, 10, generator)
        again = draw_dag_classes(groups, 10, torch.Generator().manual_seed(index))
        assert torch.equal(classes, again)
        chosen = sorted(classes.tolist())
        assert len(set(chosen)) == len(chosen)
        if len(chosen) == 10:
            seen.add("root")
        else:
            seen.add({6: "a", 7: "b"}[len(chosen)])
            assert chosen in groups
    assert seen == {"a", "b", "root"}


@pytest.fixture(scope="module")
def ilsvrc(tmp_path_factory) -> Path:
    """ILSVRC in the converter's hierarchical form: 12 train, 5 valid, 6 test classes (PNG folders,
    pixel [0, 0] = class id), each split's graph in split_subgraphs."""
    root = tmp_path_factory.mktemp("ilsvrc")
    folder = root / "metadataset" / "ilsvrc_2012"
    wn_ids = (
        [f"l{i}" for i in range(12)] + [f"v{i}" for i in range(5)] + [f"t{i}" for i in range(6)]
    )
    graphs = {"TRAIN": TRAIN_GRAPH, "VALID": _flat_graph("v", 5), "TEST": _flat_graph("t", 6)}
    folder.mkdir(parents=True)
    spec = {
        "__class__": "HierarchicalDatasetSpecification",
        "name": "ilsvrc_2012",
        "split_subgraphs": graphs,
        "images_per_class": {k: {n["wn_id"]: 6 for n in g} for k, g in graphs.items()},
        "class_names": {str(c): wn for c, wn in enumerate(wn_ids)},
        "path": str(folder),
        "file_pattern": "{}.tfrecords",
    }
    (folder / "dataset_spec.json").write_text(json.dumps(spec))
    for c in range(len(wn_ids)):
        (folder / str(c)).mkdir()
        for i in range(6):
            pixels = np.full((SIZE, SIZE), 200, dtype=np.uint8)
            pixels[0, 0] = c
            Image.fromarray(pixels).save(folder / str(c) / f"{i}.png")
    return root


def test_ilsvrc_episodes_are_the_leaves_under_one_node(ilsvrc):
    options = {"root": str(ilsvrc), "image_size": SIZE, "channels": 1, "ways": 10}
    sampler = make_sampler("metadataset", "train", 0, sources=["ilsvrc_2012"], **options)
    assert sampler.config.hierarchy == "dag"
    a, b, c = list(range(6)), list(range(5, 12)), [9, 10, 11]
    assert sampler.dataset.class_groups == [a, c, b, list(range(12))]  # c: too few for min_ways 5
    ways = set()
    for index in range(30):
        e = sampler.episode(index)
        classes = sorted(e.classes.tolist())
        codes = sorted({int(v) for v in (e.support_x[:, 0, 0, 0] * 255).round().long()})
        assert codes == classes  # the images are those of the episode's classes
        assert e.ways == 10 or classes in (list(range(6)), list(range(5, 12)))
        ways.add(e.ways)
    assert ways == {6, 7, 10}
    again = make_sampler("metadataset", "train", 0, sources=["ilsvrc_2012"], **options)
    assert torch.equal(again.episode(17).support_x, sampler.episode(17).support_x)
    test = make_sampler("metadataset", "test", 0, test_sources=["ilsvrc_2012"], **options)
    assert sorted(test.episode(0).classes.tolist()) == list(range(6))  # t0..t5, one node


def test_dag_hierarchy_errors_say_what_to_do(ilsvrc):
    dataset = metadataset_split("train", "ilsvrc_2012", ilsvrc, SIZE, 1)
    with pytest.raises(ValueError, match="hierarchy='dag' draws varied episodes; add varied=True"):
        EpisodeSampler(dataset, SamplerConfig(5, 1, 1, hierarchy="dag"))
    config = SamplerConfig(50, 1, 10, hierarchy="dag", varied=True, min_ways=13)
    with pytest.raises(ValueError, match="needs class_groups of at least min_ways=13 .* has 4 groups"):  # fmt: skip
        EpisodeSampler(dataset, config)
