"""The live load: the profile from a scenario's phases, the targets file, and locust itself
as a subprocess against a loopback HTTP server (the shape's users, the targets re-read,
its CSVs and the requests per second read back from them)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sflowlab.lab.live.load import LoadProfile, Locust, TargetsFile, requests_per_second
from sflowlab.lab.scenario.model import LoadPhase, ScenarioService


def test_the_profile_runs_the_clients_phases_and_refuses_rates() -> None:
    svc = ScenarioService("apache", load=[LoadPhase(clients=4, start=10, duration=60),
                                          LoadPhase(clients=2, start=30, duration=5)])
    profile = LoadProfile.of(svc, 100.0)
    assert profile.phases == ((10.0, 70.0, 4), (30.0, 35.0, 2))
    assert [profile.users(t) for t in (0, 9.9, 10, 31, 35, 69.9, 70, 99)] == [0, 0, 4, 2, 4, 4,
                                                                             0, 0]
    open_ended = LoadProfile.of(ScenarioService("a", load=[LoadPhase(clients=1, start=5)]), 50)
    assert open_ended.phases == ((5.0, 50.0, 1),)
    with pytest.raises(ValueError, match=r"services\[apache\].load\[0\]: a live run needs "
                                         "clients"):
        LoadProfile.of(ScenarioService("apache", load=[LoadPhase(rps=10.0)]), 10.0)


def test_the_targets_file_is_rewritten_only_on_change(tmp_path: Path) -> None:
    targets = TargetsFile(tmp_path / "targets.txt")
    assert targets.path.read_text() == ""
    targets.write(["http://127.0.0.1:1", "http://127.0.0.1:2"])
    written = targets.path.stat().st_mtime_ns
    assert targets.path.read_text() == "http://127.0.0.1:1\nhttp://127.0.0.1:2\n"
    time.sleep(0.01)
    targets.write(["http://127.0.0.1:1", "http://127.0.0.1:2"])
    assert targets.path.stat().st_mtime_ns == written
    assert not list(tmp_path.glob("*.tmp"))


def test_requests_per_second_from_the_history(tmp_path: Path) -> None:
    history = tmp_path / "h.csv"
    history.write_text("Timestamp,User Count,Type,Name,Total Request Count\n"
                       "1001,0,,Aggregated,0\n1002,4,,Aggregated,50\n1003,4,,Aggregated,150\n"
                       "1003,4,GET,/,150\n1004,4,,Aggregated,250\n")
    assert requests_per_second(history, 1000.0, 5) == [0.0, 50.0, 100.0, 100.0, 0.0]
    assert requests_per_second(tmp_path / "none.csv", 1000.0, 2) == [0.0, 0.0]


class _Counting(http.server.BaseHTTPRequestHandler):
    counts: dict[int, int] = {}

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        self.counts[port] = self.counts.get(port, 0) + 1
        body = b"x" * 100
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[list[http.server.ThreadingHTTPServer]]:
    made = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting) for _ in range(2)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in made]
    for t in threads:
        t.start()
    yield made
    for s in made:
        s.shutdown()
        s.server_close()


@pytest.mark.slow
def test_locust_runs_the_shape_over_the_targets_and_quits(
        tmp_path: Path, servers: list[http.server.ThreadingHTTPServer]) -> None:
    first, second = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    targets = TargetsFile(tmp_path / "targets.txt")
    targets.write([first])
    t0 = time.time()
    locust = Locust(tmp_path, targets, LoadProfile(((1.0, 4.0, 2),), 5.0), t0,
                    pace_s=0.05).start()
    try:
        time.sleep(2.5)
        targets.write([first, second])  # a task came: the users spread over both
        assert locust.wait(30.0) == 0  # the shape ends at 5 s: locust quits by itself
    finally:
        locust.stop()
    took = time.time() - t0
    assert 5.0 <= took < 20.0
    counts = [_Counting.counts.get(s.server_address[1], 0) for s in servers]
    # 2 users paced at 50 ms for 3 s (the shape's ticks are a second apart): about 120
    # requests, some to the second target
    assert 60 <= sum(counts) <= 180 and counts[1] > 10
    per_second = requests_per_second(tmp_path / "locust_stats_history.csv", t0, 6)
    # the history's rows are a second apart on whole seconds: each second's count is
    # interpolated, the total exact
    assert sum(per_second) == pytest.approx(sum(counts), abs=1)
    for name in ("stats", "stats_history", "failures", "exceptions"):
        assert (tmp_path / f"locust_{name}.csv").is_file()
