"""Item photo → TikTok media id: fetched (here through the sandbox's CDN mirror), checked,
uploaded once, and cached on the image row."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import ItemImage
from app.db.session import SessionFactory, transaction
from app.sandbox.control import SandboxControl
from app.sandbox.media import placeholder_png
from app.sandbox.server import BackgroundServer
from app.services.messaging.media import CachedMediaResolver, MediaUnavailable, mirror_url
from app.services.shop.catalog_io import import_catalog
from tests.services.tiktok.conftest import ClientFactory

CATALOG = (
    "sku,title,brand,category,gender,color,tag_size,fits_like,pit_to_pit_in,length_in,"
    "waist_in,inseam_in,shoe_size_us,condition,price,currency,status,drop,video_ids,"
    "image_urls,notes\n"
    "PT-0950,Photo Tee,Acme,tops,unisex,black,L,,21.5,28,,,,good,20.00,USD,available,"
    "d1,,https://cdn.shop.example/PT-0950/1.jpg,\n"
)

SHOP_MEDIA_HOSTS = ("shop.example",)


def test_placeholder_is_a_stable_png() -> None:
    first = placeholder_png("cdn.example/a.jpg")
    assert first.startswith(b"\x89PNG\r\n\x1a\n") and first == placeholder_png("cdn.example/a.jpg")
    assert first != placeholder_png("cdn.example/b.jpg")
    assert mirror_url("http://m/_sandbox/media/", "https://cdn.example/x/1.jpg") == (
        "http://m/_sandbox/media/cdn.example/x/1.jpg"
    )


async def test_photo_is_uploaded_once_and_cached(
    committed_db: AsyncEngine,
    token_sessions: SessionFactory,
    make_client: ClientFactory,
    sandbox_server: BackgroundServer,
    sandbox: SandboxControl,
) -> None:
    async with transaction(token_sessions) as session:
        await import_catalog(session, CATALOG)
    client = make_client()
    async with httpx.AsyncClient() as http:
        resolver = CachedMediaResolver(
            token_sessions,
            http,
            client,
            f"{sandbox_server.url}/_sandbox/media",
            allowed_hosts=SHOP_MEDIA_HOSTS,
        )
        media_id = await resolver.media_id_for("https://cdn.shop.example/PT-0950/1.jpg")
        assert media_id == await resolver.media_id_for("https://cdn.shop.example/PT-0950/1.jpg")
        uploads = await sandbox.calls(endpoints=["media_upload"])
        assert len(uploads) == 1
        async with AsyncSession(committed_db) as session:
            image = await session.scalar(select(ItemImage))
            assert image is not None and image.tiktok_media_id == media_id
        # and TikTok accepts it for an image message
        assert await client.send_image("conv-media", media_id)

        unreachable = CachedMediaResolver(
            token_sessions, http, client, None, allowed_hosts=SHOP_MEDIA_HOSTS
        )
        with pytest.raises(MediaUnavailable):
            await unreachable.media_id_for("http://127.0.0.1:9/nothing.jpg")
