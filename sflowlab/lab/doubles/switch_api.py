"""The switch ACL REST API double: Cumulus Linux's ``acl_server`` for one or several switches.

Mirrors pphaal/acl_server ("REST API for Cumulus Linux ACLs", the API the ERSPAN and DDoS
examples drive): ``PUT /acl/{name}`` with a JSON list of policy lines answers 202 at once and
the change is committed later (``cl-acltool -i`` batching every pending change; here after
``apply_delay_s`` on the injected scheduler); ``GET /acl/{name}`` returns the lines (404 when
absent), ``DELETE /acl/{name}`` answers 204 (absent or not), ``GET /acl/`` lists the names,
``DELETE /acl/`` removes them all, ``GET /acl/lasterror`` returns the last commit error (204
when none) and answers carry ``Warning: 199 - "check lasterror"`` while there is one. Names are
``[a-z0-9_]+``; a PUT needs ``Content-Type: application/json`` (else 406).

Differences, on purpose: the lines are parsed when PUT (``iptables.parse_acl``): a line
outside the modelled subset is refused with 400 and a message naming it, where the real
server accepts anything and reports cl-acltool's complaint in lasterror; what lasterror holds
here is a target that refused to install rules. ``GET /acl/{name}`` adds the header
``X-Acl-State: pending | applied | failed``.

Committed ACLs go to an ``AclTarget``: ``apply(switch, rule_id, rules)`` installs or replaces
the rules of ACL ``rule_id`` on the switch, ``withdraw(switch, rule_id)`` removes them.
One server serves several switches under ``/switches/{name or agent address}/acl/...``
(``/acl/...`` alone when it serves one); ``acl_urls()`` maps each switch's sFlow agent address
to its base URL, so a controller that saw traffic from agent A PUTs to ``acl_urls()[A] +
"/acl/" + id``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sflowlab.http import (
    HttpError,
    HttpServer,
    Request,
    Response,
    Router,
    ServedApi,
    json_error,
    json_response,
)
from sflowlab.lab.doubles.acl_rules import ParsedRule, RuleError, parse_acl
from sflowlab.lab.doubles.scheduler import Scheduler

_log = logging.getLogger(__name__)

__all__ = ["AclSwitch", "AclTarget", "SwitchApi"]

_ACL_NAME = re.compile(r"[a-z0-9_]+")
_NAME_RULE = "ACL names are [a-z0-9_]+ (and not 'lasterror'): {acl!r}"


class AclTarget(Protocol):
    """Where committed ACLs go (the simulated fabric, a recorder, a log)."""

    def apply(self, switch: str, rule_id: str, rules: list[ParsedRule]) -> None: ...

    def withdraw(self, switch: str, rule_id: str) -> None: ...


@dataclass(frozen=True)
class _Acl:
    lines: list[str]
    rules: list[ParsedRule]


class AclSwitch:
    """One switch's ACL daemon: ACLs as written, and what has been committed to ``target``."""

    def __init__(
        self,
        name: str,
        agent: str,
        scheduler: Scheduler,
        target: AclTarget,
        apply_delay_s: float = 0.5,
    ) -> None:
        self.name, self.agent = name, agent
        self.scheduler, self.target, self.apply_delay_s = scheduler, target, apply_delay_s
        self.last_error: dict[str, Any] | None = None
        self._lock = threading.RLock()
        self._acls: dict[str, _Acl] = {}
        self._installed: dict[str, list[ParsedRule]] = {}
        self._failed: set[str] = set()
        self._commit_timer: Any = None

    @staticmethod
    def valid_name(acl: str) -> bool:
        return bool(_ACL_NAME.fullmatch(acl)) and acl != "lasterror"

    def put(self, acl: str, lines: Any) -> None:
        """Write an ACL (validated now, committed later); ``RuleError`` names a refused line."""
        if not self.valid_name(acl):
            raise ValueError(_NAME_RULE.format(acl=acl))
        if not isinstance(lines, list):
            raise RuleError("an ACL is a JSON list of lines", repr(lines))
        rules = parse_acl(lines)
        with self._lock:
            if acl in self._acls and self._acls[acl].lines == lines:
                return  # unchanged: acl_server does not recommit
            self._acls[acl] = _Acl(list(lines), rules)
            self._failed.discard(acl)
            self._request_commit()

    def get(self, acl: str) -> list[str] | None:
        with self._lock:
            entry = self._acls.get(acl)
            return None if entry is None else list(entry.lines)

    def delete(self, acl: str) -> None:
        with self._lock:
            if self._acls.pop(acl, None) is not None:
                self._request_commit()

    def delete_all(self) -> None:
        with self._lock:
            self._acls.clear()
            self._request_commit()

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._acls)

    def state(self, acl: str) -> str | None:
        """``applied`` once committed, ``failed`` when the target refused it, else ``pending``."""
        with self._lock:
            if acl not in self._acls:
                return None
            if acl in self._failed:
                return "failed"
            return "applied" if self._installed.get(acl) == self._acls[acl].rules else "pending"

    def installed(self) -> dict[str, list[ParsedRule]]:
        """What the switch is enforcing now, by ACL name (a refused new version leaves the
        previous one in force)."""
        with self._lock:
            return {name: list(rules) for name, rules in self._installed.items()}

    def _request_commit(self) -> None:
        if self._commit_timer is None:
            self._commit_timer = self.scheduler.call_later(self.apply_delay_s, self._commit)

    def _commit(self, now: float) -> None:
        """Bring the target to the written ACLs (like ``cl-acltool -i``): one batch per call."""
        with self._lock:
            self._commit_timer = None
            errors = []
            for name in sorted(set(self._installed) - set(self._acls)):
                try:
                    self.target.withdraw(self.name, name)
                except Exception as exc:
                    errors.append(f"{name}: withdraw failed: {exc}")
                    _log.warning("switch %s: withdrawing ACL %s failed: %s", self.name, name, exc)
                del self._installed[name]
                self._failed.discard(name)
            for name, acl in sorted(self._acls.items()):
                if self._installed.get(name) == acl.rules and name not in self._failed:
                    continue
                try:
                    self.target.apply(self.name, name, acl.rules)
                except Exception as exc:
                    errors.append(f"{name}: {exc}")
                    _log.warning("switch %s: applying ACL %s failed: %s", self.name, name, exc)
                    self._failed.add(name)  # like cl-acltool, the previous version stays
                else:
                    self._failed.discard(name)
                    self._installed[name] = acl.rules
            self.last_error = {"returncode": 1, "lines": errors} if errors else None


class SwitchApi(ServedApi):
    """Serves the ACL API of ``switches`` on ``host:port`` (0: a free port)."""

    def __init__(
        self, switches: Sequence[AclSwitch], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if not switches:
            raise ValueError("SwitchApi needs at least one switch")
        self.switches = list(switches)
        router = Router(json_error("message"), not_found="page not found")
        prefix = r"(?:/switches/(?P<switch>[^/]+))?/acl/"
        router.add("GET", "/switches/?", self._list_switches)
        router.add("GET", prefix, self._list)
        router.add("DELETE", prefix, self._delete_all)
        router.add("GET", prefix + "lasterror", self._last_error)
        router.add("GET", prefix + "(?P<acl>[^/]+)", self._get)
        router.add("PUT", prefix + "(?P<acl>[^/]+)", self._put)
        router.add("DELETE", prefix + "(?P<acl>[^/]+)", self._delete)
        self._server = HttpServer(router, host, port)

    def url_for(self, switch: AclSwitch) -> str:
        """The base URL of one switch's API (append ``/acl/...``)."""
        return self.url if len(self.switches) == 1 else f"{self.url}/switches/{switch.name}"

    def acl_urls(self) -> dict[str, str]:
        """sFlow agent address -> that switch's base URL."""
        return {s.agent: self.url_for(s) for s in self.switches}

    # -- handlers

    def _switch(self, request: Request) -> AclSwitch:
        ref = request.params.get("switch")
        if ref is None:
            if len(self.switches) == 1:
                return self.switches[0]
            raise HttpError(
                404, "this server serves several switches: use /switches/{name}/acl/..."
            )
        for switch in self.switches:
            if ref in (switch.name, switch.agent):
                return switch
        raise HttpError(404, f"no switch {ref!r}")

    @staticmethod
    def _acl_name(request: Request) -> str:
        acl = request.params["acl"]
        if not AclSwitch.valid_name(acl):
            raise HttpError(404, _NAME_RULE.format(acl=acl))
        return acl

    def _headers(self, switch: AclSwitch) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if switch.last_error is not None:
            headers["Warning"] = '199 - "check lasterror"'
        return headers

    def _list_switches(self, request: Request) -> Response:
        return json_response(
            [{"name": s.name, "agent": s.agent, "url": self.url_for(s)} for s in self.switches]
        )

    def _list(self, request: Request) -> Response:
        switch = self._switch(request)
        return json_response(switch.names(), headers=self._headers(switch))

    def _get(self, request: Request) -> Response:
        switch = self._switch(request)
        acl = request.params["acl"]
        lines = switch.get(acl)
        if lines is None:
            raise HttpError(404, f"no ACL {acl!r} on {switch.name}")
        headers = {**self._headers(switch), "X-Acl-State": str(switch.state(acl))}
        return json_response(lines, headers=headers)

    def _put(self, request: Request) -> Response:
        switch = self._switch(request)
        acl = self._acl_name(request)
        if "application/json" not in (request.headers.get("Content-Type") or ""):
            raise HttpError(406, "an ACL is sent as Content-Type: application/json")
        try:
            lines = json.loads(request.body)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise HttpError(400, f"ACL {acl}: invalid JSON: {exc}") from exc
        try:
            switch.put(acl, lines)
        except RuleError as exc:
            raise HttpError(400, f"ACL {acl}: {exc}") from exc
        return Response(202, headers={**self._headers(switch), "Content-Type": "application/json"})

    def _delete(self, request: Request) -> Response:
        switch = self._switch(request)
        switch.delete(self._acl_name(request))
        return Response(204, headers=self._headers(switch))

    def _delete_all(self, request: Request) -> Response:
        switch = self._switch(request)
        switch.delete_all()
        return Response(204, headers=self._headers(switch))

    def _last_error(self, request: Request) -> Response:
        switch = self._switch(request)
        if switch.last_error is None:
            return Response(204)
        return json_response(switch.last_error)
