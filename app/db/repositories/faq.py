"""The shop's FAQ entries, the only text policy answers are built from."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import FaqEntry


class FaqRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> Sequence[FaqEntry]:
        return (await self.session.scalars(select(FaqEntry).order_by(FaqEntry.topic))).all()

    async def by_topics(self, topics: Sequence[str]) -> dict[str, FaqEntry]:
        if not topics:
            return {}
        found = await self.session.scalars(select(FaqEntry).where(FaqEntry.topic.in_(topics)))
        return {entry.topic: entry for entry in found}
