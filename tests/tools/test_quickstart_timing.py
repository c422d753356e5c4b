"""The quickstart timing record (lab/records/quickstart_timing.py): cells side by side read from
the result files' start and end times, and the committed runs' facts (issue 28)."""

from __future__ import annotations

from pathlib import Path

from lab.records.quickstart_timing import most_at_once, run_summary, timing_table

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def _cell(start: str, end: str) -> dict:
    return {"started": f"2026-01-01T00:{start}+00:00", "finished": f"2026-01-01T00:{end}+00:00"}


def test_cells_side_by_side_come_from_the_start_and_end_times():
    assert (
        most_at_once([_cell("00:00", "00:10"), _cell("00:10", "00:20")]) == 1
    )  # one after another
    two = [_cell("00:00", "00:10"), _cell("00:00", "00:05"), _cell("00:05", "00:10")]
    assert most_at_once(two) == 2


def test_the_committed_quickstart_runs_side_by_side_give_the_serial_numbers():
    serial = run_summary("one cell at a time", RESULTS / "quickstart-timing" / "serial-3fc23e2")
    jobs = run_summary("default", RESULTS / "quickstart")
    assert (serial["jobs"], jobs["jobs"]) == (1, 2) and serial["commit"] == jobs["commit"]
    assert {c: m for c, (_, m) in serial["cells"].items()} == {
        c: m for c, (_, m) in jobs["cells"].items()
    }
    assert jobs["wall_s"] < 0.6 * serial["wall_s"]
    assert "| default | 3fc23e2 | 2 |" in timing_table([serial, jobs])
