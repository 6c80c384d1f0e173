"""The ELB in a Runtime over an Engine, scaling the swarm double through the real docker SDK.

One SimClock drives everything: the swarm's tasks start after its delay, ContainerFeed sends
each running container's counters every second at the load the test sets, the runtime runs
the ELB every 2 s (at START + 2, + 4, ...).
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
from elb_helpers import START, ElbLab, Load

from sflowlab.collector.runtime import HttpError, resolve
from sflowlab.controllers.decisions import ServiceScaled
from sflowlab.controllers.docker_client import SwarmServices
from sflowlab.controllers.elb import ElasticLoadBalancer, service_filter
from sflowlab.lab.doubles.swarm_api import SwarmApi
from sflowlab.lab.doubles.swarm_model import ContainerStopped, SwarmError

HIGH = Load(util=2.0, bytes_in=1_000, bytes_out=1_000)
LOW = Load(util=0.1, bytes_in=500, bytes_out=500)
BAND = Load(util=0.7, bytes_in=30_000, bytes_out=40_000)


def moves(elb: ElasticLoadBalancer) -> list[tuple[float, int, int]]:
    return [(d["time"], d["from"], d["to"]) for d in elb.decisions]


def scale_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=scale ")]


# -- the seed policy ----------------------------------------------------------------------------


def test_seed_scales_up_one_step_per_complete_population(make_lab: Callable[..., ElbLab],
                                                         elb_log: pytest.LogCaptureFixture
                                                         ) -> None:
    lab = make_lab(start_delay_s=3.0)
    lab.service(replicas=1, load=HIGH)
    published: list[tuple[str, object]] = []
    lab.runtime.subscribe(lambda name, event: published.append((name, event)))
    elb = lab.elb({"apache": {"replicas_max": 3}}, enabled=True)
    # the task runs at 1003, its first sample has no rates, its second (1004) does
    lab.step_to(START + 4)
    assert moves(elb) == [(START + 4, 1, 2)]
    assert lab.replicas() == 2
    # the new task runs at 1007, reports rates at 1008: until then metricN (1) != replicas (2)
    lab.step_to(START + 6)
    assert moves(elb) == [(START + 4, 1, 2)]
    assert elb.services["apache"].last_decision["reason"] == \
        "waiting for metrics: metricN=1, replicas=2"
    lab.step_to(START + 8)
    assert moves(elb) == [(START + 4, 1, 2), (START + 8, 2, 3)]
    lab.step_to(START + 30)  # at replicas_max
    assert moves(elb) == [(START + 4, 1, 2), (START + 8, 2, 3)]
    assert (lab.replicas(), lab.running()) == (3, 3)
    last = elb.services["apache"].last_decision
    assert last["reason"] == "no change: within thresholds or at a bound"
    assert last["metrics"]["n"] == 3
    assert last["metrics"]["util"] == pytest.approx(2.0)
    assert last["metrics"]["bytes"] == pytest.approx(2_000)
    assert scale_log(elb_log) == [
        "event=scale service=apache from=1 to=2 reason='util 2 > 1'",
        "event=scale service=apache from=2 to=3 reason='util 2 > 1'",
    ]
    assert published == [
        ("elb", ServiceScaled(START + 4, "apache", "seed", 1, 2, "util 2 > 1")),
        ("elb", ServiceScaled(START + 8, "apache", "seed", 2, 3, "util 2 > 1")),
    ]


def test_seed_scales_down_to_the_minimum(make_lab: Callable[..., ElbLab]) -> None:
    lab = make_lab()
    lab.service(replicas=3, load=LOW)
    elb = lab.elb({"apache": {"replicas_min": 2}}, enabled=True)
    lab.step_to(START + 20)
    # tasks run at 1001; rates from 1002; a stopped container leaves metricN at once
    assert moves(elb) == [(START + 2, 3, 2)]
    assert (lab.replicas(), lab.running()) == (2, 2)
    assert elb.decisions[0]["reason"] == "util 0.1 < 0.5 and bytes 1000 < 50000"


def test_scaling_keeps_the_running_tasks(make_lab: Callable[..., ElbLab]) -> None:
    """The ELB posts the spec back as stored, only the count changed: swarm starts or stops
    the difference and never replaces a running task (the docker SDK's Service.scale posts
    the spec read with defaults, and swarm replaces every task)."""
    lab = make_lab()
    lab.service(replicas=1, load=HIGH)
    stored = json.loads(json.dumps(lab.swarm.service("apache").spec))
    stopped: list[ContainerStopped] = []
    lab.swarm.subscribe(lambda e: stopped.append(e) if isinstance(e, ContainerStopped) else None)
    elb = lab.elb({"apache": {"replicas_max": 3}}, enabled=True)
    lab.step_to(START + 1)
    (first,) = lab.swarm.running("apache")
    lab.step_to(START + 10)
    assert [(f, t) for _, f, t in moves(elb)] == [(1, 2), (2, 3)]
    assert [t.slot for t in lab.swarm.running("apache")] == [1, 2, 3]
    assert lab.swarm.running("apache")[0].id == first.id
    lab.feed.loads["apache"] = LOW
    lab.step_to(START + 20)
    assert [(f, t) for _, f, t in moves(elb)][2:] == [(3, 2), (2, 1)]
    # slot 1 never had another task: the scale-downs removed slots 2 and 3
    assert [t.id for t in lab.swarm.tasks()] == [first.id]
    assert sorted(e.slot for e in stopped) == [2, 3]
    stored["Mode"]["Replicated"]["Replicas"] = 1
    assert lab.swarm.service("apache").spec == stored


def test_seed_holds_within_the_band_and_while_disabled(make_lab: Callable[..., ElbLab]) -> None:
    lab = make_lab()
    lab.service(replicas=2, load=BAND)
    elb = lab.elb()  # disabled, as the seed starts
    lab.step_to(START + 10)
    assert not elb.decisions
    lab.feed.loads["apache"] = HIGH
    lab.step_to(START + 20)
    assert not elb.decisions
    assert lab.replicas() == 2
    assert elb.services["apache"].last_decision["reason"] == \
        "disabled: would scale to 3: util 2 > 1"


def test_the_metric_query_selects_the_service_s_running_containers(
        make_lab: Callable[..., ElbLab]) -> None:
    lab = make_lab()
    lab.service("apache", 2, Load(1.0, 100, 200))
    lab.service("apache2", 1, Load(9.0))
    lab.service("web", 1, Load(5.0))
    lab.step_to(START + 3)
    res = lab.engine.metric("ALL", "avg:vir_cpu_utilization,avg:vir_bytes_out",
                            service_filter("apache"))
    assert [r["metricN"] for r in res] == [2, 2]
    assert [r["metricValue"] for r in res] == [pytest.approx(1.0), pytest.approx(200)]


def test_several_services_each_with_its_own_policy(make_lab: Callable[..., ElbLab]) -> None:
    lab = make_lab()
    lab.service("apache", 1, HIGH)
    lab.service("web", 2, Load(util=3.0))
    elb = lab.elb({"apache": {"replicas_max": 2},
                   "web": {"policy": "hpa", "target_util": 1.0, "target_bytes": None,
                           "max_step_up": 10}}, enabled=True)
    lab.step_to(START + 2)
    assert sorted((d["service"], d["from"], d["to"]) for d in elb.decisions) == [
        ("apache", 1, 2), ("web", 2, 6)]  # web: ceil(2 * 3.0 / 1.0)


# -- the HPA policy through Docker ---------------------------------------------------------------


def test_hpa_scales_to_exact_counts_with_step_limits(make_lab: Callable[..., ElbLab]) -> None:
    lab = make_lab()
    lab.service(replicas=2, load=Load(util=3.0))  # per container, whatever the count
    elb = lab.elb({"apache": {"policy": "hpa", "target_util": 1.0, "target_bytes": None,
                              "max_step_up": 4}}, enabled=True)
    lab.step_to(START + 2)
    assert moves(elb) == [(START + 2, 2, 6)]  # ceil(2 * 3) = 6 = 2 + 4
    assert elb.decisions[0]["reason"] == "desired 6 (util ratio 3)"
    lab.step_to(START + 4)  # the 4 new tasks start at 1003 and report rates at 1004
    assert moves(elb)[1:] == [(START + 4, 6, 10)]  # ceil(18) -> max 10, within +4
    lab.feed.loads["apache"] = Load(util=0.25)
    lab.step_to(START + 40)
    # from 1006 ceil(10 * 0.25) = 3, but the window holds the 10 recommended at 1004 for
    # 30 s: down at 1034 (-4, the step limit), then to 3 at 1036
    assert moves(elb)[2:] == [(START + 34, 10, 6), (START + 36, 6, 3)]
    assert lab.replicas() == 3


# -- version conflicts ---------------------------------------------------------------------------


def conflict_once(lab: ElbLab, change: Callable[[dict[str, Any]], None]) -> list[int]:
    """The next update the double receives finds the service changed by someone else first."""
    swarm, original, seen = lab.swarm, lab.swarm.update_service, []

    def update(ref: str, version: int, body: Any) -> Any:
        seen.append(version)
        if len(seen) == 1:
            current = swarm.service(ref)
            other = json.loads(json.dumps(current.spec))
            change(other)
            original(ref, current.version, other)  # lands first: the version moves on
        return original(ref, version, body)

    swarm.update_service = update  # type: ignore[method-assign]
    return seen


def test_a_conflicting_update_is_retried_from_the_fresh_service(
        make_lab: Callable[..., ElbLab]) -> None:
    lab = make_lab()
    lab.service(replicas=1, load=HIGH)
    elb = lab.elb({"apache": {"replicas_max": 2}}, enabled=True)
    before = json.loads(json.dumps(lab.swarm.service("apache").spec))
    versions = conflict_once(lab, lambda s: s["Labels"].update(team="web"))
    lab.step_to(START + 2)
    assert len(versions) == 2 and versions[1] > versions[0]  # the retry names the new version
    assert moves(elb) == [(START + 2, 1, 2)]
    assert elb.docker.conflicts == 1
    service = lab.swarm.service("apache")
    expected = json.loads(json.dumps(before))
    expected["Labels"] = {"team": "web"}
    expected["Mode"]["Replicated"]["Replicas"] = 2
    assert service.spec == expected  # both changes kept, nothing else lost
    lab.step_to(START + 10)
    assert lab.replicas() == 2


def test_a_conflicting_scale_by_someone_else_is_not_stepped_again(
        make_lab: Callable[..., ElbLab]) -> None:
    lab = make_lab()
    lab.service(replicas=1, load=HIGH)
    elb = lab.elb({"apache": {"replicas_max": 5}}, enabled=True)
    conflict_once(lab, lambda s: s["Mode"]["Replicated"].update(Replicas=2))
    lab.step_to(START + 2)
    # re-read: 2 replicas but metricN 1, so no decision this round: not 3
    assert (lab.replicas(), moves(elb), elb.docker.conflicts) == (2, [], 1)
    assert elb.services["apache"].last_decision["reason"] == \
        "waiting for metrics: metricN=1, replicas=2"
    lab.step_to(START + 4)  # the other's task reports: the ELB goes on from 2
    assert moves(elb) == [(START + 4, 2, 3)]


def test_endless_conflicts_give_up_after_bounded_attempts(
        make_lab: Callable[..., ElbLab]) -> None:
    lab = make_lab()
    lab.service(replicas=1, load=HIGH)
    elb = lab.elb(enabled=True, conflict_attempts=3)
    original = lab.swarm.update_service

    def refuse(ref: str, version: int, body: Any) -> Any:
        raise SwarmError(500, "rpc error: code = Unknown desc = update out of sequence")

    lab.swarm.update_service = refuse  # type: ignore[method-assign]
    lab.step_to(START + 2)
    assert (lab.replicas(), moves(elb), elb.docker.conflicts) == (1, [], 3)
    assert elb.services["apache"].last_decision["error"] is True
    assert "gave up after 3 version conflicts" in elb.services["apache"].last_decision["reason"]
    lab.swarm.update_service = original  # type: ignore[method-assign]
    lab.step_to(START + 4)
    assert moves(elb) == [(START + 4, 1, 2)]


# -- Docker outage -------------------------------------------------------------------------------


def test_docker_outage_backs_off_without_scaling_and_resumes(
        make_lab: Callable[..., ElbLab], elb_log: pytest.LogCaptureFixture) -> None:
    lab = make_lab()
    lab.service(replicas=1, load=HIGH)
    elb = lab.elb({"apache": {"replicas_max": 2}}, enabled=True)
    lab.step_to(START + 4)
    assert moves(elb) == [(START + 2, 1, 2)]
    port = int(lab.api.url.rsplit(":", 1)[1])
    lab.api.stop()
    lab.feed.loads["apache"] = LOW
    lab.step_to(START + 30)
    # failures at 1006 (retry in 2 s), 1008 (4 s), 1012 (8 s), 1020 (16 s): next try 1036
    d = elb.docker
    assert (d.errors, elb.backoff.failures, elb.backoff.retry_at) == (4, 4, START + 36)
    assert d.skipped_intervals == 9  # 1010, 1014, 1016, 1018, 1022 ... 1030
    assert "ConnectionError" in d.last_error
    assert moves(elb) == [(START + 2, 1, 2)]
    assert lab.replicas() == 2
    warnings = [r.getMessage() for r in elb_log.records if "docker_unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "failures=1 retry_in_s=2" in warnings[0]
    status = lab.http()["docker"]
    assert (status["consecutive_failures"], status["retry_at"]) == (4, START + 36)
    lab.api = SwarmApi(lab.swarm, port=port).start()
    lab.step_to(START + 36)
    assert moves(elb) == [(START + 2, 1, 2), (START + 36, 2, 1)]
    assert elb.backoff.failures == 0
    assert any("event=docker_recovered" in r.getMessage() and "failures=4" in r.getMessage()
               for r in elb_log.records)


def test_docker_down_from_the_start_is_an_outage_not_a_failed_start(
        make_lab: Callable[..., ElbLab]) -> None:
    lab = make_lab()
    lab.service(replicas=1)
    lab.api.stop()
    elb = lab.elb(enabled=True)
    lab.step_to(START + 6)
    assert lab.runtime.status()["elb"]["errors"] == {}
    assert elb.docker.errors == 2  # 1002 and 1006 (1004 skipped)
    assert "connect" in elb.docker.last_error


def test_a_server_error_is_an_outage_too(make_lab: Callable[..., ElbLab]) -> None:
    lab = make_lab()
    lab.service(replicas=1, load=HIGH)
    elb = lab.elb(enabled=True)

    def broken(ref: str) -> Any:
        raise SwarmError(503, "raft: no elected cluster leader")

    lab.swarm.service = broken  # type: ignore[method-assign]
    lab.step_to(START + 2)
    assert (elb.docker.errors, lab.swarm.services()[0].replicas, moves(elb)) == (1, 1, [])
    assert "no elected cluster leader" in elb.docker.last_error


def test_a_docker_api_that_never_answers_times_out(make_lab: Callable[..., ElbLab]) -> None:
    lab = make_lab()
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        elb = lab.elb(enabled=True, timeout_s=0.2, api_version="1.44",
                      docker_url=f"tcp://127.0.0.1:{silent.getsockname()[1]}")
        lab.step_to(START + 2)
    assert elb.docker.errors == 1
    assert elb.docker.last_error.startswith("read service apache: ReadTimeout: ")


def test_an_unknown_service_is_reported_not_scaled(make_lab: Callable[..., ElbLab],
                                                  elb_log: pytest.LogCaptureFixture) -> None:
    lab = make_lab()
    elb = lab.elb(["nosuch"], enabled=True)
    lab.step_to(START + 10)
    last = elb.services["nosuch"].last_decision
    assert last["error"] is True and "service nosuch not found" in last["reason"]
    assert elb.docker.errors == 0  # the API answered: no backoff
    logged = [r for r in elb_log.records if "elb_no_decision" in r.getMessage()]
    assert len(logged) == 1  # logged when it changes, not every interval


# -- HTTP and persistence ------------------------------------------------------------------------


def test_http_switches_status_decisions(make_lab: Callable[..., ElbLab]) -> None:
    lab = make_lab()
    lab.service("apache", 1, HIGH)
    lab.service("web", 1, HIGH)
    elb = lab.elb(["apache", "web"])
    assert lab.http(state="enabled", service="apache") == "enabled"
    lab.step_to(START + 2)
    status = lab.http("GET", ("status",))
    assert status == lab.http()
    apache, web = status["services"]["apache"], status["services"]["web"]
    assert (apache["enabled"], web["enabled"]) == (True, False)
    assert (apache["policy"], apache["params"]["util_max"]) == ("seed", 1.0)
    assert (apache["replicas"], web["replicas"]) == (2, 1)
    assert apache["last_decision"]["to"] == 2
    assert web["last_decision"]["reason"].startswith("disabled: would scale to 2")
    assert web["metrics"]["util"] == pytest.approx(2.0)
    [decision] = lab.http("GET", ("decisions",))
    assert {k: decision[k] for k in ("time", "service", "policy", "from", "to", "reason")} == {
        "time": START + 2, "service": "apache", "policy": "seed", "from": 1, "to": 2,
        "reason": "util 2 > 1"}
    assert decision["metrics"]["n"] == 1
    assert lab.http("GET", ("decisions",), service="web") == []
    assert lab.http(state="enabled") == "enabled"
    assert all(s.enabled for s in elb.services.values())
    assert lab.http(state="disabled") == "disabled"
    assert not any(s.enabled for s in elb.services.values())


@pytest.mark.parametrize(("method", "path", "query", "body", "status", "message"), [
    ("GET", (), {"state": "on"}, None, 400, "state must be enabled or disabled"),
    ("GET", (), {"state": "enabled", "service": "db"}, None, 404, "no service 'db'"),
    ("GET", ("nope",), {}, None, 404, "unknown path 'nope'"),
    ("DELETE", ("status",), {}, None, 405, "status answers GET"),
    ("PUT", ("params",), {}, b"{", 400, "bad JSON body"),
    ("PUT", ("params",), {}, b"[1]", 400, "expected a JSON object"),
    ("PUT", ("params",), {}, {"replicas_max": 3}, 400, "name the service"),
    ("PUT", ("params", "db"), {}, {}, 404, "no service 'db'"),
    ("POST", ("params",), {}, {"service": "apache", "replicas_min": 0}, 400,
     "service apache: need 1 <= replicas_min <= replicas_max, got 0 and 10"),
    ("PUT", ("params",), {}, {"service": "web", "policy": "hpa", "util_max": 2}, 400,
     "unknown parameter(s) util_max"),
    ("PUT", ("params", "web"), {}, {"policy": "magic"}, 400, "unknown policy 'magic'"),
    ("GET", ("decisions",), {"max": "x"}, None, 400, "max must be an integer"),
])
def test_http_refuses_bad_requests_clearly(make_lab: Callable[..., ElbLab], method: str,
                                           path: tuple[str, ...], query: dict[str, str],
                                           body: Any, status: int, message: str) -> None:
    lab = make_lab()
    elb = lab.elb(["apache", "web"])
    before = {n: s.settings() for n, s in elb.services.items()}
    with pytest.raises(HttpError) as e:
        lab.http(method, path, body, **query)
    assert e.value.status == status
    assert message in e.value.message
    assert {n: s.settings() for n, s in elb.services.items()} == before


def test_params_change_over_http_and_persist_across_a_restart(
        make_lab: Callable[..., ElbLab], tmp_path: Path) -> None:
    lab = make_lab()
    lab.elb(["apache", "web"], enabled=True)
    reply = lab.http("PUT", ("params",), json.dumps(
        {"service": "apache", "policy": "hpa", "target_util": 2, "target_bytes": None}).encode())
    assert reply["policy"] == "hpa"
    assert reply["params"]["target_util"] == 2.0 and reply["params"]["target_bytes"] is None
    assert lab.http("POST", ("params", "web"), {"bytes_max": 200_000})["params"]["bytes_max"] \
        == 200_000
    assert lab.http(state="disabled", service="web") == "disabled"
    saved = lab.http("GET", ("params",))
    lab.restart_runtime()
    elb = lab.elb(["apache", "web"], enabled=True)
    assert lab.http("GET", ("params",)) == saved
    assert (elb.services["apache"].enabled, elb.services["web"].enabled) == (True, False)
    assert json.loads((tmp_path / "state/controllers/elb.json").read_text())["services"] == saved


def test_a_bad_stored_entry_is_ignored_with_a_warning(make_lab: Callable[..., ElbLab],
                                                     elb_log: pytest.LogCaptureFixture) -> None:
    lab = make_lab()
    lab.runtime.store_set("elb", "services", {
        "apache": {"policy": "hpa", "enabled": True, "params": {"tolerance": 7}},
        "web": {"policy": "hpa", "enabled": "yes", "params": {}},
        "db": {"policy": ["hpa"], "enabled": True, "params": {}},
        "gone": {"policy": "hpa", "enabled": True, "params": {}}})
    elb = lab.elb(["apache", "web", "db"])
    assert [(s.policy.name, s.enabled) for s in elb.services.values()] == [("seed", False)] * 3
    ignored = [r.getMessage() for r in elb_log.records if "elb_store_ignored" in r.getMessage()]
    assert len(ignored) == 3 and "0 <= tolerance < 1" in ignored[0]


# -- configuration -------------------------------------------------------------------------------


def test_the_entry_point_and_bad_configuration() -> None:
    assert resolve("elb") is ElasticLoadBalancer
    with pytest.raises(ValueError, match="service web: unknown policy 'k8s'"):
        ElasticLoadBalancer({"web": {"policy": "k8s"}})
    with pytest.raises(ValueError, match="enabled must be true or false"):
        ElasticLoadBalancer({"web": {"enabled": "yes"}})
    with pytest.raises(ValueError, match="a list of names or a table"):
        ElasticLoadBalancer("apache")
    with pytest.raises(ValueError, match="at least one service"):
        ElasticLoadBalancer([])


def test_tls_needs_the_three_files_and_makes_an_https_client(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing cert.pem, key.pem, ca.pem"):
        SwarmServices("tcp://127.0.0.1:2376", tls_dir=tmp_path)
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("-----\n")
    services = SwarmServices("tcp://127.0.0.1:2376", tls_dir=tmp_path, api_version="1.41")
    client = services.client()
    assert isinstance(client, docker.DockerClient)
    assert client.api.base_url == "https://127.0.0.1:2376"
    assert client.api.cert == (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    assert client.api.verify == str(tmp_path / "ca.pem")
    services.close()


def test_a_controller_failure_never_escapes(make_lab: Callable[..., ElbLab],
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    lab = make_lab()
    lab.service(replicas=1, load=HIGH)
    elb = lab.elb(enabled=True)
    elb.swarm.read = None  # type: ignore[assignment,method-assign]  # a bug in the controller
    lab.step_to(START + 4)
    assert lab.runtime.status()["elb"]["errors"] == {"interval": 2}
