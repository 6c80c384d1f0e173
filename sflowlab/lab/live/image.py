"""The live service's image, built locally (no registry): ``FROM scratch`` with Debian's
static busybox serving ``/www/index.html`` (``busybox httpd -f -p 80``), the page as large as
the scenario's ``response_bytes``; STOPSIGNAL SIGKILL (busybox as PID 1 ignores SIGTERM, and
swarm would wait its 10 s grace period for every task it stops)."""

from __future__ import annotations

import io
import struct
import tarfile
from pathlib import Path

import docker

__all__ = ["BUSYBOX", "DOCKERFILE", "SMALL_TAG", "build_context", "build_image", "build_small_image",
           "image_tag", "is_static_elf", "page"]

BUSYBOX = Path("/bin/busybox")
DOCKERFILE = b"""FROM scratch
COPY busybox /bin/busybox
COPY index.html /www/index.html
STOPSIGNAL SIGKILL
CMD ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]
"""
REPOSITORY = "sflowlab/busybox-httpd"
SMALL_TAG = f"{REPOSITORY}:live"
"""The image with a one-line page, for containers whose page does not matter (tests, benches)."""


def is_static_elf(path: Path) -> bool:
    """A 64-bit ELF executable without a PT_INTERP program header (no dynamic loader)."""
    data = path.read_bytes()
    if data[:5] != b"\x7fELF\x02":
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


def page(size: int) -> bytes:
    """An HTML page of exactly ``size`` bytes (at least the markup's 32)."""
    head, tail = b"<html><body><pre>\n", b"</pre></body></html>\n"
    fill = max(size - len(head) - len(tail), 0)
    line = b"sflowlab live lab " * 4 + b"\n"
    return head + (line * (fill // len(line) + 1))[:fill] + tail


def build_context(index: bytes, busybox: Path = BUSYBOX) -> io.BytesIO:
    """The image's build context as an in-memory tar: Dockerfile, busybox, index.html."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in (("Dockerfile", DOCKERFILE, 0o644),
                                 ("busybox", busybox.read_bytes(), 0o755),
                                 ("index.html", index, 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def image_tag(response_bytes: int) -> str:
    return f"{REPOSITORY}:{response_bytes}"


def build_image(client: docker.DockerClient, response_bytes: int,
                busybox: Path = BUSYBOX) -> str:
    """Build (or find cached) the image serving a ``response_bytes`` page; its tag.
    ValueError when ``busybox`` is not a static busybox (install busybox-static)."""
    return _build(client, page(response_bytes), image_tag(response_bytes), busybox)


def build_small_image(client: docker.DockerClient, busybox: Path = BUSYBOX) -> str:
    """Build (or find cached) ``SMALL_TAG``; its tag. ValueError as ``build_image``."""
    return _build(client, b"<h1>sflowlab</h1>\n", SMALL_TAG, busybox)


def _build(client: docker.DockerClient, index: bytes, tag: str, busybox: Path) -> str:
    if not busybox.is_file() or not is_static_elf(busybox):
        raise ValueError(f"{busybox} is not a static busybox (install busybox-static)")
    client.images.build(fileobj=build_context(index, busybox), custom_context=True, tag=tag,
                        rm=True)
    return tag
