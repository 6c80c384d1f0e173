"""Flow record declarations (sFlow v5 section 5 flow data, Host sFlow and HTTP extensions).

Each class is the one declaration of its structure: the decoder, the encoder and the
registry entry are compiled from it. Names follow the spec (``extended_switch`` ->
``ExtendedSwitch``); field names are snake_case of the spec's.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

from ._compile import flow_record, structure
from ._fields import I32, IPV4, IPV6, MAC, U32, U64, Address, Array, Opaque, String

HEADER_PROTOCOLS = {
    1: "ethernet", 2: "token_bus", 3: "token_ring", 4: "fddi", 5: "frame_relay", 6: "x25",
    7: "ppp", 8: "smds", 9: "aal5", 10: "aal5_ip", 11: "ipv4", 12: "ipv6", 13: "mpls",
    14: "pos", 15: "ieee80211", 16: "ieee80211_ampdu", 17: "ieee80211_amsdu", 18: "infiniband",
}
HTTP_METHODS = ("OTHER", "OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "CONNECT")


@flow_record(0, 1, "sampled_header")
class SampledHeader(NamedTuple):
    header_protocol: Annotated[int, U32] = 1
    frame_length: Annotated[int, U32] = 0
    stripped: Annotated[int, U32] = 4
    header: Annotated[bytes, Opaque()] = b""


@flow_record(0, 2, "sampled_ethernet")
class SampledEthernet(NamedTuple):
    length: Annotated[int, U32] = 0
    src_mac: Annotated[str, MAC] = "00:00:00:00:00:00"
    dst_mac: Annotated[str, MAC] = "00:00:00:00:00:00"
    eth_type: Annotated[int, U32] = 0


@flow_record(0, 3, "sampled_ipv4")
class SampledIpv4(NamedTuple):
    length: Annotated[int, U32] = 0
    protocol: Annotated[int, U32] = 0
    src_ip: Annotated[str, IPV4] = "0.0.0.0"
    dst_ip: Annotated[str, IPV4] = "0.0.0.0"
    src_port: Annotated[int, U32] = 0
    dst_port: Annotated[int, U32] = 0
    tcp_flags: Annotated[int, U32] = 0
    tos: Annotated[int, U32] = 0


@flow_record(0, 4, "sampled_ipv6")
class SampledIpv6(NamedTuple):
    length: Annotated[int, U32] = 0
    protocol: Annotated[int, U32] = 0
    src_ip: Annotated[str, IPV6] = "::"
    dst_ip: Annotated[str, IPV6] = "::"
    src_port: Annotated[int, U32] = 0
    dst_port: Annotated[int, U32] = 0
    tcp_flags: Annotated[int, U32] = 0
    priority: Annotated[int, U32] = 0


@flow_record(0, 1001, "extended_switch")
class ExtendedSwitch(NamedTuple):
    src_vlan: Annotated[int, U32] = 0
    src_priority: Annotated[int, U32] = 0
    dst_vlan: Annotated[int, U32] = 0
    dst_priority: Annotated[int, U32] = 0


@flow_record(0, 1002, "extended_router")
class ExtendedRouter(NamedTuple):
    nexthop: Annotated[str, Address()] = "0.0.0.0"
    src_mask_len: Annotated[int, U32] = 0
    dst_mask_len: Annotated[int, U32] = 0


@structure
class AsPathSegment(NamedTuple):
    """One AS-path segment: type 1 AS_SET, 2 AS_SEQUENCE."""

    type: Annotated[int, U32] = 2
    asns: Annotated[tuple[int, ...], Array(U32)] = ()


@flow_record(0, 1003, "extended_gateway")
class ExtendedGateway(NamedTuple):
    nexthop: Annotated[str, Address()] = "0.0.0.0"
    as_number: Annotated[int, U32] = 0
    src_as: Annotated[int, U32] = 0
    src_peer_as: Annotated[int, U32] = 0
    as_path: Annotated[tuple[AsPathSegment, ...], Array(AsPathSegment)] = ()
    communities: Annotated[tuple[int, ...], Array(U32)] = ()
    localpref: Annotated[int, U32] = 0


@flow_record(0, 1004, "extended_user")
class ExtendedUser(NamedTuple):
    src_charset: Annotated[int, U32] = 106
    src_user: Annotated[bytes, Opaque()] = b""
    dst_charset: Annotated[int, U32] = 106
    dst_user: Annotated[bytes, Opaque()] = b""


@flow_record(0, 1005, "extended_url")
class ExtendedUrl(NamedTuple):
    direction: Annotated[int, U32] = 1
    url: Annotated[str, String()] = ""
    host: Annotated[str, String()] = ""


@flow_record(0, 2100, "extended_socket_ipv4")
class ExtendedSocketIpv4(NamedTuple):
    protocol: Annotated[int, U32] = 0
    local_ip: Annotated[str, IPV4] = "0.0.0.0"
    remote_ip: Annotated[str, IPV4] = "0.0.0.0"
    local_port: Annotated[int, U32] = 0
    remote_port: Annotated[int, U32] = 0


@flow_record(0, 2101, "extended_socket_ipv6")
class ExtendedSocketIpv6(NamedTuple):
    protocol: Annotated[int, U32] = 0
    local_ip: Annotated[str, IPV6] = "::"
    remote_ip: Annotated[str, IPV6] = "::"
    local_port: Annotated[int, U32] = 0
    remote_port: Annotated[int, U32] = 0


@flow_record(0, 2102, "extended_proxy_socket_ipv4")
class ExtendedProxySocketIpv4(NamedTuple):
    protocol: Annotated[int, U32] = 0
    local_ip: Annotated[str, IPV4] = "0.0.0.0"
    remote_ip: Annotated[str, IPV4] = "0.0.0.0"
    local_port: Annotated[int, U32] = 0
    remote_port: Annotated[int, U32] = 0


@flow_record(0, 2103, "extended_proxy_socket_ipv6")
class ExtendedProxySocketIpv6(NamedTuple):
    protocol: Annotated[int, U32] = 0
    local_ip: Annotated[str, IPV6] = "::"
    remote_ip: Annotated[str, IPV6] = "::"
    local_port: Annotated[int, U32] = 0
    remote_port: Annotated[int, U32] = 0


@flow_record(0, 2206, "http_request")
class HttpRequest(NamedTuple):
    method: Annotated[int, U32] = 2
    protocol: Annotated[int, U32] = 1001
    uri: Annotated[str, String(255)] = ""
    host: Annotated[str, String(64)] = ""
    referer: Annotated[str, String(255)] = ""
    useragent: Annotated[str, String(128)] = ""
    xff: Annotated[str, String(64)] = ""
    authuser: Annotated[str, String(32)] = ""
    mime_type: Annotated[str, String(64)] = ""
    req_bytes: Annotated[int, U64] = 0
    resp_bytes: Annotated[int, U64] = 0
    duration_us: Annotated[int, U32] = 0
    status: Annotated[int, I32] = 0


@flow_record(0, 2209, "extended_tcp_info")
class ExtendedTcpInfo(NamedTuple):
    dirn: Annotated[int, U32] = 0
    snd_mss: Annotated[int, U32] = 0
    rcv_mss: Annotated[int, U32] = 0
    unacked: Annotated[int, U32] = 0
    lost: Annotated[int, U32] = 0
    retrans: Annotated[int, U32] = 0
    pmtu: Annotated[int, U32] = 0
    rtt_us: Annotated[int, U32] = 0
    rttvar_us: Annotated[int, U32] = 0
    snd_cwnd: Annotated[int, U32] = 0
    reordering: Annotated[int, U32] = 0
    min_rtt_us: Annotated[int, U32] = 0


@flow_record(0, 2210, "extended_entities")
class ExtendedEntities(NamedTuple):
    src_ds_class: Annotated[int, U32] = 0
    src_ds_index: Annotated[int, U32] = 0
    dst_ds_class: Annotated[int, U32] = 0
    dst_ds_index: Annotated[int, U32] = 0

