"""sFlow-RT flow keys, key functions and filter expressions, compiled once into closures.

Key expressions (flow ``keys`` and the left side of a filter comparison):

- a flow key name: ``ipsource``, ``tcpdestinationport``, ``agent``...
- ``group:<key>:<set>``: the name of the group of group set ``<set>`` holding the address
  (most specific prefix); with several sets listed, the first that holds it; with none, the
  group holding the most specific prefix in any set (``GroupSet.lookup``).
- ``mask:<key>:<bits>``: the address with all but the first ``bits`` bits cleared
  (``mask:ipsource:24`` of 10.1.2.3 is ``10.1.2.0``; IPv6 the same, bits capped at the width).
- ``range:<key>:<min>:<max>``: ``"true"`` if the numeric value is within [min, max], else
  ``"false"`` (so ``range:tcpsourceport:0:1023=true`` selects well-known source ports).
- ``or:<k1>:<k2>...``: the first key present. ``null:<key>:<default>``: the key, or the default.
- ``prefix:<key>:<delim>:<n>`` / ``suffix:<key>:<delim>:<n>``: the first / last n
  ``delim``-separated tokens; ``first:<key>:<delim>:<t1>:<t2>...``: the first token that is
  one of t1, t2... (``first:stack:.:ip:ip6``).
- ``country:<key>``, ``asn:<key>``: the address's ISO country code and AS number from the
  configured MaxMind databases; ``dns:<key>``: its reverse DNS name; ``oui:<key>``: a MAC's
  vendor from the IEEE registry (``lookups.py``).
- ``uri:<key>:<part>``: a part of a URI key (``httpurl``, ``httpreferer``): ``scheme``,
  ``host``, ``port``, ``authority``, ``user``, ``path``, ``file``, ``extension``, ``query``,
  ``fragment``, ``normalized`` (the URI with ``.``/``..`` path segments resolved),
  ``isabsolute`` and ``isopaque`` (``true``/``false``): sFlow-RT's parts.
- An argument in square brackets is itself a key expression: ``prefix:[null:httpurl:/]:/:2``.

A key expression is *missing* (None) when its flow key is missing from the sample: a flow
using it then does not match the sample, and every comparison on it is false (``!=`` too).

Filters: comparisons ``<key expr><op><v1>,<v2>...`` with ``=`` (any value equal), ``!=``
(none equal), ``~`` (any regex matches the whole value), ``!~`` (none matches); ``&`` binds
tighter than ``|``; parentheses group. Values compare as text, and numbers also as numbers.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from socket import AF_INET
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .groups import MEMO_SIZE, GroupSet, format_address, parse_address
from .lookups import Lookups, LookupUnavailable

Keys = Mapping[str, Any]
KeyFn = Callable[[Keys], Any]

_KEY_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_UNSUPPORTED = {"bgp", "map", "in", "topology", "link", "node"}


MAX_EXPRESSION_CHARS = 65_536
"""The longest flow definition (keys, values and filter together) or threshold filter
accepted: compiling takes time in proportion (a 10 MB filter took 2.5 s)."""


class FilterError(ValueError):
    """A malformed key expression or filter, with the position and the reason."""


@dataclass(frozen=True)
class CompiledKey:
    """A key expression compiled once: ``get(keys)`` gives its value or None if missing."""

    expr: str
    keys: frozenset[str]  # the flow key names it reads
    get: KeyFn

    def __call__(self, keys: Keys) -> Any:
        return self.get(keys)


@dataclass(frozen=True)
class CompiledFilter:
    """A filter compiled once: ``test(keys)`` says whether a sample's keys match."""

    expr: str
    keys: frozenset[str]
    test: Callable[[Keys], bool]

    def __call__(self, keys: Keys) -> bool:
        return self.test(keys)


def split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` outside square brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


@dataclass(frozen=True)
class KeyContext:
    """What key functions read besides the sample: address groups and lookups (None: a
    syntax check, the lookup functions compile but find nothing)."""

    groups: GroupSet
    lookups: Lookups | None = None


def compile_key(expr: str, groups: GroupSet, lookups: Lookups | None = None) -> CompiledKey:
    """Compile one key expression; ``FilterError`` explains what is wrong with it."""
    refs: set[str] = set()
    get = _key(expr.strip(), KeyContext(groups, lookups), refs, expr)
    return CompiledKey(expr.strip(), frozenset(refs), get)


def compile_keys(keys: str, groups: GroupSet, lookups: Lookups | None = None
                 ) -> list[CompiledKey]:
    """Compile a comma list of key expressions (commas inside brackets do not split)."""
    return [compile_key(part, groups, lookups) for part in split_top(keys, ",") if part.strip()]


def _unbracket(arg: str) -> str:
    """``arg`` without square brackets enclosing all of it."""
    arg = arg.strip()
    if not arg.startswith("["):
        return arg
    depth = 0
    for i, ch in enumerate(arg):
        depth += (ch == "[") - (ch == "]")
        if depth == 0:
            return arg[1:i].strip() if i == len(arg) - 1 else arg
    return arg


def _int_arg(text: str, what: str, whole: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise FilterError(f"{what} must be an integer, not {text!r}, in {whole!r}") from None


def _key(expr: str, ctx: KeyContext, refs: set[str], whole: str) -> KeyFn:
    expr = _unbracket(expr)
    if not expr:
        raise FilterError(f"empty key in {whole!r}")
    if ":" not in expr and "[" not in expr:
        if not _KEY_NAME.fullmatch(expr):
            raise FilterError(f"bad key name {expr!r} in {whole!r}")
        refs.add(expr)
        name = expr
        return lambda keys: keys.get(name)
    func, *args = split_top(expr, ":")
    if func in _UNSUPPORTED:
        raise FilterError(f"key function {func!r} is not supported by this collector ({whole!r})")
    builder = _FUNCTIONS.get(func)
    if builder is None:
        raise FilterError(f"unknown key function {func!r} in {whole!r}")
    need = _ARITY[func]
    if len(args) < need or (func in _FIXED_ARITY and len(args) != need):
        raise FilterError(f"key function {func!r} needs {need} arguments in {whole!r}")
    inner = [_key(_unbracket(a), ctx, refs, whole) for a in (args if func == "or" else args[:1])]
    try:
        return builder(inner, [_unbracket(a) for a in args[1:]], ctx, whole)
    except LookupUnavailable as e:
        raise FilterError(f"{e} ({whole!r})") from None


def _group(inner: list[KeyFn], names: list[str], ctx: KeyContext, whole: str) -> KeyFn:
    get, groups = inner[0], ctx.groups
    if not names:
        def lookup(keys: Keys) -> Any:
            address = get(keys)
            return None if address is None else groups.lookup(str(address))
        return lookup
    match = groups.match

    def first_group(keys: Keys) -> Any:
        address = get(keys)
        if address is None:
            return None
        address = str(address)
        for name in names:
            group = match(name, address)
            if group is not None:
                return group
        return None
    return first_group


def _mask(inner: list[KeyFn], args: list[str], ctx: KeyContext, whole: str) -> KeyFn:
    get, bits = inner[0], _int_arg(args[0], "mask length", whole)
    if bits < 0:
        raise FilterError(f"mask length must not be negative in {whole!r}")

    memo: dict[str, str | None] = {}  # traffic repeats its addresses

    def mask(keys: Keys) -> Any:
        address = get(keys)
        if not isinstance(address, str):
            return None
        if address in memo:
            return memo[address]
        try:
            family, value = parse_address(address)
        except ValueError:
            masked = None
        else:
            drop = max((32 if family == AF_INET else 128) - bits, 0)
            masked = format_address(family, value >> drop << drop)
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[address] = masked
        return masked
    return mask


def _range(inner: list[KeyFn], args: list[str], ctx: KeyContext, whole: str) -> KeyFn:
    get = inner[0]
    low, high = (_int_arg(a, "range bound", whole) for a in args)

    def in_range(keys: Keys) -> Any:
        value = get(keys)
        if value is None:
            return None
        try:
            return "true" if low <= int(value) <= high else "false"
        except ValueError:
            return None
    return in_range


def _or(inner: list[KeyFn], args: list[str], ctx: KeyContext, whole: str) -> KeyFn:
    def first_present(keys: Keys) -> Any:
        for get in inner:
            value = get(keys)
            if value is not None:
                return value
        return None
    return first_present


def _null(inner: list[KeyFn], args: list[str], ctx: KeyContext, whole: str) -> KeyFn:
    get, default = inner[0], args[0]

    def or_default(keys: Keys) -> Any:
        value = get(keys)
        return default if value is None else value
    return or_default


def _tokens(inner: list[KeyFn], args: list[str], whole: str, last: bool) -> KeyFn:
    get, delim, n = inner[0], args[0], _int_arg(args[1], "token count", whole)
    if not delim:
        raise FilterError(f"empty delimiter in {whole!r}")
    if n < 1:
        raise FilterError(f"token count must be at least 1 in {whole!r}")

    def tokens(keys: Keys) -> Any:
        value = get(keys)
        if value is None:
            return None
        parts = str(value).split(delim)
        return delim.join(parts[-n:] if last else parts[:n])
    return tokens


def _first(inner: list[KeyFn], args: list[str], ctx: KeyContext, whole: str) -> KeyFn:
    get, delim, wanted = inner[0], args[0], frozenset(args[1:])

    def first(keys: Keys) -> Any:
        value = get(keys)
        if value is None:
            return None
        return next((t for t in str(value).split(delim) if t in wanted), None)
    return first


def _text_of(get: KeyFn, lookup: Callable[[str], str | None]) -> KeyFn:
    """A key function: ``lookup`` of the inner key's text, missing when either is."""
    def looked_up(keys: Keys) -> Any:
        value = get(keys)
        return None if value is None else lookup(str(value))
    return looked_up


def _geo(what: str) -> Callable[[list[KeyFn], list[str], KeyContext, str], KeyFn]:
    def build(inner: list[KeyFn], args: list[str], ctx: KeyContext, whole: str) -> KeyFn:
        if ctx.lookups is None:
            return lambda keys: None
        db = ctx.lookups.geo(what)
        return _text_of(inner[0], db.country if what == "country" else db.asn)
    return build


def _dns(inner: list[KeyFn], args: list[str], ctx: KeyContext, whole: str) -> KeyFn:
    if ctx.lookups is None:
        return lambda keys: None
    return _text_of(inner[0], ctx.lookups.dns().name)


def _oui(inner: list[KeyFn], args: list[str], ctx: KeyContext, whole: str) -> KeyFn:
    if ctx.lookups is None:
        return lambda keys: None
    table = ctx.lookups.oui()
    return _text_of(inner[0], lambda mac: table.get(mac.replace(":", "").replace("-", "")
                                                        .upper()[:6]))


def _without_dots(path: str) -> str:
    """``path`` with its ``.`` and ``..`` segments resolved (RFC 3986 5.2.4)."""
    segments, out = path.split("/"), list[str]()
    for i, segment in enumerate(segments):
        if segment in (".", ".."):
            if segment == ".." and len(out) > 1:
                out.pop()  # never the empty first segment of an absolute path
            if i == len(segments) - 1:
                out.append("")  # "/a/b/.." is "/a/"
            continue
        out.append(segment)
    return "/".join(out)


_URI_PARTS: dict[str, Callable[[SplitResult], str | None]] = {
    "normalized": lambda u: u._replace(path=_without_dots(u.path)).geturl(),
    "isabsolute": lambda u: "true" if u.scheme else "false",
    "isopaque": lambda u: "true" if u.scheme and not u.netloc and not u.path.startswith("/")
    else "false",
    "scheme": lambda u: u.scheme, "host": lambda u: u.hostname,
    "port": lambda u: None if u.port is None else str(u.port),
    "authority": lambda u: u.netloc, "user": lambda u: u.username,
    "path": lambda u: u.path, "query": lambda u: u.query, "fragment": lambda u: u.fragment,
    "file": lambda u: u.path.rsplit("/", 1)[-1],
    "extension": lambda u: (lambda f: f.rpartition(".")[2] if "." in f else "")(
        u.path.rsplit("/", 1)[-1]),
}


def _uri(inner: list[KeyFn], args: list[str], ctx: KeyContext, whole: str) -> KeyFn:
    """``uri:<key>:<part>``: a part of the key's URI (``_URI_PARTS``); missing when the URI
    has no such part."""
    part = _URI_PARTS.get(args[0])
    if part is None:
        raise FilterError(f"uri part must be one of {', '.join(_URI_PARTS)}, not {args[0]!r}"
                          f" in {whole!r}")

    def of(text: str) -> str | None:
        try:
            value = part(urlsplit(text))
        except ValueError:
            return None
        return value or None
    return _text_of(inner[0], of)


_FUNCTIONS: dict[str, Callable[[list[KeyFn], list[str], KeyContext, str], KeyFn]] = {
    "group": _group, "mask": _mask, "range": _range, "or": _or, "null": _null, "first": _first,
    "prefix": lambda i, a, g, w: _tokens(i, a, w, last=False),
    "suffix": lambda i, a, g, w: _tokens(i, a, w, last=True),
    "country": _geo("country"), "asn": _geo("asn"), "dns": _dns, "oui": _oui, "uri": _uri,
}
_ARITY = {"group": 1, "mask": 2, "range": 3, "or": 2, "null": 2, "prefix": 3, "suffix": 3,
          "first": 3, "country": 1, "asn": 1, "dns": 1, "oui": 1, "uri": 2}
_FIXED_ARITY = {"mask", "range", "null", "prefix", "suffix", "country", "asn", "dns", "oui", "uri"}


class _Parser:
    """Recursive descent over the filter text: or-expr := and-expr ('|' and-expr)*."""

    def __init__(self, text: str, ctx: KeyContext) -> None:
        self.text, self.pos, self.ctx, self.refs = text, 0, ctx, set[str]()

    def error(self, message: str) -> FilterError:
        return FilterError(f"{message} at position {self.pos} in filter {self.text!r}")

    def peek(self) -> str:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Callable[[Keys], bool]:
        test = self.or_expr()
        if self.peek():
            raise self.error(f"unexpected {self.peek()!r}")
        return test

    def or_expr(self) -> Callable[[Keys], bool]:
        return self._chain("|", self.and_expr)

    def and_expr(self) -> Callable[[Keys], bool]:
        return self._chain("&", self.factor)

    def _chain(self, op: str, operand: Callable[[], Callable[[Keys], bool]]
               ) -> Callable[[Keys], bool]:
        """``operand (op operand)*``, combined with ``or`` for ``|`` and ``and`` for ``&``."""
        items = [operand()]
        while self.peek() == op:
            self.pos += 1
            items.append(operand())
        if len(items) == 1:
            return items[0]
        if len(items) == 2:
            a, b = items
            if op == "|":
                return lambda keys: a(keys) or b(keys)
            return lambda keys: a(keys) and b(keys)
        combine = any if op == "|" else all
        return lambda keys: combine(item(keys) for item in items)

    def factor(self) -> Callable[[Keys], bool]:
        ch = self.peek()
        if ch == "(":
            self.pos += 1
            inner = self.or_expr()
            if self.peek() != ")":
                raise self.error("missing ')'")
            self.pos += 1
            return inner
        if ch in ("", "&", "|", ")"):
            raise self.error("expected a comparison such as ipprotocol=6")
        return self.comparison()

    def comparison(self) -> Callable[[Keys], bool]:
        text, start, depth = self.text, self.pos, 0
        while self.pos < len(text):
            ch = text[self.pos]
            depth += (ch == "[") - (ch == "]")
            if depth == 0 and ch in "=!~":
                break
            if depth == 0 and ch in "&|()":
                raise self.error("expected an operator (=, !=, ~, !~)")
            self.pos += 1
        else:
            raise self.error("expected an operator (=, !=, ~, !~)")
        key_text = text[start:self.pos].strip()
        op = text[self.pos:self.pos + 2] if text[self.pos] == "!" else text[self.pos]
        if op not in ("=", "~", "!=", "!~"):
            raise self.error(f"bad operator {op!r}")
        self.pos += len(op)
        try:
            get = _key(key_text, self.ctx, self.refs, key_text)
        except FilterError as exc:
            raise self.error(str(exc)) from None
        values = [v.strip() for v in self.values().split(",")]
        return _comparison(get, op, values, self.error)

    def values(self) -> str:
        text, start, depth = self.text, self.pos, 0
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "(":
                depth += 1
            elif ch == ")":
                if depth == 0:
                    break
                depth -= 1
            elif ch in "&|" and depth == 0:
                break
            self.pos += 1
        raw = text[start:self.pos].strip()
        if not raw:
            raise self.error("missing value after the operator")
        return raw


def _comparison(get: KeyFn, op: str, values: list[str],
                error: Callable[[str], FilterError]) -> Callable[[Keys], bool]:
    if op in ("~", "!~"):
        try:
            pattern = re.compile("|".join(f"(?:{v})" for v in values))
        except re.error as exc:
            raise error(f"bad regular expression ({exc})") from None
        full = pattern.fullmatch
        if op == "~":
            return lambda keys: (v := get(keys)) is not None and full(str(v)) is not None
        return lambda keys: (v := get(keys)) is not None and full(str(v)) is None
    accepted: set[Any] = set(values)
    for v in values:
        with contextlib.suppress(ValueError):
            accepted.add(int(v, 0) if v.lower().startswith("0x") else int(v))
    if op == "=":
        return lambda keys: (v := get(keys)) is not None and v in accepted
    return lambda keys: (v := get(keys)) is not None and v not in accepted


def compile_filter(expr: str, groups: GroupSet, lookups: Lookups | None = None
                   ) -> CompiledFilter:
    """Compile an sFlow-RT filter; a blank filter matches everything."""
    if not isinstance(expr, str):
        raise FilterError(f"filter must be a string, not {type(expr).__name__}")
    if not expr.strip():
        return CompiledFilter(expr, frozenset(), lambda keys: True)
    parser = _Parser(expr, KeyContext(groups, lookups))
    test = parser.parse()
    return CompiledFilter(expr, frozenset(parser.refs), test)
