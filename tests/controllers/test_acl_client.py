"""The switch ACL REST client against the ACL double over HTTP, the switch directory, and the
ACL book's retries, reconciliation and JSON round trip."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from acl_lab import FlakyClient

from sflowlab.clock import SimClock
from sflowlab.controllers.acl_client import (
    AclBook,
    AclClient,
    AclError,
    AclRecord,
    SwitchDirectory,
)
from sflowlab.lab.doubles.acl_rules import ParsedRule
from sflowlab.lab.doubles.switch_api import AclSwitch, SwitchApi

DROP = "-A FORWARD --in-interface swp+ -d 10.0.1.1 -p udp --sport 53 -j DROP"


class Recorder:
    """An ``AclTarget`` recording what the switch commits."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def apply(self, switch: str, rule_id: str, rules: list[ParsedRule]) -> None:
        self.calls.append(("apply", switch, rule_id, [r.line for r in rules]))

    def withdraw(self, switch: str, rule_id: str) -> None:
        self.calls.append(("withdraw", switch, rule_id))


@pytest.fixture
def served() -> Iterator[tuple[SimClock, SwitchApi, Recorder]]:
    clock, target = SimClock(), Recorder()
    switches = [AclSwitch(f"leaf{i}", f"10.255.0.{i}", clock, target) for i in (1, 2)]
    with SwitchApi(switches) as api:
        yield clock, api, target


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_put_get_names_delete(served: tuple[SimClock, SwitchApi, Recorder]) -> None:
    clock, api, target = served
    client = AclClient(timeout_s=5)
    leaf2 = api.acl_urls()["10.255.0.2"]
    client.put(leaf2, "ddos0", ["[iptables]", DROP])
    assert client.get(leaf2, "ddos0") == ["[iptables]", DROP]
    assert client.names(leaf2) == ["ddos0"] and client.names(api.acl_urls()["10.255.0.1"]) == []
    clock.advance(1.0)
    assert target.calls == [("apply", "leaf2", "ddos0", [DROP])]
    client.delete(leaf2, "ddos0")
    assert client.get(leaf2, "ddos0") is None  # 404 means absent, not an error
    client.delete(leaf2, "ddos0")  # absent: still fine
    clock.advance(1.0)
    assert target.calls[1:] == [("withdraw", "leaf2", "ddos0")]


def test_failures_become_acl_errors_with_status_and_reason(
        served: tuple[SimClock, SwitchApi, Recorder]) -> None:
    _, api, _ = served
    client = AclClient(timeout_s=5)
    leaf1 = api.acl_urls()["10.255.0.1"]
    with pytest.raises(AclError) as refused:
        client.put(leaf1, "x1", ["-A FORWARD -j ACCEPT"])
    assert refused.value.status == 400 and "target 'ACCEPT' is not modelled" in str(refused.value)
    with pytest.raises(AclError) as bad_name:
        client.put(leaf1, "Bad-Name", [DROP])
    assert bad_name.value.status == 404
    down = closed_port_url()
    with pytest.raises(AclError, match="no answer") as unreachable:
        client.put(down, "x1", [DROP])
    assert unreachable.value.status is None and unreachable.value.url == f"{down}/acl/x1"
    with pytest.raises(AclError, match="must be http"):
        client.get("file:///etc", "passwd")


def test_switch_directory_map_then_template() -> None:
    d = SwitchDirectory.from_params({"10.255.0.1": "http://leaf1:8080/"}, "http://{agent}:8080")
    assert d.url_for("10.255.0.1") == "http://leaf1:8080"
    assert d.url_for("10.255.0.9") == "http://10.255.0.9:8080"
    assert d.url_for("fd00:ff::9") == "http://[fd00:ff::9]:8080"
    only_map = SwitchDirectory.from_params({"10.255.0.1": "http://leaf1:8080"}, None)
    assert only_map.url_for("10.255.0.9") is None
    with pytest.raises(ValueError, match="give 'switches'"):
        SwitchDirectory.from_params(None, None)
    with pytest.raises(ValueError, match="must contain"):
        SwitchDirectory.from_params(None, "http://switch:8080")


def test_book_retries_failed_calls_when_due(
        served: tuple[SimClock, SwitchApi, Recorder]) -> None:
    _, api, _ = served
    client = FlakyClient()
    book = AclBook(client, retry_s=10.0)
    url = api.acl_urls()["10.255.0.1"]
    client.down = True
    assert book.install("10.255.0.1", url, "ddos0", [DROP], now=100.0) is False
    record = book.get("10.255.0.1", "ddos0")
    assert record is not None and (record.state, record.next_try) == ("installing", 110.0)
    assert "connection refused" in record.error
    client.down = False
    assert book.retry(105.0) == 0 and record.attempts == 1  # not due yet: no call
    assert book.retry(110.0) == 0 and record.state == "installed" and record.error == ""
    assert client.get(url, "ddos0") == [DROP]
    client.down = True
    assert book.remove("10.255.0.1", "ddos0", now=120.0) is False and record.state == "removing"
    client.down = False
    assert book.retry(130.0) == 0 and book.get("10.255.0.1", "ddos0") is None
    assert client.get(url, "ddos0") is None
    assert (book.calls, book.failures, book.pending()) == (4, 2, 0)


def test_book_reconciles_after_a_restart(served: tuple[SimClock, SwitchApi, Recorder]) -> None:
    _, api, _ = served
    client = AclClient()
    urls = api.acl_urls()
    book = AclBook(client, prefix="cap")
    kept, lost, far = book.new_name(), book.new_name(), book.new_name()
    assert (kept, lost, far) == ("cap0", "cap1", "cap2")
    book.install("10.255.0.1", urls["10.255.0.1"], kept, [DROP], 0.0)
    book.install("10.255.0.2", urls["10.255.0.2"], lost, [DROP], 0.0)
    book.records[("10.255.0.9", far)] = AclRecord("10.255.0.9", closed_port_url(), far,
                                                  [DROP], state="installed")
    client.delete(urls["10.255.0.2"], lost)  # lost while we were down
    saved = book.to_json()
    saved["acls"].append({"not": "a record"})
    restarted = AclBook(client, prefix="cap")
    restarted.load_json(saved)
    gone = restarted.reconcile(1.0)
    assert [r.name for r in gone] == [lost]
    assert sorted(r.name for r in restarted) == [kept, far]  # unreachable: kept
    unreachable = restarted.get("10.255.0.9", far)
    assert unreachable is not None and "no answer" in unreachable.error
    assert restarted.state_of("10.255.0.1", kept) == "active"
    assert restarted.state_of("10.255.0.2", lost) == "removed"
    assert restarted.new_name() == "cap3"  # names are never reused
    with pytest.raises(ValueError, match="ACL names are"):
        AclBook(client, prefix="Emrg-")
