"""The mirror agent's parts on fixed input: the BPF program, interface records, /proc parsing,
the Docker stats mapping and the TOML configuration."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sflowlab.agent_sim.mirror.config import load_config, parse_config
from sflowlab.agent_sim.mirror.containers import (
    ContainerInfo,
    ContainerStats,
    container_records,
    stats_from_api,
)
from sflowlab.agent_sim.mirror.hostinfo import (
    adapters_record,
    cpu_record,
    cpu_times,
    disk_counters,
    key_values,
    memory_record,
    mib2_records,
    net_io_record,
    snmp_table,
)
from sflowlab.agent_sim.mirror.links import Link, interface_records
from sflowlab.agent_sim.mirror.tap import random_filter
from sflowlab.codec import (
    CountersSampleExpanded,
    Datagram,
    EthernetCounters,
    HostDescr,
    IfCounters,
    PortName,
    VirtCpu,
    VirtMemory,
    VirtNetIo,
    decode_datagram,
    encode_datagram,
    encode_sample,
)

CID = "3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab"


def test_the_random_filter_is_hsflowds_five_instructions() -> None:
    insns = [struct.unpack("HBBI", random_filter(400)[i:i + 8]) for i in range(0, 40, 8)]
    assert insns == [(0x20, 0, 0, 0xFFFFF038), (0x94, 0, 0, 400), (0x15, 0, 1, 1),
                     (0x06, 0, 0, 0xFFFFFFFF), (0x06, 0, 0, 0)]
    with pytest.raises(ValueError, match="at least 2"):
        random_filter(1)


def test_interface_records_carry_the_kernels_counters_with_u32_wrap() -> None:
    stats = {"rx_bytes": 5 << 32, "rx_packets": (1 << 32) + 7, "tx_bytes": 9, "tx_packets": 3,
             "multicast": 2, "rx_dropped": 4, "tx_dropped": 5, "rx_errors": 6, "tx_errors": 8,
             "rx_crc_errors": 1}
    link = Link(12, "veth1", "veth", "02:42:ac:11:00:02", 0x1, True, promiscuity=1, stats=stats)
    counters, ethernet, name = interface_records(link, 10_000_000_000, 1)
    assert counters == IfCounters(12, 6, 10_000_000_000, 1, 3, 5 << 32, 7, 2, 0, 4, 6, 0, 9,
                                  3, 0, 0, 5, 8, 1)
    assert ethernet == EthernetCounters(dot3_stats_fcs_errors=1)
    assert name == PortName("veth1")
    assert encode_sample(CountersSampleExpanded(1, 0, 12, (counters, ethernet, name)))


SNMP = """Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits
Ip: 1 64 100 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17
Icmp: InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs InSrcQuenchs InRedirects InEchos InEchoReps InTimestamps InTimestampReps InAddrMasks InAddrMaskReps OutMsgs OutErrors OutRateLimitGlobal OutRateLimitHost OutDestUnreachs OutTimeExcds OutParmProbs OutSrcQuenchs OutRedirects OutEchos OutEchoReps OutTimestamps OutTimestampReps OutAddrMasks OutAddrMaskReps
Icmp: 20 1 0 2 0 3 0 0 4 0 0 0 0 0 21 0 0 0 5 0 6 0 0 0 7 0 8 0 0
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 30 20 3 1 4 5000 6000 7 0 8 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 40 2 1 50 1 0 0 0 0
"""


def test_mib2_groups_map_proc_net_snmp_by_name() -> None:
    udp, tcp, icmp, ip = mib2_records(snmp_table(SNMP))
    assert (udp.udp_in_datagrams, udp.udp_no_ports, udp.udp_out_datagrams,
            udp.udp_rcvbuf_errors) == (40, 2, 50, 1)
    assert (tcp.tcp_max_conn, tcp.tcp_active_opens, tcp.tcp_curr_estab, tcp.tcp_out_segs,
            tcp.tcp_out_rsts) == (-1, 30, 4, 6000, 8)
    assert (icmp.icmp_in_msgs, icmp.icmp_in_param_probs, icmp.icmp_in_echos,
            icmp.icmp_out_param_probs, icmp.icmp_out_echo_reps,
            icmp.icmp_out_timestamp_reps) == (20, 3, 4, 6, 7, 8)
    assert (ip.ip_forwarding, ip.ip_default_ttl, ip.ip_in_receives, ip.ip_frag_creates) == (
        1, 64, 100, 16)


def test_memory_cpu_and_disk_from_proc_text() -> None:
    meminfo = key_values("MemTotal: 1000 kB\nMemFree: 400 kB\nBuffers: 10 kB\nCached: 200 kB\n"
                         "Shmem: 5 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n", 1024)
    vmstat = key_values("pgpgin 11\npgpgout 12\npswpin 0\npswpout 0\n")
    memory = memory_record(meminfo, vmstat)
    assert (memory.mem_total, memory.mem_free, memory.mem_shared, memory.mem_buffers,
            memory.mem_cached, memory.page_in, memory.page_out) == (
        1024000, 409600, 5120, 10240, 204800, 11, 12)
    times = cpu_times("cpu  100 1 50 1000 5 0 2 3 0 0\ncpu0 1 2 3 4\nintr 777 1 2\nctxt 888\n")
    cpu = cpu_record("0.50 0.25 0.10 3/141 999\n", times, 2, 2600, 3600)
    assert (cpu.load_one, cpu.proc_run, cpu.proc_total, cpu.cpu_num, cpu.cpu_speed,
            cpu.uptime) == (0.5, 3, 141, 2, 2600, 3600)
    assert (cpu.cpu_user, cpu.cpu_nice, cpu.cpu_system, cpu.cpu_idle, cpu.cpu_wio,
            cpu.cpu_sintr, cpu.cpu_steal, cpu.interrupts, cpu.contexts) == (
        1000, 10, 500, 10000, 50, 20, 30, 777, 888)
    diskstats = ("   8       0 sda 10 0 200 30 20 0 400 50 0 0 0 0 0 0 0\n"
                 "   8       1 sda1 9 0 100 30 19 0 300 50 0 0 0 0 0 0 0\n"
                 "   7       0 loop0 5 0 10 1 0 0 0 0 0 0 0 0 0 0 0\n")
    assert disk_counters(diskstats, {"sda", "loop0"}) == (10, 200 * 512, 30, 20, 400 * 512, 50)


def test_host_adapters_and_net_io_count_physical_interfaces_only() -> None:
    stats = {"rx_bytes": 100, "rx_packets": 2, "tx_bytes": 50, "tx_packets": 1}
    links = [Link(1, "lo", "", "00:00:00:00:00:00", 0x9, True, stats=stats),
             Link(2, "eth0", "", "52:54:00:00:00:01", 0x1, True, stats=stats),
             Link(3, "docker0", "bridge", "02:42:00:00:00:01", 0x1, True, stats=stats),
             Link(4, "vethab", "veth", "0a:00:00:00:00:01", 0x1, True, stats=stats)]
    assert [a.if_index for a in adapters_record(links).adapters] == [2, 3]
    net = net_io_record(links)
    assert (net.bytes_in, net.pkts_in, net.bytes_out, net.pkts_out) == (100, 2, 50, 1)


STATS = {
    "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000, "percpu_usage": [1, 2]},
                  "online_cpus": 2},
    "memory_stats": {"usage": 30 << 20, "limit": 1 << 30,
                     "stats": {"total_inactive_file": 4 << 20, "cache": 6 << 20}},
    "blkio_stats": {
        "io_service_bytes_recursive": [{"major": 8, "op": "Read", "value": 4096},
                                       {"major": 8, "op": "Write", "value": 8192},
                                       {"major": 8, "op": "Total", "value": 12288}],
        "io_serviced_recursive": [{"op": "Read", "value": 1}, {"op": "Write", "value": 2}]},
    "networks": {"eth0": {"rx_bytes": 1000, "rx_packets": 10, "rx_errors": 0, "rx_dropped": 1,
                          "tx_bytes": 2000, "tx_packets": 20, "tx_errors": 0, "tx_dropped": 0},
                 "eth1": {"rx_bytes": 1, "rx_packets": 1, "tx_bytes": 1, "tx_packets": 1}},
}


def test_docker_stats_become_hsflowd_container_records() -> None:
    stats = stats_from_api(STATS)
    assert stats == ContainerStats(2_500_000_000, 2, 26 << 20, 1 << 30, 1, 4096, 2, 8192,
                                   (1001, 11, 0, 1, 2001, 21, 0, 0))
    info = ContainerInfo(CID, "apache.1.x7yt1u0yxb6q0w9n2v3k4l5m6", 4242, ("02:42:ac:11:00:02",))
    records = container_records(info, stats, 1, bytes.fromhex(CID[:32]), 17, "6.1.0", 3, 2)
    sample = CountersSampleExpanded(1, 3, 123456, records)
    (decoded,) = decode_datagram(encode_datagram(Datagram(samples=(sample,)))).samples
    by = {type(r): r for r in decoded.records}
    assert by[HostDescr].hostname == "apache.1.x7yt1u0yxb6q0w9n2v3k4l5m6"
    assert by[HostDescr].uuid == "3f4e8a1b-2c3d-4e5f-6071-8293a4b5c6d7"
    assert by[VirtCpu] == VirtCpu(1, 2500, 2)
    assert by[VirtMemory] == VirtMemory(26 << 20, 1 << 30)
    assert by[VirtNetIo] == VirtNetIo(1001, 11, 0, 1, 2001, 21, 0, 0)
    assert stats_from_api({}) == ContainerStats(memory=0)


def test_config_reads_hsflowd_essentials(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('sampling = 200\npolling = 10\nheaderBytes = 64\nagentIP = "10.0.0.5"\n'
                    '[[collector]]\nip = "10.0.0.1"\n[[collector]]\nip = "::1"\nudpport = 6400\n'
                    '[[pcap]]\ndev = "docker0"\n[[pcap]]\ndev = "docker_gwbridge"\n'
                    '[docker]\nurl = "tcp://127.0.0.1:2375"\n')
    config = load_config(path)
    assert (config.sampling, config.polling_s, config.header_bytes, config.agent_ip) == (
        200, 10, 64, "10.0.0.5")
    assert config.collectors == [("10.0.0.1", 6343), ("::1", 6400)]
    assert config.interfaces == ["docker0", "docker_gwbridge"]
    assert config.docker_url == "tcp://127.0.0.1:2375"
    assert parse_config({"docker": False}).docker_disabled


@pytest.mark.parametrize(("doc", "message"), [
    ({"sampleing": 400}, "unknown settings"),
    ({"polling": -1}, "polling must be a whole number"),
    ({"collector": [{"udpport": 6343}]}, "needs ip"),
    ({"docker": "yes"}, "docker must be a table"),
])
def test_config_errors_say_what_is_wrong(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_config(doc)


def test_a_bad_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("sampling = \n")
    with pytest.raises(ValueError, match=r"bad\.toml"):
        load_config(path)
