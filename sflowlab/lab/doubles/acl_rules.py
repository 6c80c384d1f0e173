"""Cumulus Linux ACL policy lines (iptables syntax) parsed into a rule model.

An ACL is a list of lines as Cumulus' ``/etc/cumulus/acl/policy.d/*.rules`` files hold them:
section markers ``[iptables]`` / ``[ip6tables]`` (lines before any marker are iptables),
``#`` comments, blank lines, and rules. The subset modelled is what the capture and DDoS
controllers install:

    -A FORWARD --in-interface swp+ -s L -d R -j ERSPAN --src-ip A --dst-ip B
    -A FORWARD --in-interface swp+ -s X -d Y -p udp --sport 53 -j DROP

with ``-i``/``--in-interface`` and ``-o``/``--out-interface`` (``+`` is iptables' prefix
wildcard), ``-s``/``-d`` addresses or CIDRs of the section's family, ``-p`` tcp, udp, icmp,
icmpv6, all or a protocol number, ``--sport``/``--dport`` (a port or ``low:high``, only with
tcp or udp; ``-m tcp``/``-m udp`` allowed), and the targets ``DROP`` and ``ERSPAN`` (which needs
``--src-ip`` and ``--dst-ip``, the GRE tunnel's ends). Anything else is refused with a
``RuleError`` naming the line, never silently ignored.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ParsedRule", "PortRange", "RuleError", "parse_acl", "parse_rule"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SECTIONS = {"[iptables]": 4, "[ip6tables]": 6}
_PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "all": None}
_TARGETS = ("DROP", "ERSPAN")
_CHAINS = ("FORWARD",)
_OPTIONS = frozenset(
    ("-A", "-i", "-o", "-s", "-d", "-p", "-j", "-m", "--sport", "--dport", "--src-ip", "--dst-ip")
)
_ALIASES = {
    "--append": "-A",
    "--in-interface": "-i",
    "--out-interface": "-o",
    "--source": "-s",
    "--src": "-s",
    "--destination": "-d",
    "--dst": "-d",
    "--protocol": "-p",
    "--jump": "-j",
    "--match": "-m",
    "--source-port": "--sport",
    "--destination-port": "--dport",
}


class RuleError(ValueError):
    """A line that is not a rule of the modelled subset; says which line and why."""

    def __init__(self, reason: str, line: str, line_number: int | None = None) -> None:
        where = f"line {line_number}" if line_number is not None else "rule"
        super().__init__(f"{where}: {reason}: {line!r}")
        self.reason = reason
        self.line = line
        self.line_number = line_number


@dataclass(frozen=True)
class PortRange:
    low: int
    high: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}:{self.high}"


@dataclass(frozen=True)
class ParsedRule:
    """One rule: what it matches (``None``: anything) and what it does."""

    family: int  # 4 ([iptables]) or 6 ([ip6tables])
    chain: str
    target: str  # "DROP" | "ERSPAN"
    line: str
    in_interface: str | None = None
    out_interface: str | None = None
    source: IPNetwork | None = None
    destination: IPNetwork | None = None
    protocol: int | None = None  # IP protocol number
    sport: PortRange | None = None
    dport: PortRange | None = None
    erspan_src: IPAddress | None = None  # the mirror tunnel's source (the switch)
    erspan_dst: IPAddress | None = None  # ... and destination (the analyser)

    def matches(
        self,
        src: str | IPAddress,
        dst: str | IPAddress,
        protocol: int,
        sport: int | None = None,
        dport: int | None = None,
        in_interface: str | None = None,
        out_interface: str | None = None,
    ) -> bool:
        """Whether a packet with these fields matches (an absent interface matches any)."""
        src_ip, dst_ip = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        return (
            src_ip.version == self.family
            and (self.source is None or src_ip in self.source)
            and (self.destination is None or dst_ip in self.destination)
            and (self.protocol is None or protocol == self.protocol)
            and (self.sport is None or sport in self.sport)
            and (self.dport is None or dport in self.dport)
            and _interface_matches(self.in_interface, in_interface)
            and _interface_matches(self.out_interface, out_interface)
        )


def _interface_matches(pattern: str | None, name: str | None) -> bool:
    if pattern is None or name is None:
        return True
    return name.startswith(pattern[:-1]) if pattern.endswith("+") else name == pattern


def _port_range(value: str) -> PortRange:
    low, colon, high = value.partition(":")
    try:
        first = int(low or 0)
        last = int(high or 65535) if colon else first
    except ValueError:
        raise ValueError(f"bad port {value!r}") from None
    if not 0 <= first <= last <= 65535:
        raise ValueError(f"bad port range {value!r}")
    return PortRange(first, last)


def _network(value: str, family: int) -> IPNetwork:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"bad address {value!r} (an IP address or CIDR; names are not resolved)"
        ) from None
    if network.version != family:
        section = "[ip6tables]" if network.version == 6 else "[iptables]"
        raise ValueError(f"IPv{network.version} address {value!r} needs a {section} section")
    return network


def _address(value: str) -> IPAddress:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"bad address {value!r}") from None


def parse_rule(line: str, family: int = 4) -> ParsedRule:
    """Parse one rule line of the given family; ``ValueError`` (with the reason) when refused."""
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        raise ValueError(f"cannot split the line: {exc}") from None
    options: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        option = _ALIASES.get(tokens[i], tokens[i])
        if option == "!":
            raise ValueError("negation (!) is not modelled")
        if option not in _OPTIONS:
            raise ValueError(f"unsupported option {tokens[i]!r}")
        if i + 1 >= len(tokens):
            raise ValueError(f"option {tokens[i]!r} needs a value")
        if option in options and option != "-m":
            raise ValueError(f"option {tokens[i]!r} given twice")
        options[option] = tokens[i + 1]
        i += 2
    chain, target = options.get("-A"), options.get("-j")
    if chain not in _CHAINS:
        raise ValueError(f"a rule must append to FORWARD (-A FORWARD), not {chain!r}")
    if target not in _TARGETS:
        raise ValueError(f"target {target!r} is not modelled (one of {', '.join(_TARGETS)})")
    protocol_name = options.get("-p", "all").lower()
    if protocol_name.isdigit() and int(protocol_name) <= 255:
        protocol: int | None = int(protocol_name) or None
    elif protocol_name in _PROTOCOLS:
        protocol = _PROTOCOLS[protocol_name]
    else:
        raise ValueError(f"unknown protocol {protocol_name!r}")
    match = options.get("-m")
    if match is not None and (match not in ("tcp", "udp") or _PROTOCOLS[match] != protocol):
        raise ValueError(f"match -m {match} is not modelled (only -m tcp/udp with the same -p)")
    ports = {key: _port_range(options[key]) for key in ("--sport", "--dport") if key in options}
    if ports and protocol not in (6, 17):
        raise ValueError("--sport/--dport need -p tcp or -p udp")
    erspan = {key: _address(options[key]) for key in ("--src-ip", "--dst-ip") if key in options}
    if target == "ERSPAN" and len(erspan) != 2:
        raise ValueError("ERSPAN needs --src-ip and --dst-ip")
    if target != "ERSPAN" and erspan:
        raise ValueError("--src-ip/--dst-ip belong to the ERSPAN target")
    return ParsedRule(
        family=family,
        chain=chain,
        target=target,
        line=line,
        in_interface=options.get("-i"),
        out_interface=options.get("-o"),
        source=_network(options["-s"], family) if "-s" in options else None,
        destination=_network(options["-d"], family) if "-d" in options else None,
        protocol=protocol,
        sport=ports.get("--sport"),
        dport=ports.get("--dport"),
        erspan_src=erspan.get("--src-ip"),
        erspan_dst=erspan.get("--dst-ip"),
    )


def parse_acl(lines: Sequence[str]) -> list[ParsedRule]:
    """Parse an ACL's lines; a ``RuleError`` names the first line (1-based) that is refused."""
    family = 4
    rules = []
    for number, raw in enumerate(lines, 1):
        if not isinstance(raw, str):
            raise RuleError("an ACL line must be a string", repr(raw), number)
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if line not in _SECTIONS:
                raise RuleError(
                    f"section {line} is not modelled (one of {', '.join(_SECTIONS)})", raw, number
                )
            family = _SECTIONS[line]
            continue
        try:
            rules.append(parse_rule(line, family))
        except ValueError as exc:
            raise RuleError(str(exc), raw, number) from None
    return rules
