"""The production collector running the ELB controller against the swarm double (a Docker
Engine API over real HTTP): the fixtures ``swarm`` and ``collector`` (conftest.py imports
them) and container load to make it scale."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_helpers import Collector, container, datagram, start

from sflowlab.lab.doubles.scheduler import RealTimeScheduler
from sflowlab.lab.doubles.swarm_api import SwarmApi
from sflowlab.lab.doubles.swarm_model import Swarm

AGENT = "10.30.0.1"


@pytest.fixture
def swarm() -> Iterator[tuple[Swarm, SwarmApi]]:
    scheduler = RealTimeScheduler()
    model = Swarm(scheduler, random.Random(5), {"node1": "10.30.0.1"}, start_delay_s=0.05,
                  stop_delay_s=0.05)
    model.create_service({"Name": "apache", "Mode": {"Replicated": {"Replicas": 1}},
                          "TaskTemplate": {"ContainerSpec": {"Image": "httpd:2.4"}}})
    api = SwarmApi(model).start()
    yield model, api
    api.stop()
    scheduler.close()


@pytest.fixture
def collector(tmp_path: Path, swarm: tuple[Swarm, SwarmApi]) -> Iterator[Collector]:
    config = tmp_path / "collector.toml"
    config.write_text(f"""
[collector]
tick_s = 0.2

[[controllers]]
name = "elb.js"
use = "elb"
[controllers.params]
docker_url = "{swarm[1].url.replace('http://', 'tcp://')}"
interval_s = 0.5
backoff_base_s = 0.5
[controllers.params.services.apache]
policy = "seed"
""")
    c = start(tmp_path, "--config", str(config), "--state-dir", str(tmp_path / "state"))
    yield c
    assert c.stop() == 0


def busy_apache(collector: Collector, swarm: Swarm) -> None:
    """Two counter samples per running apache container: 100 % CPU over 10 s of uptime."""
    names = sorted(t.name for t in swarm.running("apache"))
    for i, name in enumerate(names):
        index = 100_000 + i
        collector.udp(datagram(AGENT, 2 * i + 1, 100_000, [container(1, index, name, 0)]),
                      datagram(AGENT, 2 * i + 2, 110_000, [container(2, index, name, 10_000)]))
