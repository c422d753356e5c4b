import pytest
import torch

from metazoo import Episode, EpisodeBatch


def make_batch(t=2, n=3, k=2, q=4):
    sx = torch.randn(t, n * k, 1, 8, 8)
    sy = torch.arange(n).repeat_interleave(k).expand(t, -1).clone()
    qx = torch.randn(t, n * q, 1, 8, 8)
    qy = torch.arange(n).repeat_interleave(q).expand(t, -1).clone()
    return EpisodeBatch(sx, sy, qx, qy)


def test_batch_infers_ways_and_splits_into_tasks():
    batch = make_batch(t=5)
    assert batch.ways == 3 and len(batch) == 5
    task = batch.task(2)
    assert isinstance(task, Episode) and task.support_x.shape == (6, 1, 8, 8)
    assert torch.equal(task.query_x, batch.query_x[2])
    chunks = batch.split(2)
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert torch.equal(EpisodeBatch.stack(list(batch)).support_x, batch.support_x)


def test_wrong_label_shape_names_field_expected_and_got():
    batch = make_batch()
    with pytest.raises(ValueError, match=r"support_y: expected shape \(2, 6\).*got \(2, 5\)"):
        EpisodeBatch(batch.support_x, batch.support_y[:, :5], batch.query_x, batch.query_y)


def test_query_sample_shape_must_match_support():
    batch = make_batch()
    with pytest.raises(ValueError, match=r"query_x: expected per-sample shape \(1, 8, 8\)"):
        EpisodeBatch(batch.support_x, batch.support_y, batch.query_x[..., :4], batch.query_y)


def test_task_count_mismatch_and_mixed_target_types():
    batch = make_batch()
    with pytest.raises(ValueError, match="expected 2 tasks"):
        EpisodeBatch(batch.support_x, batch.support_y, batch.query_x[:1], batch.query_y[:1])
    with pytest.raises(ValueError, match="use integer labels"):
        EpisodeBatch(batch.support_x, batch.support_y, batch.query_x, batch.query_y.float())


def test_regression_targets_have_feature_dims_and_no_ways():
    x = torch.randn(4, 10, 1)
    ep = EpisodeBatch(x, x.sin(), x, x.cos())
    assert ep.is_regression and ep.ways is None
    with pytest.raises(ValueError, match="query_y"):
        EpisodeBatch(x, x.sin(), x, x[:, :3].cos())


def test_float_as_converts_inputs_and_regression_targets_but_not_labels():
    labels = EpisodeBatch(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long),
                          torch.zeros(2, 5, 4), torch.zeros(2, 5, dtype=torch.long))  # fmt: skip
    wide = labels.float_as(torch.float64)
    assert (wide.support_x.dtype, wide.query_x.dtype) == (torch.float64, torch.float64)
    assert (wide.support_y.dtype, wide.query_y.dtype, wide.ways) == (torch.long, torch.long, 1)
    targets = Episode(torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(5, 1), torch.zeros(5, 1))
    assert targets.float_as(torch.float64).query_y.dtype == torch.float64
