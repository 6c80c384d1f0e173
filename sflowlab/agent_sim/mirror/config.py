"""The mirror agent's configuration file: hsflowd.conf's essentials in TOML.

hsflowd's ``sflow { sampling = 400 polling = 20 collector { ip = 10.0.0.1 udpport = 6343 }
pcap { dev = docker0 } docker { } }`` reads here as::

    sampling = 400          # 1-in-N on the sampled interfaces (0: no packet sampling)
    polling = 20            # counter polling interval in whole seconds (0: none)
    headerBytes = 128
    agentIP = "10.0.0.5"    # default: hsflowd-like, a non-loopback address of this host
    [[collector]]
    ip = "10.0.0.1"
    udpport = 6343
    [[pcap]]
    dev = "docker0"
    [docker]                # containers from this engine; docker = false: none
    url = "unix:///var/run/docker.sock"

Unknown keys are an error (a misspelt setting should not be ignored silently).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .containers import DEFAULT_DOCKER_URL

_KEYS = {"sampling", "polling", "headerBytes", "agentIP", "collector", "pcap", "docker"}


@dataclass
class FileConfig:
    """What a file sets (None: not set, the command line or the default decides)."""

    collectors: list[tuple[str, int]] = field(default_factory=list)
    sampling: int | None = None
    polling_s: int | None = None
    header_bytes: int | None = None
    agent_ip: str | None = None
    interfaces: list[str] | None = None
    docker_url: str | None = None
    docker_disabled: bool = False


def _int(doc: dict[str, Any], key: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key} must be a whole number >= 0, not {value!r}")
    return value


def _tables(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key, [])
    tables = [value] if isinstance(value, dict) else value
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ValueError(f"{key} must be a table or an array of tables ([[{key}]])")
    return tables


def parse_config(doc: dict[str, Any]) -> FileConfig:
    unknown = set(doc) - _KEYS
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(_KEYS)}")
    config = FileConfig(sampling=_int(doc, "sampling"), polling_s=_int(doc, "polling"),
                        header_bytes=_int(doc, "headerBytes"))
    if "agentIP" in doc:
        config.agent_ip = str(doc["agentIP"])
    for table in _tables(doc, "collector"):
        if "ip" not in table:
            raise ValueError("a [[collector]] needs ip (and optionally udpport)")
        port = _int(table, "udpport") or 6343
        config.collectors.append((str(table["ip"]), port))
    if "pcap" in doc:
        config.interfaces = [str(t["dev"]) for t in _tables(doc, "pcap") if "dev" in t]
    docker = doc.get("docker")
    if docker is False:
        config.docker_disabled = True
    elif isinstance(docker, dict):
        config.docker_url = str(docker.get("url", DEFAULT_DOCKER_URL))
    elif docker is not None:
        raise ValueError("docker must be a table ([docker] url = ...) or false")
    return config


def load_config(path: str | Path) -> FileConfig:
    """Read and check a TOML file; ValueError names the file and what is wrong."""
    try:
        with open(path, "rb") as f:
            return parse_config(tomllib.load(f))
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e
