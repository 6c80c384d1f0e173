"""Requests, responses, errors and the access policy of the HTTP layer."""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, TypeVar

T = TypeVar("T")

JSON = "application/json"


class HttpError(Exception):
    """An error answer: ``status``, a human message (the router shapes the body) and headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def first_arg(query: Mapping[str, list[str]], name: str, default: str | None = None) -> str | None:
    """The first value of query parameter ``name``, as a servlet's ``getParameter`` and
    sFlow-RT's scripts (``req.query.state[0]``) read it; ``default`` when absent."""
    values = query.get(name)
    return values[0] if values else default


@dataclass(frozen=True)
class Access:
    """Who may change state: with a ``token``, a mutating request needs
    ``Authorization: Bearer <token>`` (401 without); ``readonly`` refuses every mutation (403).
    Requests that only read are never checked."""

    token: str | None = None
    readonly: bool = False

    def check(self, headers: Message) -> None:
        if self.token is not None:
            given = headers.get("Authorization") or ""
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                raise HttpError(401, "this call changes state and needs "
                                     "'Authorization: Bearer <token>'",
                                {"WWW-Authenticate": "Bearer"})
        if self.readonly:
            raise HttpError(403, "read-only: this server refuses every change (readonly = true)")


OPEN = Access()


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route, unquoted
    closing: threading.Event = field(default_factory=threading.Event)  # set when the server stops
    access: Access = OPEN

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name`` (see :func:`first_arg`)."""
        return first_arg(self.query, name, default)

    def arg_as(self, name: str, kind: Callable[[str], T], default: T) -> T:
        """Query parameter ``name`` converted by ``kind``; 400 when it does not convert."""
        raw = self.arg(name)
        if raw is None:
            return default
        try:
            return kind(raw)
        except ValueError:
            raise HttpError(400, f"bad value for {name}: {raw!r}") from None

    def json(self) -> Any:
        """The body parsed as JSON (empty: None); 400 when it is not JSON or nests too deep."""
        return parse_json(self.body)

    def mutating(self) -> None:
        """Declare that this request changes state: raises 401/403 unless ``access`` allows it.
        Routes other than GET/HEAD/OPTIONS are declared mutating when added; a handler whose
        effect depends on the request (``GET ...?state=disabled``) calls this itself."""
        self.access.check(self.headers)


def parse_json(body: bytes | str) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise HttpError(400, f"bad JSON body: {exc}") from None
    except RecursionError:
        raise HttpError(400, "bad JSON body: nested too deep") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[bytes] | None = None  # sent chunked, one chunk per non-empty item, when set


def json_response(value: Any, status: int = 200, headers: Mapping[str, str] | None = None,
                  newline: bool = True) -> Response:
    """``value`` as a JSON body (``newline``: ended by ``\\n``, as Go's encoder does)."""
    body = json.dumps(value).encode() + (b"\n" if newline else b"")
    return Response(status, body, {"Content-Type": JSON, **(headers or {})})


def json_error(key: str) -> Callable[[int, str], Response]:
    """An error body ``{key: message}`` (the collector: ``error``; dockerd: ``message``)."""
    return lambda status, message: json_response({key: message}, status)
