"""The episode sampler on a generated dataset: determinism, modes, options."""

from __future__ import annotations

import hashlib

import pytest
import torch
from data_fixtures import grid_dataset, identities

from metazoo.data import EpisodeSampler, SamplerConfig, episode_loader, from_tensors, make_sampler
from metazoo.data.seeding import stable_seed


def sampler(dataset, seed=0, split="train", **options) -> EpisodeSampler:
    config = SamplerConfig(**{"ways": 3, "shots": 2, "queries": 3, **options})
    return EpisodeSampler(dataset, config, "grid-bench", split, seed)


def assert_same(a, b) -> None:
    for name in ("support_x", "support_y", "query_x", "query_y", "classes"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_stable_seed_is_a_fixed_hash():
    # blake2b of the joined parts: a fixed number on every machine and Python process
    assert stable_seed("omniglot-5w1s", "train", 0, 7) == stable_seed(
        "omniglot-5w1s", "train", 0, 7
    )
    assert stable_seed("a", 1) != stable_seed("a", 2)
    digest = hashlib.blake2b(b"a\x1fb\x1f0\x1f1", digest_size=8).digest()
    assert stable_seed("a", "b", 0, 1) == int.from_bytes(digest, "little") & (2**63 - 1)


def test_episode_shapes_labels_and_classes(grid):
    episode = sampler(grid).episode(0)
    assert episode.support_x.shape == (6, 1, 4, 4) and episode.query_x.shape == (9, 1, 4, 4)
    assert episode.support_x.dtype == torch.float32
    # pixels are exactly k / 255 (correctly rounded), the values the CUDA path looks up
    table = torch.arange(256, dtype=torch.float64).div(255).float()
    assert torch.equal(episode.query_x, table[(episode.query_x * 255).round().long()])
    assert episode.support_y.tolist() == [0, 0, 1, 1, 2, 2]
    assert episode.query_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # every image of label j belongs to dataset class classes[j]
    for x, y in ((episode.support_x, episode.support_y), (episode.query_x, episode.query_y)):
        for (cls, _), label in zip(identities(x), y.tolist()):
            assert cls == int(episode.classes[label])


def test_same_episodes_across_runs_and_batch_sizes(grid):
    a, b = sampler(grid), sampler(grid_dataset())
    assert_same(a.batch(0, 8), b.batch(0, 8))
    batch4 = a.batch(1, 4)  # episodes 4..7
    batch2 = a.batch(3, 2)  # episodes 6, 7
    assert_same(batch4.split(2)[1], batch2)
    for j in range(4):
        assert_same(batch4.task(j).batch(), a.episode(4 + j).batch())
    assert_same(a.episodes([7, 2]).task(0).batch(), a.episode(7).batch())


def test_other_seed_or_split_gives_other_episodes(grid):
    base = sampler(grid).batch(0, 16).classes
    assert not torch.equal(base, sampler(grid, seed=1).batch(0, 16).classes)
    assert not torch.equal(base, sampler(grid, split="test").batch(0, 16).classes)


def test_classes_uniform_and_distinct(grid):
    classes = sampler(grid).batch(0, 400).classes
    assert all(len(set(row)) == 3 for row in classes.tolist())
    counts = torch.bincount(classes.flatten(), minlength=12).float()
    expected = 400 * 3 / 12  # 100 per class
    assert ((counts - expected).abs() < 35).all(), counts


def test_train_val_mode_queries_disjoint_from_support(grid):
    for episode in sampler(grid).batch(0, 20):
        support, query = identities(episode.support_x), identities(episode.query_x)
        assert len(set(support)) == 6 and len(set(query)) == 9
        assert not set(support) & set(query)


def test_train_train_mode_query_is_support(grid):
    s = sampler(grid, mode="train-train")
    episode = s.episode(3)
    assert s.queries == 2
    assert torch.equal(episode.query_x, episode.support_x)
    assert torch.equal(episode.query_y, episode.support_y)


def test_hierarchy_within_draws_one_superclass(grid):
    s = sampler(grid, hierarchy="within")
    superclass = grid.superclass
    seen = set()
    for classes in s.batch(0, 30).classes:
        groups = set(superclass[classes].tolist())
        assert len(groups) == 1
        seen |= groups
    assert seen == {0, 1, 2}


def test_meta_batch_diversity_gives_distinct_superclasses(grid):
    s = sampler(grid, meta_batch_diversity=True)
    batch = s.batch(5, 3)
    groups = [set(grid.superclass[c].tolist()) for c in batch.classes]
    assert all(len(g) == 1 for g in groups)
    assert {g.pop() for g in groups} == {0, 1, 2}
    # more tasks than superclasses: each superclass used exactly twice in 6 tasks
    many = [int(grid.superclass[c[0]]) for c in s.batch(0, 6).classes]
    assert sorted(many) == [0, 0, 1, 1, 2, 2]
    assert_same(s.batch(5, 3), sampler(grid, meta_batch_diversity=True).batch(5, 3))


def test_rotations_make_new_classes(grid):
    s = sampler(grid, rotations=True)
    assert s.num_classes == 48
    batch = s.batch(0, 50)
    assert int(batch.classes.max()) >= 36  # rotated classes are drawn
    for episode in batch:
        for label, cls in enumerate(episode.classes.tolist()):
            turns, base = divmod(cls, 12)
            images = episode.support_x[episode.support_y == label]
            unrotated = torch.rot90(images, -turns, dims=(-2, -1))
            assert {c for c, _ in identities(unrotated)} == {base}
            assert s.class_name(cls).endswith("" if turns == 0 else f"@{90 * turns}")


def test_augment_changes_only_support_and_is_deterministic(grid):
    plain = sampler(grid).episode(2)
    augmented = sampler(grid, augment="flip").batch(0, 8)
    assert_same(augmented.task(2).batch(), sampler(grid, augment="flip").episode(2).batch())
    task = augmented.task(2)
    assert torch.equal(task.query_x, plain.query_x)
    flipped = [
        torch.equal(a, b.flip(-1)) and not torch.equal(a, b)
        for a, b in zip(task.support_x, plain.support_x)
    ]
    kept = [torch.equal(a, b) for a, b in zip(task.support_x, plain.support_x)]
    assert all(f or k for f, k in zip(flipped, kept))
    flips = sum(
        torch.equal(a, b.flip(-1)) and not torch.equal(a, b)
        for e, p in zip(augmented, [sampler(grid).episode(i) for i in range(8)])
        for a, b in zip(e.support_x, p.support_x)
    )
    assert 10 < flips < 38  # about half of 48 support images


def test_dataloader_workers_give_identical_batches(grid):
    s = sampler(grid)
    direct = [s.batch(i, 4) for i in range(2, 6)]
    for workers in (0, 2):
        loaded = list(episode_loader(s, meta_batch=4, batches=4, first=2, num_workers=workers))
        assert len(loaded) == 4
        for a, b in zip(direct, loaded):
            assert_same(a, b)


def test_replacement_repeats_images_only_when_asked():
    small = grid_dataset(classes=6, per_class=4)
    with pytest.raises(ValueError, match=r"shots\+queries=5 but class '\d+' has only 4 images"):
        sampler(small, queries=3)
    episode = sampler(small, queries=3, replacement=True).episode(0)
    support, query = identities(episode.support_x), identities(episode.query_x)
    assert len(set(support)) == 6  # the support set still has distinct images
    assert len(query) == 9 and len(set(support + query)) == 12  # 4 images per class, reused


def test_make_sampler_on_own_dataset(grid):
    s = make_sampler(grid, ways=4, shots=1, queries=2, seed=3)
    assert s.episode(0).support_x.shape == (4, 1, 4, 4)
    with pytest.raises(TypeError, match="unknown sampler option"):
        make_sampler(grid, ways=4, shots=1, queries=2, wayz=3)


def test_float_feature_tensors_are_used_as_is():
    features = torch.randn(40, 6, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(8).repeat_interleave(5) * 10  # any label values
    s = make_sampler(from_tensors(features, labels), ways=4, shots=2, queries=3)
    episode = s.episode(5)
    assert episode.support_x.shape == (8, 6) and episode.query_x.shape == (12, 6)
    for x, y in zip(episode.query_x, episode.query_y.tolist()):
        row = int(torch.nonzero((features == x).all(1)).flatten())
        assert labels[row] == 10 * int(episode.classes[y])
