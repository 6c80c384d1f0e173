"""The codec's one error family: every failure carries the byte offset and the element path."""

from __future__ import annotations


class CodecError(Exception):
    """Base of every error the codec raises."""

    def __init__(self, message: str, offset: int = -1, path: str = "") -> None:
        self.message = message
        self.offset = offset
        self.path = path
        super().__init__(message)

    def within(self, segment: str) -> CodecError:
        """Prefix the path with an enclosing element and return self (for re-raising)."""
        self.path = f"{segment}/{self.path}" if self.path else segment
        return self

    def __str__(self) -> str:
        """``path: message at offset N`` (path first, so an enclosing path can be prefixed)."""
        where = f" at offset {self.offset}" if self.offset >= 0 else ""
        path = f"{self.path}: " if self.path else ""
        return f"{path}{self.message}{where}"


class DecodeError(CodecError):
    """Bytes that are not a valid sFlow v5 structure."""


class TruncatedError(DecodeError):
    """A structure or length runs past the end of its enclosing element."""


class EncodeError(CodecError):
    """A value that cannot be written (out of range, too long, wrong type)."""
