"""Routing: (method, path regex) -> handler, with the method rules every service shares.

- A route added for GET also answers HEAD (the server sends the headers without the body).
- OPTIONS on a known path answers 204 with ``Allow``; another method the path does not serve
  answers 405 with ``Allow``; an unknown path 404. Every error body is the router's
  ``error_body`` (JSON).
- A route is mutating unless its method is GET, HEAD or OPTIONS (``mutates=`` overrides it):
  the router calls ``request.mutating()`` before its handler, so the router's ``Access``
  (token, read-only) guards it. A handler that changes state on a GET calls it itself.
- A handler returns a :class:`Response`, or any other value, sent as JSON. ``HttpError``
  answers with its status; exceptions of ``client_errors`` answer 400 with their message;
  any other exception is logged and answers 500, never killing the server.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from ._messages import OPEN, Access, HttpError, Request, Response, json_error, json_response

_log = logging.getLogger("sflowlab.http")

Handler = Callable[[Request], Any]

READING = frozenset({"GET", "HEAD", "OPTIONS"})
ERROR_BODY = json_error("error")


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    mutates: bool


def template(path: str) -> str:
    """A path template (``/flow/{name}/json``) as a route regex: each ``{name}`` one segment."""
    return re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))


class Router:
    """Routes requests to handlers; see the module docstring."""

    def __init__(
        self,
        error_body: Callable[[int, str], Response] = ERROR_BODY,
        headers: Callable[[], dict[str, str]] | None = None,
        access: Access = OPEN,
        client_errors: tuple[type[Exception], ...] = (),
        not_found: str = "no such resource",
    ) -> None:
        self._routes: list[_Route] = []
        self.error_body = error_body
        self._headers = headers or dict
        self.access = access
        self._client_errors = client_errors
        self._not_found = not_found

    def add(self, method: str, pattern: str, handler: Handler, *,
            mutates: bool | None = None) -> None:
        """Route ``method`` on paths fully matching the regex ``pattern``."""
        self._routes.append(_Route(method, re.compile(pattern), handler,
                                   method not in READING if mutates is None else mutates))

    def dispatch(self, request: Request) -> Response:
        try:
            response = self._dispatch(request)
        except HttpError as exc:
            response = self.error_body(exc.status, exc.message)
            response.headers.update(exc.headers)
        except self._client_errors as exc:
            response = self.error_body(400, str(exc))
        except Exception as exc:
            _log.exception("event=http_handler_failed method=%s path=%s", request.method,
                           request.path)
            response = self.error_body(500, f"internal error: {exc}")
        response.headers = {**self._headers(), **response.headers}
        return response

    def _dispatch(self, request: Request) -> Response:
        wanted = "GET" if request.method == "HEAD" else request.method
        allowed: set[str] = set()
        for route in self._routes:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            if route.method != wanted:
                allowed.add(route.method)
                continue
            params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            request = replace(request, params=params, access=self.access)
            if route.mutates:
                request.mutating()
            result = route.handler(request)
            return result if isinstance(result, Response) else json_response(result,
                                                                              newline=False)
        if not allowed:
            raise HttpError(404, f"{self._not_found}: {request.path}")
        allow = ", ".join(sorted(allowed | {"OPTIONS"} | ({"HEAD"} if "GET" in allowed else set())))
        if request.method == "OPTIONS":
            return Response(204, headers={"Allow": allow})
        raise HttpError(405, f"{request.method} not allowed on {request.path}; allowed: {allow}",
                        {"Allow": allow})
