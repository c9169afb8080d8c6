"""The staff inbox: which conversations need a person, and what staff may do in them.

A staff reply goes out through the same egress as the bot's (an outbound message and an
outbox row, delivered by the `sends` worker), so the window and quota are enforced at
delivery as for every reply. The inbox checks them first as well, to refuse clearly
while the person is still looking at the page instead of failing silently later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import unix_now, utc_now
from app.core.config import Settings
from app.core.errors import Conflict, NotFound
from app.core.logging import get_logger
from app.db.models import Conversation, ConversationMode, Customer, Hold, Message
from app.db.repositories.conversations import ConversationRepository, MessageRepository
from app.db.repositories.holds import HoldRepository
from app.db.repositories.inbox import InboxRepository
from app.db.session import SessionFactory, transaction
from app.services.messaging import transitions
from app.services.messaging.outbound import queue_replies
from app.services.messaging.window import WindowService, WindowState
from app.services.staff.auth import SignedIn
from app.services.turns import Reply

log = get_logger(__name__)

STAFF_SENDER = "staff"
Enqueue = Callable[[Sequence[int]], Awaitable[None]]


class RefusalCode(StrEnum):
    WINDOW_CLOSED = "window_closed"
    QUOTA_SPENT = "quota_spent"


class ReplyRefused(Conflict):
    def __init__(self, refusal: RefusalCode, detail: str) -> None:
        self.refusal = refusal
        self.code = refusal.value
        super().__init__(detail)


class ConversationNotFound(NotFound):
    def __init__(self, conversation_id: int) -> None:
        self.conversation_id = conversation_id
        super().__init__("There is no such conversation.")


@dataclass(frozen=True)
class WindowView:
    """The live Redis window, less the replies already queued for it."""

    open: bool
    ends_at: float | None
    replies_used: int
    replies_left: int
    queued: int

    @classmethod
    def of(cls, state: WindowState, queued: int) -> WindowView:
        return cls(
            open=state.open,
            ends_at=state.ends_at,
            replies_used=state.replies_used,
            replies_left=max(0, state.replies_left - queued) if state.open else 0,
            queued=queued,
        )

    @property
    def seconds_left(self) -> int:
        if not self.open or self.ends_at is None:
            return 0
        return max(0, int(self.ends_at - unix_now()))


@dataclass(frozen=True)
class InboxEntry:
    conversation: Conversation
    customer: Customer
    last_message: Message | None
    window: WindowView


@dataclass(frozen=True)
class ConversationView:
    conversation: Conversation
    customer: Customer
    messages: Sequence[Message]
    window: WindowView
    # The customer's active holds, each with its SKU ("mark paid" on the page).
    holds: Sequence[tuple[Hold, str]] = ()


class StaffInbox:
    def __init__(
        self,
        session_factory: SessionFactory,
        redis: aioredis.Redis,
        settings: Settings,
        enqueue: Enqueue,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.window = WindowService(redis, settings)
        self.enqueue = enqueue

    async def overview(self, limit: int = 100) -> list[InboxEntry]:
        async with self.session_factory() as session:
            repository = InboxRepository(session)
            rows = await repository.conversations(utc_now(), limit)
            ids = [conversation.id for conversation, _ in rows]
            last = await repository.last_messages(ids)
            queued = await repository.pending_outbound(ids)
        entries = []
        for conversation, customer in rows:
            state = await self.window.state(customer.tiktok_user_id, conversation)
            window = WindowView.of(state, queued.get(conversation.id, 0))
            entries.append(InboxEntry(conversation, customer, last.get(conversation.id), window))
        return entries

    async def conversation(self, conversation_id: int, history: int = 200) -> ConversationView:
        async with self.session_factory() as session:
            found = await self._load(session, conversation_id)
            messages = await MessageRepository(session).history(conversation_id, history)
            queued = await InboxRepository(session).pending_outbound([conversation_id])
            conversation, customer = found
            holds = await HoldRepository(session).active_for_customer(customer.id)
        return ConversationView(
            conversation,
            customer,
            messages,
            await self._window(customer, conversation, queued),
            holds,
        )

    async def messages_after(
        self, conversation_id: int, after_id: int, limit: int = 200
    ) -> ConversationView:
        async with self.session_factory() as session:
            conversation, customer = await self._load(session, conversation_id)
            repository = InboxRepository(session)
            messages = await repository.messages_after(conversation_id, after_id, limit)
            queued = await repository.pending_outbound([conversation_id])
        return ConversationView(
            conversation, customer, messages, await self._window(customer, conversation, queued)
        )

    async def reply(self, conversation_id: int, staff: SignedIn, text: str) -> list[int]:
        """Queue a staff reply and keep the conversation with a person; the outbox ids
        are handed to the queue only after the commit."""
        async with transaction(self.session_factory) as session:
            # The row lock orders this against the worker answering the same conversation.
            locked = await ConversationRepository(session).get_for_update(conversation_id)
            if locked is None:
                raise ConversationNotFound(conversation_id)
            conversation, customer = locked
            queued = await InboxRepository(session).pending_outbound([conversation_id])
            window = await self._window(customer, conversation, queued)
            self._check(window)
            outbox_ids = await queue_replies(
                session,
                conversation,
                [Reply(text)],
                max_text_chars=self.settings.max_text_chars,
                sent_by=STAFF_SENDER,
            )
            await InboxRepository(session).sign_outbound(
                outbox_ids, {"staff_id": staff.staff_id, "staff_name": staff.display_name}
            )
            # Replying is taking over; the inactivity timeout counts from this moment.
            transitions.take_over(conversation, utc_now())
        log.info(
            "staff_replied",
            conversation_id=conversation_id,
            staff_id=staff.staff_id,
            messages=len(outbox_ids),
        )
        await self.enqueue(outbox_ids)
        return outbox_ids

    def _check(self, window: WindowView) -> None:
        if not window.open:
            raise ReplyRefused(
                RefusalCode.WINDOW_CLOSED,
                f"Not sent: the {self.settings.window_hours}-hour window is closed. TikTok only "
                "lets the shop reply within "
                f"{self.settings.window_hours} hours of the customer's last message; "
                "you can answer again once they write.",
            )
        if window.replies_left <= 0:
            queued = f", {window.queued} more queued" if window.queued else ""
            raise ReplyRefused(
                RefusalCode.QUOTA_SPENT,
                f"Not sent: the reply quota is spent ({window.replies_used} of "
                f"{self.settings.reply_quota} messages used in this window{queued}). "
                "The customer's next message opens a new quota.",
            )

    async def hand_back(self, conversation_id: int, staff: SignedIn) -> None:
        await self._set_mode(conversation_id, staff, ConversationMode.BOT)

    async def take_over(self, conversation_id: int, staff: SignedIn) -> None:
        await self._set_mode(conversation_id, staff, ConversationMode.HUMAN)

    async def _set_mode(
        self, conversation_id: int, staff: SignedIn, mode: ConversationMode
    ) -> None:
        async with transaction(self.session_factory) as session:
            locked = await ConversationRepository(session).get_for_update(conversation_id)
            if locked is None:
                raise ConversationNotFound(conversation_id)
            conversation, _ = locked
            if mode is ConversationMode.HUMAN:
                transitions.take_over(conversation, utc_now())
            else:
                transitions.hand_back(conversation)
        log.info(
            "conversation_mode_set",
            conversation_id=conversation_id,
            mode=mode,
            staff_id=staff.staff_id,
        )

    @staticmethod
    async def _load(session: AsyncSession, conversation_id: int) -> tuple[Conversation, Customer]:
        found = await InboxRepository(session).conversation(conversation_id)
        if found is None:
            raise ConversationNotFound(conversation_id)
        return found

    async def _window(
        self, customer: Customer, conversation: Conversation, queued: dict[int, int]
    ) -> WindowView:
        state = await self.window.state(customer.tiktok_user_id, conversation)
        return WindowView.of(state, queued.get(conversation.id, 0))
