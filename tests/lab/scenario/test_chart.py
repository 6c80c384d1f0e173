"""The run chart (sflowlab.lab.scenario.chart) over a synthetic out folder that follows the runner's
output contract: two services, their containers, decisions, and ACL sessions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.image import imread
from matplotlib.patches import Rectangle

from sflowlab.lab.scenario.chart import AclSession, acl_sessions, figure, load_periods, render_chart

SERVICE_COLUMNS = ("load", "replicas", "tasks", "seen", "running", "rps",
                   "avg_vir_cpu_utilization", "avg_vir_bytes")


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _replicas(t: int) -> int:
    """1 replica, 3 from t=20 to t=60."""
    return 3 if 20 <= t < 60 else 1


def make_run(out: Path, services: tuple[str, ...] = ("web", "api"), acl: bool = False) -> Path:
    """A 80 s run: load (4 clients) offered in the seconds 10..50 (rows t=11..50)."""
    out.mkdir(parents=True, exist_ok=True)
    header = ["time_s"] + [f"{s}.{c}" for s in services for c in SERVICE_COLUMNS]
    rows, containers = [], []
    for t in range(1, 81):
        load = 4 if 10 < t <= 50 else 0
        n = _replicas(t)
        row: list[object] = [float(t)]
        for s in services:
            per = 300_000.0 / n if load else 0.0
            row += [load, n, n, n, max(n - 1, 1), 57 if load else 0, per / 100_000, per]
            for slot in range(1, n + 1):
                containers.append([float(t), f"{s}.{slot}.task{slot}xyz", s, per / 100_000,
                                   per * 0.05, per * 0.95, "running"])
        rows.append(row)
    _write(out / "timeline.csv", header, rows)
    _write(out / "containers.csv", ["time_s", "container", "service", "vir_cpu_utilization",
                                    "vir_bytes_in", "vir_bytes_out", "state"], containers)
    _write(out / "decisions.csv", ["time_s", "controller", "service", "from", "to", "reason"],
           [[20.0, "elb", "web", 1, 3, "bytes 300000 > 100000"],
            [60.0, "elb", "web", 3, 1, "bytes 0 < 50000"]])
    acl_rows: list[list[object]] = []
    if acl:
        acl_rows = [[12.0, "leaf1", "capture-1", "put", "-A FORWARD -s 10.0.1.1 -j ERSPAN"],
                    [14.0, "leaf1", "capture-1", "put", "-A FORWARD -s 10.0.1.1 -j ERSPAN"],
                    [30.0, "leaf1", "capture-1", "delete", ""],
                    [40.0, "leaf2", "ddos-1", "put", "-A FORWARD -d 10.0.2.1 -j DROP"]]
    _write(out / "acl.csv", ["time_s", "switch", "acl", "action", "lines"], acl_rows)
    _write(out / "events.csv", ["time_s", "eventID", "thresholdID", "agent", "dataSource",
                                "flowKey", "value"],
           [[11.5, 1, "ddos_udp_amplification", "10.255.0.5", "1", "10.0.2.1,123", 20000.0],
            [39.0, 2, "ddos_udp_amplification", "10.255.0.5", "1", "10.0.2.1,123", 15000.0]]
           if acl else [])
    (out / "summary.json").write_text(json.dumps({"scenario": "synthetic"}))
    return out


def test_load_periods_are_the_seconds_with_load() -> None:
    frame = pd.DataFrame({"time_s": [1.0, 2, 3, 4, 5, 6, 7], "s.load": [0, 2, 2, 0, 0, 1, 1]})
    assert load_periods(frame, "s") == [(1.0, 3.0), (5.0, 7.0)]
    loaded = pd.DataFrame({"time_s": [1.0, 2], "s.load": [3, 3]})
    assert load_periods(loaded, "s") == [(0.0, 2.0)]
    assert load_periods(pd.DataFrame({"time_s": [1.0], "s.load": [0]}), "s") == []


def test_acl_sessions_join_commits_and_withdrawals(tmp_path: Path) -> None:
    make_run(tmp_path, acl=True)
    sessions = acl_sessions(pd.read_csv(tmp_path / "acl.csv"))
    assert sessions == [AclSession("leaf1", "capture-1", "ERSPAN", 12.0, 30.0),
                        AclSession("leaf2", "ddos-1", "DROP", 40.0, None)]


def _panels(fig: object) -> list[list[object]]:
    """The figure's main axes as rows x columns (a twin axis comes after its main one)."""
    spec: dict[tuple[int, int], object] = {}
    for ax in fig.axes:  # type: ignore[attr-defined]
        where = ax.get_subplotspec()
        spec.setdefault((where.rowspan.start, where.colspan.start), ax)
    rows = 1 + max(r for r, _ in spec)
    cols = 1 + max(c for _, c in spec)
    return [[spec.get((r, c)) for c in range(cols)] for r in range(rows)]


def test_one_column_per_service_with_containers_average_and_decisions(tmp_path: Path) -> None:
    fig = figure(make_run(tmp_path))
    grid = _panels(fig)
    assert len(grid) == 3 and len(grid[0]) == 2  # no ACL changes: no ACL panel
    assert fig.get_suptitle() == "synthetic: per-container load and replicas"
    web_bytes, web_cpu, web_replicas = (grid[r][0] for r in range(3))
    assert web_bytes.get_title() == "web" and grid[0][1].get_title() == "api"
    labels = [line.get_label() for line in web_bytes.get_lines()]
    assert labels == ["web.1", "web.2", "web.3", "average"]
    # container web.2 exists only while scaled (t=20..59): its bytes are in + out
    web2 = web_bytes.get_lines()[1]
    assert list(web2.get_xdata()[~pd.isna(web2.get_ydata())]) == list(range(20, 60))
    assert max(web2.get_ydata()[~pd.isna(web2.get_ydata())]) == pytest.approx(100_000)
    assert [line.get_label() for line in web_cpu.get_lines()][-1] == "average"
    # decisions: one up triangle at (20, 3), one down at (60, 1)
    up, down = web_replicas.collections[-2:]
    assert up.get_offsets().tolist() == [[20.0, 3.0]]
    assert down.get_offsets().tolist() == [[60.0, 1.0]]
    # api has no decisions of its own
    api_up, api_down = grid[2][1].collections[-2:]
    assert len(api_up.get_offsets()) == len(api_down.get_offsets()) == 0
    # replicas, the containers the collector knows and those it averages
    assert [line.get_label() for line in web_replicas.get_lines()] == [
        "replicas", "known to the collector", "averaged (metricN)"]
    assert list(web_replicas.get_lines()[2].get_ydata()[18:21]) == [1, 2, 2]


def test_load_period_is_shaded_in_every_panel(tmp_path: Path) -> None:
    grid = _panels(figure(make_run(tmp_path)))
    for ax in (ax for row in grid for ax in row):
        spans = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_label() == "_load"]
        assert len(spans) == 1
        x0, _ = spans[0].get_xy()
        assert (x0, x0 + spans[0].get_width()) == (10.0, 50.0)


def test_acl_sessions_get_a_bottom_panel(tmp_path: Path) -> None:
    grid = _panels(figure(make_run(tmp_path, services=("web",), acl=True)))
    assert len(grid) == 4
    acl = grid[3][0]
    assert acl.get_title() == "ACL sessions"
    bars = [(p.get_x(), p.get_x() + p.get_width()) for p in acl.patches]
    assert bars == [(12.0, 30.0), (40.0, 80.0)]  # the DROP still in force at the end
    assert [t.get_text() for t in acl.get_yticklabels()] == ["leaf1 capture-1", "leaf2 ddos-1"]
    [ticks] = [line for line in acl.get_lines() if line.get_label() == "threshold event"]
    assert list(ticks.get_xdata()) == [11.5, 39.0]


def test_fabric_only_run_charts_its_acl_sessions(tmp_path: Path) -> None:
    grid = _panels(figure(make_run(tmp_path, services=(), acl=True)))
    assert len(grid) == 1 and grid[0][0].get_title() == "ACL sessions"


def test_render_writes_a_png(tmp_path: Path) -> None:
    path = render_chart(make_run(tmp_path, acl=True))
    assert path == tmp_path / "chart.png"
    height, width, _ = imread(path).shape
    assert (width, height) == (1300, 1020)  # 13 x 10.2 in at 100 dpi


def test_not_an_out_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no timeline\.csv"):
        figure(tmp_path)
