"""Sequence accounting: lost, duplicate, out of order, restarts."""

from __future__ import annotations

import pytest

from sflowlab.collector.agents import MAX_GAP, WINDOW, SequenceTracker


def track(*seqs: int) -> SequenceTracker:
    t = SequenceTracker()
    for s in seqs:
        t.add(s)
    return t


def test_in_order_counts_nothing_lost() -> None:
    t = track(1, 2, 3, 4)
    assert (t.received, t.lost, t.duplicates, t.out_of_order) == (4, 0, 0, 0)


def test_gap_counts_lost_then_late_arrival_is_out_of_order() -> None:
    t = track(1, 2, 5)
    assert t.lost == 2
    assert t.add(3) == "ooo"
    assert (t.lost, t.out_of_order) == (1, 1)
    assert t.add(3) == "dup"
    assert t.add(5) == "dup"
    assert (t.lost, t.duplicates, t.received) == (1, 2, 6)


def test_wraps_at_32_bits() -> None:
    t = track(0xFFFFFFFE, 0xFFFFFFFF, 0, 2)
    assert (t.lost, t.resets) == (1, 0)


@pytest.mark.parametrize("seqs", [(500, 501, 1), (1000, 1000 - WINDOW), (1, 2 + MAX_GAP)])
def test_restart_resets_without_loss(seqs: tuple[int, ...]) -> None:
    t = track(*seqs)
    assert (t.lost, t.resets, t.duplicates, t.out_of_order) == (0, 1, 0, 0)
    assert t.last == seqs[-1]
