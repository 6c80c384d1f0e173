"""Definitions kept in a state directory as a snapshot plus a journal: a change costs one short
append, whatever the number of definitions, and is durable once acknowledged.

``state.json`` holds the groups, flows, thresholds and topology as of the last compaction
(the REST API's JSON shapes, as :class:`~sflowlab.collector.config.StateStore` writes them);
``state.journal`` holds one JSON line per definition changed since,
``{"kind": "flows", "name": "f", "value": {...}}``, with ``"value": null`` once removed (the
topology is kind ``topology``, name ``""``). ``save_changes`` appends and fsyncs the lines of
the definitions changed since the last save, read when taken, under one lock, so the journal's
last line for a name is never older than the change a client was told had succeeded. After
``COMPACT_LINES`` lines, or once the journal is larger than the snapshot (and
``COMPACT_BYTES``: a large group set rewritten often), and at start, the snapshot is rewritten
(atomically) and the journal removed: the bytes written stay proportional to the changes. A journal line cut short by a crash was never acknowledged: reading stops there, with
a warning.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import StateStore

log = logging.getLogger("sflowlab.collector")

COMPACT_LINES = 1000
"""Journal lines after which the snapshot is rewritten and the journal emptied."""
COMPACT_BYTES = 1 << 20
"""A journal smaller than this is never compacted for its size."""

Changes = dict[tuple[str, str], Any]


def read_definitions(directory: Path) -> dict[str, Any]:
    """The definitions a state directory holds (snapshot, then journal); changes nothing."""
    state = StateStore(directory / "state.json").read()
    journal = directory / "state.journal"
    try:
        lines = journal.read_bytes().split(b"\n")
    except FileNotFoundError:
        return state
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            kind, name, value = entry["kind"], entry["name"], entry["value"]
        except (ValueError, KeyError, TypeError):
            log.warning("event=state_journal_cut path=%s line=%d (a change cut short by a "
                        "crash; the lines before it are kept)", journal, number)
            break
        if kind == "topology":
            state["topology"] = value
        elif value is None:
            state.get(kind, {}).pop(name, None)
        else:
            state.setdefault(kind, {})[name] = value
    return state


class DefinitionStore:
    """The state directory's snapshot and journal; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.snapshot = StateStore(directory / "state.json")
        self.journal = directory / "state.journal"
        self.lines = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def load(self) -> dict[str, Any]:
        """Every definition stored (temporary files a crash left behind are removed)."""
        self.snapshot.load()  # checks the snapshot and removes stale temporaries
        state = read_definitions(self.directory)
        if self.journal.exists():
            data = self.journal.read_bytes()
            self.lines, self.bytes = data.count(b"\n"), len(data)
        return state

    def save_changes(self, take: Callable[[], Changes],
                     export: Callable[[], dict[str, Any]]) -> None:
        """Append what ``take()`` returns (definitions changed since the last call); compact
        with ``export()`` (every definition) once the journal is long."""
        with self._lock:
            changes = take()
            if not changes:
                return
            self._append(changes)
            if self.lines >= COMPACT_LINES or self.bytes > max(COMPACT_BYTES, self._snapshot_bytes()):
                self._compact(export())

    def compact(self, export: Callable[[], dict[str, Any]]) -> None:
        """Rewrite the snapshot with ``export()`` and remove the journal."""
        with self._lock:
            self._compact(export())

    def _append(self, changes: Changes) -> None:
        data = b"".join(json.dumps({"kind": k, "name": n, "value": v}, sort_keys=True).encode()
                        + b"\n" for (k, n), v in sorted(changes.items()))
        self.directory.mkdir(parents=True, exist_ok=True)
        new = not self.journal.exists()
        with open(self.journal, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if new:  # the new file's directory entry must survive a crash too
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.lines += len(changes)
        self.bytes += len(data)

    def _snapshot_bytes(self) -> int:
        try:
            return self.snapshot.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _compact(self, state: dict[str, Any]) -> None:
        self.snapshot.save(state)
        self.journal.unlink(missing_ok=True)
        self.lines = self.bytes = 0
