"""``sflowlab decode``: print the sFlow in a capture (or arriving live) as text or JSON lines.

Exit status: 0 when every datagram decoded, 1 when some did not (each reported on stderr with
its offset and path, the others still printed), 2 when the input cannot be read at all.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from typing import BinaryIO, TextIO

from sflowlab.codec import DecodeError, decode_datagram
from sflowlab.codec.pcap import CapturedDatagram, PcapError, read_sflow
from sflowlab.codec.render import render_text, sample_rows

EXIT_BAD_DATAGRAMS = 1
EXIT_UNREADABLE = 2
DEFAULT_PORT = 6343


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "decode", help="decode sFlow from a pcap/pcapng file, stdin or a UDP port",
        description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="pcap or pcapng capture; - reads a capture from stdin")
    p.add_argument("--listen", metavar="[HOST:]PORT",
                   help="decode datagrams arriving on this UDP port instead of a file")
    p.add_argument("--count", type=int, metavar="N", help="with --listen: stop after N datagrams")
    p.add_argument("--json", action="store_true", help="one JSON object per sample and line")
    p.add_argument("--port", type=int,
                   help="UDP port of the sFlow in captures (default: datagrams on any port that "
                        "look like sFlow v5, the ports said on stderr; 0 = every UDP datagram)")
    p.set_defaults(func=run, parser=p)


def _listen_endpoint(text: str) -> tuple[str, int]:
    """``"6343"``, ``"127.0.0.1:6343"``, ``"[::1]:0"`` -> (host, port); port 0 = any free one."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected [HOST:]PORT, got {text!r}")
    return host.removeprefix("[").removesuffix("]") or "0.0.0.0", int(port)


def _received(sock: socket.socket, count: int | None) -> Iterator[CapturedDatagram]:
    local = sock.getsockname()[:2]
    received = 0
    while count is None or received < count:
        payload, source = sock.recvfrom(65535)
        received += 1
        yield CapturedDatagram(time.time(), source[:2], local, payload)


def _print_all(datagrams: Iterable[CapturedDatagram], as_json: bool, out: TextIO,
               err: TextIO) -> int:
    """Decode and print each datagram; report undecodable ones. Returns how many failed."""
    failed = 0
    for index, captured in enumerate(datagrams):
        try:
            dg = decode_datagram(captured.payload)
        except DecodeError as e:
            failed += 1
            host, port = captured.src
            err.write(f"sflowlab decode: datagram {index} from {host}:{port}: {e}\n")
            err.flush()
            continue
        if as_json:
            for row in sample_rows(dg, captured.timestamp, captured.src):
                out.write(json.dumps(row) + "\n")
        else:
            out.write(render_text(dg, captured.timestamp, captured.src, len(captured.payload)))
        out.flush()
    return failed


def _capture(path: str, port: int | None) -> Iterator[CapturedDatagram]:
    source: str | BinaryIO = sys.stdin.buffer if path == "-" else path
    return read_sflow(source, port)


def _looks_like_sflow(payload: bytes) -> bool:
    """Version 5 and a known agent address type (0 none, 1 IPv4, 2 IPv6)."""
    return len(payload) >= 24 and payload[:4] == b"\0\0\0\x05" and payload[4:7] == b"\0\0\0" \
        and payload[7] <= 2


def _detected(datagrams: Iterable[CapturedDatagram], err: TextIO) -> Iterator[CapturedDatagram]:
    """The UDP datagrams that look like sFlow, whatever their port; says on stderr which
    ports carried them, or that none did (and which UDP ports the capture holds)."""
    found: set[int] = set()
    other: set[int] = set()
    for d in datagrams:
        if _looks_like_sflow(d.payload):
            found.add(d.dst[1])
            yield d
        else:
            other.add(d.dst[1])
    if not found:
        seen = ", ".join(map(str, sorted(other))) or "none"
        err.write(f"sflowlab decode: no sFlow v5 found (UDP destination ports: {seen}; "
                  "--port 0 decodes every UDP datagram)\n")
    elif found != {DEFAULT_PORT}:
        err.write("sflowlab decode: sFlow found on UDP port "
                  f"{', '.join(map(str, sorted(found)))}\n")


def run(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    if (args.file is None) == (args.listen is None):
        args.parser.error("give exactly one of FILE and --listen")
    if args.count is not None and args.listen is None:
        args.parser.error("--count goes with --listen")
    try:
        if args.listen is not None:
            host, port = _listen_endpoint(args.listen)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.bind((host, port))
                bound_host, bound_port = sock.getsockname()[:2]
                shown = f"[{bound_host}]" if ":" in bound_host else bound_host
                err.write(f"sflowlab decode: listening on UDP {shown}:{bound_port}\n")
                err.flush()
                failed = _print_all(_received(sock, args.count), args.json, out, err)
        else:
            datagrams = _capture(args.file, args.port or None)
            if args.port is None:
                datagrams = _detected(datagrams, err)
            failed = _print_all(datagrams, args.json, out, err)
    except BrokenPipeError:
        raise  # the reader went away: cli.main ends quietly
    except (PcapError, OSError, ValueError) as e:
        what = f"listen on {args.listen}" if args.listen is not None else f"read {args.file}"
        err.write(f"sflowlab decode: cannot {what}: {e}\n")
        return EXIT_UNREADABLE
    return EXIT_BAD_DATAGRAMS if failed else 0
