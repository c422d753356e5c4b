"""Meta-Dataset's episode distribution (``varied=True``): bounds, determinism, hierarchy, errors."""

from __future__ import annotations

import pytest
import torch
from data_fixtures import grid_dataset, identities

from metazoo.data import from_tensors, make_sampler
from metazoo.episode import EpisodeList


def _sampler(dataset=None, seed=0, **options):
    options = {"ways": 50, "shots": 1, "queries": 10, "varied": True, **options}
    return make_sampler(dataset or grid_dataset(60, 30, 3), "train", seed, **options)


def test_episodes_follow_the_bounds_of_the_distribution():
    sampler = _sampler()
    ways_seen = set()
    for index in range(40):
        e = sampler.episode(index)
        shots = torch.bincount(e.support_y, minlength=e.ways)
        queries = torch.bincount(e.query_y, minlength=e.ways)
        ways_seen.add(e.ways)
        assert 5 <= e.ways <= 50
        assert int(shots.min()) >= 1 and len(e.support_y) <= 500
        assert int(queries.min()) == int(queries.max()) == 10  # 30 images: min(10, 30 // 2)
        assert int(shots.max()) <= 30 - 10
        # class-major layout, labels 0..N-1
        assert torch.equal(e.support_y, torch.arange(e.ways).repeat_interleave(shots))
        # support and query images of a class are distinct images of that class
        for label in range(e.ways):
            s = identities(e.support_x[e.support_y == label])
            q = identities(e.query_x[e.query_y == label])
            assert len(set(s) | set(q)) == len(s) + len(q)
            assert {c for c, _ in s + q} == {int(e.classes[label])}
    assert len(ways_seen) > 10  # the ways really vary


def test_queries_are_half_the_smallest_class():
    x = torch.zeros(12 * 7, 1, 4, 4, dtype=torch.uint8)
    sampler = _sampler(from_tensors(x, torch.arange(12).repeat_interleave(7)))
    e = sampler.episode(3)
    assert torch.bincount(e.query_y).tolist() == [3] * e.ways  # min(10, 7 // 2)
    assert 5 <= e.ways <= 12


def test_episodes_are_fixed_by_benchmark_split_seed_and_index():
    a, b = _sampler(), _sampler()
    batch = a.batch(2, 3)
    assert isinstance(batch, EpisodeList) and len(batch) == 3
    for j, task in enumerate(batch):
        again = b.episode(6 + j)
        assert torch.equal(task.support_x, again.support_x)
        assert torch.equal(task.query_y, again.query_y)
        assert torch.equal(task.classes, again.classes)
    other = _sampler(seed=1).episode(6)
    assert not torch.equal(other.support_x, batch.task(0).support_x)


def test_shots_follow_class_sizes_as_in_meta_dataset():
    sizes = [60] * 5 + [12] * 5  # weights are class size x a log-uniform factor in [0.5, 2]
    labels = torch.arange(10).repeat_interleave(torch.tensor(sizes))
    dataset = from_tensors(torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8), labels)
    sampler = _sampler(dataset, ways=10, min_ways=10, queries=2)
    big = small = 0
    for index in range(30):
        e = sampler.episode(index)
        shots = torch.bincount(e.support_y, minlength=10)[torch.argsort(e.classes)]
        big, small = big + int(shots[:5].sum()), small + int(shots[5:].sum())
    assert big > 3 * small  # with weights exp(u) alone, both halves would get the same on average


def test_fixed_size_episodes_do_not_change():
    fixed = make_sampler(grid_dataset(), "train", 0, ways=5, shots=1, queries=2)
    e = fixed.episode(4)
    assert (e.ways, len(e.support_y), len(e.query_y)) == (5, 5, 10)
    assert not isinstance(fixed.batch(0, 2), EpisodeList)


def test_hierarchy_within_draws_every_class_from_one_superclass():
    sampler = _sampler(hierarchy="within", min_ways=5)
    superclass = sampler.dataset.superclass
    for index in range(10):
        e = sampler.episode(index)
        assert len(set(superclass[e.classes].tolist())) == 1
        assert 5 <= e.ways <= 20  # 60 classes in 3 superclasses


def test_errors_say_what_to_do():
    x = torch.zeros(11, 1, 4, 4, dtype=torch.uint8)
    one_image = from_tensors(x, torch.tensor([0] * 5 + [1] * 5 + [2]))
    with pytest.raises(ValueError, match="varied episodes need 2 images per class .* class '2'"):
        _sampler(one_image, min_ways=2)
    with pytest.raises(ValueError, match="varied episodes take neither `augment`"):
        _sampler(augment="flip")
    with pytest.raises(ValueError, match="need 1 <= min_ways <= max_ways, got 60 and 50"):
        _sampler(min_ways=60)
    with pytest.raises(ValueError, match="ways=5 but the split has only 3 classes"):
        _sampler(grid_dataset(3, 10, 1))
