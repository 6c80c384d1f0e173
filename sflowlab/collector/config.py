"""Daemon configuration (TOML) and the state file that keeps REST definitions across restarts.

```toml
[sflow]
port = 6343
hosts = ["0.0.0.0", "::"]
rcvbuf = 8388608
queue_size = 20000

[http]
host = "127.0.0.1"
port = 8008
token = "..."            # required to bind beyond loopback (or env SFLOWLAB_TOKEN)
readonly = false          # true: every change over REST is refused (403)
max_connections = 256     # beyond it the longest idle connection is closed
idle_timeout_s = 30       # a keep-alive connection without a request is closed

[collector]
state_dir = "/var/lib/sflowlab"
metric_timeout_s = 60     # a data source seen once expires after this silence
expire_intervals = 3      # afterwards, after this many of its own polling intervals
agent_timeout_s = 300     # an agent silent this long is forgotten
max_agents = 10000        # agents tracked at once (per worker); new ones beyond are shed
max_data_sources = 100000 # counter data sources kept at once (per worker), likewise
tick_s = 1.0
workers = 0               # >0: analytics sharded by agent over this many processes

[recording]               # optional rotating pcap of received datagrams
dir = "/var/lib/sflowlab/pcap"
max_bytes = 100000000
max_files = 10

[lookups]                 # optional: key functions country:, asn: (pip install 'sflowlab[geo]')
country = "/var/lib/GeoIP/GeoLite2-Country.mmdb"
asn = "/var/lib/GeoIP/GeoLite2-ASN.mmdb"
oui = "/usr/share/ieee-data/oui.csv"  # oui: (the default; Debian package ieee-data)

[groups]                  # group sets: group:ipsource:site gives "private" or "external"
internal = ["10.0.0.0/8"] # a plain list: one group named like the set
[groups.site]
private = ["10.0.0.0/8", "fc00::/7"]
external = ["0.0.0.0/0", "::/0"]

[flows.tcp]
keys = "ipsource,ipdestination"
value = "bytes"

[thresholds.busy]
metric = "tcp"
value = 1000000

[[controllers]]           # loaded in order; see sflowlab.collector.runtime
name = "elb.js"           # mounted at /app/elb.js/... and /script/elb.js/json
use = "elb"               # an entry point of group sflowlab.controllers, or "module:factory"
[controllers.params]      # keyword arguments of the factory
docker_url = "tcp://manager:2376"
tls_dir = "/etc/sflowlab/tls"
```
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .agents import TableLimits
from .lookups import DEFAULT_OUI, LookupConfig

TOKEN_ENV = "SFLOWLAB_TOKEN"  # noqa: S105 - the name of the variable, not a secret
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the entry."""


@dataclass
class Config:
    sflow_port: int = 6343
    sflow_hosts: tuple[str, ...] = ("0.0.0.0", "::")
    rcvbuf: int = 8 * 1024 * 1024
    queue_size: int = 20_000
    http_host: str = "127.0.0.1"
    http_port: int = 8008
    token: str | None = None
    readonly: bool = False
    http_max_connections: int = 256
    http_idle_timeout_s: float = 30.0
    state_dir: Path | None = None
    metric_timeout_s: float = 60.0
    expire_intervals: float = 3.0
    agent_timeout_s: float = 300.0
    max_agents: int = 10_000
    max_data_sources: int = 100_000
    tick_s: float = 1.0
    workers: int = 0
    record_dir: Path | None = None
    record_max_bytes: int = 100_000_000
    record_max_files: int = 10
    lookup_country: Path | None = None
    lookup_asn: Path | None = None
    lookup_oui: Path = DEFAULT_OUI
    dns_ttl_s: float = 300.0
    dns_cache: int = 10_000
    definitions: dict[str, Any] = field(default_factory=dict)
    controllers: list[Any] = field(default_factory=list)
    path: Path | None = None
    """The file this configuration was read from (SIGHUP reads it again)."""

    @property
    def lookups(self) -> LookupConfig:
        """What ``country:``, ``asn:``, ``dns:`` and ``oui:`` read (see ``lookups.py``)."""
        return LookupConfig(self.lookup_country, self.lookup_asn, self.lookup_oui,
                            self.dns_ttl_s, self.dns_cache)

    def limits(self) -> TableLimits:
        return TableLimits(agent_timeout_s=self.agent_timeout_s, max_agents=self.max_agents,
                           max_data_sources=self.max_data_sources)

    def check(self) -> None:
        """Refuse a wide HTTP bind without a token for mutating calls."""
        if self.http_host not in LOOPBACK and not self.token:
            raise ConfigError(
                f"http host {self.http_host!r} is not loopback: set http.token in the config "
                f"file or {TOKEN_ENV} in the environment (mutating calls then need "
                "'Authorization: Bearer <token>')")


_SECTIONS = {
    "sflow": {"port": ("sflow_port", int), "hosts": ("sflow_hosts", tuple),
              "rcvbuf": ("rcvbuf", int), "queue_size": ("queue_size", int)},
    "http": {"host": ("http_host", str), "port": ("http_port", int), "token": ("token", str),
             "readonly": ("readonly", bool), "max_connections": ("http_max_connections", int),
             "idle_timeout_s": ("http_idle_timeout_s", float)},
    "collector": {"state_dir": ("state_dir", Path), "metric_timeout_s": ("metric_timeout_s", float),
                  "expire_intervals": ("expire_intervals", float),
                  "agent_timeout_s": ("agent_timeout_s", float),
                  "max_agents": ("max_agents", int),
                  "max_data_sources": ("max_data_sources", int),
                  "tick_s": ("tick_s", float), "workers": ("workers", int)},
    "recording": {"dir": ("record_dir", Path), "max_bytes": ("record_max_bytes", int),
                  "max_files": ("record_max_files", int)},
    "lookups": {"country": ("lookup_country", Path), "asn": ("lookup_asn", Path),
                "oui": ("lookup_oui", Path), "dns_ttl_s": ("dns_ttl_s", float),
                "dns_cache": ("dns_cache", int)},
}


def load_config(path: str | os.PathLike[str] | None, env: dict[str, str] | None = None) -> Config:
    """Read a TOML file (or defaults when ``path`` is None); the token may come from env."""
    cfg = Config()
    env = dict(os.environ) if env is None else env
    if path is not None:
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{path}: {e}") from e
        _apply(cfg, doc, str(path))
        cfg.path = Path(path)
    if not cfg.token and env.get(TOKEN_ENV):
        cfg.token = env[TOKEN_ENV]
    return cfg


def _apply(cfg: Config, doc: dict[str, Any], where: str) -> None:
    known = {*_SECTIONS, "groups", "flows", "thresholds", "controllers"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; expected some of {sorted(known)}")
    for section, fields in _SECTIONS.items():
        table = doc.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{section}] must be a table")
        for key, value in table.items():
            if key not in fields:
                raise ConfigError(f"{where}: unknown key {section}.{key}; "
                                  f"expected one of {sorted(fields)}")
            attr, kind = fields[key]
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{where}: {section}.{key} must be an integer, not {value!r}")
            if kind is float and not isinstance(value, int | float):
                raise ConfigError(f"{where}: {section}.{key} must be a number, not {value!r}")
            if kind is tuple and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
                raise ConfigError(f"{where}: {section}.{key} must be a list of strings")
            setattr(cfg, attr, kind(value))
    for section in ("groups", "flows", "thresholds"):
        table = doc.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{section}] must be a table")
        cfg.definitions[section] = table
    controllers = doc.get("controllers", [])
    if not isinstance(controllers, list):
        raise ConfigError(f"{where}: controllers must be a list")
    cfg.controllers = controllers


@dataclass
class StateStore:
    """A JSON file of groups, flows and thresholds, replaced atomically on every save.

    A save writes a temporary file beside it (``.<name>.<random>.tmp``) and renames it over
    the file; a process killed mid-save leaves that temporary behind, and ``load`` removes
    this store's leftovers. ``save_snapshot`` takes the snapshot and writes it under one
    lock, so saves land in the order their snapshots were taken: a save acknowledged to a
    client is never overwritten by an older snapshot (that of a concurrent change)."""

    path: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                  compare=False)

    def load(self) -> dict[str, Any]:
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        return self.read()

    def read(self) -> dict[str, Any]:
        """The file's object ({} when there is none); changes nothing."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            state = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"{self.path}: not valid JSON: {e}") from e
        if not isinstance(state, dict):
            raise ConfigError(f"{self.path}: expected a JSON object")
        return state

    def save_snapshot(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        """``save(snapshot())``, the two under the store's lock."""
        with self._lock:
            self._write(snapshot())

    def save(self, state: dict[str, Any]) -> None:
        with self._lock:
            self._write(state)

    def _write(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                   suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(state, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
