"""A minimal multipart/form-data reader (RFC 7578): enough for the sandbox to check the
shape of TikTok's media upload without another dependency. It is strict on purpose: a
body a real server could misread is refused (None) rather than guessed at."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message


@dataclass
class Part:
    headers: Message
    content: bytes

    @property
    def name(self) -> str | None:
        value = self.headers.get_param("name", header="content-disposition")
        return value if isinstance(value, str) else None

    @property
    def filename(self) -> str | None:
        return self.headers.get_filename()


def parse_multipart(body: bytes, content_type: str) -> dict[str, Part] | None:
    """The parts of `body` by name, or None when it is not well-formed
    multipart/form-data."""
    header = Message()
    header["content-type"] = content_type
    if header.get_content_type() != "multipart/form-data":
        return None
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return None
    # Every delimiter, the first included, is CRLF "--" boundary: the CRLF belongs to it.
    sections = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    parts: dict[str, Part] = {}
    for section in sections[1:]:
        if section.startswith(b"--"):
            return parts
        head, separator, content = section.partition(b"\r\n\r\n")
        if not separator:
            return None
        headers = Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip()] = value.strip()
        part = Part(headers, content)
        if part.name is None:
            return None
        parts[part.name] = part
    return None  # no closing delimiter: truncated body
