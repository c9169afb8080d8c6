from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings, get_settings
from app.db.models import Conversation
from app.db.session import create_session_factory
from app.services.messaging.delivery import DeliveryResult, DeliveryService
from app.services.messaging.inbound import InboundPipeline
from app.services.turns import Brain
from tests.fakes import CollectingSender, FixedMedia, MenuBrain


def customer_message(
    text: str = "hi",
    *,
    message_id: str = "m-1",
    user_id: str = "cust-1",
    conversation_id: str = "conv-1",
    timestamp_ms: int | None = None,
    type_: str = "text",
) -> str:
    content: dict[str, object] = {
        "timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
        "conversation_id": conversation_id,
        "message_id": message_id,
        "from": f"{user_id}-name",
        "to": "shop",
        "from_user": {"id": user_id, "role": "personal_account"},
        "to_user": {"id": "shop", "role": "business_account"},
        "type": type_,
    }
    if type_ == "text":
        content["text"] = {"body": text}
    elif type_ == "image":
        content["image"] = {"media_id": "img-1"}
    return orjson.dumps(
        {
            "client_key": "ck",
            "event": "im_receive_msg",
            "create_time": int(time.time()),
            "user_openid": "shop",
            "content": orjson.dumps(content).decode(),
        }
    ).decode()


def echo(
    text: str, *, message_id: str, user_id: str = "cust-1", conversation_id: str = "conv-1"
) -> str:
    content = {
        "timestamp": int(time.time() * 1000),
        "conversation_id": conversation_id,
        "message_id": message_id,
        "from": "shop",
        "to": f"{user_id}-name",
        "from_user": {"id": "shop", "role": "business_account"},
        "to_user": {"id": user_id, "role": "personal_account"},
        "type": "text",
        "text": {"body": text},
    }
    return orjson.dumps(
        {
            "client_key": "ck",
            "event": "im_send_msg",
            "create_time": int(time.time()),
            "content": orjson.dumps(content).decode(),
        }
    ).decode()


@dataclass
class Harness:
    settings: Settings
    pipeline: InboundPipeline
    delivery: DeliveryService
    sender: CollectingSender
    queued: list[int] = field(default_factory=list)
    handoffs: list[str] = field(default_factory=list)

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

        async def notify(conversation: Conversation, reason: str) -> None:
            handoffs.append(reason)

        pipeline = InboundPipeline(
            settings, factory, redis_client, brain or MenuBrain(), enqueue, notify
        )
        delivery = DeliveryService(settings, factory, redis_client, sender, FixedMedia())
        return Harness(settings, pipeline, delivery, sender, queued, handoffs)

    return build
