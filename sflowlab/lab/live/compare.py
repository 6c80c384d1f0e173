"""The live run against the simulated one: per service, the replicas in each phase (before,
during and after the load: the peak and the count at the phase's end), the seconds from the
load's start to the peak and from the load's end back to the initial count, each with the
scenario's tolerance (``live.compare``); the requests served per second during the load, for
information. ``compare.csv`` holds the rows; ``table`` prints them.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sflowlab.lab.scenario.model import Tolerances
from sflowlab.lab.scenario.outputs import Recording

__all__ = ["CompareRow", "compare", "table", "write_compare"]

COLUMNS = ("service", "measure", "simulated", "live", "difference", "tolerance", "within")


@dataclass(frozen=True)
class CompareRow:
    service: str
    measure: str
    simulated: float | None
    live: float | None
    tolerance: float | None
    """None: for information, not judged."""

    @property
    def difference(self) -> float | None:
        if self.simulated is None or self.live is None:
            return None
        return self.live - self.simulated

    @property
    def within(self) -> bool | None:
        if self.tolerance is None:
            return None
        d = self.difference
        return d is not None and abs(d) <= self.tolerance


def _phases(rec: Recording) -> list[tuple[str, float, float]]:
    start, end = rec.moment("load_start"), rec.moment("load_end")
    return [("before load", 0.0, start), ("during load", start, end),
            ("after load", end, rec.scenario.duration)]


def time_to_peak(rec: Recording, service: str) -> float | None:
    """Seconds from the load's start to the first second at the run's peak replicas."""
    series = rec.series(f"{service}.replicas")
    peak = max(v for _, v in series)
    first = next(t for t, v in series if v >= peak)
    return first - rec.moment("load_start")


def time_back(rec: Recording, service: str, floor: float) -> float | None:
    """Seconds from the load's end until the replicas are back to ``floor`` for good
    (None: not by the end of the run)."""
    end = rec.moment("load_end")
    back = None
    for t, v in rec.series(f"{service}.replicas"):
        if t < end:
            continue
        if v <= floor and back is None:
            back = t
        elif v > floor:
            back = None
    return None if back is None else back - end


def _mean_rps(rec: Recording, service: str) -> float | None:
    start, end = rec.moment("load_start"), rec.moment("load_end")
    values = [v for t, v in rec.series(f"{service}.rps") if start < t <= end]
    return sum(values) / len(values) if values else None


def compare(simulated: Recording, live: Recording, tol: Tolerances) -> list[CompareRow]:
    rows = []
    for svc in live.scenario.services:
        name = svc.name
        if not any(p.clients for p in svc.load):
            continue
        for phase, start, end in _phases(live):
            picked = [[v for t, v in rec.series(f"{name}.replicas") if start < t <= end]
                      for rec in (simulated, live)]
            if not all(picked):
                continue
            rows.append(CompareRow(name, f"peak replicas {phase}", max(picked[0]),
                                   max(picked[1]), tol.replicas))
            rows.append(CompareRow(name, f"replicas at the end of {phase}", picked[0][-1],
                                   picked[1][-1], tol.replicas))
        rows.append(CompareRow(name, "time to peak from load start (s)",
                               time_to_peak(simulated, name), time_to_peak(live, name),
                               tol.time_to_peak_s))
        rows.append(CompareRow(name, f"time back to {svc.replicas} from load end (s)",
                               time_back(simulated, name, svc.replicas),
                               time_back(live, name, svc.replicas), tol.time_back_s))
        rows.append(CompareRow(name, "requests/s during load", _mean_rps(simulated, name),
                               _mean_rps(live, name), None))
    return rows


def _text(v: float | bool | None) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return f"{v:.6g}" if not float(v).is_integer() else f"{v:.0f}"


def write_compare(path: Path, rows: Sequence[CompareRow]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([r.service, r.measure, _text(r.simulated), _text(r.live),
                        _text(r.difference), _text(r.tolerance), _text(r.within)])


def table(rows: Sequence[CompareRow]) -> str:
    """The rows as an aligned text table."""
    cells = [list(COLUMNS)] + [[r.service, r.measure, _text(r.simulated), _text(r.live),
                                _text(r.difference), _text(r.tolerance), _text(r.within)]
                               for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)
