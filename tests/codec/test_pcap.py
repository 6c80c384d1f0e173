"""pcap/pcapng reading and writing: round trips, real tools' files, link types, damaged files."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sflowlab.codec import CodecError
from sflowlab.codec.pcap import (
    CapturedDatagram,
    PcapError,
    PcapWriter,
    internet_checksum,
    read_sflow,
    udp_frame,
)

V4 = (("192.0.2.1", 40000), ("192.0.2.2", 6343))
V6 = (("fd00:199::1", 6343), ("fd00:199::2", 50000))


def write_capture(path_or_stream, items, snaplen=65535):
    with PcapWriter(path_or_stream, snaplen) as w:
        for payload, ts, src, dst in items:
            w.write(payload, ts, src, dst)


def ip_packet(payload=b"sflow", src=V4[0], dst=V4[1]):
    """The IP packet (no link header) the writer would put in a frame."""
    return udp_frame(payload, src, dst)[14:]


# ---------------------------------------------------------------- a pcapng writer for tests


def _block(order, kind, body):
    total = 12 + len(body)
    return struct.pack(order + "II", kind, total) + body + struct.pack(order + "I", total)


def _option(order, code, value):
    return struct.pack(order + "HH", code, len(value)) + value + bytes(-len(value) % 4)


def pcapng(order, interfaces, packets, simple=()):
    """A pcapng section: interfaces = [(linktype, tsresol byte or None)],
    packets = [(interface, ticks, frame)], simple = frames for simple packet blocks."""
    out = _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    for linktype, tsresol in interfaces:
        opts = b""
        if tsresol is not None:
            opts = _option(order, 9, bytes([tsresol])) + struct.pack(order + "HH", 0, 0)
        out += _block(order, 1, struct.pack(order + "HHI", linktype, 0, 0) + opts)
    for iface, ticks, frame in packets:
        body = struct.pack(order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(frame),
                           len(frame)) + frame + bytes(-len(frame) % 4)
        out += _block(order, 6, body)
    for frame in simple:
        out += _block(order, 3, struct.pack(order + "I", len(frame)) + frame
                      + bytes(-len(frame) % 4))
    out += _block(order, 0x0BAD, b"\x01\x02\x03\x04")  # an unknown block is skipped
    return out


def classic_big_endian_nanoseconds(little: bytes) -> bytes:
    """Re-encode a little-endian microsecond pcap as big-endian with nanosecond magic."""
    _magic, major, minor, zone, sigfigs, snaplen, network = struct.unpack_from("<IHHiIII", little)
    out = bytearray(struct.pack(">IHHiIII", 0xA1B23C4D, major, minor, zone, sigfigs, snaplen,
                                network))
    off = 24
    while off < len(little):
        sec, usec, incl, orig = struct.unpack_from("<IIII", little, off)
        out += struct.pack(">IIII", sec, usec * 1000, incl, orig)
        out += little[off + 16 : off + 16 + incl]
        off += 16 + incl
    return bytes(out)


# ---------------------------------------------------------------- round trips


def test_round_trip_ipv4_and_ipv6(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    write_capture(path, [(b"\x00\x00\x00\x05abc", 1700000000.123456, *V4),
                         (b"", 1700000001.5, *V6)])
    assert list(read_sflow(path)) == [
        CapturedDatagram(1700000000.123456, *V4, b"\x00\x00\x00\x05abc"),
        CapturedDatagram(1700000001.5, *V6, b""),
    ]


@settings(max_examples=50, deadline=None)
@given(items=st.lists(st.tuples(st.binary(max_size=1500), st.integers(0, 2**32 - 1),
                                st.integers(0, 999_999), st.integers(1, 65535), st.booleans()),
                      max_size=5))
def test_round_trip_property(items) -> None:
    stream = io.BytesIO()
    expected = []
    with PcapWriter(stream) as w:
        for payload, sec, usec, port, v6 in items:
            a, b = ("fd00::a", "fd00::b") if v6 else ("10.0.0.1", "10.0.0.2")
            captured = CapturedDatagram(sec + usec / 1e6, (a, port), (b, 6343), payload)
            w.write(captured.payload, captured.timestamp, captured.src, captured.dst)
            expected.append(captured)
    stream.seek(0)
    assert list(read_sflow(stream)) == expected


def test_writer_checksums_verify() -> None:
    frame = udp_frame(b"hello sflow", *V4)
    ip = frame[14:34]
    assert internet_checksum(ip) == 0
    pseudo = ip[12:20] + struct.pack("!xBH", 17, len(frame) - 34)
    assert internet_checksum(pseudo + frame[34:]) == 0
    frame6 = udp_frame(b"odd", *V6)
    pseudo6 = frame6[22:54] + struct.pack("!IxxxB", len(frame6) - 54, 17)
    assert internet_checksum(pseudo6 + frame6[54:]) == 0


def test_writer_rejects_mixed_families_oversize_and_bad_times() -> None:
    with pytest.raises(ValueError, match="address family"):
        udp_frame(b"", V4[0], V6[1])
    with pytest.raises(ValueError, match="does not fit"):
        udp_frame(bytes(65508), *V4)
    with PcapWriter(io.BytesIO()) as w, pytest.raises(ValueError, match="outside the pcap"):
        w.write(b"", -1.0)


def test_snaplen_cuts_frames_and_keeps_what_fits(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    write_capture(path, [(bytes(range(100)), 1.0, *V4)], snaplen=14 + 20 + 8 + 10)
    (got,) = read_sflow(path)
    assert got.payload == bytes(range(10))
    incl, orig = struct.unpack_from("<II", path.read_bytes(), 24 + 8)
    assert (incl, orig) == (52, 142)


def test_port_filter(tmp_path: Path) -> None:
    path = tmp_path / "ports.pcap"
    write_capture(path, [(b"a", 1.0, ("10.0.0.1", 1000), ("10.0.0.2", 6343)),
                         (b"b", 2.0, ("10.0.0.1", 6343), ("10.0.0.2", 1000)),
                         (b"c", 3.0, ("10.0.0.1", 1000), ("10.0.0.2", 2055))])
    assert [d.payload for d in read_sflow(path)] == [b"a", b"b"]
    assert [d.payload for d in read_sflow(path, port=2055)] == [b"c"]
    assert [d.payload for d in read_sflow(path, port=None)] == [b"a", b"b", b"c"]


def test_big_endian_nanosecond_classic(tmp_path: Path) -> None:
    stream = io.BytesIO()
    write_capture(stream, [(b"ns", 1700000000.25, *V4)])
    data = classic_big_endian_nanoseconds(stream.getvalue())
    (got,) = read_sflow(io.BytesIO(data))
    assert got == CapturedDatagram(1700000000.25, *V4, b"ns")


# ---------------------------------------------------------------- pcapng


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_interfaces_resolutions_and_simple_packets(order: str) -> None:
    eth = udp_frame(b"eth", *V4)
    raw6 = ip_packet(b"raw6", *V6)
    data = pcapng(order, [(1, None), (101, 9), (1, 0x80 | 10)],
                  [(0, 1_700_000_000_500_000, eth), (1, 1_700_000_000_250_000_000, raw6),
                   (2, 3 << 10, eth)],
                  simple=[eth])
    got = list(read_sflow(io.BytesIO(data)))
    assert [(g.timestamp, g.payload) for g in got] == [
        (1700000000.5, b"eth"), (1700000000.25, b"raw6"), (3.0, b"eth"), (0.0, b"eth")]
    assert got[1].src == V6[0]


def test_pcapng_second_section_changes_byte_order() -> None:
    first = pcapng("<", [(1, None)], [(0, 1_000_000, udp_frame(b"one", *V4))])
    second = pcapng(">", [(101, None)], [(0, 2_000_000, ip_packet(b"two"))])
    assert [g.payload for g in read_sflow(io.BytesIO(first + second))] == [b"one", b"two"]


@pytest.mark.tshark
def test_pcapng_written_by_editcap(tmp_path: Path) -> None:
    if shutil.which("editcap") is None:
        pytest.skip("editcap (Wireshark) is not installed")
    classic, ng, ns = tmp_path / "in.pcap", tmp_path / "out.pcapng", tmp_path / "ns.pcap"
    items = [(b"first", 1700000000.000001, *V4), (b"second", 1700000002.75, *V6)]
    write_capture(classic, items)
    subprocess.run(["editcap", "-F", "pcapng", str(classic), str(ng)], check=True)
    subprocess.run(["editcap", "-F", "nsecpcap", str(classic), str(ns)], check=True)
    assert ng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    expected = [CapturedDatagram(t, s, d, p) for p, t, s, d in items]
    assert list(read_sflow(ng)) == expected
    assert list(read_sflow(ns)) == expected


@pytest.mark.tshark
def test_tshark_validates_writer_checksums(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    path = tmp_path / "ck.pcap"
    write_capture(path, [(b"abc", 1.0, *V4), (b"abcd", 2.0, *V6)])
    out = subprocess.run(
        ["tshark", "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o",
         "udp.check_checksum:TRUE", "-T", "fields", "-e", "ip.checksum.status", "-e",
         "udp.checksum.status", "-e", "udp.length"],
        capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["1\t1\t11", "\t1\t12"]  # 1 = good; IPv6 has no header checksum


# ---------------------------------------------------------------- link types and IP layers


def sll(proto: int) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, bytes(8), proto)


def sll2(proto: int) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, 2, 1, 0, 6, bytes(8))


@pytest.mark.parametrize(("linktype", "frame"), [
    (1, udp_frame(b"p", *V4)),
    (1, udp_frame(b"p", *V4)[:12] + b"\x81\x00\x00\x0a" + b"\x88\xa8\x00\x14"
     + udp_frame(b"p", *V4)[12:]),  # two VLAN tags before the EtherType
    (101, ip_packet(b"p")),
    (228, ip_packet(b"p")),
    (229, ip_packet(b"p", *V6)),
    (113, sll(0x0800) + ip_packet(b"p")),
    (276, sll2(0x86DD) + ip_packet(b"p", *V6)),
    (0, struct.pack("<I", 2) + ip_packet(b"p")),
    (0, struct.pack(">I", 30) + ip_packet(b"p", *V6)),
    (108, struct.pack(">I", 2) + ip_packet(b"p")),
], ids=["ethernet", "qinq", "raw", "ipv4", "ipv6", "sll", "sll2", "null-le", "null-be6", "loop"])
def test_link_types(linktype: int, frame: bytes) -> None:
    data = pcapng("<", [(linktype, None)], [(0, 0, frame)])
    (got,) = read_sflow(io.BytesIO(data))
    assert got.payload == b"p"


def _with_ipv4_options(packet: bytes) -> bytes:
    head = bytearray(packet[:20])
    head[0] = 0x46
    struct.pack_into("!H", head, 2, len(packet) + 4)
    return bytes(head) + b"\x01\x01\x01\x00" + packet[20:]


def _fragment(packet: bytes, offset_units: int, more: bool) -> bytes:
    head = bytearray(packet)
    struct.pack_into("!H", head, 6, (0x2000 if more else 0) | offset_units)
    return bytes(head)


def _ipv6_hop_by_hop(packet: bytes) -> bytes:
    head = bytearray(packet[:40])
    head[6] = 0  # next header: hop-by-hop
    struct.pack_into("!H", head, 4, len(packet) - 40 + 8)
    return bytes(head) + bytes([17, 0]) + bytes(6) + packet[40:]


def _ipv6_later_fragment(packet: bytes) -> bytes:
    head = bytearray(packet[:40])
    head[6] = 44
    return bytes(head) + bytes([17, 0]) + struct.pack("!HI", 8 << 3, 1) + packet[40:]


def test_ip_options_fragments_and_extension_headers() -> None:
    v4, v6 = ip_packet(b"payload"), ip_packet(b"payload", *V6)
    frames = [
        _with_ipv4_options(v4),
        _fragment(v4[:28 + 3], 0, more=True),  # first fragment: what it holds
        _fragment(v4, 185, more=False),  # later fragment: no UDP header, skipped
        _ipv6_hop_by_hop(v6),
        _ipv6_later_fragment(v6),  # skipped
        v4[:24],  # cut inside the UDP header: skipped
        b"\x45",  # garbage: skipped
    ]
    data = pcapng("<", [(101, None)], [(0, i, f) for i, f in enumerate(frames)])
    assert [g.payload for g in read_sflow(io.BytesIO(data))] == [b"payload", b"pay",
                                                                 b"payload"]


def test_non_udp_frames_are_skipped() -> None:
    tcp = bytearray(ip_packet(b"x"))
    tcp[9] = 6
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    data = pcapng("<", [(1, None), (101, None), (147, None)],
                  [(0, 0, arp), (1, 0, bytes(tcp)), (2, 0, b"user link type")])
    assert list(read_sflow(io.BytesIO(data), port=None)) == []


# ---------------------------------------------------------------- damaged input


def _good_capture() -> bytes:
    stream = io.BytesIO()
    write_capture(stream, [(b"one", 1.0, *V4), (b"two", 2.0, *V4)])
    return stream.getvalue()


@pytest.mark.parametrize(("cut", "offset", "before"), [
    (10, 4, 0),  # inside the file header
    (24 + 16 + 45 + 5, 24 + 16 + 45, 1),  # inside the second record header
    (24 + 16 + 45 + 16 + 10, 24 + 16 + 45 + 16, 1),  # inside the second record's data
])
def test_truncated_classic_raises_with_offset(cut: int, offset: int, before: int) -> None:
    data = _good_capture()
    assert len(data) == 24 + 2 * (16 + 45)
    got = []
    with pytest.raises(PcapError) as info:
        got.extend(read_sflow(io.BytesIO(data[:cut])))
    assert len(got) == before
    assert info.value.offset == offset
    assert "truncated" in str(info.value)
    assert isinstance(info.value, CodecError)


def test_truncated_and_damaged_pcapng() -> None:
    data = pcapng("<", [(101, None)], [(0, 0, ip_packet(b"a")), (0, 0, ip_packet(b"b"))])
    with pytest.raises(PcapError, match="truncated"):
        list(read_sflow(io.BytesIO(data[:-10])))
    bad_trailer = bytearray(data)
    struct.pack_into("<I", bad_trailer, 28 - 4, 99)  # the SHB's trailing length
    with pytest.raises(PcapError, match="does not match") as info:
        list(read_sflow(io.BytesIO(bytes(bad_trailer))))
    assert info.value.offset == 0
    bad_bom = bytearray(data)
    bad_bom[8:12] = b"\0\0\0\0"
    with pytest.raises(PcapError, match="byte-order magic"):
        list(read_sflow(io.BytesIO(bytes(bad_bom))))
    unknown_iface = pcapng("<", [], [(0, 0, ip_packet(b"a"))])
    with pytest.raises(PcapError, match="interface 0"):
        list(read_sflow(io.BytesIO(unknown_iface)))


def test_not_a_capture() -> None:
    with pytest.raises(PcapError, match="empty input"):
        list(read_sflow(io.BytesIO(b"")))
    with pytest.raises(PcapError, match="not a pcap or pcapng file") as info:
        list(read_sflow(io.BytesIO(b"root:x:0:0:root")))
    assert info.value.offset == 0
    implausible = bytearray(_good_capture())
    struct.pack_into("<I", implausible, 24 + 8, 1 << 30)
    with pytest.raises(PcapError, match="implausible"):
        list(read_sflow(io.BytesIO(bytes(implausible))))


def test_reads_from_a_pipe(tmp_path: Path) -> None:
    data = _good_capture()
    proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(data)
    proc.stdin.close()
    assert [g.payload for g in read_sflow(proc.stdout)] == [b"one", b"two"]
    proc.stdout.close()
    assert proc.wait(timeout=10) == 0
