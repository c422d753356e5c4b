"""ILSVRC's hierarchy-based episodes: an episode's classes are the leaves under one node of the
ImageNet DAG (Triantafillou et al., ICLR 2020, Section 3.2).

Meta-Dataset's converter ships each split's sampling graph in the source's ``dataset_spec.json``
(``split_subgraphs``: per split a list of ``{"wn_id", "words", "children_ids", "parents_ids"}``;
leaves are the split's classes, named by ``class_names``). An internal node is *eligible* when
it reaches between ``min_ways`` and :data:`MAX_SPANNING_LEAVES` leaves; an episode picks one
eligible node uniformly and takes all its leaves, or ``max_ways`` of them drawn without
replacement when it has more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["MAX_SPANNING_LEAVES", "spanning_leaves", "eligible_groups", "draw_dag_classes"]

#: Meta-Dataset's bound on the leaves an eligible node spans (the smallest that reaches every leaf).
MAX_SPANNING_LEAVES = 392


def spanning_leaves(nodes: Sequence[Mapping]) -> dict[str, frozenset[str]]:
    """Each node's reachable leaves (a leaf spans itself), by WordNet id.

    Args:
        nodes: one split's exported graph (``wn_id``, ``children_ids`` per node).

    Raises:
        ValueError: a child that is not a node of the graph, or a cycle.
    """
    children = {n["wn_id"]: list(n.get("children_ids") or ()) for n in nodes}
    found: dict[str, frozenset[str]] = {}
    for start in children:
        stack, entered = [start], set()
        while stack:  # iterative post-order: deep WordNet chains exceed Python's recursion
            node = stack[-1]
            if node in found:
                stack.pop()
                continue
            missing = [c for c in children[node] if c not in found]
            if node in entered or not missing:
                if missing:
                    raise ValueError(f"the split graph has a cycle through {node}; reconvert the source")  # fmt: skip
                leaves = frozenset().union(*(found[c] for c in children[node]))
                found[node] = leaves or frozenset([node])
                stack.pop()
                continue
            entered.add(node)
            for child in missing:
                if child not in children:
                    raise ValueError(
                        f"node {node} has child {child}, which is not in the split graph; "
                        "the dataset_spec.json is incomplete, reconvert the source"
                    )
                stack.append(child)
    return found


def eligible_groups(
    nodes: Sequence[Mapping],
    class_of: Mapping[str, int],
    min_ways: int,
    max_leaves: int = MAX_SPANNING_LEAVES,
) -> list[list[int]]:
    """The class sets episodes draw from: the leaves of each eligible internal node.

    Args:
        nodes: one split's exported graph.
        class_of: leaf WordNet id -> its class index in the split (``0..classes-1``).
        min_ways: an eligible node spans at least this many leaves.
        max_leaves: and at most this many (:data:`MAX_SPANNING_LEAVES`).

    Returns:
        Sorted class indices of each eligible node, in a fixed order (by sum, then values).

    Raises:
        ValueError: no node is eligible, or a leaf that is not a class of the split.
    """
    groups = set()
    for node, leaves in spanning_leaves(nodes).items():
        if leaves == {node}:
            continue  # a leaf, not an internal node
        unknown = sorted(leaves - set(class_of))
        if unknown:
            raise ValueError(f"graph leaves {unknown[:3]} are not classes of the split (class_names); reconvert the source")  # fmt: skip
        if min_ways <= len(leaves) <= max_leaves:
            groups.add(tuple(sorted(class_of[leaf] for leaf in leaves)))
    if not groups:
        raise ValueError(
            f"no node of the split graph spans between {min_ways} and {max_leaves} leaves; "
            "lower min_ways or use hierarchy='uniform'"
        )
    return [list(g) for g in sorted(groups, key=lambda g: (sum(g), g))]


def draw_dag_classes(
    groups: Sequence[Sequence[int]], max_ways: int, generator: torch.Generator
) -> Tensor:
    """One episode's classes: the leaves of a node drawn uniformly, at most ``max_ways`` of them.

    Args:
        groups: :func:`eligible_groups`.
        max_ways: the most classes of an episode (a larger node is subsampled).
        generator: the episode's generator.

    Returns:
        ``(N,)`` int64 class indices, ``N = min(len(group), max_ways)``, in random order.
    """
    group = torch.as_tensor(groups[int(torch.randint(len(groups), (), generator=generator))])
    return group[torch.randperm(len(group), generator=generator)[:max_ways]]
