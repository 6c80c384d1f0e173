"""Static files of a folder over HTTP: an app's ``html/`` and the collector's own web UI."""

from __future__ import annotations

import mimetypes
from importlib.resources.abc import Traversable
from pathlib import Path

from sflowlab.http import HttpError, Response


def static_file(root: Path | Traversable, parts: list[str]) -> Response:
    """The file at ``parts`` under ``root`` (``index.html`` for a folder); 404 for anything
    missing or outside ``root`` (no ``..``, no hidden names)."""
    if any(p in ("", ".", "..") or p.startswith(".") or "\\" in p for p in parts):
        raise HttpError(404, "no such file")
    node: Path | Traversable = root
    for part in parts:
        node = node / part
    if node.is_dir():
        node = node / "index.html"
    if not node.is_file():
        raise HttpError(404, f"no such file: /{'/'.join(parts)}")
    ctype = mimetypes.guess_type(node.name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
        ctype += "; charset=utf-8"
    return Response(200, node.read_bytes(), {"Content-Type": ctype,
                                             "Cache-Control": "no-cache"})
