"""Structured logging for the collector: ``key=value`` lines on stderr."""

from __future__ import annotations

import logging
from dataclasses import dataclass


class LogFormatter(logging.Formatter):
    """key=value lines: ``ts=... level=... logger=... event=... k=v``."""

    def format(self, record: logging.LogRecord) -> str:
        text = (f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} "
                f"level={record.levelname.lower()} logger={record.name} {record.getMessage()}")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(level: str | int = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormatter())
    root = logging.getLogger("sflowlab")
    root.handlers[:] = [handler]
    root.setLevel(level)


@dataclass
class RateLimitedLog:
    """At most one warning per ``interval_s`` (by the engine's time); counts what it held back."""

    interval_s: float = 10.0
    _last: float = float("-inf")
    _held: int = 0

    def warn(self, now: float, msg: str, *args: object) -> None:
        if now - self._last < self.interval_s:
            self._held += 1
            return
        suffix = f" (+{self._held} similar suppressed)" if self._held else ""
        logging.getLogger("sflowlab.collector").warning(msg + suffix, *args)
        self._last, self._held = now, 0
