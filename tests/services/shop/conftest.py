"""Shop brain fixtures: the reference shop imported into a real PostgreSQL database,
the offline router (no network), and a `Chat` that plays one customer's turns."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings, get_settings
from app.db.models import Conversation, Customer, Message
from app.services.router import HybridRouter
from app.services.router.local import get_local_router
from app.services.shop import ShopBrain, load_default_faq
from app.services.shop.catalog_io import import_catalog, import_orders
from app.services.turns import TurnResult
from tests.factories import add_conversation_for, add_customer, username_of

_ids = itertools.count(1)


@pytest.fixture(scope="session")
def offline_router() -> HybridRouter:
    # No LLM: the tests must not depend on a key or the network.
    return HybridRouter(Settings(openai_api_key=None), local=get_local_router())


@pytest.fixture
def shop_settings() -> Settings:
    return get_settings().model_copy()


async def load_reference_shop(session: AsyncSession, shared_dir: Path) -> None:
    data = shared_dir / "data"
    await import_catalog(session, (data / "catalog.csv").read_text("utf-8"))
    await import_orders(session, (data / "orders.csv").read_text("utf-8"))
    await load_default_faq(session)
    await session.flush()


@pytest.fixture
async def shop(session: AsyncSession, shared_dir: Path) -> AsyncIterator[AsyncSession]:
    """The reference shop in a savepoint-isolated session (rolled back after the test)."""
    await load_reference_shop(session, shared_dir)
    yield session


@dataclass
class Chat:
    """One customer talking to the brain directly, inside the test's transaction."""

    session: AsyncSession
    brain: ShopBrain
    conversation: Conversation
    customer: Customer
    results: list[TurnResult] = field(default_factory=list)

    async def _turn(self, *messages: Message) -> TurnResult:
        result = await self.brain.respond(
            self.session, self.conversation, self.customer, list(messages)
        )
        await self.session.flush()
        self.results.append(result)
        return result

    def _message(self, message_type: str, text: str | None, payload: dict[str, Any]) -> Message:
        return Message(
            conversation_id=self.conversation.id,
            direction="inbound",
            event_id=f"test-{next(_ids)}",
            message_type=message_type,
            text=text,
            payload=payload,
            entities={},
            status="received",
        )

    async def say(self, *texts: str) -> TurnResult:
        """A text turn (several texts: one burst)."""
        return await self._turn(
            *(self._message("text", text, {"text": {"body": text}}) for text in texts)
        )

    async def share(self, video_id: str) -> TurnResult:
        payload = {"type": "share_post", "share_post": {"video_id": video_id}}
        return await self._turn(self._message("share_post", None, payload))

    async def send_media(self, message_type: str) -> TurnResult:
        return await self._turn(self._message(message_type, None, {"type": message_type}))

    @property
    def context(self) -> dict[str, Any]:
        shop_context: dict[str, Any] = self.conversation.context.get("shop", {})
        return shop_context


def reply_text(result: TurnResult) -> str:
    return "\n".join(reply.text for reply in result.replies if reply.text)


MakeChat = Callable[..., Awaitable[Chat]]


@pytest.fixture
def make_chat(
    shop: AsyncSession,
    offline_router: HybridRouter,
    shop_settings: Settings,
    redis_client: aioredis.Redis,
) -> MakeChat:
    async def build(user_id: str = "cust-test", **overrides: Any) -> Chat:
        settings = shop_settings.model_copy(update=overrides) if overrides else shop_settings
        customer = await shop.scalar(select(Customer).where(Customer.tiktok_user_id == user_id))
        if customer is None:
            customer = await add_customer(shop, user_id, username=username_of(user_id))
        conversation = await add_conversation_for(
            shop, customer, conversation_id=f"conv-{user_id}-{next(_ids)}"
        )
        brain = ShopBrain(settings, offline_router, redis=redis_client)
        return Chat(shop, brain, conversation, customer)

    return build
