from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings, get_settings
from app.db.models import Conversation
from app.db.session import create_session_factory
from app.services.messaging.delivery import DeliveryResult, DeliveryService
from app.services.messaging.inbound import InboundPipeline, Outcome
from app.services.turns import Brain
from tests.factories import Envelope, as_queued
from tests.fakes import CollectingSender, FixedMedia, MenuBrain


@dataclass
class Harness:
    settings: Settings
    pipeline: InboundPipeline
    delivery: DeliveryService
    sender: CollectingSender
    queued: list[int] = field(default_factory=list)
    handoffs: list[str] = field(default_factory=list)

    async def receive(self, body: Envelope) -> Outcome:
        """What the worker does with the body once the webhook queued it."""
        return await self.pipeline.handle(as_queued(body))

    async def deliver_queued(self) -> list[DeliveryResult]:
        results = []
        while self.queued:
            results.append(await self.delivery.deliver(self.queued.pop(0)))
        return results


@pytest.fixture
def make_harness(committed_db: AsyncEngine, redis_client: aioredis.Redis) -> Callable[..., Harness]:
    def build(brain: Brain | None = None, **overrides: object) -> Harness:
        settings = Settings(**{**get_settings().model_dump(), **overrides})
        factory = create_session_factory(committed_db)
        sender = CollectingSender()
        queued: list[int] = []
        handoffs: list[str] = []

        async def enqueue(ids: Sequence[int]) -> None:
            queued.extend(ids)

        async def notify(conversation: Conversation | None, reason: str) -> None:
            handoffs.append(reason)

        pipeline = InboundPipeline(
            settings, factory, redis_client, brain or MenuBrain(), enqueue, notify
        )
        delivery = DeliveryService(settings, factory, redis_client, sender, FixedMedia())
        return Harness(settings, pipeline, delivery, sender, queued, handoffs)

    return build
