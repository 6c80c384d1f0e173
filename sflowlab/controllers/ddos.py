"""DDoS mitigation: flood detection on traffic to protected addresses, DROP rules on the switches.

Protected addresses and prefixes (``protected``, IPv4 and IPv6) form group ``group``. Each
enabled attack type gets a flow on traffic to that group, keyed by the victim (``or:`` of the
IPv4 and IPv6 destination) and, where the rule can be narrower, a port, plus a ``byFlow``
threshold at its ``trigger`` rate (frames per second, sampling-scaled):

| attack              | flow keys (after the victim) | matches                               | rule            |
|---------------------|------------------------------|---------------------------------------|-----------------|
| ``udp_amplification`` | udpsourceport              | UDP from a reflector port (DNS, NTP..) | ``-p udp --sport P`` |
| ``udp_flood``       | none                         | other UDP                             | ``-p udp``      |
| ``syn_flood``       | tcpdestinationport           | TCP with SYN and without ACK          | ``-p tcp --dport P`` |
| ``icmp_flood``      | none                         | ICMP / ICMPv6                         | ``-p icmp`` (``icmpv6``) |

A threshold event for key K raises one mitigation per (attack, K): ACL ``<acl_prefix><n>``
(``-A FORWARD --in-interface swp+ -d VICTIM ... -j DROP``) PUT on the ``edge`` switches when
configured, else on every switch that saw the attack (the event's agent and each agent with
K among its top flows) and has an ACL API. Switches sample before their ACLs act, so the
flow keeps measuring an attack being dropped; a mitigation is released (``DELETE``) once the
attack's rate has stayed at or below its ``release`` rate for ``hold_s``.

At most ``max_mitigations`` at once: an attack beyond that is refused (counted) and waits
while it stays above its release rate; every second the largest waiting attacks take free
places, or displace a mitigated attack ``PREEMPT_RATIO`` times smaller (counted as
``preempted``; it waits in turn). Sizes are compared on current rates, not on the rate at the
threshold crossing, which is still rising. Failed ACL calls are retried (``AclBook``); state survives a restart (controller store,
checked against the switches). HTTP: ``GET`` (or ``GET mitigations``) lists mitigations,
waiting attacks and statistics; ``DELETE mitigations/<id>`` releases one, and that attack is
not mitigated again until it has stayed below its release rate for ``hold_s`` (an operator's
"this is not an attack").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sflowlab.collector.api import ControllerApi, HttpError, HttpRequest

from .acl_client import AclBook, AclClient, SwitchDirectory, require_positive, saved_items

__all__ = ["ATTACKS", "AttackType", "DdosMitigation", "Mitigation"]

_DST = "or:ipdestination:ip6destination"
AMPLIFICATION_PORTS = (17, 19, 53, 111, 123, 137, 161, 389, 1900, 3702, 11211)
"""UDP source ports of well-known reflectors: QOTD, chargen, DNS, portmap, NTP, NetBIOS,
SNMP, CLDAP, SSDP, WS-Discovery, memcached."""
PREEMPT_RATIO = 1.25  # a waiting attack displaces a mitigated one this many times smaller


@dataclass(frozen=True)
class AttackType:
    """How one kind of flood is measured and dropped; rates in frames per second."""

    name: str
    port_key: str  # flow key after the victim ("" for none)
    filter: str  # what the traffic to a protected address must also match
    protocol: tuple[str, str]  # iptables -p for IPv4, IPv6
    port_option: str  # "--sport" / "--dport" for the port key ("" for none)
    trigger: float
    release: float

    def rule(self, victim: str, port: str) -> str:
        proto = self.protocol[":" in victim]
        ports = f" {self.port_option} {port}" if self.port_option else ""
        return f"-A FORWARD --in-interface swp+ -d {victim} -p {proto}{ports} -j DROP"

    def acl(self, key: str) -> list[str]:
        """The ACL lines that drop this attack for flow key ``key`` (``victim[,port]``)."""
        victim, _, port = key.partition(",")
        return ["[ip6tables]" if ":" in victim else "[iptables]",
                f"# ddos mitigation {self.name} {key}", self.rule(victim, port)]


_PORTS = ",".join(map(str, AMPLIFICATION_PORTS))
ATTACKS = {a.name: a for a in (
    AttackType("udp_amplification", "udpsourceport", f"udpsourceport={_PORTS}", ("udp", "udp"),
               "--sport", 10_000, 5_000),
    AttackType("udp_flood", "", f"udpsourceport!={_PORTS}", ("udp", "udp"), "", 50_000, 25_000),
    AttackType("syn_flood", "tcpdestinationport", "tcpflags~....0..1.", ("tcp", "tcp"),
               "--dport", 20_000, 10_000),
    AttackType("icmp_flood", "", "or:ipprotocol:ip6nexthdr=1,58", ("icmp", "icmpv6"), "",
               10_000, 5_000),
)}


@dataclass
class Mitigation:
    """One mitigated attack: ACL ``id`` dropping (attack, key) on ``agents``."""

    id: str
    attack: str
    key: str
    agents: list[str]
    since: float
    value: float
    peak: float
    below_since: float | None = None
    releasing: str = ""  # why it is being released ("" while wanted)

    def to_json(self, states: dict[str, str]) -> dict[str, Any]:
        victim, _, port = self.key.partition(",")
        return {"id": self.id, "attack": self.attack, "victim": victim,
                "port": int(port) if port else None, "flowKey": self.key,
                "switches": states, "since": self.since, "value": self.value,
                "peak": self.peak, "belowSince": self.below_since, "releasing": self.releasing}


@dataclass
class DdosStats:
    events: int = 0
    raised: int = 0
    released: dict[str, int] = field(default_factory=dict)  # by reason
    refused: int = 0
    preempted: int = 0
    unroutable: int = 0  # attacks seen by no switch with an ACL API


class DdosMitigation:
    """The controller; parameters as described in the module docstring."""

    def __init__(self, protected: list[str], switches: Mapping[str, str] | None = None,
                 switch_url: str | None = None, edge: list[str] | None = None,
                 attacks: Collection[str] | None = None,
                 thresholds: Mapping[str, Mapping[str, float]] | None = None,
                 group: str = "protected", flow: str = "ddos", acl_prefix: str = "ddos",
                 hold_s: float = 30.0, max_mitigations: int = 50, retry_s: float = 10.0,
                 flow_t: float = 2.0, http_timeout_s: float = 5.0,
                 client: AclClient | None = None) -> None:
        require_positive(hold_s=hold_s, retry_s=retry_s)
        if max_mitigations < 1:
            raise ValueError(f"max_mitigations must be >= 1, not {max_mitigations!r}")
        names = list(ATTACKS) if attacks is None else list(attacks)
        unknown = sorted(set(names) - set(ATTACKS) | set(thresholds or {}) - set(ATTACKS))
        if unknown:
            raise ValueError(f"unknown attack type(s) {', '.join(unknown)};"
                             f" known: {', '.join(ATTACKS)}")
        self.attacks: dict[str, AttackType] = {}
        for name in names:
            limits = dict((thresholds or {}).get(name, {}))
            bad = sorted(set(limits) - {"trigger", "release"})
            if bad:
                raise ValueError(f"thresholds.{name}: only 'trigger' and 'release', not {bad}")
            base = ATTACKS[name]
            attack = replace(base, trigger=float(limits.get("trigger", base.trigger)),
                             release=float(limits.get("release", base.release)))
            if not 0 <= attack.release <= attack.trigger:
                raise ValueError(f"thresholds.{name}: need 0 <= release <= trigger")
            self.attacks[f"{flow}_{name}"] = attack
        self.protected = list(protected)
        self.directory = SwitchDirectory.from_params(switches, switch_url)
        self.edge = None if edge is None else list(edge)
        self.group = group
        self.hold_s, self.max_mitigations, self.flow_t = hold_s, max_mitigations, flow_t
        self.book = AclBook(client or AclClient(http_timeout_s), retry_s, acl_prefix)
        self.mitigations: dict[tuple[str, str], Mitigation] = {}  # (flow, key)
        self.waiting: dict[tuple[str, str], float] = {}  # refused attacks -> latest value
        self.dismissed: dict[tuple[str, str], float] = {}  # deleted over HTTP -> last above
        self.stats = DdosStats()

    # ------------------------------------------------------------------ start and persistence

    def start(self, api: ControllerApi) -> None:
        self.api = api
        api.set_group(self.group, self.protected)
        g = self.group
        for flow, attack in self.attacks.items():
            keys = f"{_DST},{attack.port_key}" if attack.port_key else _DST
            api.set_flow(flow, {"keys": keys, "value": "frames", "t": self.flow_t, "n": 20,
                                "filter": f"group:[{_DST}]:{g}={g}&{attack.filter}"})
            api.set_threshold(flow, {"metric": flow, "value": attack.trigger, "byFlow": True,
                                     "timeout": self.hold_s})
        self._restore(api.now())
        api.set_event_handler(self.on_event, list(self.attacks))
        api.set_interval_handler(self.on_interval, 1.0)
        api.set_http_handler(self.on_http)

    def _restore(self, now: float) -> None:
        saved = self.api.store_get("state") or {}
        self.book.load_json(saved)
        self.book.reconcile(now)
        for m in saved_items(saved, "mitigations", Mitigation):
            m.agents = [a for a in m.agents if self.book.get(a, m.id) is not None]
            if m.agents and m.attack in self.attacks:
                self.mitigations[(m.attack, m.key)] = m
        self._save()

    def _save(self) -> None:
        self.api.store_set("state", self.book.to_json(mitigations=self.mitigations.values()))

    # ------------------------------------------------------------------ events

    def on_event(self, event: Any) -> None:
        """A byFlow threshold fired: mitigate (attack, flowKey) now if there is room, else
        count a refusal and let it wait (``on_interval`` may preempt a smaller one)."""
        self.stats.events += 1
        ident = (str(event.thresholdID), str(event.flowKey))
        value = float(event.value)
        current = self.mitigations.get(ident)
        if current is not None:
            current.value, current.peak = value, max(current.peak, value)
            return
        if ident in self.dismissed:
            return
        if len(self.mitigations) < self.max_mitigations:
            self._raise(ident, value, [str(event.agent)], self.api.now())
        elif ident not in self.waiting:
            self.stats.refused += 1
            self.waiting[ident] = value
            self.api.log.warning("event=ddos_refused attack=%s key=%s value=%.0f"
                                 " mitigations=%d", self.attacks[ident[0]].name, ident[1], value,
                                 len(self.mitigations))

    def _seen_by(self, flow: str, key: str) -> set[str]:
        """Agents with ``key`` among their top flows of ``flow``, and the one seeing it most."""
        agents = {row["agent"] for row in self.api.dump("ALL", flow)
                  if any(top["key"] == key for top in row.get("topKeys", []))}
        agents.update(row["agent"] for row in self.api.active_flows("ALL", flow, max_flows=10_000)
                      if row["key"] == key)
        return agents

    def _raise(self, ident: tuple[str, str], value: float, agents: list[str],
               now: float) -> None:
        flow, key = ident
        if self.edge is not None:
            agents = self.edge
        else:
            agents = sorted(set(agents) | self._seen_by(flow, key))
        targets = [(a, url) for a in agents if (url := self.directory.url_for(a)) is not None]
        self.waiting.pop(ident, None)
        if not targets:
            self.stats.unroutable += 1
            self.api.log.warning("event=ddos_unroutable attack=%s key=%s agents=%s", flow, key,
                                 ",".join(agents))
            return
        acl_id = self.book.new_name()
        attack = self.attacks[flow]
        lines = attack.acl(key)
        for agent, url in targets:
            self.book.install(agent, url, acl_id, lines, now)
        self.mitigations[ident] = Mitigation(acl_id, flow, key, [a for a, _ in targets], now,
                                             value, value)
        self.stats.raised += 1
        self.api.log.warning("event=ddos_mitigated id=%s attack=%s key=%s value=%.0f"
                             " switches=%s", acl_id, attack.name, key, value,
                             ",".join(a for a, _ in targets))
        self._save()

    def _release(self, m: Mitigation, reason: str, now: float) -> None:
        m.releasing = reason
        self.stats.released[reason] = self.stats.released.get(reason, 0) + 1
        for agent in m.agents:
            self.book.remove(agent, m.id, now)
        self.api.log.warning("event=ddos_released id=%s attack=%s key=%s reason=%s", m.id,
                             self.attacks[m.attack].name, m.key, reason)
        self._forget_if_removed(m)
        self._save()

    def _forget_if_removed(self, m: Mitigation) -> None:
        if all(self.book.get(a, m.id) is None for a in m.agents):
            del self.mitigations[(m.attack, m.key)]

    # ------------------------------------------------------------------ interval

    def on_interval(self, now: float) -> None:
        retried = self.book.pending() > 0
        self.book.retry(now)
        values = {flow: {row["key"]: float(row["value"])
                         for row in self.api.active_flows("ALL", flow, max_flows=10_000)}
                  for flow in self.attacks}
        for m in list(self.mitigations.values()):
            if m.releasing:
                self._forget_if_removed(m)
                continue
            m.value = values[m.attack].get(m.key, 0.0)
            m.peak = max(m.peak, m.value)
            if m.value > self.attacks[m.attack].release:
                m.below_since = None
            elif m.below_since is None:
                m.below_since = now
            elif now - m.below_since >= self.hold_s:
                self._release(m, "ended", now)
        for ident in list(self.waiting):
            value = self.waiting[ident] = values[ident[0]].get(ident[1], 0.0)
            if value <= self.attacks[ident[0]].release:
                del self.waiting[ident]
        for ident, last_above in list(self.dismissed.items()):
            if values[ident[0]].get(ident[1], 0.0) > self.attacks[ident[0]].release:
                self.dismissed[ident] = now
            elif now - last_above >= self.hold_s:
                del self.dismissed[ident]
        self._admit_waiting(now)
        if retried:
            self._save()

    def _admit_waiting(self, now: float) -> None:
        """Largest waiting attacks first: into a free place, or in place of a mitigated
        attack ``PREEMPT_RATIO`` times smaller."""
        for ident, value in sorted(self.waiting.items(), key=lambda kv: -kv[1]):
            if ident in self.mitigations:
                continue  # preempted, its removal still being retried
            if len(self.mitigations) >= self.max_mitigations:
                smallest = min((m for m in self.mitigations.values() if not m.releasing),
                               key=lambda m: m.value, default=None)
                if smallest is None or value <= smallest.value * PREEMPT_RATIO:
                    return
                self.stats.preempted += 1
                self._release(smallest, "preempted", now)
                self.waiting[(smallest.attack, smallest.key)] = smallest.value
                if len(self.mitigations) >= self.max_mitigations:
                    return  # its removal is being retried: the place is not free yet
            self._raise(ident, value, [], now)

    # ------------------------------------------------------------------ HTTP

    def status(self) -> dict[str, Any]:
        return {
            "mitigations": [m.to_json({a: self.book.state_of(a, m.id) for a in m.agents})
                            for m in self.mitigations.values()],
            "waiting": [{"attack": f, "flowKey": k, "value": v}
                        for (f, k), v in self.waiting.items()],
            "stats": {**asdict(self.stats), "mitigations": len(self.mitigations),
                      "maxMitigations": self.max_mitigations, **self.book.stats_json()},
        }

    def on_http(self, request: HttpRequest) -> Any:
        path = request.path
        if request.method == "GET" and path in ((), ("mitigations",)):
            return self.status()
        if request.method == "DELETE" and len(path) == 2 and path[0] == "mitigations":
            request.mutating()
            for m in list(self.mitigations.values()):
                if m.id == path[1]:
                    if not m.releasing:
                        self.dismissed[(m.attack, m.key)] = self.api.now()
                        self._release(m, "deleted", self.api.now())
                    return {"id": m.id, "released": (m.attack, m.key) not in self.mitigations}
            raise HttpError(404, f"no mitigation {path[1]!r}")
        raise HttpError(404, "use GET [mitigations] or DELETE mitigations/<id>")
