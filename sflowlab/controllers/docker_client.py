"""Swarm services through the docker SDK: read a service, scale it, translate the errors.

Any Docker Engine API endpoint: ``unix:///var/run/docker.sock`` (the default) or
``tcp://host:2376`` with a TLS directory holding ``cert.pem``, ``key.pem`` and ``ca.pem`` (as
the seed's ``/tls/``). The client is made on first use, so a Docker API that is down when the
controller starts is an outage like any other, not a failure to start.

Scaling posts back the spec exactly as stored, with only ``Mode.Replicated.Replicas``
changed, to ``/services/{id}/update?version=<the version read>`` (as ``docker service scale``
does). The spec is read without ``insertDefaults``: the docker SDK's ``Service.scale`` posts
back the spec read with defaults, so the stored task template gains ``RestartPolicy`` and
``StopGracePeriod``, and swarm, seeing a changed template, replaces every running task (one
at a time) just when the service needs more capacity. (``Service.update(mode=...)`` is not
used either: it posts only the fields it is given, dropping the rest of the spec, ports
included.) If anyone changed the service after our read, the version is stale: swarm refuses
with "update out of sequence" (:class:`VersionConflict`) and nothing changes.

Foreign exceptions are translated here, once: :class:`DockerUnavailable` (connection refused,
timeouts, 5xx), :class:`VersionConflict`, :class:`ServiceError` (the rest: 4xx such as an
unknown service, a global-mode service).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import requests

__all__ = ["DEFAULT_DOCKER_URL", "Backoff", "DockerUnavailable", "ServiceError", "ServiceState",
           "SwarmServices", "VersionConflict"]

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
OUT_OF_SEQUENCE = "update out of sequence"
TLS_FILES = ("cert.pem", "key.pem", "ca.pem")


class DockerUnavailable(Exception):
    """The Docker API could not be reached, timed out, or failed (5xx)."""


class VersionConflict(Exception):
    """The service changed since it was read (swarm: "update out of sequence")."""


class ServiceError(Exception):
    """The Docker API refused the request (unknown service, not a replicated service, ...)."""


@dataclass(frozen=True)
class ServiceState:
    """A service as just read: its replica count and the version an update must name."""

    name: str
    id: str
    replicas: int
    version: int
    spec: dict[str, Any] = field(repr=False, compare=False)
    """The spec as stored (read without ``insertDefaults``): scaling posts it back."""


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.APIError as e:
        explanation = str(e.explanation or e)
        if OUT_OF_SEQUENCE in explanation:
            raise VersionConflict(f"{what}: {explanation}") from e
        if e.is_server_error() or e.status_code is None:
            raise DockerUnavailable(f"{what}: {explanation}") from e
        raise ServiceError(f"{what}: {explanation}") from e
    except (requests.exceptions.RequestException, docker.errors.DockerException) as e:
        raise DockerUnavailable(f"{what}: {type(e).__name__}: {e}") from e


def tls_config(tls_dir: str | Path) -> docker.tls.TLSConfig:
    """Mutual TLS from a directory with cert.pem, key.pem, ca.pem; ValueError if one is missing."""
    d = Path(tls_dir)
    missing = [f for f in TLS_FILES if not (d / f).is_file()]
    if missing:
        raise ValueError(f"tls_dir {d}: missing {', '.join(missing)} (needs {', '.join(TLS_FILES)})")
    return docker.tls.TLSConfig(client_cert=(str(d / "cert.pem"), str(d / "key.pem")),
                                ca_cert=str(d / "ca.pem"), verify=True)


class SwarmServices:
    """Reads and scales swarm services through one docker SDK client (made on first use)."""

    def __init__(self, docker_url: str = DEFAULT_DOCKER_URL, tls_dir: str | Path | None = None,
                 timeout_s: float = 5.0, api_version: str | None = None,
                 client: docker.DockerClient | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.url = docker_url
        tls = tls_config(tls_dir) if tls_dir is not None else False
        # the SDK hands the timeout to requests, which takes seconds as a float; the stubs
        # say int
        self._connect: Callable[[], docker.DockerClient] = lambda: docker.DockerClient(
            base_url=docker_url, tls=tls, timeout=timeout_s,  # type: ignore[arg-type]
            version=api_version or "auto")
        self._client = client

    def client(self) -> docker.DockerClient:
        if self._client is None:
            with _translated(f"connect {self.url}"):
                self._client = self._connect()
        return self._client

    def read(self, name: str) -> ServiceState:
        """The service as it is now (a fresh ``GET /services/{name}``, no defaults inserted)."""
        client = self.client()
        with _translated(f"read service {name}"):
            attrs: dict[str, Any] = client.api.inspect_service(  # type: ignore[no-untyped-call]
                name)  # the stubs leave this method untyped
        try:
            spec = attrs["Spec"]
            replicas = int(spec["Mode"]["Replicated"]["Replicas"])
            version = int(attrs["Version"]["Index"])
            service_id = str(attrs["ID"])
        except (KeyError, TypeError, ValueError) as e:
            raise ServiceError(f"service {name} is not a replicated service ({e!r} missing)") from e
        return ServiceState(name, service_id, replicas, version, spec)

    def scale(self, state: ServiceState, replicas: int) -> None:
        """Set the replica count, naming the version ``state`` was read at; every other field
        of the spec is posted back as read, so swarm keeps the running tasks.
        (``update_service`` is given each ServiceSpec field; the top-level ``Networks``
        deprecated since API 1.25 is not carried.)"""
        spec = copy.deepcopy(state.spec)
        spec["Mode"]["Replicated"]["Replicas"] = replicas
        with _translated(f"scale service {state.name} to {replicas}"):
            self.client().api.update_service(
                state.id, state.version, task_template=spec["TaskTemplate"], name=spec["Name"],
                labels=spec.get("Labels"), mode=spec["Mode"],
                update_config=spec.get("UpdateConfig"),
                rollback_config=spec.get("RollbackConfig"),
                endpoint_spec=spec.get("EndpointSpec"))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@dataclass
class Backoff:
    """Exponential backoff on a controller clock: ``base_s``, doubling to ``max_s``."""

    base_s: float = 2.0
    max_s: float = 60.0
    failures: int = 0
    retry_at: float = -math.inf

    def ready(self, now: float) -> bool:
        return now >= self.retry_at

    def failed(self, now: float) -> float:
        """Count a failure; the delay before the next attempt."""
        self.failures += 1
        delay = min(self.max_s, self.base_s * 2.0 ** min(self.failures - 1, 60))
        self.retry_at = now + delay
        return delay

    def succeeded(self) -> int:
        """Reset; the number of consecutive failures that ended."""
        failures, self.failures, self.retry_at = self.failures, 0, -math.inf
        return failures
