"""Turning an item photo URL into a TikTok media id, cached on the image row (~30 days)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx
from sqlalchemy import select

from app.db.models import ItemImage
from app.db.session import SessionFactory, transaction
from app.sandbox.media import mirror_url
from app.services.delivery import MediaUnavailable
from app.services.tiktok.errors import TikTokPermanentError

MAX_IMAGE_BYTES = 3 * 1024 * 1024
MEDIA_ID_LIFETIME = timedelta(days=25)  # TikTok keeps them ~30 days; renew early
_ALLOWED_TYPES = {"image/jpeg": "jpg", "image/png": "png"}


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

    async def media_id_for(self, image_url: str) -> str:
        now = datetime.now(UTC)
        async with transaction(self.session_factory) as session:
            image = await session.scalar(select(ItemImage).where(ItemImage.url == image_url))
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
            image = await session.scalar(select(ItemImage).where(ItemImage.url == image_url))
            if image is not None:
                image.tiktok_media_id = media_id
                image.media_uploaded_at = now
        return media_id

    async def _fetch(self, image_url: str) -> bytes:
        source = image_url if self.mirror is None else mirror_url(self.mirror, image_url)
        try:
            async with self.http.stream("GET", source, follow_redirects=True) as response:
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
        except httpx.HTTPError as error:
            raise MediaUnavailable(f"{image_url} cannot be fetched: {error!r}") from error
