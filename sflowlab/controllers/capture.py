"""Triggered remote packet capture: local hosts talking to blocklisted addresses, mirrored by
filtered ERSPAN on the switch that saw them (the seed's ``emerging.js``, made production-ready).

What the seed left out, and how it is done here:

- Blocklists (``blocklists``: paths or URLs, see ``blocklist.py``) are loaded into group
  ``group`` at start and every ``refresh_s`` (every ``retry_s`` while a source fails; a failed
  load keeps the previous entries). Local networks are group ``local_group``.
- Two logged flows keyed ``local,remote`` (IPv4 or IPv6 through ``or:ipsource:ip6source``):
  ``<flow>_out`` for local sources sending to listed destinations, ``<flow>_in`` for listed
  sources sending to local destinations, so both directions map to the same pair. They log
  every ``report_s`` while active (``activeTimeout``) and at their end, and each record's
  ``end`` is the time of the flow's last sample: the pair's last-seen time, from any switch.
- One session per (local, remote) pair, however many switches or records report it: one ACL
  ``<acl_prefix><n>`` with the two ERSPAN rules (both directions), ``[iptables]`` or
  ``[ip6tables]``, PUT on the first switch that reported the pair and has an ACL API
  (``switches``/``switch_url``), mirroring to ``analyzer`` from the switch's agent address.
- A session ends (``DELETE``) when the pair has not been seen for ``idle_s`` (a pair taken off
  the blocklist stops matching the flows, so its session ends that way too) or has been
  captured for ``max_duration_s``; a pair ended after its maximum duration (or deleted over
  HTTP) is not captured again until its traffic has been quiet for ``idle_s``.
- At most ``max_sessions`` sessions (the capture network is scarce): further pairs wait in a
  queue of at most ``max_queue`` (first come, first served; a pair quiet for ``idle_s`` leaves
  the queue); beyond that they are refused and counted.
- ACL calls that fail are retried every ``retry_s`` (``AclBook``); a session whose ACL is not
  yet acknowledged shows as ``installing``, one whose removal failed as ``removing`` (it still
  counts against the limit).
- Sessions, ACLs and the id counter are kept in the controller store; on a restart each
  remembered ACL is looked up on its switch: present, the session is kept (its idle timer
  restarts); gone, the session is dropped.

HTTP (``/app/<name>/...``): ``GET`` (or ``GET sessions``) lists sessions (pair, switch, ACL id,
since, last seen, state), the queue and statistics; ``GET stats`` the statistics alone;
``DELETE sessions/<id>`` ends one session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sflowlab.collector.api import ControllerApi, FlowRecord, HttpError, HttpRequest

from .acl_client import AclBook, AclClient, SwitchDirectory, require_positive, saved_items
from .blocklist import Blocklists

__all__ = ["Session", "TriggeredCapture"]

DEFAULT_LOCAL = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
_SRC, _DST = "or:ipsource:ip6source", "or:ipdestination:ip6destination"


@dataclass
class Session:
    """One capture: a (local, remote) pair mirrored by ACL ``id`` on switch ``agent``."""

    id: str
    local: str
    remote: str
    agent: str
    url: str
    since: float
    last_seen: float
    closing: str = ""  # why it is being removed ("" while wanted)

    def to_json(self, state: str) -> dict[str, Any]:
        return {"id": self.id, "local": self.local, "remote": self.remote, "agent": self.agent,
                "since": self.since, "lastSeen": self.last_seen, "state": state,
                "closing": self.closing}


@dataclass
class _Waiting:
    """A pair waiting for a free session."""

    agent: str
    url: str
    first_seen: float
    last_seen: float


@dataclass
class CaptureStats:
    records: int = 0
    sessions_opened: int = 0
    sessions_closed: dict[str, int] = field(default_factory=dict)  # by reason
    queued: int = 0
    refused: int = 0
    left_queue: int = 0  # quiet for idle_s while waiting
    unknown_switch: int = 0  # records from agents without an ACL API

    def closed(self, reason: str) -> None:
        self.sessions_closed[reason] = self.sessions_closed.get(reason, 0) + 1


class TriggeredCapture:
    """The controller; parameters as described in the module docstring."""

    def __init__(self, analyzer: str, blocklists: list[str] | str,
                 switches: Mapping[str, str] | None = None, switch_url: str | None = None,
                 local: list[str] | None = None, group: str = "blocklist",
                 local_group: str = "local", flow: str = "capture", acl_prefix: str = "emrg",
                 idle_s: float = 60.0, max_duration_s: float = 600.0, max_sessions: int = 10,
                 max_queue: int = 100, refresh_s: float = 3600.0, retry_s: float = 10.0,
                 report_s: float = 2.0, flow_t: float = 2.0, http_timeout_s: float = 5.0,
                 client: AclClient | None = None) -> None:
        require_positive(idle_s=idle_s, max_duration_s=max_duration_s, refresh_s=refresh_s,
                         retry_s=retry_s)
        if max_sessions < 1 or max_queue < 0:
            raise ValueError("max_sessions must be >= 1 and max_queue >= 0")
        self.analyzer = analyzer
        self.sources = [blocklists] if isinstance(blocklists, str) else list(blocklists)
        self.directory = SwitchDirectory.from_params(switches, switch_url)
        self.local = list(DEFAULT_LOCAL if local is None else local)
        self.group, self.local_group, self.flow = group, local_group, flow
        self.idle_s, self.max_duration_s = idle_s, max_duration_s
        self.max_sessions, self.max_queue = max_sessions, max_queue
        self.refresh_s, self.retry_s = refresh_s, retry_s
        self.report_s, self.flow_t = report_s, flow_t
        self.book = AclBook(client or AclClient(http_timeout_s), retry_s, acl_prefix)
        self.sessions: dict[tuple[str, str], Session] = {}
        self.queue: dict[tuple[str, str], _Waiting] = {}
        self.dismissed: dict[tuple[str, str], float] = {}  # pair -> last seen
        self.stats = CaptureStats()
        self._next_refresh = 0.0
        self._group_set = False

    # ------------------------------------------------------------------ start and persistence

    def start(self, api: ControllerApi) -> None:
        self.api = api
        self.blocklists = Blocklists(self.sources, api.log)
        api.set_group(self.local_group, self.local)
        self._refresh(api.now())
        local, listed = self.local_group, self.group
        common = {"value": "frames", "t": self.flow_t, "log": True,
                  "activeTimeout": self.report_s}
        api.set_flow(f"{self.flow}_out", {
            **common, "keys": f"{_SRC},{_DST}",
            "filter": f"group:[{_SRC}]:{local}={local}&group:[{_DST}]:{listed}={listed}"})
        api.set_flow(f"{self.flow}_in", {
            **common, "keys": f"{_DST},{_SRC}",
            "filter": f"group:[{_SRC}]:{listed}={listed}&group:[{_DST}]:{local}={local}"})
        self._restore(api.now())
        api.set_flow_handler(self.on_flow, [f"{self.flow}_out", f"{self.flow}_in"])
        api.set_interval_handler(self.on_interval, 1.0)
        api.set_http_handler(self.on_http)

    def _restore(self, now: float) -> None:
        saved = self.api.store_get("state") or {}
        self.book.load_json(saved)
        for session in saved_items(saved, "sessions", Session):
            self.sessions[(session.local, session.remote)] = session
        gone = {r.name for r in self.book.reconcile(now)}
        for pair, session in list(self.sessions.items()):
            if session.id in gone or self.book.get(session.agent, session.id) is None:
                self.api.log.info("event=capture_dropped_on_restart id=%s local=%s remote=%s",
                                  session.id, session.local, session.remote)
                del self.sessions[pair]
            else:
                session.last_seen = max(session.last_seen, now)
        self._save()

    def _save(self) -> None:
        self.api.store_set("state", self.book.to_json(sessions=self.sessions.values()))

    # ------------------------------------------------------------------ blocklists

    def _refresh(self, now: float) -> None:
        failures = sum(s.failures for s in self.blocklists.sources)
        if self.blocklists.refresh() or not self._group_set:
            self.api.set_group(self.group, self.blocklists.cidrs())
            self._group_set = True
        failed = sum(s.failures for s in self.blocklists.sources) > failures
        self._next_refresh = now + (min(self.retry_s, self.refresh_s) if failed
                                    else self.refresh_s)

    # ------------------------------------------------------------------ handlers

    def on_flow(self, record: FlowRecord) -> None:
        """A logged record of either flow: the pair is active (seen until ``end``)."""
        self.stats.records += 1
        local, _, remote = record.flowKeys.partition(",")
        pair = (local, remote)
        seen = record.end / 1000.0
        session = self.sessions.get(pair)
        if session is not None:
            session.last_seen = max(session.last_seen, seen)
            return
        if pair in self.dismissed:
            self.dismissed[pair] = max(self.dismissed[pair], seen)
            return
        waiting = self.queue.get(pair)
        if waiting is not None:
            waiting.last_seen = max(waiting.last_seen, seen)
            return
        agent = record.agent
        url = self.directory.url_for(agent)
        if url is None:
            self.stats.unknown_switch += 1
            return
        now = self.api.now()
        if len(self.sessions) < self.max_sessions:
            self._open(pair, agent, url, seen, now)
        elif len(self.queue) < self.max_queue:
            self.queue[pair] = _Waiting(agent, url, seen, seen)
            self.stats.queued += 1
            self.api.log.info("event=capture_queued local=%s remote=%s agent=%s", local, remote,
                              agent)
        else:
            self.stats.refused += 1
            self.api.log.warning("event=capture_refused local=%s remote=%s sessions=%d queue=%d",
                                 local, remote, len(self.sessions), len(self.queue))

    def _open(self, pair: tuple[str, str], agent: str, url: str, seen: float,
              now: float) -> None:
        local, remote = pair
        acl_id = self.book.new_name()
        self.sessions[pair] = Session(acl_id, local, remote, agent, url, now, seen)
        self.stats.sessions_opened += 1
        ok = self.book.install(agent, url, acl_id, self.acl(local, remote, agent), now)
        self.api.log.warning("event=capture_started id=%s local=%s remote=%s agent=%s%s",
                             acl_id, local, remote, agent, "" if ok else " acl=retrying")
        self._save()

    def acl(self, local: str, remote: str, agent: str) -> list[str]:
        """The ACL lines capturing both directions between ``local`` and ``remote``."""
        rule = "-A FORWARD --in-interface swp+ -s {} -d {} -j ERSPAN --src-ip {} --dst-ip {}"
        return ["[ip6tables]" if ":" in local else "[iptables]",
                f"# triggered capture {local} <-> {remote}",
                rule.format(local, remote, agent, self.analyzer),
                rule.format(remote, local, agent, self.analyzer)]

    def on_interval(self, now: float) -> None:
        if now >= self._next_refresh:
            self._refresh(now)
        changed = self.book.pending() > 0
        self.book.retry(now)
        for pair, session in list(self.sessions.items()):
            if session.closing:
                if self.book.get(session.agent, session.id) is None:
                    del self.sessions[pair]  # a retried removal was acknowledged
                    changed = True
            elif now - session.last_seen > self.idle_s:
                self._close(pair, "idle", now)
                changed = True
            elif now - session.since >= self.max_duration_s:
                self._close(pair, "max_duration", now, dismiss=True)
                changed = True
        for pair, last in list(self.dismissed.items()):
            if now - last > self.idle_s:
                del self.dismissed[pair]
        for pair, waiting in list(self.queue.items()):
            if now - waiting.last_seen > self.idle_s:
                del self.queue[pair]
                self.stats.left_queue += 1
            elif len(self.sessions) < self.max_sessions:
                del self.queue[pair]
                self._open(pair, waiting.agent, waiting.url, waiting.last_seen, now)
        if changed:
            self._save()

    def _close(self, pair: tuple[str, str], reason: str, now: float,
               dismiss: bool = False) -> None:
        session = self.sessions[pair]
        session.closing = reason
        self.stats.closed(reason)
        if dismiss:
            self.dismissed[pair] = session.last_seen
        ok = self.book.remove(session.agent, session.id, now)
        self.api.log.warning("event=capture_ended id=%s local=%s remote=%s reason=%s%s",
                             session.id, session.local, session.remote, reason,
                             "" if ok else " acl=retrying")
        if ok:
            del self.sessions[pair]

    # ------------------------------------------------------------------ HTTP

    def status(self) -> dict[str, Any]:
        return {
            "sessions": [s.to_json(self.book.state_of(s.agent, s.id)) for s in self.sessions.values()],
            "queued": [{"local": p[0], "remote": p[1], "agent": w.agent,
                        "firstSeen": w.first_seen, "lastSeen": w.last_seen}
                       for p, w in self.queue.items()],
            "stats": self.stats_json(),
        }

    def stats_json(self) -> dict[str, Any]:
        return {**asdict(self.stats), "sessions": len(self.sessions),
                "maxSessions": self.max_sessions, **self.book.stats_json(),
                "blocklist": self.blocklists.to_json()}

    def on_http(self, request: HttpRequest) -> Any:
        path = request.path
        if request.method == "GET" and path in ((), ("sessions",)):
            return self.status()
        if request.method == "GET" and path == ("stats",):
            return self.stats_json()
        if request.method == "DELETE" and len(path) == 2 and path[0] == "sessions":
            request.mutating()
            for pair, session in self.sessions.items():
                if session.id == path[1]:
                    if not session.closing:
                        self._close(pair, "deleted", self.api.now(), dismiss=True)
                        self._save()
                    return {"id": path[1], "state": self.book.state_of(session.agent, session.id)}
            raise HttpError(404, f"no capture session {path[1]!r}")
        raise HttpError(404, "use GET [sessions], GET stats or DELETE sessions/<id>")
