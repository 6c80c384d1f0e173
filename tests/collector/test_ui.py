"""The web UI at ``/`` in a real headless Chromium (Debian's chromium and chromium-driver,
driven by selenium): the production collector with the ELB controller and the swarm double,
real sFlow over UDP; the pages show the agents, a metric's values, top flows and the ELB's
decisions, all read from the REST API by the page's own JavaScript."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import Collector, datagram, flow, tcp, wait_for
from elb_lab import AGENT, busy_apache

from sflowlab.lab.doubles.swarm_api import SwarmApi
from sflowlab.lab.doubles.swarm_model import Swarm

webdriver = pytest.importorskip("selenium.webdriver")
Select = pytest.importorskip("selenium.webdriver.support.select").Select
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="chromium and chromium-driver (ci/setup.sh installs them)")
SWITCH = "10.30.0.9"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    service = webdriver.ChromeService(executable_path=DRIVER, log_output=str(tmp_path / "driver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def texts(driver: Any, selector: str) -> list[str]:
    """The text of what ``selector`` matches now, read in one step (the page re-renders every
    2 s, so elements found earlier may be gone)."""
    found: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), e => e.textContent)",
        selector)
    return found


def choose(driver: Any, select_id: str, value: str) -> None:
    """Pick ``value`` in a select once it is offered, as a user would (a change event)."""
    wait_for(lambda: value in [o.split("\n")[0] for o in texts(driver, f"#{select_id} option")],
             15, f"{value!r} in #{select_id}")
    Select(driver.find_element("id", select_id)).select_by_value(value)


def test_status_pages_show_agents_metrics_flows_and_elb_decisions(
        collector: Collector, swarm: tuple[Swarm, SwarmApi], browser: Any) -> None:
    model, _ = swarm
    wait_for(lambda: model.running("apache"), what="the first apache task")
    assert collector.get("/script/elb.js/json?state=enabled") == "enabled"
    busy_apache(collector, model)
    wait_for(lambda: model.service("apache").replicas == 2, what="the ELB to scale apache to 2")
    assert collector.send("PUT", "/flow/pairs/json", {"keys": "ipsource,ipdestination",
                                                      "value": "frames"})[0] == 200
    collector.udp(*(datagram(SWITCH, s, s * 100, [flow(s, 3, tcp("10.1.0.1", "10.2.0.1"))])
                    for s in range(1, 6)))
    wait_for(lambda: collector.get("/activeflows/ALL/pairs/json"), what="the top flow")

    browser.get(collector.url("/"))
    assert browser.title == "sflowlab collector"
    wait_for(lambda: {AGENT, SWITCH} <= set(texts(browser, "#agent-rows td:first-child")),
             15, "the agents table")
    wait_for(lambda: "sFlowDatagramsReceived" in texts(browser, "#status-rows td"), 15,
             "the analyzer statistics")

    choose(browser, "metric-select", "vir_host_name")
    wait_for(lambda: any(t.startswith("apache.") for t in texts(browser, "#metric-rows td")),
             15, "the container names in the metric browser")
    choose(browser, "metric-select", "vir_cpu_utilization")
    wait_for(lambda: "100" in texts(browser, "#metric-rows td.num"), 15,
             "the containers' CPU utilisation (100 %)")

    wait_for(lambda: "10.1.0.1,10.2.0.1" in texts(browser, "#flow-rows td"), 15,
             "the top flow of 'pairs'")
    assert texts(browser, "#flow-select option") == ["pairs"]

    decisions = '.controller[data-controller="elb.js"] table.decisions'
    wait_for(lambda: texts(browser, decisions), 15, "the ELB's decisions")
    header = texts(browser, f"{decisions} th")
    row = dict(zip(header, texts(browser, f"{decisions} tbody tr:first-child td"), strict=True))
    assert (row["type"], row["service"], row["from_replicas"], row["to_replicas"]) == (
        "ServiceScaled", "apache", "1", "2")
    assert '"services"' in texts(browser, '.controller[data-controller="elb.js"] pre.state')[0]
    assert browser.find_element("id", "error").get_attribute("hidden") is not None
    assert not [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
