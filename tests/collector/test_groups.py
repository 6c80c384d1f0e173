"""Address groups: CIDR parsing, two-level group sets, per-set match, longest-prefix lookup."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sflowlab.collector.groups import GroupSet, parse_cidr


@pytest.fixture
def groups() -> GroupSet:
    g = GroupSet()
    g.set_all({
        "external": ["0.0.0.0/0", "::/0"],
        "internal": ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8"],
        "lab": ["10.1.0.0/16", "2001:db8:1::/48"],
        "server": ["10.1.2.3", "2001:db8:1::80"],
    })
    return g


def test_match_is_membership_of_one_group(groups: GroupSet) -> None:
    assert groups.match("internal", "10.1.2.3") == "internal"
    assert groups.match("lab", "10.1.2.3") == "lab"
    assert groups.match("lab", "10.2.0.1") is None
    assert groups.match("lab", "2001:db8:1:ffff::1") == "lab"
    assert groups.match("lab", "2001:db8:2::1") is None
    assert groups.match("nosuchgroup", "10.1.2.3") is None


def test_a_group_set_names_the_group_holding_the_address() -> None:
    """sFlow-RT's setGroups('ddos', {external: [...], private: [...]}): group:ipsource:ddos
    is the name of the group with the most specific prefix."""
    g = GroupSet()
    g.set("ddos", {"external": ["0.0.0.0/0", "::/0"], "private": ["10.0.0.0/8", "fc00::/7"],
                   "multicast": ["224.0.0.0/4"]})
    assert [g.match("ddos", a) for a in ("8.8.8.8", "10.1.2.3", "224.0.0.251", "fd00::1",
                                          "2a00::1", "bad")] == [
        "external", "private", "multicast", "private", "external", None]
    assert g.get("ddos") == {"external": ["0.0.0.0/0", "::/0"],
                             "private": ["10.0.0.0/8", "fc00::/7"], "multicast": ["224.0.0.0/4"]}
    with pytest.raises(ValueError, match="group 'private'"):
        g.set("ddos", {"private": ["10.0.0.0/88"]})
    with pytest.raises(ValueError, match="group set 'x'"):
        g.set("x", "10.0.0.0/8")  # type: ignore[arg-type]
    assert g.match("ddos", "10.1.2.3") == "private"


def test_lookup_returns_the_most_specific_group(groups: GroupSet) -> None:
    assert groups.lookup("10.1.2.3") == "server"  # /32 beats /16 beats /8 beats /0
    assert groups.lookup("10.1.2.4") == "lab"
    assert groups.lookup("10.200.0.1") == "internal"
    assert groups.lookup("8.8.8.8") == "external"
    assert groups.lookup("2001:db8:1::80") == "server"
    assert groups.lookup("2001:db8:1::81") == "lab"
    assert groups.lookup("fd12::1") == "internal"
    assert groups.lookup("2a00::1") == "external"


def test_identical_prefix_in_two_groups_goes_to_the_first_name() -> None:
    g = GroupSet()
    g.set("zeta", ["10.0.0.0/8"])
    g.set("alpha", ["10.0.0.0/8"])
    assert g.lookup("10.9.9.9") == "alpha"
    assert g.match("zeta", "10.9.9.9") == "zeta"


def test_families_do_not_mix() -> None:
    g = GroupSet()
    g.set("v4all", ["0.0.0.0/0"])
    assert g.lookup("::1") is None
    assert g.match("v4all", "::ffff:10.0.0.1") is None
    assert g.match("v4all", "10.0.0.1") == "v4all"


def test_host_bits_are_ignored_and_bare_addresses_are_hosts() -> None:
    assert parse_cidr("10.1.2.3/24") == parse_cidr("10.1.2.0/24")
    g = GroupSet()
    g.set("h", ["192.0.2.7", "2001:db8::/127"])
    assert g.match("h", "192.0.2.7") == "h"
    assert g.match("h", "192.0.2.6") is None
    assert g.match("h", "2001:db8::1") == "h"
    assert g.match("h", "2001:db8::2") is None


def test_bad_addresses_never_match(groups: GroupSet) -> None:
    for bad in ("", "10.0.0", "10.0.0.256", "not-an-ip", "1::2::3"):
        assert groups.lookup(bad) is None
        assert groups.match("external", bad) is None


@pytest.mark.parametrize(("cidr", "reason"), [
    ("10.0.0.0/33", "prefix length must be 0-32"),
    ("2001:db8::/129", "prefix length must be 0-128"),
    ("10.0.0.0/x", "prefix length"),
    ("10.0.0.0/-1", "prefix length"),
    ("10.0.0.300/8", "not an IP address"),
    ("", "expected a string"),
    (42, "expected a string"),
])
def test_bad_cidr_is_refused_with_its_reason(cidr: object, reason: str) -> None:
    g = GroupSet()
    with pytest.raises(ValueError, match="group 'g'") as info:
        g.set("g", [cidr])  # type: ignore[list-item]
    assert reason in str(info.value)
    assert g.get("g") is None


def test_set_all_changes_nothing_when_one_group_is_bad(groups: GroupSet) -> None:
    before = groups.all()
    with pytest.raises(ValueError, match="group 'b'"):
        groups.set_all({"a": ["10.0.0.0/8"], "b": ["bogus"]})
    assert groups.all() == before
    assert groups.lookup("10.1.2.3") == "server"
    with pytest.raises(ValueError, match="list of CIDR"):
        groups.set("c", "10.0.0.0/8")  # type: ignore[arg-type]


def test_crud_and_lookup_follow_changes(groups: GroupSet) -> None:
    assert groups.get("lab") == {"lab": ["10.1.0.0/16", "2001:db8:1::/48"]}
    groups.delete("server")
    groups.delete("server")  # absent: no error
    assert groups.lookup("10.1.2.3") == "lab"
    groups.set("lab", ["10.1.2.0/24"])
    assert groups.lookup("10.1.3.1") == "internal"
    groups.set_all({"only": ["10.0.0.0/8"]})
    assert groups.all() == {"only": {"only": ["10.0.0.0/8"]}}
    assert groups.lookup("8.8.8.8") is None


def test_remembered_answers_stay_right_when_the_memo_fills(
        groups: GroupSet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sflowlab.collector.groups.MEMO_SIZE", 2)
    for _ in range(3):
        assert [groups.lookup(a) for a in ("10.1.2.3", "10.1.2.4", "8.8.8.8", "bad")] == [
            "server", "lab", "external", None]
        assert [groups.match("lab", a) for a in ("10.1.2.3", "10.2.0.1")] == ["lab", None]


prefixes_v4 = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), prefixes_v4), max_size=40),
       st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20))
def test_lookup_agrees_with_a_brute_force_search(entries: list[tuple[str, tuple[int, int]]],
                                                  probes: list[int]) -> None:
    networks = {name: [] for name in "abc"}
    for name, (addr, length) in entries:
        networks[name].append(ipaddress.ip_network((addr, length), strict=False))
    g = GroupSet()
    g.set_all({name: [str(n) for n in nets] for name, nets in networks.items()})
    for probe in probes:
        address = ipaddress.ip_address(probe)
        hits = [(n.prefixlen, name) for name, nets in networks.items() for n in nets
                if address in n]
        want = min(hits, key=lambda h: (-h[0], h[1]))[1] if hits else None
        assert g.lookup(str(address)) == want
        for name, nets in networks.items():
            inside = any(address in n for n in nets)
            assert g.match(name, str(address)) == (name if inside else None)
