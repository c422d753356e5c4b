"""Each paper preset builds the network its paper describes.

The facts asserted are the ones the papers (or, where noted, their reference code) state: filters
per block, the spatial size of the compared feature maps, the embedding width, the module sizes. A
paper preset without an entry here fails: a new preset states its network's facts when it lands.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from metazoo.bench.runner import resolve_cell
from metazoo.bench.suite import load_suite, paper_presets
from metazoo.cards import benchmark_card
from metazoo.data.paths import MissingDataError

#: ``(learner, input_shape)`` -> asserts the paper's facts
Check = Callable[[nn.Module, tuple[int, ...]], None]


def conv_filters(learner: nn.Module) -> list[int]:
    """Output channels of the backbone's convolutions, in order (relation module excluded)."""
    backbone = learner.model
    return [m.out_channels for m in backbone.modules() if isinstance(m, nn.Conv2d)]


def embedding(learner: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the embedding of one image of ``shape`` (feature maps where the learner compares
    maps)."""
    x = torch.zeros(2, *shape)
    maps = learner.feature_maps(x) if hasattr(learner, "feature_maps") else learner.model(x)
    return tuple(maps.shape[1:])


def conv4(filters: int, features: tuple[int, ...]) -> Check:
    def check(learner: nn.Module, shape: tuple[int, ...]) -> None:
        assert conv_filters(learner) == [filters] * 4
        assert embedding(learner, shape) == features

    return check


def conv4_classifier(filters: int) -> Check:
    def check(learner: nn.Module, shape: tuple[int, ...]) -> None:
        assert conv_filters(learner) == [filters] * 4

    return check


def relation(maps: tuple[int, ...], fc_inputs: int) -> Check:
    """Sung et al. 2018 (reference code): 64 filters, maps of ``maps``, relation FC 8 then 1."""

    def check(learner: nn.Module, shape: tuple[int, ...]) -> None:
        assert conv_filters(learner) == [64] * 4
        assert embedding(learner, shape) == maps
        head = learner.relation.head
        assert (head[0].in_features, head[0].out_features, head[2].out_features) == (
            fc_inputs,
            8,
            1,
        )

    return check


def mlp(widths: list[int]) -> Check:
    """The output widths of the learner's linear layers, in order."""

    def check(learner: nn.Module, shape: tuple[int, ...]) -> None:
        assert [m.out_features for m in learner.modules() if isinstance(m, nn.Linear)] == widths

    return check


#: preset -> the facts its paper states about the network, checked on every cell's learner.
NETWORKS: dict[str, Check] = {
    # Snell et al. 2017: four 64-filter blocks; 64-d embedding on 28x28 Omniglot, 1600-d on 84x84.
    "paper-protonet-omniglot": conv4(64, (64,)),
    "paper-protonet-miniimagenet": conv4(64, (1600,)),
    # Vinyals et al. 2016: the same four 64-filter blocks (64-d on Omniglot).
    "paper-matchingnet-omniglot": conv4(64, (64,)),
    "paper-matchingnet-miniimagenet": conv4(64, (1600,)),
    "paper-relationnet-omniglot": relation((64, 5, 5), 64),
    "paper-relationnet-miniimagenet": relation((64, 19, 19), 64 * 3 * 3),
    # Finn et al. 2017: 64 filters on Omniglot, 32 on mini-ImageNet; Meta-SGD, ANIL and Reptile
    # use MAML's network; Antoniou et al. 2019: 48 filters on mini-ImageNet.
    "paper-maml-omniglot": conv4_classifier(64),
    "paper-maml-miniimagenet": conv4_classifier(32),
    "paper-metasgd-omniglot": conv4_classifier(64),
    "paper-metasgd-miniimagenet": conv4_classifier(32),
    "paper-anil-omniglot": conv4_classifier(64),
    "paper-anil-miniimagenet": conv4_classifier(32),
    "paper-reptile-omniglot": conv4_classifier(64),
    "paper-reptile-miniimagenet": conv4_classifier(32),
    "paper-mamlpp-omniglot": conv4_classifier(64),
    "paper-mamlpp-miniimagenet": conv4_classifier(48),
    # Chen et al. 2019, Table 1: Conv-4 with 64 filters (1600-d on 84x84).
    "paper-baselinepp": conv4(64, (1600,)),
    # Finn et al. 2017, Section 5.1: two hidden layers of 40 ReLU units (MAML and the baseline).
    "paper-maml-sinusoid": mlp([40, 40, 1]),
}
#: presets whose network facts are not written here yet, and what is missing: the open list.
NOT_YET_STATED: dict[str, str] = {
    "paper-mann-omniglot": "LSTM controller and memory sizes",
    "paper-snail-omniglot": "TC/attention block sizes",
    "paper-snail-miniimagenet": "ResNet widths",
    "paper-metaoptnet-cifar": "ResNet-12 widths",
    "paper-metaoptnet-imagenet": "ResNet-12 widths",
    "paper-transductive-ft": "WRN/ResNet-12 widths",
}


def test_every_paper_preset_states_its_network_or_is_listed_as_open():
    assert not set(NETWORKS) & set(NOT_YET_STATED)
    assert sorted({**NETWORKS, **NOT_YET_STATED}) == paper_presets()


CELLS = [
    pytest.param(name, cell, id=f"{name}:{cell.key}")
    for name in sorted(NETWORKS)
    for cell in load_suite(name).cells()
]


@pytest.mark.parametrize(("preset", "cell"), CELLS)
def test_the_preset_builds_its_papers_network(preset, cell):
    shape = tuple(benchmark_card(cell.benchmark)["input_shape"])
    try:
        learner = resolve_cell(cell).build_learner()
    except MissingDataError as error:  # Baseline++ sizes its head from the training classes
        pytest.skip(f"building needs the dataset: {error}")
    NETWORKS[preset](learner, shape)
