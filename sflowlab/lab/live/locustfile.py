"""The live lab's locustfile: run by locust in its own process (``load.Locust``), never
imported by sflowlab (locust monkey-patches the standard library with gevent on import).

Environment:

- ``SFLOWLAB_TARGETS``: a file of base URLs, one a line (the service's tasks), re-read when
  it changes; users send their requests round-robin over them (none: they wait);
- ``SFLOWLAB_LOAD``: JSON ``{"t0": epoch, "end": s, "phases": [[start, end, users], ...]}``,
  the scenario's load profile: ``ScenarioLoad`` (a LoadTestShape) runs the phase's users
  from ``t0 + start`` to ``t0 + end`` (the last phase listed wins; 0 users between phases)
  and stops locust at ``t0 + end``. Unset: no shape (choose users in the web UI or with -u).

Users send ``GET /`` back to back (no wait), like ``ab -c N``; with ``SFLOWLAB_PACE_S``,
each request cycle lasts at least that long (``constant_pacing``: the response time a
scenario's model assumes, when the real one is shorter).
"""

from __future__ import annotations

import json
import os
import time

from locust import FastHttpUser, LoadTestShape, constant, constant_pacing, task

IDLE_S = 0.1  # a user's pause when there is no target


class Targets:
    """The targets file, re-read when its modification time changes (looked at every 0.2 s)."""

    def __init__(self, path: str) -> None:
        self.path, self._mtime, self._checked, self._next = path, 0.0, 0.0, 0
        self.urls: list[str] = []

    def next(self) -> str | None:
        now = time.monotonic()
        if now - self._checked > 0.2:
            self._checked = now
            try:
                mtime = os.stat(self.path).st_mtime
                if mtime != self._mtime:
                    with open(self.path) as f:
                        self.urls = [u.strip() for u in f if u.strip()]
                    self._mtime = mtime
            except OSError:
                self.urls = []
        if not self.urls:
            return None
        self._next = (self._next + 1) % len(self.urls)
        return self.urls[self._next]


TARGETS = Targets(os.environ.get("SFLOWLAB_TARGETS", "targets.txt"))


class Web(FastHttpUser):
    host = "http://127.0.0.1"
    wait_time = (constant_pacing(float(os.environ["SFLOWLAB_PACE_S"]))
                 if os.environ.get("SFLOWLAB_PACE_S") else constant(0))

    @task
    def get(self) -> None:
        url = TARGETS.next()
        if url is None:
            time.sleep(IDLE_S)
            return
        self.client.get(url + "/", name="/")


if os.environ.get("SFLOWLAB_LOAD"):
    _PROFILE = json.loads(os.environ["SFLOWLAB_LOAD"])

    class ScenarioLoad(LoadTestShape):
        """The scenario's load phases on the lab's clock (``t0``)."""

        def tick(self) -> tuple[int, float] | None:
            t = time.time() - _PROFILE["t0"]
            if t >= _PROFILE["end"]:
                return None
            users = 0
            for start, end, n in _PROFILE["phases"]:
                if start <= t < end:
                    users = n
            return users, max(users, 1)
