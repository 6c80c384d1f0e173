"""The host's interfaces through rtnetlink (pyroute2): links, counters, events, veth peers, FDBs.

hsflowd reads interfaces at start and on changes, polls each one's counters as data source
0.<ifIndex> (if_counters + ethernet_counters) and finds a container's host-side veth from its
peer. Here: ``Link`` is one RTM_NEWLINK message made plain (``IFLA_STATS64``, ``IFLA_MASTER``,
``IFLA_LINK`` / ``IFLA_LINK_NETNSID`` of a veth); ``LinkTable`` lists links, bridge FDBs and
namespace ids; ``LinkMonitor`` delivers link add/remove events (RTNLGRP_LINK).
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.rtnl import RTMGRP_LINK
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from sflowlab.codec import EthernetCounters, IfCounters, PortName

from ..agent import U32_MASK

IFF_UP, IFF_LOOPBACK, IFF_PROMISC = 0x1, 0x8, 0x100
NUD_PERMANENT = 0x80
_DUPLEX = {"full": 1, "half": 2}
"""sysfs duplex -> ifDirection (0: unknown)."""


@dataclass(frozen=True)
class Link:
    """One interface as the kernel reports it (counters are IFLA_STATS64, 64-bit)."""

    index: int
    name: str
    kind: str
    """IFLA_INFO_KIND: "veth", "bridge", "" for a plain device."""
    mac: str
    flags: int
    oper_up: bool
    master: int | None = None
    peer_index: int | None = None
    """IFLA_LINK of a veth: its peer's ifIndex (in the peer's namespace)."""
    peer_netnsid: int | None = None
    """IFLA_LINK_NETNSID: the peer's namespace id, when the peer is in another namespace."""
    promiscuity: int = 0
    """IFLA_PROMISCUITY: how many hold it promiscuous (a packet socket's membership too; the
    IFF_PROMISC flag only shows a user's ``ip link set promisc on``)."""
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def loopback(self) -> bool:
        return bool(self.flags & IFF_LOOPBACK)

    @property
    def admin_up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def promiscuous(self) -> bool:
        return self.promiscuity > 0 or bool(self.flags & IFF_PROMISC)

    @property
    def packets(self) -> int:
        """Frames through the link both ways (a sampled bridge's sample pool)."""
        return self.stats.get("rx_packets", 0) + self.stats.get("tx_packets", 0)


def link_from_message(msg: Any) -> Link:
    """A ``Link`` from a pyroute2 ifinfmsg."""
    kind = msg.get(("IFLA_LINKINFO", "IFLA_INFO_KIND")) or ""
    peer = msg.get("IFLA_LINK")
    return Link(
        index=msg["index"], name=msg.get("IFLA_IFNAME") or f"if{msg['index']}", kind=kind,
        mac=msg.get("IFLA_ADDRESS") or "00:00:00:00:00:00", flags=msg["flags"],
        oper_up=msg.get("IFLA_OPERSTATE") in ("UP", "UNKNOWN"), master=msg.get("IFLA_MASTER"),
        peer_index=peer if peer and peer != msg["index"] else None,
        peer_netnsid=msg.get("IFLA_LINK_NETNSID"), promiscuity=msg.get("IFLA_PROMISCUITY") or 0,
        stats=dict(msg.get("IFLA_STATS64") or {}))


def _sysfs(name: str, attribute: str) -> str | None:
    try:
        return Path("/sys/class/net", name, attribute).read_text().strip()
    except OSError:  # no such attribute, or the device refuses (a down veth's speed)
        return None


def speed_and_direction(name: str) -> tuple[int, int]:
    """(ifSpeed in bit/s, ifDirection) from sysfs; (0, 0) when the driver does not say."""
    speed = _sysfs(name, "speed")
    mbps = int(speed) if speed and speed.lstrip("-").isdigit() else 0
    return max(mbps, 0) * 1_000_000, _DUPLEX.get(_sysfs(name, "duplex") or "", 0)


def interface_records(link: Link, speed: int = 0, direction: int = 0) -> tuple[Any, ...]:
    """if_counters, ethernet_counters and port_name of one link, as hsflowd polls them.

    ``if_in_ucast_pkts`` is every received packet (hsflowd's ``pkts_in``, not less the
    multicast ones), so the counters equal the kernel's ``rx_packets`` exactly.
    """
    s, m = link.stats, U32_MASK
    status = (1 if link.admin_up else 0) | (2 if link.oper_up else 0)
    return (
        IfCounters(link.index, 6, speed, direction, status, s.get("rx_bytes", 0),
                   s.get("rx_packets", 0) & m, s.get("multicast", 0) & m, 0,
                   s.get("rx_dropped", 0) & m, s.get("rx_errors", 0) & m, 0,
                   s.get("tx_bytes", 0), s.get("tx_packets", 0) & m, 0, 0,
                   s.get("tx_dropped", 0) & m, s.get("tx_errors", 0) & m,
                   int(link.promiscuous)),
        EthernetCounters(
            dot3_stats_alignment_errors=s.get("rx_frame_errors", 0) & m,
            dot3_stats_fcs_errors=s.get("rx_crc_errors", 0) & m,
            dot3_stats_carrier_sense_errors=s.get("tx_carrier_errors", 0) & m,
            dot3_stats_frame_too_longs=s.get("rx_length_errors", 0) & m,
            dot3_stats_internal_mac_receive_errors=s.get("rx_fifo_errors", 0) & m,
            dot3_stats_internal_mac_transmit_errors=s.get("tx_fifo_errors", 0) & m),
        PortName(link.name[:255]),  # last: tshark 4.0 does not skip it
    )


class LinkTable:
    """Reads links, one link, a bridge's FDB and namespace ids of this process's network
    namespace over one rtnetlink socket (run the agent inside a namespace to mirror that)."""

    def __init__(self) -> None:
        self._ipr = IPRoute()

    def links(self) -> dict[int, Link]:
        return {m["index"]: link_from_message(m) for m in self._ipr.get_links()}

    def link(self, index: int) -> Link | None:
        try:
            (msg,) = self._ipr.get_links(index)
        except Exception:  # pyroute2 raises NetlinkError (ENODEV) once it is gone
            return None
        return link_from_message(msg)

    def ports_by_mac(self, bridge_index: int) -> dict[bytes, int]:
        """The bridge's forwarding table: learned MAC -> port ifIndex (local entries left out:
        the ports' own addresses are not where frames come from)."""
        out: dict[bytes, int] = {}
        for msg in self._ipr.fdb("dump", master=bridge_index):
            mac = msg.get("NDA_LLADDR")
            if mac and not msg["state"] & NUD_PERMANENT and msg.get("NDA_MASTER") == bridge_index:
                out[bytes.fromhex(mac.replace(":", ""))] = msg["ifindex"]
        return out

    def netnsid_of(self, pid: int) -> int | None:
        """This namespace's id for process ``pid``'s network namespace (None: none assigned or
        the process is gone)."""
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        except OSError:
            return None
        try:
            answer = self._ipr.get_netnsid(fd=fd)
        except Exception:  # pyroute2's NetlinkError: the namespace has no id here
            return None
        finally:
            os.close(fd)
        nsid = answer.get("nsid") if isinstance(answer, dict) else None
        return nsid if isinstance(nsid, int) and nsid >= 0 else None

    def close(self) -> None:
        self._ipr.close()


@dataclass(frozen=True)
class LinkAdded:
    link: Link


@dataclass(frozen=True)
class LinkRemoved:
    index: int
    name: str


class LinkMonitor:
    """RTNLGRP_LINK notifications: ``fileno()`` for select, ``read()`` the pending events.

    A plain netlink socket (pyroute2's own socket reads ahead into its event loop, so select
    on it misses messages) whose messages pyroute2 parses. A new-link message for a known link
    (a state or address change) is reported as ``LinkAdded`` too: the caller updates what it
    holds. ``overflowed`` is set when the kernel dropped notifications (ENOBUFS): the caller
    then re-reads every link.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._sock.bind((0, RTMGRP_LINK))
        self._sock.setblocking(False)
        self._marshal = MarshalRtnl()
        self.overflowed = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self) -> list[LinkAdded | LinkRemoved]:
        events: list[LinkAdded | LinkRemoved] = []
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                return events
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                self.overflowed = True
                continue
            for msg in self._marshal.parse(data):
                if msg.get("event") == "RTM_NEWLINK":
                    events.append(LinkAdded(link_from_message(msg)))
                elif msg.get("event") == "RTM_DELLINK":
                    events.append(LinkRemoved(msg["index"], msg.get("IFLA_IFNAME") or ""))

    def close(self) -> None:
        self._sock.close()
