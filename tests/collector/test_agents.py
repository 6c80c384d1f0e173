"""Sequence accounting: lost, duplicate, out of order, restarts (both implementations:
the C accelerator when built, and the pure-Python tracker)."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sflowlab.collector import agents
from sflowlab.collector.agents import MAX_GAP, WINDOW

IMPLEMENTATIONS = [agents.PySequenceTracker] + (
    [agents._seq.SequenceTracker] if agents._seq is not None else [])


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda cls: cls.__module__.rsplit(".", 1)[1])
def tracker(request: pytest.FixtureRequest) -> Any:
    return request.param


def track(cls: Any, *seqs: int) -> Any:
    t = cls()
    for s in seqs:
        t.add(s)
    return t


def test_in_order_counts_nothing_lost(tracker: Any) -> None:
    t = track(tracker, 1, 2, 3, 4)
    assert (t.received, t.lost, t.duplicates, t.out_of_order) == (4, 0, 0, 0)


def test_gap_counts_lost_then_late_arrival_is_out_of_order(tracker: Any) -> None:
    t = track(tracker, 1, 2, 5)
    assert t.lost == 2
    assert t.add(3) == "ooo"
    assert (t.lost, t.out_of_order) == (1, 1)
    assert t.add(3) == "dup"
    assert t.add(5) == "dup"
    assert (t.lost, t.duplicates, t.received) == (1, 2, 6)


def test_wraps_at_32_bits(tracker: Any) -> None:
    t = track(tracker, 0xFFFFFFFE, 0xFFFFFFFF, 0, 2)
    assert (t.lost, t.resets) == (1, 0)


@pytest.mark.parametrize("seqs", [(500, 501, 1), (1000, 1000 - WINDOW), (1, 2 + MAX_GAP)])
def test_restart_resets_without_loss(tracker: Any, seqs: tuple[int, ...]) -> None:
    t = track(tracker, *seqs)
    assert (t.lost, t.resets, t.duplicates, t.out_of_order) == (0, 1, 0, 0)
    assert t.last == seqs[-1]


FIELDS = ("received", "lost", "duplicates", "out_of_order", "resets", "last", "seen")


def state(t: Any) -> tuple[int, ...]:
    return tuple(getattr(t, name) for name in FIELDS)


@pytest.mark.skipif(agents._seq is None, reason="the C accelerator _seq is not loaded (not built, or SFLOWLAB_PURE_PYTHON=1)")
@given(st.lists(st.one_of(
    st.integers(0, 0xFFFFFFFF),  # anywhere: resets, wraps
    st.integers(-300, 300),  # near the stream: in order, gaps, duplicates, out of order
    st.integers(MAX_GAP - 2, MAX_GAP + 2),  # around the largest gap counted as loss
), max_size=400))
@settings(max_examples=300, deadline=None)
def test_c_tracker_equals_python_after_every_number(steps: list[int]) -> None:
    py, c = agents.PySequenceTracker(), agents._seq.SequenceTracker()
    seq = 0xFFFFFF00  # near the wrap, so walks cross it
    for i, step in enumerate(steps):
        seq = step if step > 300 and step < MAX_GAP - 2 else (seq + step) & 0xFFFFFFFF
        if i % 97 == 96:
            assert c._reset(seq) == py._reset(seq)
        else:
            assert c.add(seq) == py.add(seq)
        assert state(c) == state(py)


@pytest.mark.skipif(agents._seq is None, reason="the C accelerator _seq is not loaded (not built, or SFLOWLAB_PURE_PYTHON=1)")
def test_c_tracker_seen_window_reads_and_writes_as_an_int() -> None:
    t = agents._seq.SequenceTracker()
    assert (t.last, t.seen) == (-1, 0)
    t.seen = (1 << 255) | (1 << 64) | 5
    assert t.seen == (1 << 255) | (1 << 64) | 5
    with pytest.raises(ValueError):
        t.seen = 1 << 256
    with pytest.raises(ValueError):
        t.seen = -1
    with pytest.raises(TypeError):
        agents._seq.SequenceTracker(1)
    t.received = 7
    assert "received=7" in repr(t)


class Sample(NamedTuple):
    source_id_type: int
    source_id_index: int
    sequence_number: int
    discarded: bool


@pytest.mark.skipif(agents._seq is None,
                    reason="the C accelerator _seq is not loaded (not built, or SFLOWLAB_PURE_PYTHON=1)")
@given(st.lists(st.lists(st.builds(Sample, st.integers(0, 2), st.integers(0, 2),
                                   st.integers(0, 12), st.booleans()), max_size=8),
                max_size=30))
@settings(max_examples=200, deadline=None)
def test_c_fresh_flow_samples_equals_python(datagrams: list[list[Sample]]) -> None:
    """Per datagram: the same samples kept (duplicates dropped), the same trackers made and
    counting the same."""
    c_samplers: dict[Any, Any] = {}
    py_samplers: dict[Any, Any] = {}
    for samples in datagrams:
        assert (agents._seq.fresh_flow_samples(c_samplers, samples)
                == agents._py_fresh_flow_samples(py_samplers, samples))
        assert list(c_samplers) == list(py_samplers)
        assert [state(t) for t in c_samplers.values()] == [
            state(t) for t in py_samplers.values()]
    with pytest.raises(AttributeError):
        agents._seq.fresh_flow_samples({}, [object()])
    with pytest.raises(TypeError):
        agents._seq.fresh_flow_samples({}, ())
