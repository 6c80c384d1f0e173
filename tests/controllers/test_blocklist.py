"""Blocklists: parsing (comments, IPv6, bad lines), fetching (path, file://, http://), refresh."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from acl_lab import TextServer

from sflowlab.collector.groups import GroupSet
from sflowlab.controllers.blocklist import (
    BlocklistError,
    Blocklists,
    fetch,
    parse_blocklist,
)

LOG = logging.getLogger("test.blocklist")

TEXT = """\
# Emerging Threats block list
# (a comment line)

1.2.3.4
5.6.7.0/24   # trailing comment
10.0.0.0/8 ; SBL123
2001:db8::/32
2001:db8:1::1
1.2.3.4
999.1.1.1
1.2.3.0/33
fe80::1%eth0
hostname.example
"""


def test_comments_blank_lines_ipv6_duplicates_and_bad_lines() -> None:
    parsed = parse_blocklist(TEXT)
    assert parsed.cidrs == ["1.2.3.4", "5.6.7.0/24", "10.0.0.0/8", "2001:db8::/32",
                            "2001:db8:1::1"]
    assert parsed.invalid == 4
    assert parsed.examples == ["line 10: '999.1.1.1'", "line 11: '1.2.3.0/33'",
                               "line 12: 'fe80::1%eth0'", "line 13: 'hostname.example'"]
    groups = GroupSet()
    groups.set("bl", parsed.cidrs)  # the engine takes what the parser lets through
    assert groups.match("bl", "5.6.7.200") == "bl" and groups.match("bl", "2001:db8:9::1")


def test_many_entries_and_crlf() -> None:
    text = "\r\n".join(f"10.{i >> 8 & 255}.{i & 255}.0/24" for i in range(5000)) + "\r\n"
    parsed = parse_blocklist(text)
    assert len(parsed.cidrs) == 5000 and parsed.invalid == 0
    assert parsed.cidrs[-1] == "10.19.135.0/24"


def test_fetch_a_path_a_file_url_and_http(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("1.2.3.4\n")
    assert fetch(str(path)) == fetch(path.as_uri()) == "1.2.3.4\n"
    server = TextServer("5.6.7.8\n")
    try:
        assert fetch(server.url) == "5.6.7.8\n"
        server.status = 404
        with pytest.raises(BlocklistError, match="HTTP Error 404"):
            fetch(server.url)
    finally:
        server.stop()
    with pytest.raises(BlocklistError, match="No such file"):
        fetch(str(tmp_path / "missing.txt"))
    with pytest.raises(BlocklistError, match="use a path or a"):
        fetch("ftp://example.com/list.txt")


def test_refresh_follows_the_file_and_a_failure_keeps_the_last_good_list(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("1.1.1.1\n2.2.2.0/24\n")
    second.write_text("2.2.2.0/24\n3.3.3.3\n")
    lists = Blocklists([str(first), str(second)], LOG)
    assert lists.refresh() is True
    assert lists.cidrs() == ["1.1.1.1", "2.2.2.0/24", "3.3.3.3"]  # union, in order
    assert lists.refresh() is False  # unchanged
    first.write_text("1.1.1.1\n4.4.4.4\n")
    assert lists.refresh() is True and lists.cidrs() == ["1.1.1.1", "4.4.4.4", "2.2.2.0/24",
                                                          "3.3.3.3"]
    second.unlink()
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert lists.refresh() is False
    assert "event=blocklist_failed" in caplog.text and "kept=2" in caplog.text
    assert lists.cidrs() == ["1.1.1.1", "4.4.4.4", "2.2.2.0/24", "3.3.3.3"]
    second.write_text("<html>502 Bad Gateway</html>\n")  # served with 200 by a broken proxy
    assert lists.refresh() is False and "3.3.3.3" in lists.cidrs()
    status = lists.to_json()
    assert (status["entries"], status["refreshes"], status["failures"]) == (4, 8, 2)  # loads that worked, across sources
    assert "no valid entry in 1 lines" in status["sources"][1]["lastError"]


def test_an_empty_list_is_a_list() -> None:
    assert parse_blocklist("# nothing listed today\n\n").cidrs == []
