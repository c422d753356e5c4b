"""Timing, peak memory and the relative meta-gradient error of the speed benchmark."""

from __future__ import annotations

import time

import pytest
import torch

from metazoo.bench.speed import relative_error
from metazoo.bench.timing import Timing, peak_memory_mb, time_calls


def test_timing_statistics_are_median_based():
    timing = Timing([1.0, 3.0, 2.0], items_per_call=4)
    assert timing.median_s == 2.0
    assert timing.rate == 2.0
    assert timing.spread == 1.0


def test_time_calls_warms_up_cycles_inputs_and_times_each_call():
    seen = []

    def call(x):
        seen.append(x)
        time.sleep(0.01)

    timing = time_calls(
        call,
        ["a", "b", "c"],
        device=torch.device("cpu"),
        items_per_call=8,
        warmup=2,
        repeats=3,
        steps=2,
    )
    assert seen == ["a", "b", "a", "b", "c", "a", "b", "c"]
    assert len(timing.seconds_per_call) == 3
    assert all(0.009 < s < 0.5 for s in timing.seconds_per_call)
    assert timing.rate == pytest.approx(8 / timing.median_s)


def test_peak_memory_sees_a_temporary_allocation_on_the_cpu():
    def allocate():
        x = torch.ones(50 * 2**20 // 4)  # 50 MiB, freed before returning
        return float(x[0])

    peak = peak_memory_mb(allocate, torch.device("cpu"))
    assert peak is not None and 45 < peak < 200
    assert peak_memory_mb(lambda: None, torch.device("cpu")) < 20


def test_relative_error_is_global_not_per_parameter():
    reference = [torch.tensor([3.0, 4.0]), torch.tensor([1e-17])]
    # the second "parameter" is a zero meta-gradient (a conv bias before BatchNorm): its own
    # ratio would be 1.0; the global error is dominated by the real gradient, as it should be
    grads = [torch.tensor([3.0, 4.5]), torch.tensor([2e-17])]
    assert relative_error(grads, reference) == pytest.approx(0.1)
    assert relative_error(reference, reference) == 0.0
