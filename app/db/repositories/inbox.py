"""What the staff inbox reads: conversations by urgency, their messages, their backlog."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    Conversation,
    ConversationMode,
    Customer,
    Direction,
    Message,
    MessageStatus,
    OutboxEntry,
)


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def conversations(
        self, now: datetime, limit: int
    ) -> Sequence[tuple[Conversation, Customer]]:
        """Conversations waiting for a person first; within each group the open windows
        that close soonest, then the closed ones, most recent customer message first.

        The order reads the window mirror on the row (kept by WindowService); the page
        shows the live Redis state beside it."""
        is_open = and_(
            Conversation.window_expires_at.is_not(None), Conversation.window_expires_at > now
        )
        statement = (
            select(Conversation, Customer)
            .join(Customer, Customer.id == Conversation.customer_id)
            .order_by(
                case((Conversation.mode == ConversationMode.HUMAN, 0), else_=1),
                case((is_open, 0), else_=1),
                case((is_open, Conversation.window_expires_at), else_=None).asc().nulls_last(),
                Conversation.last_customer_message_at.desc().nulls_last(),
                Conversation.id.desc(),
            )
            .limit(limit)
        )
        return [(row[0], row[1]) for row in (await self.session.execute(statement)).all()]

    async def conversation(self, conversation_id: int) -> tuple[Conversation, Customer] | None:
        row = (
            await self.session.execute(
                select(Conversation, Customer)
                .join(Customer, Customer.id == Conversation.customer_id)
                .where(Conversation.id == conversation_id)
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    async def last_messages(self, conversation_ids: Sequence[int]) -> dict[int, Message]:
        if not conversation_ids:
            return {}
        statement = (
            select(Message)
            .where(
                Message.conversation_id.in_(conversation_ids),
                # Read receipts and other events that need no answer say nothing.
                Message.status != MessageStatus.IGNORED,
            )
            .ext(distinct_on(Message.conversation_id))
            .order_by(Message.conversation_id, Message.created_at.desc(), Message.id.desc())
        )
        return {
            message.conversation_id: message for message in await self.session.scalars(statement)
        }

    async def messages_after(
        self, conversation_id: int, after_id: int, limit: int
    ) -> Sequence[Message]:
        statement = (
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.id > after_id)
            .order_by(Message.id)
            .limit(limit)
        )
        return (await self.session.scalars(statement)).all()

    async def pending_outbound(self, conversation_ids: Sequence[int]) -> dict[int, int]:
        """Replies queued but not delivered yet, per conversation: each will take a slot
        of the quota when it is delivered."""
        if not conversation_ids:
            return {}
        rows = await self.session.execute(
            select(Message.conversation_id, func.count())
            .where(
                Message.conversation_id.in_(conversation_ids),
                Message.direction == Direction.OUTBOUND,
                Message.status == MessageStatus.PENDING,
            )
            .group_by(Message.conversation_id)
        )
        return {int(conversation_id): int(count) for conversation_id, count in rows.all()}

    async def sign_outbound(self, outbox_ids: Sequence[int], author: dict[str, Any]) -> None:
        """Record which staff member wrote the queued messages (sent_by says only "staff")."""
        if not outbox_ids:
            return
        await self.session.execute(
            update(Message)
            .where(
                Message.id.in_(select(OutboxEntry.message_id).where(OutboxEntry.id.in_(outbox_ids)))
            )
            .values(payload=Message.payload.op("||")(literal(author, JSONB)))
            .execution_options(synchronize_session=False)
        )
