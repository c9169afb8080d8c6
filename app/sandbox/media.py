"""Stand-in photos for item image URLs that are not reachable from here.

The catalogue's photos live on the shop's CDN. Where that CDN is out of reach (tests, the
scenario runner, `make run` on a laptop), the worker can fetch through a mirror
(`MEDIA_MIRROR_URL`, see app.services.messaging.media.mirror_url), and the sandbox answers
as that mirror with a small PNG whose colour is derived from the URL: real bytes, a real
upload, a real image send.
"""

from __future__ import annotations

import hashlib
import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def placeholder_png(key: str, size: int = 64) -> bytes:
    """A solid-colour RGB PNG, the same bytes for the same key."""
    red, green, blue = hashlib.sha256(key.encode()).digest()[:3]
    row = b"\x00" + bytes((red, green, blue)) * size  # filter byte 0, then the pixels
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(row * size))
        + _chunk(b"IEND", b"")
    )
