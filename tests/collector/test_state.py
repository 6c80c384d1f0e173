"""Definitions made over REST survive kill -9 once acknowledged (``--state-dir``)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from collector_helpers import start

from sflowlab.collector.journal import read_definitions


def test_acknowledged_definitions_survive_kill_9(tmp_path: Path) -> None:
    """Eight clients PUT flows concurrently, in bursts; after each burst the state file holds
    every acknowledged flow (a snapshot taken before a newer one must never be written after
    it); then kill -9 and a restart serve them all, and no temporary file is left."""
    state = tmp_path / "state"
    c = start(tmp_path, "--state-dir", str(state))
    acked: set[str] = set()
    lock = threading.Lock()

    def client(burst: int, k: int) -> None:
        for i in range(6):
            name = f"f{burst}_{k}_{i}"
            status, _ = c.send("PUT", f"/flow/{name}/json", {"keys": "ipsource", "value": "bytes"})
            if status == 200:
                with lock:
                    acked.add(name)

    try:
        for burst in range(12):
            threads = [threading.Thread(target=client, args=(burst, k)) for k in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
            on_disk = set(read_definitions(state)["flows"])
            assert acked <= on_disk, f"burst {burst}: lost {sorted(acked - on_disk)}"
        assert len(acked) == 12 * 8 * 6
    finally:
        c.proc.send_signal(signal.SIGKILL)
        c.proc.wait(timeout=10)
    stale = state / ".state.json.123.tmp"  # as a save cut short by kill -9 leaves it
    stale.write_text("{")
    c = start(tmp_path, "--state-dir", str(state))
    try:
        assert set(c.get("/flow/json")) == acked
        assert not stale.exists()
        assert [p.name for p in state.iterdir()] == ["state.json"]
    finally:
        assert c.stop() == 0
