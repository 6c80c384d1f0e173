"""The C rate loop (``_rates.c``) against the generated Python loop it accelerates.

Each test feeds the same rows to one flow run by ``_rate_ingester`` (Python) and one run by
``_c_rate_ingester`` (C), then compares the whole state: every table in order, every entry's
slots (floats by their bits), every call of prune, every exception.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import math
import random
import sys
import tracemalloc
import weakref
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import flow_view
from hypothesis import given, settings
from hypothesis import strategies as st

from sflowlab.agent_sim.packets import TCP, UDP, Packet
from sflowlab.codec import Datagram, FlowSample, SampledHeader, encode_datagram
from sflowlab.codec import data_source as codec_data_source
from sflowlab.codec.fast import FlowSampleView, decode_for_collector
from sflowlab.collector import flows
from sflowlab.collector.filters import CompiledKey
from sflowlab.collector.flows import (
    PRUNE_SLACK,
    FlowEngine,
    FlowSpec,
    _c_rate_ingester,
    _CompiledFlow,
    _Entry,
    _rate_ingester,
)
from sflowlab.collector.groups import GroupSet

try:
    _rates: Any = importlib.import_module("sflowlab.collector._rates")
except ImportError:
    _rates = None

pytestmark = pytest.mark.skipif(
    _rates is None, reason="the C accelerator sflowlab.collector._rates is not built"
    " (python setup.py build_ext --inplace)")

A1, A2 = "192.0.2.1", "192.0.2.2"
MAX_KEYS = 1000
Ingest = Callable[..., None]


# ------------------------------------------------------------------ state and twins

def _canon(value: Any) -> Any:
    """A value as compared: a float by its bits (so -0.0 != 0.0 and nan == nan)."""
    if type(value) is float:
        return ("float", value.hex())
    if type(value) is complex:
        return ("complex", value.real.hex(), value.imag.hex())
    if type(value) is dict:
        return ("dict", [(_canon(k), _canon(v)) for k, v in value.items()])
    return (type(value).__name__, value)


def state(flow: _CompiledFlow) -> list[Any]:
    """Every table, in order, with every entry's slots."""
    out: list[Any] = []
    for src, table in flow.tables.items():
        if table is None:
            out.append((src, None))
            continue
        rows = []
        for key, entry in table.items():
            if isinstance(entry, _Entry):
                slots = [_canon(getattr(entry, name, "<unset>")) for name in _Entry.__slots__]
            else:
                slots = [(k, _canon(v)) for k, v in sorted(vars(entry).items())]
            rows.append((_canon(key), type(entry).__name__, slots))
        out.append((src, rows))
    return out


class Twins:
    """One flow definition compiled twice: ``py`` ingests in Python, ``c`` in C. Prune calls
    are recorded (with the table's keys at the call) and then run."""

    def __init__(self, groups: GroupSet | None = None, *, test: Any = None,
                 getters: dict[int, Callable[[Any], Any]] | None = None, **spec: Any) -> None:
        self.flows: dict[str, _CompiledFlow] = {}
        self.calls: dict[str, list[Any]] = {}
        self.ingest: dict[str, Ingest] = {}
        for kind in ("py", "c"):
            flow = _CompiledFlow("twin", FlowSpec.from_json(spec), groups or GroupSet())
            if test is not None:
                flow.test = test
            for i, get in (getters or {}).items():  # a custom getter in place of key i
                flow.keys[i] = CompiledKey(f"custom{i}", frozenset({"custom"}), get)
            self._record_prune(flow, kind)
            self.flows[kind] = flow
            self.ingest[kind] = (_rate_ingester(flow) if kind == "py"
                                 else _c_rate_ingester(flow, _rates))

    def _record_prune(self, flow: _CompiledFlow, kind: str) -> None:
        calls = self.calls[kind] = []
        real = flow._prune

        def prune(src: Any, table: dict[str, Any], now: Any, max_keys: Any, logged: Any,
                  next_id: Any) -> None:
            calls.append((src, list(table), _canon(now), max_keys, logged, next_id))
            real(src, table, now, max_keys, logged, next_id)
        flow._prune = prune  # type: ignore[method-assign]

    def feed(self, rows: Any, now: Any, max_keys: Any = MAX_KEYS,
             copy: Callable[[Any], Any] = lambda rows: rows) -> None:
        """Both ingest ``rows`` (a fresh ``copy`` each); same result or same exception."""
        outcome: dict[str, tuple[type[Exception], str] | None] = {}
        for kind in ("py", "c"):
            try:
                self.ingest[kind](copy(rows), now, max_keys)
                outcome[kind] = None
            except Exception as exc:
                outcome[kind] = (type(exc), str(exc))
        assert outcome["c"] == outcome["py"]
        self.check()

    def check(self) -> None:
        assert self.calls["c"] == self.calls["py"]
        assert state(self.flows["c"]) == state(self.flows["py"])


class EngineTwins:
    """Two FlowEngines with the same definitions, one with C loops, one with Python's."""

    def __init__(self, groups: GroupSet | None = None, max_keys: int = MAX_KEYS) -> None:
        groups = groups or GroupSet()
        self.py = FlowEngine(groups, max_keys=max_keys)
        self.c = FlowEngine(groups, max_keys=max_keys)

    def define(self, name: str, **spec: Any) -> None:
        for fe, make in ((self.py, _rate_ingester),
                         (self.c, lambda f: _c_rate_ingester(f, _rates))):
            fe.define(name, FlowSpec.from_json(spec))
            flow = fe._flows[name]
            if flow._rates is not None:
                flow._rates = make(flow)

    def ingest_all(self, agent: str, samples: list[Any], now: float) -> None:
        self.py.ingest_all(agent, samples, now)
        self.c.ingest_all(agent, samples, now)

    def check(self, now: float) -> None:
        assert self.c._flows.keys() == self.py._flows.keys()
        for name, flow in self.py._flows.items():
            assert state(self.c._flows[name]) == state(flow), name
        assert self.c.tick(now) == self.py.tick(now)


# ------------------------------------------------------------------ real samples

view = flow_view


def traffic(seed: int, datagrams: int) -> list[list[FlowSampleView]]:
    """Datagrams' flow samples: a few hosts, TCP and UDP, several data sources, v4 and v6."""
    rng = random.Random(seed)
    hosts = [f"10.0.{rng.randrange(3)}.{rng.randrange(1, 9)}" for _ in range(6)] + ["2001:db8::1"]
    out = []
    for _ in range(datagrams):
        samples = []
        for _ in range(rng.randrange(1, 7)):
            a, b = rng.choice(hosts), rng.choice(hosts)
            if (":" in a) != (":" in b):
                b = a
            samples.append(view(a, b, proto=rng.choice((TCP, UDP)),
                                sport=rng.randrange(1000, 1010), dport=rng.choice((53, 80, 443)),
                                length=rng.randrange(64, 1500), rate=rng.choice((1, 100, 400)),
                                ds=rng.randrange(1, 5), discarded=rng.random() < 0.1))
        out.append(samples)
    return out


def _bench_capture() -> list[list[FlowSampleView]]:
    path = Path(__file__).resolve().parents[2] / "bench" / "capture.py"
    spec = importlib.util.spec_from_file_location("bench_capture", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    views = [decode_for_collector(d).flow_samples for d in module.make_capture(200, seed=3)]
    return [v for v in views if v]


DEFINITIONS: list[dict[str, Any]] = [
    {"value": "bytes"},
    {"keys": "ipsource", "value": "frames"},
    {"keys": "ipsource,ipdestination", "value": "bytes"},
    {"keys": "ipsource,ipdestination,tcpdestinationport,ipprotocol", "value": "bytes"},
    {"keys": "tcpdestinationport", "value": "frames", "fs": "|"},
    {"keys": "ipsource,udpdestinationport", "value": "ipbytes", "fs": " é "},
    {"keys": "ipdestination,ipprotocol,ipttl", "value": "ipttl", "fs": "→"},
    {"keys": "stack,inputifindex", "value": "bytes", "t": 0.2},
    {"keys": "agent,ipsource", "value": "bytes", "t": 600},
    {"keys": "group:ipsource:lan:v6,mask:ipdestination:24", "value": "bytes"},
    {"keys": "group:ipdestination", "value": "frames"},
    {"keys": "range:tcpdestinationport:0:100,or:tcpsourceport:udpsourceport", "value": "bytes"},
    {"keys": "null:tcpdestinationport:none,prefix:stack:.:2", "value": "frames"},
    {"keys": "ipsource", "value": "bytes", "filter": "ipprotocol=6&tcpdestinationport!=443"},
    {"keys": "ipsource,ipdestination", "value": "frames",
     "filter": "tcpdestinationport=80,443|udpdestinationport=53"},
    {"keys": "ipsource", "value": "bytes", "dropped": True},
    {"keys": "ipsource", "value": "bytes", "log": True},  # no loop: ingested by ingest()
    {"keys": "ipsource", "value": "avg:ipbytes"},
]


def lab_groups() -> GroupSet:
    groups = GroupSet()
    groups.set("lan", ["10.0.0.0/24", "10.0.1.0/24"])
    groups.set("v6", ["2001:db8::/32"])
    groups.set("wide", ["10.0.0.0/8"])
    return groups


@pytest.mark.parametrize("max_keys", [MAX_KEYS, 3])
def test_real_samples_through_ingest_all_give_the_same_state(max_keys: int) -> None:
    twins = EngineTwins(lab_groups(), max_keys=max_keys)
    for i, spec in enumerate(DEFINITIONS):
        twins.define(f"f{i}", **spec)
    assert isinstance(twins.c._flows["f2"]._rates, _rates.RateIngester)
    now = 1000.0
    for i, samples in enumerate(traffic(1, 300)):
        agent = A2 if i % 3 == 0 else A1
        now += (0.0, 0.0, 0.001, 0.37, 5.0, 123.0)[i % 6]  # same now, small and large steps
        twins.ingest_all(agent, samples, now)
        if i % 50 == 0:
            twins.check(now)
    twins.check(now)
    twins.check(now + 10**6)  # all expired


def test_the_benchmark_capture_gives_the_same_state() -> None:
    twins = EngineTwins(max_keys=20)  # tables of a few dozen pairs: pruned now and then
    twins.define("pairs", keys="ipsource,ipdestination", value="bytes")
    twins.define("ports", keys="tcpdestinationport", value="frames")
    twins.define("total", value="bytes")
    twins.define("ttl", keys="ipsource", value="ipttl", t=0.5)
    for n, datagram in enumerate(_bench_capture()):
        twins.ingest_all("192.168.0.1", datagram, 1000.0 + n * 0.013)
    twins.check(1000.0 + n * 0.013)
    assert any(len(t) > 10 for t in twins.c._flows["pairs"].tables.values())


def test_pruning_calls_prune_with_the_same_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = []
    src = (A1, "5")
    for port in range(40):
        sample = view(sport=1000 + port, length=64 + port)
        rows.append((src, sample.keys(), sample, sample.frame_length * 100, 100))
    twins = Twins(keys="ipsource,tcpsourceport", value="bytes")
    twins.feed(rows, 5.0, max_keys=4)
    twins.feed(rows[::-1], 6.5, max_keys=4)
    assert len(twins.calls["c"]) > 10
    assert all(len(t) <= 6 for t in twins.flows["c"].tables.values())
    twins.feed(rows, 7.0, max_keys=4.5)  # prune fails on a float max_keys, the same way
    monkeypatch.setattr(flows, "PRUNE_SLACK", 2)  # an int limit: compared as objects
    twins = Twins(keys="ipsource,tcpsourceport", value="bytes")
    twins.feed(rows, 5.0, max_keys=4)
    assert len(twins.calls["c"]) > 5


# ------------------------------------------------------------------ rows of any content

KEY_NAMES = ("k1", "k2", "k3", "num")
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["a", "b", "", "é", "→"]),
    st.integers(2**1023, 2**1100))
NUMBERS = st.one_of(st.integers(0, 10**6), st.integers(-5, 5), st.floats(-1e6, 1e6),
                    st.integers(2**1023, 2**1030), st.sampled_from([math.inf, -0.0, math.nan]),
                    st.sampled_from([True, Fraction(1, 3), 1j]))
NOWS = st.one_of(st.floats(0, 1e4), st.sampled_from([0.0, 1.0, 1.0, math.inf, -1.0]),
                 st.integers(0, 10))
SOURCES = [(A1, "1"), (A1, "2"), (A2, "1")]


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[list[Any], Any]]:
    out = []
    for _ in range(draw(st.integers(1, 4))):
        rows = []
        for _ in range(draw(st.integers(0, 8))):
            keys = {name: draw(VALUES) for name in KEY_NAMES if draw(st.booleans())}
            src = SOURCES[draw(st.integers(0, len(SOURCES) - 1))]
            rows.append((src, keys, None, draw(NUMBERS), draw(NUMBERS)))
        out.append((rows, draw(NOWS)))
    return out


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(st.sampled_from(KEY_NAMES), max_size=3),
       value=st.sampled_from(["bytes", "frames", "num", "k1"]),
       t=st.sampled_from([0.2, 1, 2.5, 600]), max_keys=st.sampled_from([1, 2, 1000]),
       data=batches())
def test_generated_rows_give_the_same_state(keys: list[str], value: str, t: float,
                                            max_keys: int, data: list[tuple[list[Any], Any]]
                                            ) -> None:
    twins = Twins(keys=",".join(keys), value=value, t=t, fs=";")
    for rows, now in data:
        twins.feed(rows, now, max_keys)


def test_many_keys() -> None:
    names = [f"k{i}" for i in range(12)]
    twins = Twins(keys=",".join(names), value="frames", fs="::")
    rows = [((A1, "1"), {n: (i * j) % 3 for j, n in enumerate(names)}, None, 1, 1 + i)
            for i in range(20)]
    twins.feed(rows, 1.0)
    twins.feed(rows[::2], 1.5)
    assert len(twins.flows["c"].tables[(A1, "1")]) == 3


def test_rows_at_the_same_time_decay_and_overflow() -> None:
    twins = Twins(keys="k1", value="num", t=0.2)
    src = (A1, "1")
    for now in (1.0, 1.0, 1.0 + 1e-9, 50.0, 50.0, 10**4, 10**4 + 0.5, 10**3):
        twins.feed([(src, {"k1": "x", "num": 7}, None, 0, 3),
                    (src, {"k1": "x", "num": 0.25}, None, 0, 3),
                    (src, {"k1": "y", "num": -2}, None, 0, 3)], now)
    entry = twins.flows["c"].tables[src]["x"]
    assert entry.last == 10**4 + 0.5 and entry.a > 0
    twins.feed([(src, {"k1": "x", "num": 2**1100}, None, 0, 1)], 10**5)  # OverflowError
    twins.feed([(src, {"k1": "new", "num": 2**1100}, None, 0, 1)], 10**5)  # entry left at 0
    assert twins.flows["c"].tables[src]["new"].a == 0.0


def test_keys_str_values_and_missing_values() -> None:
    twins = Twins(keys="k1,k2", value="num")
    src = (A1, "1")

    class Text(str):
        pass

    class Odd:
        def __str__(self) -> str:
            return Text("odd")

    rows = [(src, {"k1": 1, "k2": 2.5, "num": 3}, None, 0, 10),
            (src, {"k1": True, "k2": Text("t"), "num": 1.5}, None, 0, 10),
            (src, {"k1": Odd(), "k2": "é", "num": 1}, None, 0, 10),
            (src, {"k1": "a", "k2": "b", "num": "7"}, None, 0, 10),  # str value: skipped
            (src, {"k1": "a", "k2": "b", "num": Text("7")}, None, 0, 2),  # str * 2 * inv_t
            (src, {"k1": "a", "k2": None, "num": 1}, None, 0, 10),  # missing key: skipped
            (src, {"k1": "a", "k2": "b"}, None, 0, 10),  # missing value: skipped
            (src, {"k1": "a", "k2": "b", "num": [1]}, None, 0, 10),
            (src, {"k1": "a", "k2": "b", "num": Fraction(1, 3)}, None, 0, 10),
            (src, {"k1": "f", "k2": "b", "num": Fraction(1, 3)}, None, 0, 10)]
    for now in (1.0, 2.0, 2.0):
        for row in rows:
            twins.feed([row], now)
    assert set(twins.flows["c"].tables[src]) == {"1,2.5", "True,t", "odd,é", "a,b", "f,b"}


def test_the_same_exceptions_from_filters_key_functions_and_rows() -> None:
    src = (A1, "1")

    def flaky(keys: Any) -> Any:
        if keys.get("num") in (4, 9):
            raise LookupError(f"row {keys['num']}")
        return keys.get("k1")

    class Bad:
        def __bool__(self) -> bool:
            raise ValueError("no truth")

        def __str__(self) -> str:
            raise ValueError("no text")

    rows = [(src, {"k1": f"v{i % 3}", "k2": "x", "num": i}, None, i, 1) for i in range(12)]
    makers: list[Callable[[], Twins]] = [
                 lambda: Twins(keys="k1,k2", test=flaky),
                 lambda: Twins(keys="k2,k1", getters={1: flaky}),
                 lambda: Twins(keys="k1", test=lambda keys: Bad() if keys["num"] == 3 else 1),
                 lambda: Twins(keys="k1,k2", getters={0: lambda keys: Bad()}),
                 lambda: Twins(keys="range:num:0:5")]
    for make in makers:
        twins = make()
        twins.feed(rows, 1.0)
        twins.feed(rows, 2.0)
    twins.feed([(src, {"num": math.inf}, None, 0, 1)], 3.0)  # int(inf) in range:
    twins = Twins(keys="k1")
    bad: Any
    for bad in ([(src, {}, None, 1)], [(src, {}, None, 1, 1, 1)], [5], [None], 7,
                [(src, {"k1": "a"}, None, 1, 1), [src, {"k1": "b"}, None, 1, 1],
                 deque([src, {"k1": "c"}, None, 1, 1]), (src, {"k1": "d"})]):
        twins.feed(bad, 1.0)
        twins.feed(bad, 1.0, max_keys="no")  # max_keys * PRUNE_SLACK raises first
    twins.feed([([1], {"k1": "a"}, None, 1, 1)], 1.0)  # unhashable src


def test_rows_of_any_shape_and_mappings_other_than_dict() -> None:
    class Keys(dict[str, Any]):
        def get(self, name: str, default: Any = None) -> Any:
            if name == "num" and self.get("k1") == "over":
                raise KeyError("num")
            return "over" if name == "k1" else super().get(name, default)

    src = (A1, "1")
    rows = [(src, {"k1": "a", "num": 1}, None, 10, 1), (src, Keys(k1="b"), None, 20, 2),
            [src, {"k1": "c"}, None, 30, 3], ((A1, "2"), {"k1": "a"}, None, 40, 4)]
    twins = Twins(keys="k1", value="bytes")
    for copy in (list, tuple, iter, lambda r: (row for row in r), lambda r: [tuple(r[0])] * 3):
        twins.feed(rows, 5.0, copy=copy)
    twins.feed(rows, 6.0)
    for kind in ("py", "c"):  # keyword arguments
        twins.ingest[kind](rows=rows, now=7.0, max_keys=10)
    twins.check()
    twins = Twins(keys="k1", value="num")  # Keys.get raises for the value
    twins.feed(rows, 5.0)


def test_entries_the_c_loop_did_not_make_go_the_generic_way() -> None:
    class Table(dict[str, Any]):  # read through its methods
        def get(self, key: str, default: Any = None) -> Any:
            return super().get(key.upper(), default)

    class Loose:
        def __init__(self, a: Any, last: Any) -> None:
            self.a, self.last = a, last

    twins = Twins(keys="k1", value="bytes")
    src = (A1, "1")
    for flow in twins.flows.values():
        table: dict[str, Any] = {"int": _Entry(1), "loose": Loose(2.0, 0.5),
                                 "ints": Loose(3, 1), "unset": _Entry(1.0)}
        flow.tables[src] = table
        table["int"].a = 2
        del table["unset"].a
        flow.tables[(A1, "2")] = None  # type: ignore[assignment]
        flow.tables[(A1, "3")] = Table()
    rows = [(src, {"k1": k}, None, 100, 1) for k in ("int", "loose", "ints")]
    for now in (1, 1.0, 2, 3.5, 3.5):
        twins.feed(rows, now)
    twins.feed([(src, {"k1": "unset"}, None, 1, 1)], 4.0)  # AttributeError both ways
    twins.feed([((A1, "2"), {"k1": "x"}, None, 1, 1)], 4.0)  # a None table: replaced
    for now in (4.0, 5.0, 6.0):  # a dict subclass as table: its get, len and setitem
        twins.feed([((A1, "3"), {"k1": k}, None, 1, 1) for k in ("x", "X", "y")], now, 1)
    twins.feed([(src, {"k1": "int"}, None, 1, 1)], 2**1100)  # int now: exact int arithmetic


# ------------------------------------------------------------------ the object itself

def test_flows_use_the_accelerator_when_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = FlowSpec.from_json({"keys": "ipsource"})
    if flows._rates is not None:
        assert isinstance(_CompiledFlow("x", spec, GroupSet())._rates, _rates.RateIngester)
    monkeypatch.setattr(flows, "_rates", None)
    assert not isinstance(_CompiledFlow("x", spec, GroupSet())._rates, _rates.RateIngester)


def test_entries_made_in_c_are_not_tracked_by_the_cyclic_gc() -> None:
    """Numbers only: never in a cycle, so a full collection need not walk a million of them;
    refcounting still frees them when their table drops them."""
    flow = _CompiledFlow("x", FlowSpec.from_json({"keys": "ipsource"}), GroupSet())
    flow._rates = _c_rate_ingester(flow, _rates)
    flow.ingest_rows([((A1, "5"), {"ipsource": "10.0.0.1"}, None, 1000, 10)], 1.0, MAX_KEYS,
                     [], int)
    (entry,) = flow.tables[(A1, "5")].values()
    assert not gc.is_tracked(entry)
    assert flow.value(entry, 1.0) == 1000 * flow.inv_t
    flow.tables.clear()
    assert sys.getrefcount(entry) == 2  # ours and the call's: nothing else holds it


def test_expire_deletes_what_the_python_sweep_deletes() -> None:
    """Entries silent for more than the limit go, in C as in Python: float and int times,
    exactly at the limit (kept), and an entry whose ``last`` cannot be read raises."""
    rng = random.Random(5)
    for _ in range(200):
        now = rng.choice((100.0, 100, 37.5))
        table = {f"k{i}": _Entry(rng.choice((now - 20.0, now - 20, now - 19.5, now - 21,
                                             now - rng.uniform(0, 40), float(now))))
                 for i in range(rng.randrange(0, 30))}
        twin = dict(table)
        assert _rates.expire(table, now, 20.0) == flows._py_expire_table(twin, now, 20.0)
        assert list(table) == list(twin)
    with pytest.raises(AttributeError):
        _rates.expire({"x": object()}, 1.0, 1.0)
    with pytest.raises(TypeError):
        _rates.expire([], 1.0, 1.0)


def test_bad_construction_is_refused() -> None:
    class Other:
        __slots__ = ("a", "b", "last", "log_start", "seen", "total")

        def __init__(self, now: float) -> None:
            self.a = self.b = self.total = 0.0
            self.last, self.log_start = now, None
            self.seen: list[Any] = []  # a mutable default

    class Extra:
        __slots__ = (*_Entry.__slots__, "more")

    class Plain:
        pass

    good: tuple[Any, ...] = ((), ",", "bytes", None, {}, _Entry, 0.5, print, PRUNE_SLACK)
    _rates.RateIngester(*good)
    for at, bad in ((0, ("k", 5)), (1, 5), (3, 5), (4, []), (5, Other), (5, int), (5, Extra),
                    (5, Plain), (6, 1), (7, None)):
        with pytest.raises(TypeError):
            _rates.RateIngester(*good[:at], bad, *good[at + 1:])
    ingest = _rates.RateIngester(*good)
    with pytest.raises(TypeError):
        ingest([], 1.0)
    with pytest.raises(TypeError):
        ingest([], 1.0, 2, 3)
    with pytest.raises(TypeError):
        ingest([], 1.0, max_keys=2, rows=[])
    with pytest.raises(TypeError):
        ingest([], 1.0, keys=2)


def test_no_reference_leaks_and_cycles_are_collected() -> None:
    twins = Twins(keys="k1,k2", value="num")
    ingest = twins.ingest["c"]
    src, keys = (A1, "1"), {"k1": "a", "k2": 7, "num": 3}
    probe = float(sys.maxsize % 2)  # 1.0, a fresh object, older than any entry: never stored
    rows = [(src, keys, None, 1, 2), (src, {"k1": None}, None, 1, 2)]
    bad = [(src, {"k1": "a", "k2": 1, "num": [1]}, None, 1, 2)]
    now = 5.5
    ingest(rows, now, 10)
    with pytest.raises(TypeError):
        ingest(bad, now, 10)  # the entry is made, then q * inv_t fails
    watched = (src, keys, probe, rows[0], rows[1], bad[0], _Entry)
    gc.collect()
    before = [sys.getrefcount(o) for o in watched]
    for i in range(2000):
        ingest(rows, now + i, 10)
        ingest(rows, probe, 10)
        with pytest.raises(TypeError):
            ingest(bad, now + i, 10)
        with pytest.raises(TypeError):
            ingest(bad, probe, 10)
        with pytest.raises(ValueError):
            ingest([(src, keys, None, 1)], probe, 10)
    assert [sys.getrefcount(o) for o in watched] == before

    tracemalloc.start()
    try:
        for i in range(3):
            ingest(rows * 1000, 10**4 + i, 10)
        start, _ = tracemalloc.get_traced_memory()
        for i in range(30):
            ingest(rows * 1000, 10**4 + 3 + i, 10)
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert end - start < 10_000

    flow = twins.flows["c"]
    ref = weakref.ref(flow)
    del twins, flow, ingest
    gc.collect()
    assert ref() is None  # flow -> ingester -> bound prune -> flow: a cycle the GC frees


def test_documented_entry_fields_are_all_compared() -> None:
    assert set(_Entry.__slots__) == {"a", "b", "last", "log_start", "seen", "total"}
    twins = Twins(keys="k1")
    twins.feed([((A1, "1"), {"k1": "x"}, None, 5, 1)], 2.0)
    made = twins.flows["c"].tables[(A1, "1")]["x"]
    fresh = _Entry(2.0)
    fresh.a = 5 * twins.flows["c"].inv_t
    assert [getattr(made, s) for s in _Entry.__slots__] == [
        getattr(fresh, s) for s in _Entry.__slots__]


# ------------------------------------------------------------------ rows of a datagram

def _rows_outcome(build: Callable[..., Any], agent: Any, samples: Any, now: Any,
                  with_rows: Any, needs_agent: Any, data_source: Callable[[Any], Any]) -> Any:
    """What ``build`` returns (rows compared by value, keys and samples also by identity)
    or raises, with the key sets it noted."""
    key_names: dict[Any, Any] = {("old", 3): ("x",)}
    key_sets: dict[Any, Any] = {("old", 3): 1.0}
    try:
        rows, dropped = build(agent, samples() if callable(samples) else samples, now,
                              key_names, key_sets, with_rows, needs_agent, data_source)
        result: Any = [[(src, _canon(keys), id(sample), _canon(q), _canon(rate),
                         keys is sample.keys()) for src, keys, sample, q, rate in part]
                       for part in (rows, dropped)]
    except Exception as exc:
        result = (type(exc), str(exc))
    return result, list(key_names.items()), [(k, _canon(v)) for k, v in key_sets.items()]


def assert_same_rows(agent: Any, samples: Any, now: Any = 5.0, with_rows: Any = True,
                     needs_agent: Any = False,
                     data_source: Callable[[Any], Any] = codec_data_source) -> Any:
    got = _rows_outcome(_rates.sample_rows, agent, samples, now, with_rows, needs_agent,
                        data_source)
    assert got == _rows_outcome(flows._py_sample_rows, agent, samples, now, with_rows,
                                needs_agent, data_source)
    return got[0]


def test_sample_rows_of_real_datagrams() -> None:
    typed = [decode_for_collector(encode_datagram(Datagram(agent_address=A2, samples=(
        FlowSample(source_id=(kind << 24) | index, sampling_rate=10, records=(
            SampledHeader(frame_length=100, header=Packet(
                "00:00:00:00:00:01", "00:00:00:00:00:02", "10.0.0.1", "10.0.0.2", UDP, 1,
                2, length=100).header(128)),)),)))).flow_samples[0]
             for kind, index in ((0, 7), (2, 1), (3, 100123), (0, 7))]
    uncached = [FlowSampleView(*sample) for sample in typed]  # keys made by the first keys()
    datagrams = [*traffic(2, 40), *_bench_capture()[:40], typed, [], typed[::-1], uncached]
    for samples in datagrams:
        for with_rows, needs_agent in ((True, False), (True, True), (False, True)):
            result = assert_same_rows(A1, samples, 7.5, with_rows, needs_agent)
            if with_rows and samples:
                assert sum(map(len, result)) == len(samples)
        assert_same_rows(A1, tuple(samples))
        assert_same_rows(A1, lambda samples=samples: iter(samples))


class FakeSample:
    """What sample_rows reads of a sample, any of it possibly odd."""

    def __init__(self, keys: Any, source_id_type: Any = 0, source_id_index: Any = 1,
                 sampling_rate: Any = 10, frame_length: Any = 100, discarded: Any = False
                 ) -> None:
        self._keys, self.source_id_type, self.source_id_index = keys, source_id_type, \
            source_id_index
        self.sampling_rate, self.frame_length, self.discarded = sampling_rate, frame_length, \
            discarded

    def keys(self) -> Any:
        if isinstance(self._keys, Exception):
            raise self._keys
        return self._keys


STACKS = st.sampled_from(["eth.ip.tcp", "eth.ip.udp", None, 5])
ODD = st.one_of(st.integers(0, 3), st.sampled_from([0.0, 1.5, True, "0", None, 2**70]))


@st.composite
def fake_samples(draw: st.DrawFn) -> list[FakeSample]:
    shared = [{"stack": "eth.ip.tcp", "a": 1}, {"stack": "eth.ip.udp", "a": 1, "b": 2}]
    out = []
    for _ in range(draw(st.integers(0, 8))):
        choice = draw(st.integers(0, 3))
        if choice < 2:
            keys: Any = shared[choice]
        elif choice == 2:
            keys = {f"k{i}": i for i in range(draw(st.integers(0, 3)))}
            if draw(st.booleans()):
                keys["stack"] = draw(STACKS)
        else:
            keys = draw(st.sampled_from([ValueError("bad keys"), 5, [("stack", 1)]]))
        out.append(FakeSample(keys, draw(ODD), draw(ODD), draw(ODD), draw(ODD), draw(ODD)))
    return out


def _data_source(sample: Any) -> Any:
    if sample.source_id_index is None:
        raise KeyError("no index")
    return f"{sample.source_id_type}.{sample.source_id_index}"


@settings(max_examples=300, deadline=None)
@given(samples=fake_samples(), with_rows=st.sampled_from([True, False, 1, 0]),
       needs_agent=st.booleans(), agent=st.sampled_from([A1, None]),
       now=st.sampled_from([5.0, 7]))
def test_sample_rows_of_generated_samples(samples: list[FakeSample], with_rows: Any,
                                          needs_agent: bool, agent: Any, now: Any) -> None:
    assert_same_rows(agent, samples, now, with_rows, needs_agent, _data_source)


def test_sample_rows_errors() -> None:
    with pytest.raises(TypeError):
        _rates.sample_rows(A1, [], 1.0, {}, {}, True, False)
    assert_same_rows(A1, 5)
    assert_same_rows(A1, [FakeSample({"stack": "s"})], with_rows=Bad())
    assert_same_rows(A1, [FakeSample({"stack": "s"})], needs_agent=Bad())
    assert_same_rows(A1, [FakeSample({"stack": "s"})], data_source=_data_source)
    assert_same_rows(A1, [FakeSample({"stack": "s"}, source_id_type=Bad())])
    assert_same_rows(A1, [FakeSample({"stack": "s"}, discarded=Bad())])
    assert_same_rows(A1, [FakeSample({"stack": "s"}, source_id_index=Bad())])
    assert_same_rows(A1, [object()])
    assert_same_rows(A1, [FakeSample({"stack": ["unhashable"]})])

    class Half:  # get, len and iter, but no keys(): not a mapping for {**keys}
        def get(self, name: str) -> Any:
            return "s" if name == "stack" else None

        def __len__(self) -> int:
            return 1

        def __iter__(self) -> Any:
            return iter(["stack"])

    assert_same_rows(A1, [FakeSample(Half())], needs_agent=False)
    assert_same_rows(A1, [FakeSample(Half())], needs_agent=True)


class Bad:
    """Fails to be true or false, or text."""

    def __bool__(self) -> bool:
        raise ValueError("no truth")

    def __str__(self) -> str:
        raise ValueError("no text")

    def __eq__(self, other: object) -> bool:
        raise ValueError("no comparison")

    __hash__ = object.__hash__


def test_sample_rows_keeps_no_references() -> None:
    samples = [s for datagram in traffic(3, 5) for s in datagram]
    typed = FakeSample({"stack": "s"}, source_id_type=2)
    broken = [FakeSample({"stack": "s"}), FakeSample({"stack": "s"}, discarded=Bad())]
    agent, now = "192.0.2.77", float(sys.maxsize % 3)
    key_names: dict[Any, Any] = {}
    key_sets: dict[Any, Any] = {}
    _rates.sample_rows(agent, [*samples, typed], now, key_names, key_sets, True, True,
                       codec_data_source)
    watched = [agent, now, typed, *samples, *(s.keys() for s in samples), *broken]
    gc.collect()
    before = [sys.getrefcount(o) for o in watched]
    for _ in range(300):
        for needs_agent in (False, True):
            _rates.sample_rows(agent, [*samples, typed], now, key_names, key_sets, True,
                               needs_agent, codec_data_source)
        with pytest.raises(ValueError):
            _rates.sample_rows(agent, broken, now, key_names, key_sets, True, False,
                               codec_data_source)
    assert [sys.getrefcount(o) for o in watched] == before
