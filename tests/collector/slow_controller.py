"""A controller whose interval handler calls an HTTP API that accepts and never answers (as
the ELB would a hung Docker engine): each call waits ``timeout_s`` for the answer. Loaded by
the collector subprocess in test_controller_isolation.py (``use = "slow_controller:Slow"``)."""

from __future__ import annotations

import urllib.request
from typing import Any


class Slow:
    def __init__(self, url: str, timeout_s: float, interval_s: float = 0.2) -> None:
        self.url, self.timeout_s, self.interval_s = url, timeout_s, interval_s

    def start(self, api: Any) -> None:
        api.set_interval_handler(self.poll, self.interval_s)
        api.set_http_handler(lambda request: "answered")

    def poll(self, now: float) -> None:
        with urllib.request.urlopen(self.url, timeout=self.timeout_s) as r:
            r.read()
