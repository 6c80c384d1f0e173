"""Controllers inside the production daemon: loaded from the config file, driven by its ticks,
answering on ``/app/{name}/...`` and ``/script/{name}/json``, talking to a Docker Engine API
(the swarm double) over real HTTP. The seed's curl commands work unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from collector_helpers import Collector, start, wait_for
from elb_lab import busy_apache

from sflowlab.lab.doubles.swarm_api import SwarmApi
from sflowlab.lab.doubles.swarm_model import Swarm


def test_seed_curl_commands_scale_the_swarm(collector: Collector,
                                            swarm: tuple[Swarm, SwarmApi]) -> None:
    model, _ = swarm
    wait_for(lambda: model.running("apache"), what="the first apache task")
    status = collector.get("/app/json")
    assert status["elb.js"]["errors"] == {}

    assert collector.get("/script/elb.js/json?state=disabled") == "disabled"
    busy_apache(collector, model)
    wait_for(lambda: collector.get(
        "/metric/ALL/avg:vir_cpu_utilization/json?vir_host_name=apache.*")[0]["metricN"] == 1,
        what="the container's metrics")
    disabled = wait_for(lambda: "would scale to 2" in json.dumps(
        s := collector.get("/app/elb.js/status/json")) and s, what="the disabled ELB's verdict")
    assert disabled["services"]["apache"]["replicas"] == 1
    assert model.service("apache").replicas == 1

    assert collector.get("/script/elb.js/json?state=enabled") == "enabled"
    wait_for(lambda: model.service("apache").replicas == 2, what="the ELB to scale apache to 2")
    decisions = collector.get("/app/elb.js/scripts/elb.js/decisions/json")
    assert [(d["from"], d["to"]) for d in decisions][-1:] == [(1, 2)]
    assert "event=scale service=apache from=1 to=2" in collector.log()


def test_unknown_app_and_bad_controller_config(collector: Collector, tmp_path: Path) -> None:
    code, body = collector.send("GET", "/app/nope/json")
    assert code == 404 and "no controller named 'nope'" in body["error"]

    bad = tmp_path / "bad.toml"
    bad.write_text('[[controllers]]\nname = "x"\nuse = "sflowlab.no_such_module:Thing"\n')
    c = start(tmp_path, "--config", str(bad), ready=False)
    assert c.proc.wait(timeout=15) != 0
    assert "cannot load controller 'sflowlab.no_such_module:Thing'" in c.log()


@pytest.mark.parametrize("http", ['token = "s3cret"', "readonly = true"])
def test_every_change_needs_the_token_and_readonly_refuses_it(
        tmp_path: Path, swarm: tuple[Swarm, SwarmApi], http: str) -> None:
    """Whatever the method: a GET that disables the ELB, PUT params, DELETE, forwarding."""
    config = tmp_path / "collector.toml"
    config.write_text(f"""
[http]
{http}

[[controllers]]
name = "elb"
use = "elb"
[controllers.params]
docker_url = "{swarm[1].url.replace('http://', 'tcp://')}"
enabled = true
[controllers.params.services.apache]
policy = "seed"
""")
    c = start(tmp_path, "--config", str(config))
    refused = 401 if "token" in http else 403
    try:
        for method, path, body in [
                ("GET", "/app/elb/json?state=disabled", None),
                ("GET", "/script/elb/json?state=disabled&service=apache", None),
                ("PUT", "/app/elb/params/json", {"service": "apache", "replicas_max": 2}),
                ("DELETE", "/app/elb/status/json", None),
                ("PUT", "/forwarding/out/json", {"address": "127.0.0.1", "port": 6343}),
                ("PUT", "/flow/f/json", {"value": "bytes"}),
                ("DELETE", "/group/nope/json", None)]:
            code, answer = c.send(method, path, body)
            assert code == refused, (method, path, answer)
        status = c.get("/app/elb/status/json")["services"]["apache"]
        assert status["enabled"] is True and status["params"]["replicas_max"] != 2
        assert c.get("/forwarding/json") == {} and c.get("/flow/json") == {}
        if "token" in http:
            auth = {"Authorization": "Bearer s3cret"}
            assert c.send("GET", "/app/elb/json?state=disabled", None, auth) == (200, "disabled")
            assert c.get("/app/elb/status/json")["services"]["apache"]["enabled"] is False
    finally:
        assert c.stop() == 0
