"""The switch ACL REST client (Cumulus ``acl_server``) and the ACL bookkeeping controllers share.

``AclClient`` speaks the API the ERSPAN and DDoS examples drive, with the stdlib only:
``PUT {base}/acl/{name}`` with a JSON list of iptables policy lines, ``GET`` it back (None when
absent), ``DELETE`` it, ``GET {base}/acl/`` for the names. Every failure (refused connection,
timeout, a 4xx/5xx answer) becomes one ``AclError`` carrying the URL and the reason.

``SwitchDirectory`` maps the sFlow agent that saw traffic to its switch's API base URL: a
configured ``{agent: url}`` table first, else a URL template such as
``"http://{agent}:8080"``; None for a switch it cannot reach.

``AclBook`` remembers every ACL a controller wants on a switch and whether the switch has
acknowledged it: ``install`` and ``remove`` call the API at once and, on failure, keep the
ACL in a state (``installing``/``removing``) that ``retry`` tries again after ``retry_s``, so
a failed call never leaves an ACL the controller has lost track of. It names new ACLs
``<prefix><n>`` (``new_name``); ``reconcile`` after a restart asks each switch which remembered
ACLs still exist. The book and its name counter round-trip through JSON (``to_json`` /
``load_json``) for the controller's persistent store; ``saved_items`` reads a controller's own
records back from it. ``require_positive`` checks the controllers' durations.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

__all__ = ["AclBook", "AclClient", "AclError", "AclRecord", "SwitchDirectory",
           "require_positive", "saved_items"]

_T = TypeVar("_T")

_PREFIX = re.compile(r"[a-z][a-z0-9_]*")  # acl_server takes names of [a-z0-9_]+


def require_positive(**values: float) -> None:
    """A ``ValueError`` naming the first of ``values`` that is not > 0."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, not {value!r}")


def saved_items(saved: Any, key: str, cls: Callable[..., _T]) -> list[_T]:
    """The ``cls`` objects listed as keyword mappings under ``key`` of a saved state
    (malformed entries are skipped)."""
    items = saved.get(key) if isinstance(saved, dict) else None
    out = []
    for item in items if isinstance(items, list) else []:
        try:
            out.append(cls(**item))
        except TypeError:
            continue
    return out


class AclError(Exception):
    """An ACL API call failed: ``url``, ``status`` (None when no answer came) and the reason."""

    def __init__(self, method: str, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{method} {url}: {reason}")
        self.url, self.status, self.reason = url, status, reason


class AclClient:
    """Synchronous calls to switch ACL APIs (``base`` is a switch's URL, without ``/acl``)."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s

    def put(self, base: str, name: str, lines: list[str]) -> None:
        self._call("PUT", f"{base}/acl/{name}", json.dumps(lines).encode())

    def get(self, base: str, name: str) -> list[str] | None:
        try:
            body = self._call("GET", f"{base}/acl/{name}")
        except AclError as e:
            if e.status == 404:
                return None
            raise
        return _json_list(body, f"{base}/acl/{name}")

    def delete(self, base: str, name: str) -> None:
        self._call("DELETE", f"{base}/acl/{name}")

    def names(self, base: str) -> list[str]:
        return _json_list(self._call("GET", f"{base}/acl/"), f"{base}/acl/")

    def _call(self, method: str, url: str, body: bytes | None = None) -> bytes:
        if not url.startswith(("http://", "https://")):
            raise AclError(method, url, "an ACL API URL must be http:// or https://")
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, body, headers, method=method)  # noqa: S310 (checked)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return bytes(response.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace").strip()[:200]
            raise AclError(method, url, f"HTTP {e.code} {detail}".strip(), e.code) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise AclError(method, url, f"no answer: {reason}") from None


def _json_list(body: bytes, url: str) -> list[str]:
    try:
        value = json.loads(body)
    except ValueError as e:
        raise AclError("GET", url, f"not JSON: {e}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AclError("GET", url, "expected a JSON list of strings")
    return value


@dataclass(frozen=True)
class SwitchDirectory:
    """sFlow agent address -> its switch's ACL API base URL (None: not a switch we drive)."""

    switches: Mapping[str, str]
    template: str | None = None

    @classmethod
    def from_params(cls, switches: Mapping[str, str] | None, template: str | None
                    ) -> SwitchDirectory:
        if not switches and not template:
            raise ValueError("give 'switches' ({agent address: ACL API URL}) or 'switch_url'"
                             " (a template such as 'http://{agent}:8080')")
        if template is not None and "{agent}" not in template:
            raise ValueError(f"switch_url {template!r} must contain '{{agent}}'")
        return cls({a: u.rstrip("/") for a, u in (switches or {}).items()}, template)

    def url_for(self, agent: str) -> str | None:
        url = self.switches.get(agent)
        if url is None and self.template is not None:
            host = f"[{agent}]" if ":" in agent else agent
            url = self.template.format(agent=host).rstrip("/")
        return url


@dataclass
class AclRecord:
    """One ACL the controller wants on one switch, and how far the switch has got."""

    agent: str
    url: str
    name: str
    lines: list[str]
    state: str = "installing"  # installing | installed | removing
    attempts: int = 0
    error: str = ""
    next_try: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AclBook:
    """Wanted ACLs by ``(agent, name)``, with retries; see the module docstring."""

    def __init__(self, client: AclClient, retry_s: float = 10.0, prefix: str = "acl") -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ValueError(f"ACL name prefix {prefix!r}: ACL names are [a-z0-9_]+")
        self.client, self.retry_s, self.prefix = client, retry_s, prefix
        self.records: dict[tuple[str, str], AclRecord] = {}
        self.calls = 0
        self.failures = 0
        self._next = 0

    def new_name(self) -> str:
        """A name not given before (the counter survives through ``to_json``)."""
        name = f"{self.prefix}{self._next}"
        self._next += 1
        return name

    def state_of(self, agent: str, name: str) -> str:
        """``active``, ``installing``, ``removing``, or ``removed`` once forgotten."""
        record = self.records.get((agent, name))
        if record is None:
            return "removed"
        return "active" if record.state == "installed" else record.state

    def __iter__(self) -> Iterator[AclRecord]:
        return iter(list(self.records.values()))

    def get(self, agent: str, name: str) -> AclRecord | None:
        return self.records.get((agent, name))

    def install(self, agent: str, url: str, name: str, lines: list[str], now: float) -> bool:
        """Want ACL ``name`` on the switch; True once the switch accepted it."""
        record = self.records[(agent, name)] = AclRecord(agent, url, name, list(lines))
        return self._attempt(record, now)

    def remove(self, agent: str, name: str, now: float) -> bool:
        """Want ACL ``name`` gone; True once it is (the book then forgets it)."""
        record = self.records.get((agent, name))
        if record is None:
            return True
        record.state, record.attempts = "removing", 0
        return self._attempt(record, now)

    def retry(self, now: float) -> int:
        """Try again every failed call that is due; the number still failing."""
        failing = 0
        for record in self:
            if record.state != "installed" and now >= record.next_try:
                failing += not self._attempt(record, now)
        return failing

    def pending(self) -> int:
        return sum(r.state != "installed" for r in self.records.values())

    def stats_json(self) -> dict[str, int]:
        """The API calls made, those that failed, the ACLs not yet acknowledged."""
        return {"aclCalls": self.calls, "aclFailures": self.failures,
                "aclPending": self.pending()}

    def _attempt(self, record: AclRecord, now: float) -> bool:
        self.calls += 1
        record.attempts += 1
        try:
            if record.state == "removing":
                self.client.delete(record.url, record.name)
            else:
                self.client.put(record.url, record.name, record.lines)
        except AclError as e:
            self.failures += 1
            record.error, record.next_try = str(e), now + self.retry_s
            return False
        if record.state == "removing":
            del self.records[(record.agent, record.name)]
        else:
            record.state, record.error, record.attempts = "installed", "", 0
        return True

    def reconcile(self, now: float) -> list[AclRecord]:
        """After a restart: forget installed ACLs the switches no longer hold (returned).
        A switch that does not answer keeps its ACLs (checked again through ``retry``)."""
        gone = []
        for record in self:
            if record.state != "installed":
                continue
            try:
                lines = self.client.get(record.url, record.name)
            except AclError as e:
                record.error = str(e)
                continue
            if lines is None:
                del self.records[(record.agent, record.name)]
                gone.append(record)
        return gone

    def to_json(self, **records: Iterable[Any]) -> dict[str, Any]:
        """The book and, under their keys, the controller's own ``records`` (dataclasses,
        read back with ``saved_items``)."""
        return {"next_id": self._next, "acls": [r.to_json() for r in self.records.values()],
                **{key: [asdict(r) for r in items] for key, items in records.items()}}

    def load_json(self, saved: Any) -> None:
        """Restore ``to_json`` output (malformed entries are skipped)."""
        if not isinstance(saved, dict):
            return
        self._next = max(self._next, int(saved.get("next_id", 0)))
        for record in saved_items(saved, "acls", AclRecord):
            self.records[(record.agent, record.name)] = record
