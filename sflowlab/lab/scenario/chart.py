"""The run's chart, in the manner of the seed's: per-container load and replicas over time.

``render_chart(out_dir)`` reads a run's out folder (``timeline.csv``; ``containers.csv``,
``decisions.csv`` and ``acl.csv`` when present) and writes ``chart.png``. One column per
service, three panels sharing the time axis:

1. bytes/s per container (``vir_bytes_in + vir_bytes_out``, one thin line each) and the
   collector's per-container average (thick);
2. CPU utilisation per container (%) and its average;
3. replicas (the swarm's desired count, a step line), running containers the collector
   knows (dashed, when the timeline has ``<service>.seen``) and averages (metricN, dotted),
   controller decisions (up/down triangles at the new count) and the offered load on a
   second axis.

The load period (offered load > 0) is shaded in every panel. A scenario with ACL changes
(capture, mitigation) gets a bottom panel of ACL sessions: one bar per switch and ACL from its
commit to its withdrawal, coloured by target (ERSPAN, DROP), and the threshold events
(``events.csv``) as ticks on the time axis. ``figure(out_dir)`` builds the
same figure without writing it. matplotlib (no pyplot: no global state, Agg) and pandas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd  # the lab extra
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["AclSession", "acl_sessions", "figure", "load_periods", "render_chart"]

TARGET_COLOURS = {"ERSPAN": "tab:purple", "DROP": "tab:red"}
_SHADE = {"color": "tab:orange", "alpha": 0.12, "lw": 0}
_MAX_LEGEND = 10


@dataclass(frozen=True)
class AclSession:
    """An ACL in force on a switch from ``start`` to ``end`` (None: still at the end)."""

    switch: str
    acl: str
    target: str
    start: float
    end: float | None


def load_periods(timeline: pd.DataFrame, service: str) -> list[tuple[float, float]]:
    """(start, end) of each run of seconds in which ``service`` was offered load; a row at
    ``time_s`` t covers the second before it."""
    periods: list[tuple[float, float]] = []
    start = prev = None
    for t, load in zip(timeline["time_s"], timeline[f"{service}.load"], strict=True):
        if load > 0 and start is None:
            start = prev if prev is not None else t - 1.0
        elif load <= 0 and start is not None:
            periods.append((start, prev if prev is not None else t))
            start = None
        prev = t
    if start is not None and prev is not None:
        periods.append((start, prev))
    return periods


def acl_sessions(acl: pd.DataFrame) -> list[AclSession]:
    """The ACL sessions in ``acl.csv`` (a re-commit of the same ACL continues its session)."""
    open_: dict[tuple[str, str], AclSession] = {}
    done: list[AclSession] = []
    text = {c: acl[c].astype(str).tolist() for c in ("switch", "acl", "action", "lines")}
    for t, switch, name, action, lines in zip(acl["time_s"].astype(float).tolist(),
                                              text["switch"], text["acl"], text["action"],
                                              text["lines"], strict=True):
        key = (switch, name)
        if action == "put" and key not in open_:
            open_[key] = AclSession(switch, name, _target(lines), t, None)
        elif action == "delete" and key in open_:
            s = open_.pop(key)
            done.append(AclSession(s.switch, s.acl, s.target, s.start, t))
    return sorted(done + list(open_.values()), key=lambda s: (s.start, s.switch, s.acl))


def _target(lines: str) -> str:
    words = lines.split()
    targets = {words[i + 1] for i, w in enumerate(words[:-1]) if w == "-j"}
    return next((t for t in TARGET_COLOURS if t in targets), "other")


def _read(out_dir: Path, name: str) -> pd.DataFrame | None:
    path = out_dir / name
    if not path.exists():
        return None
    frame = pd.read_csv(path)
    return frame if len(frame) else None


def services(timeline: pd.DataFrame) -> list[str]:
    """The services in a timeline, in column order."""
    return [c[: -len(".replicas")] for c in timeline.columns if c.endswith(".replicas")]


def figure(out_dir: Path) -> Figure:
    """The chart of the run in ``out_dir`` (see the module docstring)."""
    out_dir = Path(out_dir)
    if not (out_dir / "timeline.csv").exists():
        raise FileNotFoundError(f"{out_dir}: no timeline.csv (not a run's out folder?)")
    timeline = pd.read_csv(out_dir / "timeline.csv")
    containers = _read(out_dir, "containers.csv")
    decisions = _read(out_dir, "decisions.csv")
    acl = _read(out_dir, "acl.csv")
    events = _read(out_dir, "events.csv")
    names = services(timeline)
    sessions = acl_sessions(acl) if acl is not None else []
    rows = (3 if names else 0) + (1 if sessions or not names else 0)
    cols = max(len(names), 1)
    fig = Figure(figsize=(6.5 * cols, 2.4 * rows + 0.6), layout="constrained")
    grid = fig.subplots(rows, cols, sharex=True, squeeze=False)
    title = _scenario_name(out_dir)
    fig.suptitle(f"{title}: per-container load and replicas" if names else title)
    for col, name in enumerate(names):
        axes = [grid[r][col] for r in range(3)]
        periods = load_periods(timeline, name)
        for ax in axes:
            for start, end in periods:
                ax.axvspan(start, end, label="_load", **_SHADE)
        per = _per_container(containers, name)
        _bytes_panel(axes[0], timeline, per, name)
        _cpu_panel(axes[1], timeline, per, name)
        _replicas_panel(axes[2], timeline, decisions, name)
    if sessions or not names:
        ax = grid[rows - 1][0]
        _acl_panel(ax, sessions, timeline, events)
        for extra in grid[rows - 1][1:]:
            extra.set_visible(False)
    for ax in grid[rows - 1]:
        ax.set_xlabel("time (s)")  # simulated or, live, wall-clock seconds from the start
    if len(timeline):
        grid[0][0].set_xlim(0, float(timeline["time_s"].max()))
    return fig


def _scenario_name(out_dir: Path) -> str:
    """The scenario's name from ``summary.json``, else the folder's name."""
    try:
        return str(json.loads((out_dir / "summary.json").read_text())["scenario"])
    except (OSError, ValueError, KeyError, TypeError):
        return out_dir.resolve().name


def render_chart(out_dir: Path) -> Path:
    """Write ``chart.png`` into the run's out folder; returns its path."""
    path = Path(out_dir) / "chart.png"
    figure(Path(out_dir)).savefig(path, dpi=100)
    return path


def _per_container(containers: pd.DataFrame | None, service: str) -> pd.DataFrame | None:
    """The service's container rows with numbers, bytes = in + out, CPU in %."""
    if containers is None:
        return None
    rows = containers[containers["service"] == service].dropna(
        subset=["vir_cpu_utilization", "vir_bytes_in", "vir_bytes_out"])
    if not len(rows):
        return None
    return rows.assign(bytes=rows["vir_bytes_in"] + rows["vir_bytes_out"],
                       label=rows["container"].map(_short))


def _short(container: str) -> str:
    """``apache.3.klja0n7t...`` -> ``apache.3`` (the swarm's service.slot)."""
    return ".".join(str(container).split(".")[:2])


def _lines(ax: Axes, per: pd.DataFrame | None, column: str) -> None:
    if per is None:
        return
    wide = per.pivot_table(index="time_s", columns="label", values=column, aggfunc="last")
    for label in sorted(wide.columns, key=_slot_order):
        ax.plot(wide.index, wide[label], lw=0.9, alpha=0.8, label=label)


def _slot_order(label: str) -> tuple[int, str]:
    slot = label.rpartition(".")[2]
    return (int(slot), label) if slot.isdigit() else (1 << 30, label)


def _legend(ax: Axes) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if handles and len(handles) <= _MAX_LEGEND + 1:
        ax.legend(fontsize="x-small", ncols=2, loc="upper right")


def _bytes_panel(ax: Axes, timeline: pd.DataFrame, per: pd.DataFrame | None,
                 name: str) -> None:
    _lines(ax, per, "bytes")
    ax.plot(timeline["time_s"], timeline[f"{name}.avg_vir_bytes"], color="black", lw=2,
            label="average")
    ax.set_title(name)
    ax.set_ylabel("bytes/s per container")
    _legend(ax)


def _cpu_panel(ax: Axes, timeline: pd.DataFrame, per: pd.DataFrame | None, name: str) -> None:
    _lines(ax, per, "vir_cpu_utilization")
    ax.plot(timeline["time_s"], timeline[f"{name}.avg_vir_cpu_utilization"], color="black",
            lw=2, label="average")
    ax.set_ylabel("CPU % per container")


def _replicas_panel(ax: Axes, timeline: pd.DataFrame, decisions: pd.DataFrame | None,
                    name: str) -> None:
    t = timeline["time_s"]
    ax.step(t, timeline[f"{name}.replicas"], where="post", color="tab:blue", lw=2,
            label="replicas")
    if f"{name}.seen" in timeline:
        ax.plot(t, timeline[f"{name}.seen"], ls="--", color="tab:olive", lw=1.2,
                label="known to the collector")
    ax.plot(t, timeline[f"{name}.running"], ls=":", color="tab:green", lw=1.5,
            label="averaged (metricN)")
    if decisions is not None:
        mine = decisions[decisions["service"] == name]
        up, down = mine[mine["to"] > mine["from"]], mine[mine["to"] < mine["from"]]
        ax.scatter(up["time_s"], up["to"], marker="^", color="tab:red", zorder=3,
                   label="scale up")
        ax.scatter(down["time_s"], down["to"], marker="v", color="tab:cyan", zorder=3,
                   label="scale down")
    ax.set_ylabel("replicas")
    ax.set_ylim(bottom=0)
    load = ax.twinx()
    load.plot(t, timeline[f"{name}.load"], color="tab:orange", lw=1, label="offered load")
    load.set_ylabel("offered load", color="tab:orange")
    load.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    more_h, more_l = load.get_legend_handles_labels()
    ax.legend(handles + more_h, labels + more_l, fontsize="x-small", loc="upper left")


def _acl_panel(ax: Axes, sessions: list[AclSession], timeline: pd.DataFrame,
               events: pd.DataFrame | None) -> None:
    end = float(timeline["time_s"].max()) if len(timeline) else 0.0
    if events is not None:
        ax.plot(events["time_s"], [-0.6] * len(events), "|", color="black", ms=10,
                label="threshold event")
    keys = sorted({(s.switch, s.acl) for s in sessions})
    for s in sessions:
        y = keys.index((s.switch, s.acl))
        stop = s.end if s.end is not None else end
        ax.barh(y, max(stop - s.start, 0.2), left=s.start, height=0.6,
                color=TARGET_COLOURS.get(s.target, "grey"), label=s.target)
    ax.set_yticks(range(len(keys)), [f"{sw} {acl}" for sw, acl in keys], fontsize="x-small")
    ax.set_title("ACL sessions" if keys else "no ACL changes")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    if unique:
        ax.legend(unique.values(), unique.keys(), fontsize="x-small", loc="upper right")
