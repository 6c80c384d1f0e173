"""The C record loop (``_metrics.c``) against the Python loop it accelerates (``_py_apply``).

Each test applies the same counter samples to two data sources, one by ``metrics._py_apply``
and one by the C ``Applier`` built from the same record specs, and compares everything after
every sample: the metric values (floats by their bits, in insertion order), the previous
samples kept, the stopped verdict, and the exception when one is raised.
"""

from __future__ import annotations

import importlib
import random
from typing import Any, NamedTuple, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sflowlab.codec import HostDescr, HostNetIo, IfCounters, VirtCpu, VirtMemory, VirtNetIo
from sflowlab.collector import metrics
from sflowlab.collector.metrics import RECORDS, STOPPED_STATES, MetricTable, _py_apply

try:
    _metrics: Any = importlib.import_module("sflowlab.collector._metrics")
except ImportError:
    _metrics = None

pytestmark = pytest.mark.skipif(
    _metrics is None, reason="the C accelerator sflowlab.collector._metrics is not built")

CLASSES = list(RECORDS)
U32, U64 = 1 << 32, 1 << 64


def applier() -> Any:
    return _metrics.Applier({cls: spec.c_spec() for cls, spec in RECORDS.items()}, VirtCpu,
                            STOPPED_STATES)


def _canon(value: Any) -> Any:
    if type(value) is float:
        return ("float", value.hex())
    if type(value) is tuple:
        return ("tuple", type(value).__name__, [_canon(v) for v in value])
    return (type(value).__name__, value)


def _state(prev: dict[type, Any], out: dict[str, Any]) -> Any:
    return ([(k, _canon(v)) for k, v in out.items()],
            [(cls.__name__, _canon(v)) for cls, v in prev.items()])


def _outcome(apply: Any, prev: dict[type, Any], out: dict[str, Any], sample: tuple[Any, ...]
             ) -> Any:
    try:
        result: Any = ("ok", apply(prev, out, *sample))
    except Exception as e:  # compared: the same exception type and message
        result = ("raised", type(e).__name__, str(e))
    return result, _state(prev, out)


def run_both(samples: list[tuple[Any, ...]]) -> None:
    """Apply ``samples`` ((records, uptime_ms, received_at, ds_type), ...) both ways."""
    c_apply = applier()
    py: tuple[dict[type, Any], dict[str, Any]] = ({}, {})
    c: tuple[dict[type, Any], dict[str, Any]] = ({}, {})
    for i, sample in enumerate(samples):
        expected = _outcome(_py_apply, *py, sample)
        got = _outcome(c_apply, *c, sample)
        assert got == expected, f"sample {i}: {sample!r}"


def value_for(hint: Any, rng: random.Random, prev: Any) -> Any:
    """A field value: around the previous one (counting up, wrapping, going back) or fresh."""
    if hint is str:
        return rng.choice(["web.1.abcdefghijklmnopqrstuvwxy", "node1", "", "é-unicode"])
    if hint is float:
        return rng.choice([0.0, 1.5, -0.0, float("inf"), rng.uniform(0, 8)])
    if prev is not None and rng.random() < 0.7:
        step = rng.choice([0, 1, 1000, -1, -5, U32 - 3, U64 // 3, -(U64 // 3)])
        return max(0, min(U64 - 1, prev + step))
    return rng.choice([0, 1, U32 - 1, U32, U64 - 1, rng.randrange(U32), rng.randrange(U64)])


def record(cls: type, rng: random.Random, prev: Any) -> Any:
    hints = get_type_hints(cls)
    values = [value_for(hints[f], rng, None if prev is None else prev[i])
              for i, f in enumerate(cls._fields)]  # type: ignore[attr-defined]
    if cls is VirtCpu:
        values[0] = rng.choice([0, 1, 1, 1, 3, 4, 5, 6, 7, 9])
    return cls(*values)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 12))
def test_random_samples_match(seed: int, n: int) -> None:
    """Random records of every type, with wraps, 64-bit discontinuities, uptimes standing
    still or going back (then the receive time counts) and int or float times."""
    rng = random.Random(seed)
    kinds = rng.sample(CLASSES, rng.randrange(1, len(CLASSES) + 1))
    last: dict[type, Any] = {}
    samples = []
    uptime, received = rng.randrange(0, 2**40), rng.choice([1000.0, 1000, 1e9])
    for _ in range(n):
        recs = []
        for cls in kinds:
            if cls in last and RECORDS[cls].static and rng.random() < 0.5:
                recs.append(last[cls])  # the same object again, as the codec's memo gives
                continue
            last[cls] = record(cls, rng, last.get(cls))
            recs.append(last[cls])
        uptime += rng.choice([10_000, 1, 0, -5000, 2**53, 20_000])
        received += rng.choice([10, 10.0, 0, 0.25, -1.0])
        samples.append((tuple(recs), uptime, received, rng.choice([0, 2, 3])))
    run_both(samples)


def test_a_container_counts_up_and_stops() -> None:
    descr = HostDescr("web.1.abcdefghijklmnopqrstuvwxy", "u", 3, 2, "6.1")
    samples = []
    for i in range(4):
        state = 1 if i < 3 else 5  # shutoff at the end
        samples.append(((descr, VirtCpu(state, 1000 * i, 2), VirtMemory(100 * i, 400),
                         VirtNetIo(*(j * i * 7 for j in range(8)))),
                        10_000 * (i + 1), 100.0 + 10 * i, 3))
    run_both(samples)
    prev: dict[type, Any] = {}
    out: dict[str, Any] = {}
    verdicts = [applier()(prev, out, *s) for s in samples]
    assert verdicts == [False, False, False, True]
    assert out["vir_cpu_utilization"] == pytest.approx(10.0)  # 1000 ms of CPU in 10 s
    assert out["vir_bytes_out"] == pytest.approx(28 / 10)  # field 4 counts 28 a sample
    assert out["vir_pkts_in"] == pytest.approx(7 / 10)
    assert out["vir_mem_utilization"] == pytest.approx(75.0)  # 300 of 400


def test_wraps_and_discontinuities() -> None:
    """A 32-bit counter wraps; a 64-bit one going back drops that record's rates."""
    a = IfCounters(1, 6, 10**9, 1, 3, 500, U32 - 100, *([5] * 5), 10, *([1] * 6))
    b = IfCounters(1, 6, 10**9, 1, 3, 1500, 100, *([6] * 5), 20, *([2] * 6))
    net1, net2 = HostNetIo(U64 - 1, 10, *range(6)), HostNetIo(5, 20, *range(6))
    samples = [((a, net1), 1000, 1.0, 0), ((b, net2), 3000, 2.0, 0)]
    run_both(samples)
    out: dict[str, Any] = {}
    prev: dict[type, Any] = {}
    for s in samples:
        applier()(prev, out, *s)
    assert out["ifinoctets"] == 500.0  # 1000 octets in the 2 s of agent uptime
    assert out["ifinucastpkts"] == 100.0  # wrapped: 2**32 - 100 -> 100
    assert "bytes_in" not in out and "pkts_in" not in out  # a 64-bit counter went back


def test_engine_results_match_the_python_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """MetricTable over the same samples, once with each loop: the same tables."""
    rng = random.Random(5)
    samples = []
    last: dict[type, Any] = {}
    for i in range(200):
        cls = rng.choice(CLASSES)
        last[cls] = record(cls, rng, last.get(cls))
        samples.append((f"10.0.0.{i % 3}", rng.choice([0, 2, 3]), i % 5, (last[cls],),
                        1000 * i, float(i), i % 50 == 49))
    tables = []
    for apply in (_py_apply, applier()):
        monkeypatch.setattr(metrics, "apply_records", apply)
        table = MetricTable()
        for s in samples:
            table.update(*s)
        tables.append({k: _state(ds.prev, ds.values) for k, ds in table.sources.items()})
    assert tables[0] == tables[1]
    assert len(tables[0]) > 10


def test_bad_input_raises_the_same() -> None:
    bad = VirtNetIo(*([None] * 8))
    good = VirtNetIo(*range(8))
    run_both([((good,), 1000, 1.0, 3), ((bad,), 2000, 2.0, 3)])
    run_both([((good,), "x", 1.0, 3), ((good,), "y", 2.0, 3)])
    with pytest.raises(TypeError):
        applier()({}, {}, (good,), 1, 1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _metrics.Applier({VirtCpu: ((), ((0, "x", 1 << 40),), None, False)}, VirtCpu, ())


def test_a_record_with_many_rates() -> None:
    """More rates than the C loop keeps on its stack (32): the same per-second values."""
    big = NamedTuple("Big", [(f"c{i}", int) for i in range(40)])  # type: ignore[misc]
    apply = _metrics.Applier({big: ((), tuple((i, f"m{i}", U32) for i in range(40)), None,
                                    False)}, VirtCpu, ())
    prev: dict[type, Any] = {}
    out: dict[str, Any] = {}
    assert apply(prev, out, (big(*range(40)),), 1000, 1.0, 0) is False
    assert out == {}
    apply(prev, out, (big(*(3 * i for i in range(40))),), 3000, 2.0, 0)
    assert out == {f"m{i}": 2 * i / 2.0 for i in range(40)}
