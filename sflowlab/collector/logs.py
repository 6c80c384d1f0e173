"""Structured logging for the collector: ``key=value`` lines on stderr."""

from __future__ import annotations

import logging


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
