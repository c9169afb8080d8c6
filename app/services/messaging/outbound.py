"""Queueing what the shop says: an outbound message and an outbox row per TikTok message.

Everything that speaks to a customer (a turn's answer, a waitlist notice, a staff reply)
comes through here inside the caller's transaction; the caller enqueues the returned
outbox ids only after its commit. Window and quota are enforced at delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Conversation, ProactiveKind
from app.db.repositories.conversations import (
    Claimable,
    MessageRepository,
    OutboxRepository,
    SettledTurn,
)
from app.services.tiktok.text import split_text
from app.services.turns import Reply


def expand_replies(planned: Sequence[Reply], max_text_chars: int) -> list[Reply]:
    """One TikTok message per text (split under the limit) and one per image."""
    expanded: list[Reply] = []
    for reply in planned:
        if reply.text is not None:
            expanded.extend(Reply(part) for part in split_text(reply.text, max_text_chars))
        if reply.image_url is not None:
            expanded.append(Reply(image_url=reply.image_url))
    return expanded


async def queue_replies(
    session: AsyncSession,
    conversation: Conversation,
    planned: Sequence[Reply],
    *,
    max_text_chars: int,
    sent_by: str = "bot",
    proactive_kind: ProactiveKind | None = None,
    settling: SettledTurn | None = None,
) -> list[int]:
    """`settling`: the customer's turn these replies answer, settled with the first one
    (or on its own when there is nothing to say)."""
    queued, _ = await _queue(
        session, conversation, planned, max_text_chars, sent_by, proactive_kind, settling, None
    )
    return queued


async def queue_turn_replies(
    session: AsyncSession,
    conversation: Conversation,
    planned: Sequence[Reply],
    *,
    max_text_chars: int,
    settling: SettledTurn,
    claim_first_at: datetime | None,
) -> tuple[list[int], Claimable | None]:
    """A turn's replies, as `queue_replies` queues them; with `claim_first_at`, the first
    is also claimed by the statement that queues it (`OutboxRepository.queue_claiming`),
    and its claim is returned with the outbox ids (None when nothing was claimed)."""
    return await _queue(
        session, conversation, planned, max_text_chars, "bot", None, settling, claim_first_at
    )


async def _queue(
    session: AsyncSession,
    conversation: Conversation,
    planned: Sequence[Reply],
    max_text_chars: int,
    sent_by: str,
    proactive_kind: ProactiveKind | None,
    settling: SettledTurn | None,
    claim_first_at: datetime | None,
) -> tuple[list[int], Claimable | None]:
    outbox = OutboxRepository(session)
    outbox_ids: list[int] = []
    claimed: Claimable | None = None
    for reply in expand_replies(planned, max_text_chars):
        if reply.image_url is not None:
            message_type, text, payload = "image", None, {"image_url": reply.image_url}
        else:
            message_type, text, payload = "text", reply.text, {}
        if claim_first_at is not None and settling is not None and not outbox_ids:
            claimed = await outbox.queue_claiming(
                conversation.id, message_type, text, payload, sent_by, settling, claim_first_at
            )
            queued = claimed.outbox_id
        else:
            queued = await outbox.queue(
                conversation.id, message_type, text, payload, sent_by, proactive_kind, settling
            )
        settling = None
        outbox_ids.append(queued)
    if settling is not None:
        await MessageRepository(session).settle(settling)
    return outbox_ids, claimed
