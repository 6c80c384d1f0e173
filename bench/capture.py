"""A deterministic sFlow capture for the decode benchmarks (and the fast-path equivalence test).

``make_capture(n, seed)`` returns ``n`` datagrams: about 70 % from switch agents (compact flow
samples, a 128-byte Ethernet/IPv4/TCP-or-UDP header plus extended_switch, 6 per 1400-byte
datagram) and about 30 % from hsflowd-like hosts (expanded counters samples: the host 2.1 with
2100, 2001, 2007-2010, 2005, 2004, 2003, 2006, 2000 and containers 3.N with 2001 (empty),
2103, 2102, 2101, 2104, 2002, 2000), packed by ``Exporter``.
"""

from __future__ import annotations

import random
from typing import Any

from sflowlab.agent_sim.packets import TCP, UDP, Packet
from sflowlab.codec import (
    CountersSampleExpanded,
    Exporter,
    ExtendedSwitch,
    FlowSample,
    HostAdapter,
    HostAdapters,
    HostCpu,
    HostDescr,
    HostDiskIo,
    HostMemory,
    HostNetIo,
    HostParent,
    Mib2IcmpGroup,
    Mib2IpGroup,
    Mib2TcpGroup,
    Mib2UdpGroup,
    SampledHeader,
    VirtCpu,
    VirtDiskIo,
    VirtMemory,
    VirtNetIo,
    VirtNode,
)

FLOW_SHARE = 0.7
CONTAINERS_PER_HOST = 12


def _filled(cls: Any, rng: random.Random, **given: Any) -> Any:
    """A record with every numeric field random (floats for float fields), others as given."""
    values: dict[str, Any] = {}
    for name, default in cls._field_defaults.items():
        if name in given:
            continue
        if isinstance(default, float):
            values[name] = round(rng.uniform(0.0, 8.0), 2)
        elif default is None or (isinstance(default, int) and not isinstance(default, bool)):
            values[name] = rng.randrange(1 << 31)
    return cls(**values, **given)


def _mac(rng: random.Random) -> str:
    return "02:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5))


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def flow_samples(rng: random.Random, hosts: int = 200) -> Any:
    """Endless compact flow samples of TCP/UDP traffic between ``hosts`` addresses."""
    macs = [_mac(rng) for _ in range(hosts)]
    ips = [f"10.{i // 250}.{i % 250}.{rng.randrange(1, 250)}" for i in range(hosts)]
    seq = 0
    pool = 0
    while True:
        a, b = rng.randrange(hosts), rng.randrange(hosts)
        proto = TCP if rng.random() < 0.8 else UDP
        length = rng.randrange(128, 1515)
        packet = Packet(macs[a], macs[b], ips[a], ips[b], proto, rng.randrange(1024, 65536),
                        rng.choice((80, 443, 53, 8080, 6379)), rng.choice((0x10, 0x18, 0x02)),
                        length=length, tos=rng.choice((0, 0, 0, 0x28)), ttl=rng.randrange(30, 65),
                        seq=rng.getrandbits(32))
        seq += 1
        pool += rng.randrange(300, 500)
        vlan = rng.choice((1, 10, 20))
        yield FlowSample(
            seq, rng.randrange(1, 49), 400, pool & 0xFFFFFFFF, 0, rng.randrange(1, 49),
            rng.randrange(1, 49),
            (SampledHeader(1, length + 4, 4, packet.header(128)), ExtendedSwitch(vlan, 0, vlan, 0)),
        )


def host_samples(rng: random.Random, host: int, seq: int) -> list[Any]:
    """One polling round of an hsflowd-like host: the host sample, then its containers'.

    Descriptions (names, UUIDs, MACs) are the same every round for a given host, as an agent's
    are; the counters are fresh random values.
    """
    ident = random.Random(host)
    adapters = HostAdapters(tuple(HostAdapter(i, (_mac(ident),)) for i in range(1, 4)))
    host_descr = _filled(HostDescr, ident, hostname=f"node{host}", uuid=_uuid(ident),
                         os_release="6.1.0-13-amd64")
    out = [CountersSampleExpanded(seq, 2, 1, (
        _filled(VirtNode, rng, num_domains=CONTAINERS_PER_HOST), adapters,
        _filled(Mib2IpGroup, rng), _filled(Mib2IcmpGroup, rng), _filled(Mib2TcpGroup, rng),
        _filled(Mib2UdpGroup, rng), _filled(HostDiskIo, rng), _filled(HostMemory, rng),
        _filled(HostCpu, rng), _filled(HostNetIo, rng), host_descr,
    ))]
    for c in range(CONTAINERS_PER_HOST):
        descr = _filled(HostDescr, ident, hostname=f"web.{c + 1}.{ident.getrandbits(40):010x}",
                        uuid=_uuid(ident), os_release="6.1.0-13-amd64")
        out.append(CountersSampleExpanded(seq, 3, 100000 + host * 100 + c, (
            HostAdapters(), _filled(VirtDiskIo, rng), _filled(VirtMemory, rng),
            _filled(VirtCpu, rng, state=1), _filled(VirtNetIo, rng), HostParent(2, 1), descr,
        )))
    return out


def make_capture(n: int = 2000, seed: int = 1) -> list[bytes]:
    """``n`` datagrams, flow and counter datagrams interleaved at random, same seed same bytes."""
    rng = random.Random(seed)
    flow_dgs: list[bytes] = []
    counter_dgs: list[bytes] = []
    n_flow = round(n * FLOW_SHARE)
    switch = Exporter("192.168.0.1", flow_dgs.append)
    flows = flow_samples(rng)
    while len(flow_dgs) < n_flow:
        switch.add(next(flows), 1000)
    del flow_dgs[n_flow:]
    host, seq = 0, 0
    while len(counter_dgs) < n - n_flow:
        host += 1
        if host > 20:
            host, seq = 1, seq + 1
        exporter = Exporter(f"192.168.1.{host}", counter_dgs.append, sub_agent_id=100000)
        exporter.add_all(host_samples(rng, host, seq + 1), 1000)
        exporter.flush(1000)
    del counter_dgs[n - n_flow:]
    capture = flow_dgs + counter_dgs
    rng.shuffle(capture)
    return capture
