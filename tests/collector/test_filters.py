"""Key expressions, key functions and the sFlow-RT filter grammar."""

from __future__ import annotations

import pytest

from sflowlab.collector.filters import FilterError, compile_filter, compile_key, compile_keys
from sflowlab.collector.groups import GroupSet

TCP_KEYS = {
    "ipsource": "10.1.2.3", "ipdestination": "198.51.100.7", "ipprotocol": 6,
    "tcpsourceport": 443, "tcpdestinationport": 51234, "ethernetprotocol": 0x0800,
    "stack": "eth.ip.tcp", "httpurl": "http://localhost:8008/metrics/json",
}
UDP6_KEYS = {
    "ip6source": "2001:db8:1:2:3:4:5:6", "ip6destination": "fd00::1", "ip6nexthdr": 17,
    "udpsourceport": 53, "udpdestinationport": 40000, "stack": "eth.ip6.udp", "vlan": 20,
}


@pytest.fixture
def groups() -> GroupSet:
    g = GroupSet()
    g.set_all({"emerging": ["198.51.100.0/24"], "local": ["10.0.0.0/8", "fd00::/8"],
               "lab": ["10.1.0.0/16"], "world": ["0.0.0.0/0", "::/0"]})
    return g


def key(expr: str, keys: dict[str, object], groups: GroupSet) -> object:
    return compile_key(expr, groups)(keys)


def test_plain_keys_read_the_sample(groups: GroupSet) -> None:
    assert key("ipsource", TCP_KEYS, groups) == "10.1.2.3"
    assert key("tcpsourceport", TCP_KEYS, groups) == 443
    assert key("udpsourceport", TCP_KEYS, groups) is None


def test_group_function_tries_listed_groups_in_order(groups: GroupSet) -> None:
    assert key("group:ipsource:lab:local", TCP_KEYS, groups) == "lab"
    assert key("group:ipsource:local:lab", TCP_KEYS, groups) == "local"
    assert key("group:ipdestination:local:lab", TCP_KEYS, groups) is None  # flow won't match
    assert key("group:ip6destination:local", UDP6_KEYS, groups) == "local"
    assert key("group:ipsource", TCP_KEYS, groups) == "lab"  # no list: most specific group
    assert key("group:ipdestination", TCP_KEYS, groups) == "emerging"
    assert key("group:ipsource:lab", UDP6_KEYS, groups) is None  # key missing


def test_group_function_sees_group_changes_after_compiling(groups: GroupSet) -> None:
    compiled = compile_key("group:ipdestination:emerging", groups)
    assert compiled(TCP_KEYS) == "emerging"
    groups.set("emerging", ["203.0.113.0/24"])
    assert compiled(TCP_KEYS) is None


def test_mask_function_clears_host_bits(groups: GroupSet) -> None:
    assert key("mask:ipsource:24", TCP_KEYS, groups) == "10.1.2.0"
    assert key("mask:ipsource:12", TCP_KEYS, groups) == "10.0.0.0"
    assert key("mask:ipsource:32", TCP_KEYS, groups) == "10.1.2.3"
    assert key("mask:ipsource:64", TCP_KEYS, groups) == "10.1.2.3"  # capped at the width
    assert key("mask:ip6source:48", UDP6_KEYS, groups) == "2001:db8:1::"
    assert key("mask:ip6source:0", UDP6_KEYS, groups) == "::"
    assert key("mask:tcpsourceport:8", TCP_KEYS, groups) is None  # not an address
    compiled = compile_key("mask:ipsource:16", groups)
    for _ in range(2):  # the second round answers from memory
        assert compiled(TCP_KEYS) == "10.1.0.0"
        assert compiled({"ipsource": "10.1.2"}) is None


def test_range_function_labels_membership(groups: GroupSet) -> None:
    assert key("range:tcpsourceport:0:1023", TCP_KEYS, groups) == "true"
    assert key("range:tcpdestinationport:0:1023", TCP_KEYS, groups) == "false"
    assert key("range:tcpsourceport:443:443", TCP_KEYS, groups) == "true"
    assert key("range:udpsourceport:0:1023", TCP_KEYS, groups) is None


def test_or_null_prefix_suffix_first(groups: GroupSet) -> None:
    assert key("or:tcpsourceport:udpsourceport", TCP_KEYS, groups) == 443
    assert key("or:tcpsourceport:udpsourceport", UDP6_KEYS, groups) == 53
    assert key("or:ipsource:ip6source", UDP6_KEYS, groups) == "2001:db8:1:2:3:4:5:6"
    assert key("or:icmptype:icmpcode", UDP6_KEYS, groups) is None
    assert key("null:vlan:untagged", TCP_KEYS, groups) == "untagged"
    assert key("null:vlan:untagged", UDP6_KEYS, groups) == 20
    assert key("prefix:stack:.:2", TCP_KEYS, groups) == "eth.ip"
    assert key("suffix:stack:.:1", UDP6_KEYS, groups) == "udp"
    assert key("first:stack:.:ip:ip6", UDP6_KEYS, groups) == "ip6"
    assert key("first:stack:.:arp", UDP6_KEYS, groups) is None


def test_functions_nest_with_square_brackets(groups: GroupSet) -> None:
    assert key("prefix:[suffix:httpurl:/:3]:/:2", TCP_KEYS, groups) == "localhost:8008/metrics"
    assert key("group:[or:ipsource:ip6source]:local", UDP6_KEYS, groups) is None
    assert key("mask:[or:ipsource:ip6source]:16", UDP6_KEYS, groups) == "2001::"
    assert [k.expr for k in compile_keys("ipsource,[null:vlan:0],mask:ipsource:8", groups)] == [
        "ipsource", "[null:vlan:0]", "mask:ipsource:8"]


def test_compiled_key_lists_the_flow_keys_it_reads(groups: GroupSet) -> None:
    assert compile_key("or:tcpsourceport:[null:udpsourceport:0]", groups).keys == {
        "tcpsourceport", "udpsourceport"}
    assert compile_filter("agent=10.0.0.1|(ipprotocol=6&group:ipsource:lab=lab)",
                          groups).keys == {"agent", "ipprotocol", "ipsource"}


@pytest.mark.parametrize(("expr", "tcp", "udp6"), [
    ("ipprotocol=6", True, False),
    ("ipprotocol=6,17", True, False),
    ("ip6nexthdr=6,17", False, True),
    ("ethernetprotocol=0x800", True, False),  # numbers compare as numbers too
    ("ethernetprotocol=2048", True, False),
    ("ipprotocol!=17", True, False),  # a missing key fails every comparison, != included
    ("ipsource=10.1.2.3", True, False),
    ("stack~.*\\.tcp", True, False),
    ("stack~tcp", False, False),  # regex matches the whole value
    ("stack~.*tcp,.*udp", True, True),
    ("stack!~.*tcp", False, True),
    ("ipprotocol=17|stack~eth.ip6.*", False, True),
    ("ipprotocol=1|ipprotocol=17|ipprotocol=6", True, False),
    ("ipprotocol=6&tcpsourceport=443&stack~.*tcp", True, False),
    ("ipprotocol=6&tcpsourceport=443&stack~.*udp", False, False),
    # & binds tighter than |
    ("ipprotocol=17|tcpsourceport=443&ipprotocol=6", True, False),
    ("ipprotocol=6|tcpsourceport=443&ipprotocol=17", True, False),
    ("(ipprotocol=6|tcpsourceport=443)&ipprotocol=17", False, False),
    ("( ipprotocol = 6 ) & ( stack ~ eth\\.ip\\..* )", True, False),
    ("group:ipdestination:emerging=emerging&ipprotocol=6", True, False),
    ("group:ipsource=lab", True, False),
    ("range:tcpsourceport:0:1023=true", True, False),
    ("null:vlan:none=none", True, False),
    ("null:vlan:none=20", False, True),
    ("mask:ip6source:32=2001:db8::", False, True),
    ("or:tcpsourceport:udpsourceport=53,443", True, True),
    ("stack~eth\\.ip6\\.(udp|tcp)", False, True),  # parentheses inside a value
    ("", True, True),
    ("   ", True, True),
])
def test_filter_grammar(groups: GroupSet, expr: str, tcp: bool, udp6: bool) -> None:
    compiled = compile_filter(expr, groups)
    assert compiled(TCP_KEYS) is tcp
    assert compiled(UDP6_KEYS) is udp6


@pytest.mark.parametrize(("expr", "message"), [
    ("ipprotocol", "expected an operator"),
    ("ipprotocol=", "missing value"),
    ("=6", "empty key"),
    ("(ipprotocol=6", "missing ')'"),
    ("ipprotocol=6)", "unexpected ')'"),
    ("ipprotocol=6&", "expected a comparison"),
    ("|ipprotocol=6", "expected a comparison"),
    ("ipprotocol=6&&stack=x", "expected a comparison"),
    ("ipprotocol!6", "bad operator"),
    ("stack~(", "bad regular expression"),
    ("bogus:ipsource=1", "unknown key function 'bogus'"),
    ("bgp:ipsource=1", "not supported"),
    ("mask:ipsource=1", "needs 2 arguments"),
    ("mask:ipsource:x=1", "must be an integer"),
    ("range:ipttl:1=true", "needs 3 arguments"),
    ("ip source=1", "bad key name"),
    ("prefix:stack:.:0=eth", "token count must be at least 1"),
    ("suffix:stack::1=tcp", "empty delimiter"),
])
def test_filter_errors_say_what_and_where(groups: GroupSet, expr: str, message: str) -> None:
    with pytest.raises(FilterError, match="filter") as info:
        compile_filter(expr, groups)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_filter_must_be_a_string(groups: GroupSet) -> None:
    with pytest.raises(FilterError, match="must be a string"):
        compile_filter(["ipprotocol=6"], groups)  # type: ignore[arg-type]
