"""Record received datagrams to rotating pcap files (``sflow-000001.pcap``, ...).

A file is closed once it exceeds ``max_bytes``; only the newest ``max_files`` are kept. The
listener calls ``flush`` after each batch of datagrams (in-process: whenever its queue is
empty; with workers: after each batch of copies), so a killed collector loses at most the
batch in flight. Taps may be called from several threads (one per worker): writes are
serialised. Files hold UDP frames from the agent's source address to the collector's port, readable by
``sflowlab.codec.pcap.read_sflow``, tshark and ``--replay``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sflowlab.codec.pcap import PcapWriter

log = logging.getLogger("sflowlab.collector")


@dataclass
class Recorder:
    directory: Path
    max_bytes: int = 100_000_000
    max_files: int = 10
    port: int = 6343
    files: list[Path] = field(default_factory=list, init=False)
    datagrams: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.directory.glob("sflow-*.pcap"))
        self._index = max((int(p.stem.split("-")[1]) for p in existing if p.stem[6:].isdigit()),
                          default=0)
        self.files = existing
        self._writer: PcapWriter | None = None
        self._size = 0
        self._lock = threading.Lock()

    def _open(self) -> PcapWriter:
        self._index += 1
        path = self.directory / f"sflow-{self._index:06d}.pcap"
        self.files.append(path)
        while len(self.files) > self.max_files:
            self.files.pop(0).unlink(missing_ok=True)
        self._size = 24
        log.info("event=recording_file path=%s", path)
        return PcapWriter(path)

    def __call__(self, data: bytes, source: tuple[str, int], received_at: float) -> None:
        """The listener tap: append one datagram, rotating when the file is full."""
        dst = ("::1", self.port) if ":" in source[0] else ("127.0.0.1", self.port)
        with self._lock:
            if self._writer is None:
                self._writer = self._open()
            self._writer.write(data, received_at, src=source, dst=dst)
            self.datagrams += 1
            self._size += len(data) + (78 if ":" in source[0] else 58)
            if self._size >= self.max_bytes:
                self._writer.close()
                self._writer = None

    def flush(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.flush()

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
