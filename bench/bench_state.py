"""Benchmark persisting definitions: what one ``PUT /flow/{name}/json`` costs with a state dir.

For a growing number of flows already defined, the wall time of ``Engine.set_flow`` with the
daemon's persistence hook, p50 and p99 over ``--puts`` changes: the journal (``DefinitionStore``:
one appended, fsynced line per change, compacted every ``COMPACT_LINES``) beside a rewrite of
the whole state file on every change (``StateStore.save_snapshot``, the previous way). Then the
engine lock held while a 64 KiB filter (the largest accepted) is installed: the compilation
runs before the lock is taken.

Run: ``.venv/bin/python bench/bench_state.py [--puts N]``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sflowlab.collector.config import StateStore
from sflowlab.collector.engine import Engine
from sflowlab.collector.filters import MAX_EXPRESSION_CHARS
from sflowlab.collector.flows import FlowSpec
from sflowlab.collector.journal import DefinitionStore


def _hook(kind: str, engine: Engine, directory: Path) -> Callable[[], None]:
    if kind == "journal":
        store = DefinitionStore(directory)
        return lambda: store.save_changes(engine.take_changes, engine.export_state)
    snapshot = StateStore(directory / "state.json")
    return lambda: snapshot.save_snapshot(engine.export_state)


def put_times(kind: str, defined: int, puts: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine()
        for i in range(defined):
            engine.set_flow(f"f{i}", FlowSpec(keys="ipsource,ipdestination", value="bytes",
                                              filter=f"ipprotocol={i % 256}"))
        engine.take_changes()
        engine.on_change = _hook(kind, engine, Path(tmp))
        times = []
        for i in range(puts):
            started = time.perf_counter()
            engine.set_flow(f"f{i % max(defined, 1)}", FlowSpec(keys="ipsource", value="bytes",
                                                                t=2 + i % 7))
            times.append(time.perf_counter() - started)
        return times


def lock_held_s() -> tuple[float, float]:
    """(compile time, lock held) for a 64 KiB filter."""
    engine = Engine()
    clause = "ipsource=10.1.2.3"
    spec = FlowSpec(keys="ipsource", filter="|".join(
        [clause] * ((MAX_EXPRESSION_CHARS - 20) // (len(clause) + 1))))
    started = time.perf_counter()
    compiled = engine.flows.compile("big", spec)
    compiled_s = time.perf_counter() - started
    started = time.perf_counter()
    with engine.lock:
        engine.flows.install(compiled)
    return compiled_s, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--puts", type=int, default=200)
    args = parser.parse_args()
    print(f"{'flows':>6} {'persistence':>12} {'p50 ms':>8} {'p99 ms':>8}")
    for defined in (10, 100, 1000):
        for kind in ("journal", "snapshot"):
            times = sorted(put_times(kind, defined, args.puts))
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            print(f"{defined:>6} {kind:>12} {statistics.median(times) * 1e3:>8.2f} "
                  f"{p99 * 1e3:>8.2f}")
    compiled_s, held_s = lock_held_s()
    print(f"64 KiB filter: compiled in {compiled_s * 1e3:.1f} ms outside the lock, "
          f"lock held {held_s * 1e3:.3f} ms to install it")


if __name__ == "__main__":
    main()
