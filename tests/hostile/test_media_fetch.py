"""Item photo URLs are typed by staff and fetched by the worker: a URL must not turn the
worker into a proxy into the network (cloud metadata, internal services, localhost).

A real HTTP server on 127.0.0.1 stands in for everything the worker must not reach, and
for a mirror; it counts the connections it accepts, so "refused" means nothing was sent,
not merely that the answer was thrown away. Uploads go to the TikTok sandbox.
"""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from socket import socket
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.db.models import Conversation, Customer, Message, OutboxEntry
from app.sandbox.control import SandboxControl
from app.sandbox.media import placeholder_png
from app.sandbox.server import BackgroundServer
from app.services.messaging.delivery import Delivery, DeliveryService
from app.services.messaging.inbound import InboundPipeline, Outcome
from app.services.messaging.media import (
    MAX_REDIRECTS,
    CachedMediaResolver,
    MediaUrlRefused,
    host_allowed,
    is_public_address,
    pinned_request,
)
from app.services.tiktok.client import TikTokClient
from app.services.turns import Reply, TurnResult
from tests.factories import as_queued, text_message
from tests.services.tiktok.conftest import (  # noqa: F401 (fixtures used by name)
    ClientFactory,
    make_client,
    sandbox,
    sandbox_server,
    tiktok_settings,
    token_sessions,
)

PNG = placeholder_png("the real photo")
SHOP_HOSTS = ("shop.example",)
PHOTO = "https://cdn.shop.example/PT-0950/1.jpg"
MIRRORED = "/mirror/cdn.shop.example/PT-0950/1.jpg"


class _Handler(BaseHTTPRequestHandler):
    server: RecordingServer

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        status, headers, body = self.server.routes.get(self.path, (404, {}, b"not here"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class RecordingServer(ThreadingHTTPServer):
    """Answers GETs from `routes` (path → status, headers, body) and records every accepted
    connection and every request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[tuple[str, str]] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def process_request(self, request: socket | tuple[bytes, socket], client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve_photo(self, path: str) -> None:
        self.routes[path] = (200, {"Content-Type": "image/png"}, PNG)

    def redirect(self, path: str, location: str) -> None:
        self.routes[path] = (302, {"Location": location}, b"")


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    recording = RecordingServer()
    thread = threading.Thread(target=recording.serve_forever, daemon=True)
    thread.start()
    yield recording
    recording.shutdown()
    recording.server_close()
    thread.join(timeout=5)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
async def uploader(make_client: ClientFactory) -> TikTokClient:  # noqa: F811
    return make_client()


def _resolver(
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    uploader: TikTokClient,
    *,
    mirror: str | None = None,
    allowed: Sequence[str] = SHOP_HOSTS,
) -> CachedMediaResolver:
    return CachedMediaResolver(sessions, http, uploader, mirror, allowed_hosts=allowed)


async def _uploads(sandbox: SandboxControl) -> int:  # noqa: F811
    return len(await sandbox.calls(endpoints=["media_upload"]))


# -- the policy's parts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104 (an address judged, not bound)
        "224.0.0.1",
        "239.255.255.250",  # multicast, which Python calls global
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1, which Python calls global
        "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
    ],
)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "151.101.1.1", "2606:4700::6810:84e5"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("p16-sign.tiktokcdn.com", True),
        ("tiktokcdn.com", True),
        ("P16.TikTokCDN.com.", True),
        ("eviltiktokcdn.com", False),
        ("tiktokcdn.com.evil.example", False),
        ("cdn.shop.example", True),
        ("shop.example.evil.example", False),
        ("", False),
    ],
)
def test_hosts_match_whole_labels(host: str, allowed: bool) -> None:
    assert host_allowed(host, ("tiktokcdn.com", ".shop.example")) is allowed


def test_ip_hosts_match_only_when_listed_exactly() -> None:
    assert not host_allowed("10.1.1.1", ("1.1",))
    assert host_allowed("93.184.215.14", ("93.184.215.14",))


async def test_pinned_request_connects_to_the_checked_address_without_resolving(
    server: RecordingServer, http: httpx.AsyncClient
) -> None:
    """The name is never looked up again (`.invalid` cannot resolve, yet the request
    arrives): a DNS answer changed after the check cannot redirect the connection."""
    server.serve_photo("/photo.png")
    url = httpx.URL(f"http://photos.invalid:{server.port}/photo.png")

    request = pinned_request(http, url, "127.0.0.1")
    response = await http.send(request)

    assert response.status_code == 200 and response.content == PNG
    assert server.requests == [("/photo.png", f"photos.invalid:{server.port}")]
    assert request.extensions["sni_hostname"] == "photos.invalid"
    assert request.headers["Connection"] == "close"


def _self_signed(name: str, folder: Path) -> tuple[str, str]:
    """A certificate for `name` only, and its key: (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


async def test_pinned_https_checks_the_certificate_against_the_name(
    server: RecordingServer, tmp_path: Path
) -> None:
    """Connecting to the address loses nothing of TLS: the name goes out as SNI and the
    certificate must be valid for the name (an address-only check would pass anything)."""
    cert, key = _self_signed("photos.test", tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    sni_seen: list[str | None] = []
    served.sni_callback = lambda _socket, name, _context: sni_seen.append(name)
    server.socket = served.wrap_socket(server.socket, server_side=True)
    server.serve_photo("/photo.png")
    trusting = ssl.create_default_context(cafile=cert)

    async with httpx.AsyncClient(verify=trusting, timeout=5.0) as https:
        named = httpx.URL(f"https://photos.test:{server.port}/photo.png")
        response = await https.send(pinned_request(https, named, "127.0.0.1"))
        assert response.status_code == 200 and response.content == PNG

        elsewhere = httpx.URL(f"https://other.test:{server.port}/photo.png")
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await https.send(pinned_request(https, elsewhere, "127.0.0.1"))

    assert sni_seen[:2] == ["photos.test", "other.test"]
    assert server.requests == [("/photo.png", f"photos.test:{server.port}")]


# -- refused before anything is sent ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/PT-0950/1.jpg",
        "https://eviltiktokcdn.com/1.jpg",
        "https://cdn.shop.example.evil.example/1.jpg",
        "http://cdn.shop.example/PT-0950/1.jpg",  # allowed host, but not https
        "ftp://cdn.shop.example/PT-0950/1.jpg",
        "https://staff:hunter2@cdn.shop.example/PT-0950/1.jpg",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://169.254.169.254/latest/meta-data/",
        "https://localhost/1.jpg",
        "https:///1.jpg",
    ],
)
async def test_url_outside_the_policy_is_refused_without_a_request(
    url: str,
    server: RecordingServer,
    http: httpx.AsyncClient,
    uploader: TikTokClient,
    token_sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    sandbox: SandboxControl,  # noqa: F811
) -> None:
    # Through a mirror that would serve anything: only the policy stands in the way.
    for path in ("/mirror/evil.example/PT-0950/1.jpg", "/mirror/169.254.169.254/latest/meta-data/"):
        server.serve_photo(path)
    resolver = _resolver(token_sessions, http, uploader, mirror=f"{server.url}/mirror")

    with pytest.raises(MediaUrlRefused):
        await resolver.media_id_for(url)

    assert server.connections == 0
    assert await _uploads(sandbox) == 0


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_unlisted_local_server_is_refused_without_a_connection(
    scheme: str,
    server: RecordingServer,
    http: httpx.AsyncClient,
    uploader: TikTokClient,
    token_sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    server.serve_photo("/photo.png")
    resolver = _resolver(token_sessions, http, uploader)

    with pytest.raises(MediaUrlRefused):
        await resolver.media_id_for(f"{scheme}://127.0.0.1:{server.port}/photo.png")

    assert server.connections == 0


async def test_allowed_name_resolving_to_loopback_is_refused(
    server: RecordingServer,
    http: httpx.AsyncClient,
    uploader: TikTokClient,
    token_sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    sandbox: SandboxControl,  # noqa: F811
) -> None:
    """The host passes the allowlist; its address does not (an allowed name pointed at an
    internal address, by mistake or by whoever controls its DNS)."""
    server.serve_photo("/photo.png")
    resolver = _resolver(token_sessions, http, uploader, allowed=("localhost",))

    with pytest.raises(MediaUrlRefused, match="private or reserved address"):
        await resolver.media_id_for(f"https://localhost:{server.port}/photo.png")

    assert server.connections == 0
    assert await _uploads(sandbox) == 0


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "127.0.0.1",
        "10.0.0.1",
        "0.0.0.0",  # noqa: S104 (an address judged, not bound)
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[2002:7f00:1::1]",
        "[fe80::1]",
    ],
)
async def test_literal_internal_address_is_refused_even_when_listed(
    host: str,
    http: httpx.AsyncClient,
    uploader: TikTokClient,
    token_sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    resolver = _resolver(token_sessions, http, uploader, allowed=(host.strip("[]"),))

    with pytest.raises(MediaUrlRefused, match="private or reserved address"):
        await resolver.media_id_for(f"https://{host}/latest/meta-data/")


# -- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://127.0.0.1:{port}/internal", "is not https"),
        ("https://127.0.0.1:{port}/internal", "not an allowed media host"),
        ("http://169.254.169.254/latest/meta-data/", "is not https"),
        ("https://169.254.169.254/latest/meta-data/", "not an allowed media host"),
        ("https://evil.example/1.jpg", "not an allowed media host"),
        ("https://localhost:{port}/internal", "private or reserved address"),
        ("//localhost:{port}/internal", "is not https"),  # scheme-relative: the mirror's http
    ],
)
async def test_redirect_off_the_mirror_is_judged_by_the_same_rules(
    location: str,
    reason: str,
    server: RecordingServer,
    http: httpx.AsyncClient,
    uploader: TikTokClient,
    token_sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    sandbox: SandboxControl,  # noqa: F811
) -> None:
    server.redirect(MIRRORED, location.format(port=server.port))
    server.serve_photo("/internal")
    resolver = _resolver(
        token_sessions,
        http,
        uploader,
        mirror=f"{server.url}/mirror",
        allowed=(*SHOP_HOSTS, "localhost"),
    )

    with pytest.raises(MediaUrlRefused, match=f"its redirect to .*{reason}"):
        await resolver.media_id_for(PHOTO)

    assert [path for path, _ in server.requests] == [MIRRORED]
    assert server.connections == 1
    assert await _uploads(sandbox) == 0


@pytest.mark.parametrize("hops", [MAX_REDIRECTS, MAX_REDIRECTS + 1])
async def test_redirects_within_the_mirror_are_followed_up_to_the_limit(
    hops: int,
    server: RecordingServer,
    http: httpx.AsyncClient,
    uploader: TikTokClient,
    token_sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    sandbox: SandboxControl,  # noqa: F811
) -> None:
    chain = [MIRRORED, *(f"/mirror/cdn.shop.example/hop-{n}.png" for n in range(1, hops + 1))]
    for index, (here, there) in enumerate(pairwise(chain)):
        # Relative and absolute Locations both stay within the mirror.
        server.redirect(here, there if index % 2 == 0 else f"{server.url}{there}")
    server.serve_photo(chain[-1])
    resolver = _resolver(token_sessions, http, uploader, mirror=f"{server.url}/mirror")

    if hops <= MAX_REDIRECTS:
        media_id = await resolver.media_id_for(PHOTO)
        assert [path for path, _ in server.requests] == chain
        assert await _uploads(sandbox) == 1
        assert await uploader.send_image("conv-redirected-photo", media_id)
    else:
        with pytest.raises(MediaUrlRefused, match=f"more than {MAX_REDIRECTS} times"):
            await resolver.media_id_for(PHOTO)
        assert [path for path, _ in server.requests] == chain[:-1]
        assert await _uploads(sandbox) == 0


# -- what still works ------------------------------------------------------------------------


async def test_photo_through_the_mirror_is_fetched_and_uploaded(
    sandbox_server: BackgroundServer,  # noqa: F811
    http: httpx.AsyncClient,
    uploader: TikTokClient,
    token_sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    sandbox: SandboxControl,  # noqa: F811
) -> None:
    resolver = _resolver(
        token_sessions, http, uploader, mirror=f"{sandbox_server.url}/_sandbox/media"
    )

    media_id = await resolver.media_id_for(PHOTO)

    [upload] = await sandbox.calls(endpoints=["media_upload"])
    assert upload.code == 0
    assert await uploader.send_image("conv-mirrored-photo", media_id)
    [message] = await sandbox.messages()
    assert message.message_type == "IMAGE" and message.media_id == media_id


class _PhotoBrain:
    """Answers every turn with a text and a photo at the URL it was given."""

    def __init__(self, image_url: str) -> None:
        self.image_url = image_url

    async def respond(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        turn: list[Message],
    ) -> TurnResult:
        return TurnResult(
            "availability",
            "pattern",
            replies=[Reply("Still available, here it is:"), Reply(image_url=self.image_url)],
        )


async def test_reply_goes_out_without_a_refused_photo(
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    tiktok_settings: Settings,  # noqa: F811
    make_client: ClientFactory,  # noqa: F811
    sandbox: SandboxControl,  # noqa: F811
    server: RecordingServer,
    http: httpx.AsyncClient,
) -> None:
    """What the worker does with such a photo: the text is sent, the photo is recorded as
    not sent with the reason, and nothing is fetched."""
    factory = async_sessionmaker(committed_db, expire_on_commit=False, autoflush=False)
    queued: list[int] = []

    async def enqueue(ids: Sequence[int]) -> None:
        queued.extend(ids)

    async def notify(conversation: Conversation, reason: str) -> None:
        return None

    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    client = make_client()
    pipeline = InboundPipeline(
        tiktok_settings, factory, redis_client, _PhotoBrain(metadata), enqueue, notify
    )
    delivery = DeliveryService(
        tiktok_settings,
        factory,
        redis_client,
        client,
        _resolver(factory, http, client, mirror=f"{server.url}/mirror"),
    )

    assert await pipeline.handle(as_queued(text_message("is it available?"))) is Outcome.HANDLED
    results = [await delivery.deliver(outbox_id) for outbox_id in queued]

    assert [result.outcome for result in results] == [Delivery.SENT, Delivery.NOT_SENT]
    [sent] = await sandbox.messages()
    assert sent.message_type == "TEXT" and sent.text == "Still available, here it is:"
    assert await _uploads(sandbox) == 0
    assert server.connections == 0
    async with AsyncSession(committed_db) as session:
        photo_entry = await session.get(OutboxEntry, queued[1])
        assert photo_entry is not None
        photo = await session.scalar(select(Message).where(Message.id == photo_entry.message_id))
    assert photo is not None and photo.status == "not_sent"
    assert photo.status_reason is not None and "refused: is not https" in photo.status_reason
