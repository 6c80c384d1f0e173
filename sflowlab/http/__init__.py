"""The HTTP layer every sflowlab service stands on: the collector's REST API, the controllers'
handlers (through the collector) and the lab's API doubles. Stdlib only; imports nothing else
of sflowlab, so the collector and the lab may both use it.

A :class:`Router` maps (method, path regex) to handlers and applies the shared method rules
(HEAD as GET without a body, OPTIONS and 405 with ``Allow``, JSON errors) and the
:class:`Access` policy to mutating requests; an :class:`HttpServer` serves a router from a
thread, bounded by :class:`Limits` (connections, idle and request timeouts, body size).

Query parameters: ``Request.arg`` is the *first* value of a repeated parameter, as a servlet's
``getParameter`` and sFlow-RT's scripts (``req.query.state[0]``) read it; ``Request.query``
keeps every value (string-metric filters OR them).
"""

from ._messages import (
    JSON,
    OPEN,
    Access,
    HttpError,
    Request,
    Response,
    first_arg,
    json_error,
    json_response,
    parse_json,
)
from ._router import Router, template
from ._server import HttpServer, Limits, ServedApi

__all__ = [
    "JSON",
    "OPEN",
    "Access",
    "HttpError",
    "HttpServer",
    "Limits",
    "Request",
    "Response",
    "Router",
    "ServedApi",
    "first_arg",
    "json_error",
    "json_response",
    "parse_json",
    "template",
]
