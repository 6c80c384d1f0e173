"""Signals to the collector process: SIGHUP reloads the configuration's definitions."""

from __future__ import annotations

import signal
from pathlib import Path

from collector_helpers import start, wait_for

from sflowlab.collector.journal import read_definitions

FIRST = """
[groups]
lan = ["10.0.0.0/8"]
[flows.web]
keys = "ipsource"
value = "bytes"
"""
SECOND = """
[groups]
lan = ["10.1.0.0/16"]
[flows.dns]
keys = "ipdestination"
value = "frames"
[thresholds.dnshigh]
metric = "dns"
value = 10
"""


def test_sighup_reloads_definitions_from_the_config(tmp_path: Path) -> None:
    """The file's groups, flows and thresholds replace those it declared before (one it no
    longer declares is removed); definitions made over REST stay; a file that cannot be used
    is refused with a log line and changes nothing; the state file follows."""
    cfg = tmp_path / "collector.toml"
    cfg.write_text(FIRST)
    c = start(tmp_path, "--config", str(cfg), "--state-dir", str(tmp_path / "state"))
    try:
        assert c.send("PUT", "/flow/mine/json", {"keys": "ipprotocol", "value": "bytes"})[0] == 200
        assert set(c.get("/flow/json")) == {"web", "mine"}
        cfg.write_text(SECOND)
        c.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "event=config_reloaded" in c.log(), 10, "the reload")
        assert c.proc.poll() is None
        assert set(c.get("/flow/json")) == {"dns", "mine"}
        assert c.get("/groups/json") == {"lan": {"lan": ["10.1.0.0/16"]}}
        assert c.get("/threshold/dnshigh/json")["value"] == 10
        state = read_definitions(tmp_path / "state")["flows"]
        assert "dns" in state and "web" not in state

        cfg.write_text('[flows.other]\nkeys = "ipsource"\n[groups]\nlan = "10.0.0.0/8"\n')
        c.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "event=config_reload_failed" in c.log(), 10, "the refusal")
        assert 'or a list of CIDR strings' in c.log()
        assert set(c.get("/flow/json")) == {"dns", "mine"}
    finally:
        assert c.stop() == 0
