"""Counter record declarations: interfaces, processors, Host sFlow, virtualisation, applications.

One declaration per structure; see ``_compile`` for how it becomes decoder and encoder.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

from ._compile import counter_record, structure
from ._fields import F32, I32, MAC, TAIL, U32, U64, UUID, Array, String

MACHINE_TYPES = (
    "unknown", "other", "x86", "x86_64", "ia64", "sparc", "alpha", "powerpc", "m68k", "mips",
    "arm", "hppa", "s390",
)
OS_NAMES = (
    "unknown", "other", "linux", "windows", "darwin", "hpux", "aix", "dragonfly", "freebsd",
    "netbsd", "openbsd", "osf", "solaris",
)
VIR_DOMAIN_STATES = ("nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed")


@counter_record(0, 1, "if_counters")
class IfCounters(NamedTuple):
    if_index: Annotated[int, U32] = 0
    if_type: Annotated[int, U32] = 6
    if_speed: Annotated[int, U64] = 0
    if_direction: Annotated[int, U32] = 1
    if_status: Annotated[int, U32] = 3
    if_in_octets: Annotated[int, U64] = 0
    if_in_ucast_pkts: Annotated[int, U32] = 0
    if_in_multicast_pkts: Annotated[int, U32] = 0
    if_in_broadcast_pkts: Annotated[int, U32] = 0
    if_in_discards: Annotated[int, U32] = 0
    if_in_errors: Annotated[int, U32] = 0
    if_in_unknown_protos: Annotated[int, U32] = 0
    if_out_octets: Annotated[int, U64] = 0
    if_out_ucast_pkts: Annotated[int, U32] = 0
    if_out_multicast_pkts: Annotated[int, U32] = 0
    if_out_broadcast_pkts: Annotated[int, U32] = 0
    if_out_discards: Annotated[int, U32] = 0
    if_out_errors: Annotated[int, U32] = 0
    if_promiscuous_mode: Annotated[int, U32] = 0


@counter_record(0, 2, "ethernet_counters")
class EthernetCounters(NamedTuple):
    dot3_stats_alignment_errors: Annotated[int, U32] = 0
    dot3_stats_fcs_errors: Annotated[int, U32] = 0
    dot3_stats_single_collision_frames: Annotated[int, U32] = 0
    dot3_stats_multiple_collision_frames: Annotated[int, U32] = 0
    dot3_stats_sqe_test_errors: Annotated[int, U32] = 0
    dot3_stats_deferred_transmissions: Annotated[int, U32] = 0
    dot3_stats_late_collisions: Annotated[int, U32] = 0
    dot3_stats_excessive_collisions: Annotated[int, U32] = 0
    dot3_stats_internal_mac_transmit_errors: Annotated[int, U32] = 0
    dot3_stats_carrier_sense_errors: Annotated[int, U32] = 0
    dot3_stats_frame_too_longs: Annotated[int, U32] = 0
    dot3_stats_internal_mac_receive_errors: Annotated[int, U32] = 0
    dot3_stats_symbol_errors: Annotated[int, U32] = 0


@counter_record(0, 5, "vlan_counters")
class VlanCounters(NamedTuple):
    vlan_id: Annotated[int, U32] = 0
    octets: Annotated[int, U64] = 0
    ucast_pkts: Annotated[int, U32] = 0
    multicast_pkts: Annotated[int, U32] = 0
    broadcast_pkts: Annotated[int, U32] = 0
    discards: Annotated[int, U32] = 0


@counter_record(0, 1001, "processor")
class Processor(NamedTuple):
    """CPU loads are the spec's ``percentage`` (signed hundredths of a percent, -1 unknown)."""

    cpu_5s: Annotated[int, I32] = 0
    cpu_1m: Annotated[int, I32] = 0
    cpu_5m: Annotated[int, I32] = 0
    total_memory: Annotated[int, U64] = 0
    free_memory: Annotated[int, U64] = 0


@counter_record(0, 1004, "of_port")
class OfPort(NamedTuple):
    """The OpenFlow port a switch interface is (sflow_openflow.txt); Open vSwitch sends it."""

    datapath_id: Annotated[int, U64] = 0
    port_no: Annotated[int, U32] = 0


@counter_record(0, 1005, "port_name")
class PortName(NamedTuple):
    name: Annotated[str, String(255)] = ""


@counter_record(0, 2000, "host_descr")
class HostDescr(NamedTuple):
    hostname: Annotated[str, String(64)] = ""
    uuid: Annotated[str, UUID] = "00000000-0000-0000-0000-000000000000"
    machine_type: Annotated[int, U32] = 0
    os_name: Annotated[int, U32] = 0
    os_release: Annotated[str, String(32)] = ""


@structure
class HostAdapter(NamedTuple):
    """One adapter of host_adapters: its ifIndex and MAC addresses."""

    if_index: Annotated[int, U32] = 0
    mac_addresses: Annotated[tuple[str, ...], Array(MAC)] = ()


@counter_record(0, 2001, "host_adapters")
class HostAdapters(NamedTuple):
    adapters: Annotated[tuple[HostAdapter, ...], Array(HostAdapter)] = ()


@counter_record(0, 2002, "host_parent")
class HostParent(NamedTuple):
    container_type: Annotated[int, U32] = 2
    container_index: Annotated[int, U32] = 1


@counter_record(0, 2003, "host_cpu")
class HostCpu(NamedTuple):
    """68 bytes in the original spec, 80 with the 2014 steal/guest fields (``None`` if absent)."""

    load_one: Annotated[float, F32] = -1.0
    load_five: Annotated[float, F32] = -1.0
    load_fifteen: Annotated[float, F32] = -1.0
    proc_run: Annotated[int, U32] = 0
    proc_total: Annotated[int, U32] = 0
    cpu_num: Annotated[int, U32] = 0
    cpu_speed: Annotated[int, U32] = 0
    uptime: Annotated[int, U32] = 0
    cpu_user: Annotated[int, U32] = 0
    cpu_nice: Annotated[int, U32] = 0
    cpu_system: Annotated[int, U32] = 0
    cpu_idle: Annotated[int, U32] = 0
    cpu_wio: Annotated[int, U32] = 0
    cpu_intr: Annotated[int, U32] = 0
    cpu_sintr: Annotated[int, U32] = 0
    interrupts: Annotated[int, U32] = 0
    contexts: Annotated[int, U32] = 0
    cpu_steal: Annotated[int | None, U32, TAIL] = 0
    cpu_guest: Annotated[int | None, U32] = 0
    cpu_guest_nice: Annotated[int | None, U32] = 0


@counter_record(0, 2004, "host_memory")
class HostMemory(NamedTuple):
    mem_total: Annotated[int, U64] = 0
    mem_free: Annotated[int, U64] = 0
    mem_shared: Annotated[int, U64] = 0
    mem_buffers: Annotated[int, U64] = 0
    mem_cached: Annotated[int, U64] = 0
    swap_total: Annotated[int, U64] = 0
    swap_free: Annotated[int, U64] = 0
    page_in: Annotated[int, U32] = 0
    page_out: Annotated[int, U32] = 0
    swap_in: Annotated[int, U32] = 0
    swap_out: Annotated[int, U32] = 0


@counter_record(0, 2005, "host_disk_io")
class HostDiskIo(NamedTuple):
    disk_total: Annotated[int, U64] = 0
    disk_free: Annotated[int, U64] = 0
    part_max_used: Annotated[int, I32] = -1  # percentage, as in processor
    reads: Annotated[int, U32] = 0
    bytes_read: Annotated[int, U64] = 0
    read_time: Annotated[int, U32] = 0
    writes: Annotated[int, U32] = 0
    bytes_written: Annotated[int, U64] = 0
    write_time: Annotated[int, U32] = 0


@counter_record(0, 2006, "host_net_io")
class HostNetIo(NamedTuple):
    bytes_in: Annotated[int, U64] = 0
    pkts_in: Annotated[int, U32] = 0
    errs_in: Annotated[int, U32] = 0
    drops_in: Annotated[int, U32] = 0
    bytes_out: Annotated[int, U64] = 0
    pkts_out: Annotated[int, U32] = 0
    errs_out: Annotated[int, U32] = 0
    drops_out: Annotated[int, U32] = 0


@counter_record(0, 2007, "mib2_ip_group")
class Mib2IpGroup(NamedTuple):
    ip_forwarding: Annotated[int, U32] = 0
    ip_default_ttl: Annotated[int, U32] = 0
    ip_in_receives: Annotated[int, U32] = 0
    ip_in_hdr_errors: Annotated[int, U32] = 0
    ip_in_addr_errors: Annotated[int, U32] = 0
    ip_forw_datagrams: Annotated[int, U32] = 0
    ip_in_unknown_protos: Annotated[int, U32] = 0
    ip_in_discards: Annotated[int, U32] = 0
    ip_in_delivers: Annotated[int, U32] = 0
    ip_out_requests: Annotated[int, U32] = 0
    ip_out_discards: Annotated[int, U32] = 0
    ip_out_no_routes: Annotated[int, U32] = 0
    ip_reasm_timeout: Annotated[int, U32] = 0
    ip_reasm_reqds: Annotated[int, U32] = 0
    ip_reasm_oks: Annotated[int, U32] = 0
    ip_reasm_fails: Annotated[int, U32] = 0
    ip_frag_oks: Annotated[int, U32] = 0
    ip_frag_fails: Annotated[int, U32] = 0
    ip_frag_creates: Annotated[int, U32] = 0


@counter_record(0, 2008, "mib2_icmp_group")
class Mib2IcmpGroup(NamedTuple):
    icmp_in_msgs: Annotated[int, U32] = 0
    icmp_in_errors: Annotated[int, U32] = 0
    icmp_in_dest_unreachs: Annotated[int, U32] = 0
    icmp_in_time_excds: Annotated[int, U32] = 0
    icmp_in_param_probs: Annotated[int, U32] = 0
    icmp_in_src_quenchs: Annotated[int, U32] = 0
    icmp_in_redirects: Annotated[int, U32] = 0
    icmp_in_echos: Annotated[int, U32] = 0
    icmp_in_echo_reps: Annotated[int, U32] = 0
    icmp_in_timestamps: Annotated[int, U32] = 0
    icmp_in_addr_masks: Annotated[int, U32] = 0
    icmp_in_addr_mask_reps: Annotated[int, U32] = 0
    icmp_out_msgs: Annotated[int, U32] = 0
    icmp_out_errors: Annotated[int, U32] = 0
    icmp_out_dest_unreachs: Annotated[int, U32] = 0
    icmp_out_time_excds: Annotated[int, U32] = 0
    icmp_out_param_probs: Annotated[int, U32] = 0
    icmp_out_src_quenchs: Annotated[int, U32] = 0
    icmp_out_redirects: Annotated[int, U32] = 0
    icmp_out_echos: Annotated[int, U32] = 0
    icmp_out_echo_reps: Annotated[int, U32] = 0
    icmp_out_timestamps: Annotated[int, U32] = 0
    icmp_out_timestamp_reps: Annotated[int, U32] = 0
    icmp_out_addr_masks: Annotated[int, U32] = 0
    icmp_out_addr_mask_reps: Annotated[int, U32] = 0


@counter_record(0, 2009, "mib2_tcp_group")
class Mib2TcpGroup(NamedTuple):
    tcp_rto_algorithm: Annotated[int, U32] = 0
    tcp_rto_min: Annotated[int, U32] = 0
    tcp_rto_max: Annotated[int, U32] = 0
    tcp_max_conn: Annotated[int, I32] = 0
    tcp_active_opens: Annotated[int, U32] = 0
    tcp_passive_opens: Annotated[int, U32] = 0
    tcp_attempt_fails: Annotated[int, U32] = 0
    tcp_estab_resets: Annotated[int, U32] = 0
    tcp_curr_estab: Annotated[int, U32] = 0
    tcp_in_segs: Annotated[int, U32] = 0
    tcp_out_segs: Annotated[int, U32] = 0
    tcp_retrans_segs: Annotated[int, U32] = 0
    tcp_in_errs: Annotated[int, U32] = 0
    tcp_out_rsts: Annotated[int, U32] = 0
    tcp_in_csum_errors: Annotated[int, U32] = 0


@counter_record(0, 2010, "mib2_udp_group")
class Mib2UdpGroup(NamedTuple):
    udp_in_datagrams: Annotated[int, U32] = 0
    udp_no_ports: Annotated[int, U32] = 0
    udp_in_errors: Annotated[int, U32] = 0
    udp_out_datagrams: Annotated[int, U32] = 0
    udp_rcvbuf_errors: Annotated[int, U32] = 0
    udp_sndbuf_errors: Annotated[int, U32] = 0
    udp_in_csum_errors: Annotated[int, U32] = 0


@counter_record(0, 2100, "virt_node")
class VirtNode(NamedTuple):
    mhz: Annotated[int, U32] = 0
    cpus: Annotated[int, U32] = 0
    memory: Annotated[int, U64] = 0
    memory_free: Annotated[int, U64] = 0
    num_domains: Annotated[int, U32] = 0


@counter_record(0, 2101, "virt_cpu")
class VirtCpu(NamedTuple):
    state: Annotated[int, U32] = 1
    cpu_time_ms: Annotated[int, U32] = 0
    nr_virt_cpu: Annotated[int, U32] = 1


@counter_record(0, 2102, "virt_memory")
class VirtMemory(NamedTuple):
    memory: Annotated[int, U64] = 0
    max_memory: Annotated[int, U64] = 0


@counter_record(0, 2103, "virt_disk_io")
class VirtDiskIo(NamedTuple):
    capacity: Annotated[int, U64] = 0
    allocation: Annotated[int, U64] = 0
    available: Annotated[int, U64] = 0
    rd_req: Annotated[int, U32] = 0
    rd_bytes: Annotated[int, U64] = 0
    wr_req: Annotated[int, U32] = 0
    wr_bytes: Annotated[int, U64] = 0
    errs: Annotated[int, U32] = 0


@counter_record(0, 2104, "virt_net_io")
class VirtNetIo(NamedTuple):
    bytes_in: Annotated[int, U64] = 0
    pkts_in: Annotated[int, U32] = 0
    errs_in: Annotated[int, U32] = 0
    drops_in: Annotated[int, U32] = 0
    bytes_out: Annotated[int, U64] = 0
    pkts_out: Annotated[int, U32] = 0
    errs_out: Annotated[int, U32] = 0
    drops_out: Annotated[int, U32] = 0


@counter_record(0, 2201, "http_counters")
class HttpCounters(NamedTuple):
    method_option_count: Annotated[int, U32] = 0
    method_get_count: Annotated[int, U32] = 0
    method_head_count: Annotated[int, U32] = 0
    method_post_count: Annotated[int, U32] = 0
    method_put_count: Annotated[int, U32] = 0
    method_delete_count: Annotated[int, U32] = 0
    method_trace_count: Annotated[int, U32] = 0
    method_connect_count: Annotated[int, U32] = 0
    method_other_count: Annotated[int, U32] = 0
    status_1xx_count: Annotated[int, U32] = 0
    status_2xx_count: Annotated[int, U32] = 0
    status_3xx_count: Annotated[int, U32] = 0
    status_4xx_count: Annotated[int, U32] = 0
    status_5xx_count: Annotated[int, U32] = 0
    status_other_count: Annotated[int, U32] = 0


@counter_record(0, 2202, "app_operations")
class AppOperations(NamedTuple):
    application: Annotated[str, String(32)] = ""
    success: Annotated[int, U32] = 0
    other: Annotated[int, U32] = 0
    timeout: Annotated[int, U32] = 0
    internal_error: Annotated[int, U32] = 0
    bad_request: Annotated[int, U32] = 0
    forbidden: Annotated[int, U32] = 0
    too_large: Annotated[int, U32] = 0
    not_implemented: Annotated[int, U32] = 0
    not_found: Annotated[int, U32] = 0
    unavailable: Annotated[int, U32] = 0
    unauthorized: Annotated[int, U32] = 0


@counter_record(0, 2203, "app_resources")
class AppResources(NamedTuple):
    user_time_ms: Annotated[int, U32] = 0
    system_time_ms: Annotated[int, U32] = 0
    mem_used: Annotated[int, U64] = 0
    mem_max: Annotated[int, U64] = 0
    fd_open: Annotated[int, U32] = 0
    fd_max: Annotated[int, U32] = 0
    conn_open: Annotated[int, U32] = 0
    conn_max: Annotated[int, U32] = 0


@counter_record(0, 2206, "app_workers")
class AppWorkers(NamedTuple):
    workers_active: Annotated[int, U32] = 0
    workers_idle: Annotated[int, U32] = 0
    workers_max: Annotated[int, U32] = 0
    req_delayed: Annotated[int, U32] = 0
    req_dropped: Annotated[int, U32] = 0


@counter_record(0, 2207, "ovs_dp_stats")
class OvsDpStats(NamedTuple):
    """Open vSwitch datapath statistics (lib/sflow.h), in the agent's own counter sample."""

    hits: Annotated[int, U32] = 0
    misses: Annotated[int, U32] = 0
    lost: Annotated[int, U32] = 0
    mask_hits: Annotated[int, U32] = 0
    flows: Annotated[int, U32] = 0
    masks: Annotated[int, U32] = 0
