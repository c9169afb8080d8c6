"""Turning an item photo URL into a TikTok media id, cached on the image row (~30 days).

Photo URLs are typed by staff (the admin, a CSV import) and fetched by the worker from
inside the network, so a URL is a request the worker makes on someone's behalf: to cloud
metadata (169.254.169.254), to an internal service, to localhost. Every fetch therefore
goes through one policy (`MediaUrlRefused` when it fails, and the reply then goes out
without its photo, as for any unavailable photo):

- https only, no credentials in the URL;
- the host is one of the allowed media hosts or a subdomain of one
  (`Settings.media_host_suffixes`: TikTok's CDN and MEDIA_ALLOWED_HOSTS);
- every address the host resolves to is public (no private, loopback, link-local,
  multicast, reserved or unspecified address, nor one hidden in an IPv6 form), and the
  connection goes to the address that was checked;
- redirects are followed by hand, at most MAX_REDIRECTS, each target judged by the same
  rules.

Through the mirror (MEDIA_MIRROR_URL, set by an operator on a machine that cannot reach the
CDN) the photo's URL must still pass the scheme and host rules, but its host is not
resolved, since it is not contacted; the mirror itself is trusted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from app.core.clock import utc_now
from app.core.logging import get_logger
from app.db.repositories.items import ItemRepository
from app.db.session import SessionFactory, transaction
from app.services.tiktok.errors import TikTokPermanentError

log = get_logger(__name__)

MAX_IMAGE_BYTES = 3 * 1024 * 1024
MEDIA_ID_LIFETIME = timedelta(days=25)  # TikTok keeps them ~30 days; renew early
MAX_REDIRECTS = 3
_ALLOWED_TYPES = {"image/jpeg": "jpg", "image/png": "png"}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class MediaUnavailable(Exception):
    """The picture cannot be fetched or uploaded; the text reply stands on its own."""


class MediaUrlRefused(MediaUnavailable):
    """The photo's URL (or a redirect's target) is not one the worker may fetch."""


def is_public_address(address: IPAddress) -> bool:
    """Whether the worker may connect to `address` for a photo: a globally routed unicast
    address, judging an IPv4 address carried inside an IPv6 one as that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: list[ipaddress.IPv4Address] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if not all(is_public_address(inner) for inner in embedded):
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def host_allowed(host: str, suffixes: Sequence[str]) -> bool:
    """`host` is one of `suffixes` or a subdomain of one. An IP literal must be listed
    exactly: a suffix match on numbers ("10.1.1.1" ending in ".1.1") means nothing."""
    host = host.lower().rstrip(".")
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return host in (suffix.lower() for suffix in suffixes)
    for suffix in suffixes:
        suffix = suffix.lower().strip(".")
        if suffix and (host == suffix or host.endswith("." + suffix)):
            return True
    return False


def pinned_request(http: httpx.AsyncClient, url: httpx.URL, address: str) -> httpx.Request:
    """A GET of `url` that connects to `address` (already checked) rather than resolving the
    name again: a second lookup could answer differently (DNS rebinding). The name still
    goes out as the Host header and as TLS SNI, and the certificate is checked against it.

    `Connection: close`: the pool keys connections by address, and a connection opened (and
    its certificate checked) for one name must not carry a request for another name that
    shares the address. Photos are fetched once a month each, so the handshake is cheap.
    Through an HTTP proxy (HTTPS_PROXY) httpx does not pass the SNI on, so the certificate
    check fails: the fetch is refused rather than made unchecked."""
    name = url.raw_host.decode("ascii")
    return http.build_request(
        "GET",
        url.copy_with(host=address),
        headers={"Host": url.netloc.decode("ascii"), "Connection": "close"},
        extensions={"sni_hostname": name},
    )


@dataclass(frozen=True)
class _Target:
    url: httpx.URL  # what is asked for, and what a relative redirect is resolved against
    address: str | None  # the checked address to connect to; None: the trusted mirror


class MediaUploader(Protocol):
    async def upload_image(self, content: bytes, filename: str, content_type: str) -> str: ...


def _sniff_type(content: bytes) -> str | None:
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


@dataclass
class CachedMediaResolver:
    session_factory: SessionFactory
    http: httpx.AsyncClient
    uploader: MediaUploader
    mirror: str | None = None
    # Host suffixes photos may come from (`Settings.media_host_suffixes`); no default, so
    # that no caller fetches under a policy it did not choose.
    allowed_hosts: Sequence[str] = field(kw_only=True)

    async def media_id_for(self, image_url: str) -> str:
        now = utc_now()
        async with transaction(self.session_factory) as session:
            image = await ItemRepository(session).image_by_url(image_url)
            if (
                image is not None
                and image.tiktok_media_id
                and image.media_uploaded_at is not None
                and now - image.media_uploaded_at < MEDIA_ID_LIFETIME
            ):
                return image.tiktok_media_id
        content = await self._fetch(image_url)
        content_type = _sniff_type(content)
        if content_type is None:
            raise MediaUnavailable(f"{image_url} is not a JPG or PNG")
        try:
            media_id = await self.uploader.upload_image(
                content, f"photo.{_ALLOWED_TYPES[content_type]}", content_type
            )
        except TikTokPermanentError as error:
            raise MediaUnavailable(f"upload refused: {error}") from error
        async with transaction(self.session_factory) as session:
            image = await ItemRepository(session).image_by_url(image_url)
            if image is not None:
                image.tiktok_media_id = media_id
                image.media_uploaded_at = now
        return media_id

    async def _fetch(self, image_url: str) -> bytes:
        try:
            original = httpx.URL(image_url)
        except httpx.InvalidURL as error:
            raise self._refused(image_url, f"is not a valid URL ({error})") from error
        try:
            self._check_url(original)
            if self.mirror is None:
                target = _Target(original, await self._checked_address(image_url, original))
            else:
                target = _Target(httpx.URL(mirror_url(self.mirror, str(original))), None)
        except _Refusal as refusal:
            raise self._refused(image_url, refusal.reason, **refusal.details) from None
        try:
            for _ in range(MAX_REDIRECTS + 1):
                request = (
                    self.http.build_request("GET", target.url)
                    if target.address is None
                    else pinned_request(self.http, target.url, target.address)
                )
                response = await self.http.send(request, stream=True, follow_redirects=False)
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_STATUSES and location:
                        target = await self._redirect_target(image_url, target, location)
                        continue
                    return await self._read_photo(image_url, response)
                finally:
                    await response.aclose()
        except httpx.HTTPError as error:
            raise MediaUnavailable(f"{image_url} cannot be fetched: {error!r}") from error
        raise self._refused(image_url, f"redirects more than {MAX_REDIRECTS} times")

    @staticmethod
    async def _read_photo(image_url: str, response: httpx.Response) -> bytes:
        if response.status_code != 200:
            raise MediaUnavailable(f"{image_url} answered {response.status_code}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_IMAGE_BYTES:
                raise MediaUnavailable(f"{image_url} is over 3 MB")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_url(self, url: httpx.URL) -> None:
        """The scheme and host rules, for the photo's URL and for any redirect target."""
        if url.scheme != "https":
            raise _Refusal("is not https")
        if url.userinfo:
            raise _Refusal("carries credentials")
        host = url.raw_host.decode("ascii").rstrip(".")
        if not host_allowed(host, self.allowed_hosts):
            raise _Refusal(f"is on {host or 'no host'}, not an allowed media host")

    async def _checked_address(self, image_url: str, url: httpx.URL) -> str:
        """The address to connect to for `url`, once every address of its host is public."""
        host = url.raw_host.decode("ascii").rstrip(".")
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, url.port or 443, type=socket.SOCK_STREAM
                )
            except OSError as error:
                raise MediaUnavailable(f"{image_url}: {host} does not resolve ({error})") from error
            try:
                addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
            except ValueError:
                raise _Refusal(f"is on {host}, which resolves to an unreadable address") from None
        # Every address, not just the one connected to: a name that resolves to a public
        # and a private address is someone's attempt to get the private one used.
        blocked = [address for address in addresses if not is_public_address(address)]
        if blocked or not addresses:
            # The addresses go to the log only: the reason is shown to staff, and which
            # internal addresses a name points at is not theirs to learn this way.
            raise _Refusal(
                f"is on {host}, which resolves to a private or reserved address",
                addresses=[str(address) for address in blocked],
            )
        return str(addresses[0])

    async def _redirect_target(self, image_url: str, current: _Target, location: str) -> _Target:
        try:
            url = current.url.join(location)
        except httpx.InvalidURL as error:
            raise self._refused(image_url, f"redirects to an invalid URL ({error})") from error
        if self.mirror is not None and _within(url, httpx.URL(self.mirror)):
            return _Target(url, None)
        try:
            self._check_url(url)
            return _Target(url, await self._checked_address(image_url, url))
        except _Refusal as refusal:
            shown = url.copy_with(query=None, fragment=None)
            raise self._refused(
                image_url, f"its redirect to {shown} {refusal.reason}", **refusal.details
            ) from None

    @staticmethod
    def _refused(image_url: str, reason: str, **details: object) -> MediaUrlRefused:
        log.warning("media_url_refused", url=image_url, reason=reason, **details)
        return MediaUrlRefused(f"{image_url} refused: {reason}")


class _Refusal(Exception):
    """A rule a URL breaks, phrased to follow the URL it is about ("is not https")."""

    def __init__(self, reason: str, **details: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


def _within(url: httpx.URL, base: httpx.URL) -> bool:
    """`url` is `base` or below it: same scheme, host and port, and under its path."""
    prefix = base.path.rstrip("/") + "/"
    return (url.scheme, url.raw_host, url.port) == (base.scheme, base.raw_host, base.port) and (
        url.path + "/"
    ).startswith(prefix)


def mirror_url(mirror: str, original: str) -> str:
    """`https://cdn.example/PT-1/1.jpg` → `{mirror}/cdn.example/PT-1/1.jpg`.

    Built from the parsed host and path, not the raw text after the scheme: credentials or a
    port in the original must not turn into part of the path the mirror is asked for."""
    parts = urlsplit(original)
    if not parts.hostname:
        raise ValueError("a mirrored URL needs a host")
    query = f"?{parts.query}" if parts.query else ""
    return f"{mirror.rstrip('/')}/{parts.hostname}{parts.path or '/'}{query}"
