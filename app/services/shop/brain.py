"""ShopBrain: the thrift shop's answer to a customer turn, wired from three steps.

The router names the intent; reading.py re-reads it in the light of the conversation
(what the turn asks), finding.py works out which piece is meant (SKU, shared video, the
conversation, words), and answers.py acts (hold, waitlist) and says it with the words of
app/services/replies.py. Every fact comes from the database; nothing a customer writes
changes a price, an order or a hold except through those answers.

The pipeline owns the transaction (and a row lock on the conversation): the shop reads
and writes through repositories and flushes, and never commits.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings, get_settings
from app.db.models import Conversation, Customer, Message
from app.db.repositories.items import ItemRepository
from app.services import replies
from app.services.messaging.proactive import ProactivePolicy
from app.services.messaging.window import MirroredWindow, WindowService
from app.services.router import HybridRouter, Intent, RouterContext, get_router
from app.services.shop.answers import Answers
from app.services.shop.context import load_context, save_context
from app.services.shop.finding import PieceFinder
from app.services.shop.order_lookups import OrderLookupThrottle
from app.services.shop.phrasing import FaqPhraser
from app.services.shop.reading import last_intent, read_text
from app.services.turns import Reply, TurnResult


class ShopBrain:
    """The Brain of the thrift shop (see app.services.turns.Brain)."""

    def __init__(
        self,
        settings: Settings | None = None,
        router: HybridRouter | None = None,
        phraser: FaqPhraser | None = None,
        redis: aioredis.Redis | None = None,
    ):
        self.settings = settings or get_settings()
        self._router = router
        self.phraser = phraser or FaqPhraser(self.settings)
        # Without Redis (brain-only tools and tests) order lookups are not throttled; the
        # worker always passes its client.
        self.order_lookups = OrderLookupThrottle(redis, self.settings) if redis else None
        window = WindowService(redis, self.settings) if redis else MirroredWindow(self.settings)
        self.policy = ProactivePolicy(self.settings, window)

    @property
    def router(self) -> HybridRouter:
        return self._router or get_router()

    async def respond(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        turn: list[Message],
    ) -> TurnResult:
        # A bug raises: the pipeline rolls the whole turn back and answers with an apology
        # (InboundPipeline), so nothing a half-done turn wrote is left behind.
        result = await self._respond(session, conversation, customer, turn)
        result.replies = _one_message(result.replies, self.settings.max_text_chars)
        return result

    async def _respond(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        turn: list[Message],
    ) -> TurnResult:
        context = load_context(conversation)
        # The question the previous answer asked lives for this one turn only.
        offer = context.offer
        context.offer = None
        chart = self.settings.size_chart_pit_to_pit_in
        finder = PieceFinder(ItemRepository(session), context, offer, chart)
        answers = Answers(
            self.settings,
            session,
            customer,
            context,
            finder,
            self.policy,
            phraser=self.phraser,
            order_lookups=self.order_lookups,
        )
        last = turn[-1]
        if last.message_type == "share_post":
            shared = await finder.in_shared_post(last.payload or {})
            answer = await answers.shared_post(shared)
            result = TurnResult(Intent.AVAILABILITY.value, "pattern", replies=[Reply(answer)])
        elif last.message_type != "text":
            result = TurnResult(
                Intent.OTHER.value, "pattern", replies=[Reply(replies.CANNOT_READ_MEDIA)]
            )
        else:
            text = "\n".join(m.text for m in turn if m.message_type == "text" and m.text)
            route = await self.router.route(text, RouterContext(last_intent=last_intent(context)))
            reading = await read_text(text, route, offer, context, finder)
            result = TurnResult(reading.intent.value, route.source, route.entities.model_dump())
            result.replies = await answers.answer_text(reading, text, route)
        if context.discussed:
            # However the customer named it (a SKU, words, a shared video, "it"): the
            # staff's demand per piece counts every DM that asked about it.
            result.entities["pieces"] = context.discussed
        save_context(conversation, context)
        result.other_outbox_ids.extend(answers.notices)
        result.handoff = answers.handoff
        result.handoff_reason = answers.handoff_reason
        return result


def _one_message(planned: Sequence[Reply], max_chars: int) -> list[Reply]:
    """One text (cut at a line under TikTok's limit) plus at most one image: the quota is
    ten messages a window, so a turn never spends more than two."""
    texts = [r.text for r in planned if r.text]
    images = [r.image_url for r in planned if r.image_url]
    out: list[Reply] = []
    if texts:
        text = "\n".join(texts)
        if len(text) > max_chars:
            text = text[:max_chars].rsplit("\n", 1)[0] or text[:max_chars]
        out.append(Reply(text))
    if images:
        out.append(Reply(image_url=images[0]))
    return out
