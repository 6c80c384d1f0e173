"""Key functions that look things up: country and asn (MaxMind-format databases written here
with mmdb-writer, read with maxminddb), dns (the system resolver on loopback addresses), oui
(the IEEE registry of Debian's ieee-data), and uri parts."""

from __future__ import annotations

from pathlib import Path

import pytest
from collector_helpers import Feeder, datagram, flow, tcp, wait_for

from sflowlab.collector.engine import Engine
from sflowlab.collector.filters import FilterError, compile_key
from sflowlab.collector.flows import FlowSpec
from sflowlab.collector.groups import GroupSet
from sflowlab.collector.lookups import DEFAULT_OUI, LookupConfig, Lookups, ReverseDns

A = "10.0.0.1"


def write_mmdb(path: Path, kind: str, networks: dict[str, dict[str, object]]) -> Path:
    netaddr = pytest.importorskip("netaddr")
    mmdb_writer = pytest.importorskip("mmdb_writer")
    writer = mmdb_writer.MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=kind)
    for cidr, record in networks.items():
        writer.insert_network(netaddr.IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def geo(tmp_path: Path) -> LookupConfig:
    pytest.importorskip("maxminddb")
    country = write_mmdb(tmp_path / "country.mmdb", "GeoLite2-Country", {
        "192.0.2.0/24": {"country": {"iso_code": "FR"}},
        "198.51.100.0/24": {"registered_country": {"iso_code": "JP"}},
        "2001:db8::/32": {"country": {"iso_code": "DE"}}})
    asn = write_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", {
        "192.0.2.0/24": {"autonomous_system_number": 64500,
                         "autonomous_system_organization": "Example"}})
    return LookupConfig(country=country, asn=asn)


def test_country_and_asn_from_maxmind_databases(geo: LookupConfig) -> None:
    lookups = Lookups(geo)
    country = compile_key("country:ipsource", GroupSet(), lookups)
    assert [country({"ipsource": a}) for a in ("192.0.2.9", "198.51.100.1", "203.0.113.1",
                                                "not-an-ip")] == ["FR", "JP", None, None]
    assert country({"ipdestination": "192.0.2.9"}) is None  # the key is missing
    assert compile_key("country:ip6source", GroupSet(), lookups)({"ip6source": "2001:db8::1"}) \
        == "DE"
    asn = compile_key("asn:ipsource", GroupSet(), lookups)
    assert (asn({"ipsource": "192.0.2.200"}), asn({"ipsource": "198.51.100.1"})) == ("64500", None)


def test_country_flows_count_by_country(geo: LookupConfig, feed: Feeder) -> None:
    engine = Engine(feed.clock, lookups=geo)
    feed.engine = engine
    engine.set_flow("countries", FlowSpec.from_json({"keys": "country:ipsource,asn:ipsource",
                                                     "value": "frames"}))
    for s, src in enumerate(("192.0.2.1", "192.0.2.2", "198.51.100.1", "203.0.113.1"), 1):
        feed.at(1000 + s * 0.1, datagram(A, s, s * 100, [flow(s, 3, tcp(src, "10.2.0.1"))]))
    assert [f["key"] for f in engine.active_flows("ALL", "countries")] == ["FR,64500"]


def test_missing_database_is_a_clear_error_when_the_flow_is_defined(engine: Engine) -> None:
    for func in ("country", "asn"):
        with pytest.raises(ValueError, match=f"needs a MaxMind {func} database"):
            engine.set_flow("f", FlowSpec.from_json({"keys": f"{func}:ipsource"}))
    with pytest.raises(FilterError, match="cannot open the country database"):
        compile_key("country:ipsource", GroupSet(),
                    Lookups(LookupConfig(country=Path("/nonexistent.mmdb"))))


def test_dns_names_addresses_without_waiting_on_ingest(engine: Engine, feed: Feeder) -> None:
    """The first sample is keyed by the address while the name is looked up; later ones by
    the name (127.0.0.1 is localhost in /etc/hosts)."""
    engine.set_flow("names", FlowSpec.from_json({"keys": "dns:ipsource", "value": "frames"}))
    feed.at(1000.1, datagram(A, 1, 100, [flow(1, 3, tcp("127.0.0.1", "10.2.0.1"))]))
    assert [f["key"] for f in engine.active_flows("ALL", "names")] == ["127.0.0.1"]
    dns = engine.flows.lookups.dns()
    wait_for(lambda: dns.resolved >= 1, 10, "the reverse lookup")
    feed.at(1000.2, datagram(A, 2, 200, [flow(2, 3, tcp("127.0.0.1", "10.2.0.1"))]))
    assert "localhost" in {f["key"] for f in engine.active_flows("ALL", "names")}


def test_dns_lookups_are_bounded() -> None:
    dns = ReverseDns(ttl_s=60, cache=2, pending=1, threads=0)  # nothing drains the queue
    assert dns.name("127.0.0.1") == "127.0.0.1"
    assert dns.name("127.0.0.1") == "127.0.0.1" and dns.dropped == 0  # already queued
    assert dns.name("127.0.0.2") == "127.0.0.2" and dns.dropped == 1  # queue full


def test_oui_gives_the_vendor_from_the_ieee_registry(tmp_path: Path) -> None:
    if not DEFAULT_OUI.exists():
        pytest.skip("Debian package ieee-data is not installed (ci/setup.sh installs it)")
    vendor = compile_key("oui:macsource", GroupSet(), Lookups())
    assert vendor({"macsource": "F4BD9E0A0B0C"}) == "Cisco Systems, Inc"
    assert vendor({"macsource": "00:d0:ef:01:02:03"}) == "IGT"
    assert vendor({"macsource": "020000000001"}) is None  # locally administered: unregistered
    with pytest.raises(FilterError, match="ieee-data"):
        compile_key("oui:macsource", GroupSet(), Lookups(LookupConfig(oui=tmp_path / "none")))


def test_uri_parts() -> None:
    keys = {"httpurl": "https://user@www.example.com:8443/a/b/page.html?x=1#top"}
    parts = {p: compile_key(f"uri:httpurl:{p}", GroupSet())(keys) for p in (
        "scheme", "host", "port", "authority", "user", "path", "file", "extension", "query",
        "fragment")}
    assert parts == {"scheme": "https", "host": "www.example.com", "port": "8443",
                     "authority": "user@www.example.com:8443", "user": "user",
                     "path": "/a/b/page.html", "file": "page.html", "extension": "html",
                     "query": "x=1", "fragment": "top"}
    assert compile_key("uri:httpurl:port", GroupSet())({"httpurl": "/relative"}) is None


@pytest.mark.parametrize(("url", "normalized", "absolute", "opaque"), [
    ("http://h/a/./b/../c/page.php?q#f", "http://h/a/c/page.php?q#f", "true", "false"),
    ("/a/b/..", "/a/", "false", "false"),
    ("/../x", "/x", "false", "false"),
    ("mailto:ops@example.com", "mailto:ops@example.com", "true", "true"),
])
def test_uri_normalized_isabsolute_isopaque(url: str, normalized: str, absolute: str,
                                            opaque: str) -> None:
    """sFlow-RT's further uri parts: the URI with dot segments resolved (RFC 3986 5.2.4) and
    whether it is absolute (has a scheme) or opaque (absolute, no ``/`` after the scheme)."""
    parts = [compile_key(f"uri:httpurl:{p}", GroupSet())({"httpurl": url})
             for p in ("normalized", "isabsolute", "isopaque")]
    assert parts == [normalized, absolute, opaque]


def test_uri_part_names() -> None:
    with pytest.raises(FilterError, match="uri part must be one of"):
        compile_key("uri:httpurl:colour", GroupSet())
