"""The live load: locust in a subprocess with the scenario's load profile, and the file of
targets (the service's running tasks) its users spread their requests over.

Only ``clients`` phases (closed-loop users with no think time, like ``ab -c N``) can run
live; a phase in requests per second is refused with the reason. locust writes its stats
CSVs into the out folder (``locust_stats.csv``, ``locust_stats_history.csv``,
``locust_failures.csv``, ``locust_exceptions.csv``); ``requests_per_second`` reads the
requests completed in each second of the run from the history.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sflowlab.lab.scenario.model import ScenarioService

__all__ = ["LOCUSTFILE", "Locust", "LoadProfile", "TargetsFile", "requests_per_second"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
CSV_PREFIX = "locust"


@dataclass(frozen=True)
class LoadProfile:
    """Users per period: (start, end, users) in seconds of the run; locust stops at ``end``."""

    phases: tuple[tuple[float, float, int], ...]
    end: float

    @classmethod
    def of(cls, service: ScenarioService, end: float) -> LoadProfile:
        phases = []
        for i, phase in enumerate(service.load):
            if phase.clients is None:
                raise ValueError(f"services[{service.name}].load[{i}]: a live run needs "
                                 "clients (closed-loop users); rps, ramp and steps are "
                                 "simulated only")
            phases.append((phase.start, min(phase.end, end), phase.clients))
        return cls(tuple(phases), end)

    def users(self, t: float) -> int:
        """The users offered at ``t`` (the last phase listed wins)."""
        n = 0
        for start, end, users in self.phases:
            if start <= t < end:
                n = users
        return n

    def to_env(self, t0: float) -> str:
        return json.dumps({"t0": t0, "end": self.end, "phases": [list(p) for p in self.phases]})


class TargetsFile:
    """The base URLs the users spread over, one a line; rewritten (atomically) on change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.urls: list[str] | None = None
        self.write([])

    def write(self, urls: Sequence[str]) -> None:
        if list(urls) == self.urls:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(u + "\n" for u in urls))
        os.replace(tmp, self.path)
        self.urls = list(urls)


class Locust:
    """locust as a subprocess: headless with the profile (its CSVs in ``out_dir``), or with
    its web UI on ``web_port`` (no profile: the user chooses the users); ``pace_s``: each
    user's request cycle lasts at least that long (None: back to back)."""

    def __init__(self, out_dir: Path, targets: TargetsFile, profile: LoadProfile | None = None,
                 t0: float = 0.0, web_port: int | None = None,
                 pace_s: float | None = None) -> None:
        self.out_dir, self.log_path = out_dir, out_dir / "locust.log"
        env = {**os.environ, "SFLOWLAB_TARGETS": str(targets.path)}
        argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "-L", "WARNING",
                "--csv", str(out_dir / CSV_PREFIX), "--csv-full-history"]
        if profile is not None:
            env["SFLOWLAB_LOAD"] = profile.to_env(t0)
        if pace_s:
            env["SFLOWLAB_PACE_S"] = repr(pace_s)
        if web_port is None:
            argv += ["--headless", "--only-summary"]
        else:
            argv += ["--web-host", "127.0.0.1", "--web-port", str(web_port)]
        self.argv, self.env = argv, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Locust:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait(self, timeout_s: float) -> int:
        """Its exit status once it ends (the profile's end); stopped after ``timeout_s``."""
        assert self.process is not None
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (locust writes its CSVs and quits), SIGKILL after ``timeout_s``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def requests_per_second(history: Path, t0: float, seconds: int) -> list[float]:
    """Requests completed in each second 1..``seconds`` of the run (second t: (t-1, t]),
    from locust's ``stats_history`` (cumulative counts, one row a second, interpolated
    between rows)."""
    points = [(0.0, 0.0)]
    if history.exists():
        with history.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("Name") == "Aggregated":
                    points.append((float(row["Timestamp"]) - t0,
                                   float(row["Total Request Count"])))
    points.sort()

    def total(t: float) -> float:
        before = [p for p in points if p[0] <= t]
        after = [p for p in points if p[0] > t]
        (t1, c1) = before[-1]
        if not after:
            return c1
        (t2, c2) = after[0]
        return c1 + (c2 - c1) * (t - t1) / (t2 - t1)

    return [max(total(t) - total(t - 1), 0.0) for t in range(1, seconds + 1)]
