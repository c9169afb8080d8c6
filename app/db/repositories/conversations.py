from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    String,
    Table,
    any_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.selectable import ScalarSelect

from app.db.driver import DriverStatement
from app.db.models import (
    Conversation,
    ConversationMode,
    Customer,
    DeadLetter,
    Direction,
    Handoff,
    Message,
    MessageStatus,
    OutboxEntry,
    OutboxStatus,
    ProactiveKind,
)


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, conversation_id: int) -> Conversation | None:
        return await self.session.get(Conversation, conversation_id)

    async def ensure_locked(
        self, tiktok_conversation_id: str, tiktok_user_id: str, username: str | None
    ) -> tuple[Conversation, Customer]:
        """Get or create customer and conversation, and lock the conversation row.

        The row lock is the per-conversation lock: it lives exactly as long as the
        transaction, and PostgreSQL drops it when a dead worker's connection goes."""
        conversation, customer, _ = await self.locked_or_created(
            tiktok_conversation_id, tiktok_user_id, username
        )
        return conversation, customer

    async def locked_or_created(
        self, tiktok_conversation_id: str, tiktok_user_id: str, username: str | None
    ) -> tuple[Conversation, Customer, bool]:
        """As `ensure_locked`, and whether this transaction created the conversation (then
        it has no earlier messages): one statement either way (`_LOCKED_OR_CREATED`)."""
        row = await _lock_or_create.one_or_none(
            self.session,
            {
                "lock_conversation": tiktok_conversation_id,
                "new_user_id": tiktok_user_id,
                "new_username": username,
            },
        )
        if row is not None:
            conversation = _loaded(self.session, Conversation, _CONVERSATION_COLUMNS, row)
            customer = _loaded(self.session, Customer, _CUSTOMER_COLUMNS, row)
            return conversation, customer, bool(row["created"])
        # A concurrent first delivery created it after this statement's snapshot: ours did
        # nothing, and the row is theirs to commit. Wait for it and lock it.
        found = await self._locked(Conversation.tiktok_conversation_id == tiktok_conversation_id)
        assert found is not None
        return (*found, False)

    async def get_for_update(self, conversation_id: int) -> tuple[Conversation, Customer] | None:
        return await self._locked(Conversation.id == conversation_id)

    async def _locked(self, condition: ColumnElement[bool]) -> tuple[Conversation, Customer] | None:
        row = (
            await self.session.execute(
                select(Conversation, Customer)
                .join(Customer, Customer.id == Conversation.customer_id)
                .where(condition)
                .with_for_update(of=Conversation)
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    async def with_stale_inbound(self, older_than: datetime) -> Sequence[int]:
        result = await self.session.scalars(
            select(Message.conversation_id)
            .where(
                Message.direction == Direction.INBOUND,
                Message.status == MessageStatus.RECEIVED,
                Message.created_at < older_than,
            )
            .distinct()
        )
        return result.all()

    async def idle_handoffs(self, idle_since: datetime) -> Sequence[Conversation]:
        result = await self.session.scalars(
            select(Conversation).where(
                Conversation.mode == "human",
                Conversation.human_since < idle_since,
            )
        )
        return result.all()

    async def latest_of_customer(self, customer_id: int) -> tuple[Conversation, Customer] | None:
        """The customer's most recently active conversation, open window or not."""
        row = (
            await self.session.execute(
                select(Conversation, Customer)
                .join(Customer, Customer.id == Conversation.customer_id)
                .where(Conversation.customer_id == customer_id)
                .order_by(
                    Conversation.window_expires_at.desc().nulls_last(), Conversation.id.desc()
                )
                .limit(1)
            )
        ).first()
        return (row[0], row[1]) if row is not None else None

    async def lock_if_free(self, conversation_id: int) -> Conversation | None:
        """The conversation row, unless a turn holds it right now (then None: the caller
        skips what it wanted to write rather than wait and risk a lock cycle)."""
        return await self.session.scalar(
            select(Conversation)
            .where(Conversation.id == conversation_id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )


class HandoffRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, conversation_id: int, started_at: datetime, reason: str) -> None:
        """Written with the turn that decided it (no statement of its own until the flush)."""
        self.session.add(
            Handoff(conversation_id=conversation_id, started_at=started_at, reason=reason)
        )


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, message_id: int) -> Message | None:
        return await self.session.get(Message, message_id)

    async def by_event_id(self, event_id: str) -> Message | None:
        return await self.session.scalar(select(Message).where(Message.event_id == event_id))

    async def record_event(self, direction: Direction, values: dict[str, Any]) -> Message | None:
        """Insert the message a webhook event carries (a customer's message, or an echo of
        one sent from the shop's side); None when its event_id is already recorded."""
        statement = (
            insert(Message)
            .values({**values, "direction": direction})
            .on_conflict_do_nothing(index_elements=[Message.event_id])
            .returning(Message)
        )
        return await self.session.scalar(statement)

    async def record_inbound(
        self,
        conversation_id: int,
        event_id: str,
        message_type: str,
        text: str | None,
        payload: dict[str, Any],
        sent_at: datetime,
        window_end: datetime | None,
    ) -> tuple[Message | None, bool]:
        """As `record_event` for a customer's message, and in the same statement whether
        the conversation has other messages still waiting for an answer (the statement's
        snapshot does not see its own insert). Without any, the new message is the turn,
        and it need not be read back. None for an event recorded before. The caller holds
        the conversation's lock.

        `window_end`: the end of the reply window the message opens (None when it is over
        already). The same statement moves the conversation's mirror of the window forward
        to it (never back), with a fresh quota, when the message is new; the conversation
        loaded in the session is told, so it has nothing of that to write again."""
        row = await _record_inbound.one_or_none(
            self.session,
            {
                "inbound_conversation_id": conversation_id,
                "inbound_event_id": event_id,
                "inbound_message_type": message_type,
                "inbound_text": text,
                "inbound_payload": payload,
                "inbound_sent_at": sent_at,
                "inbound_window_end": window_end,
            },
        )
        if row is None:
            return None, True
        message = _loaded(self.session, Message, _MESSAGE_COLUMNS, row)
        others_waiting, window_opened = row["others"], row["window_opened"]
        if window_opened:
            loaded = self.session.identity_map.get(identity_key(Conversation, conversation_id))
            if loaded is not None:
                set_committed_value(loaded, "window_expires_at", window_end)
                set_committed_value(loaded, "last_customer_message_at", sent_at)
                set_committed_value(loaded, "replies_in_window", 0)
        return message, bool(others_waiting)

    async def settle(self, turn: SettledTurn) -> None:
        """Mark a turn's messages handled (`SettledTurn`), in a statement of its own: for a
        turn that queues no reply (else `OutboxRepository.queue` carries it)."""
        await _settle_alone.execute(self.session, turn.parameters())
        turn.tell_loaded()

    async def record_unsent(
        self, conversation_id: int, text: str, kind: ProactiveKind, reason: str
    ) -> Message:
        """What the shop would have said unasked but may not (the window is closed, the
        quota spent): kept in the history and counted, never queued."""
        message = Message(
            conversation_id=conversation_id,
            direction=Direction.OUTBOUND,
            message_type="text",
            text=text,
            payload={},
            entities={},
            status=MessageStatus.NOT_SENT,
            status_reason=reason,
            sent_by="bot",
            proactive_kind=kind,
        )
        self.session.add(message)
        await self.session.flush()
        return message

    async def pending_inbound(self, conversation_id: int) -> Sequence[Message]:
        result = await self.session.scalars(
            select(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == Direction.INBOUND,
                Message.status == MessageStatus.RECEIVED,
            )
            .order_by(Message.sent_at, Message.id)
        )
        return result.all()

    async def outbound_by_tiktok_id(self, tiktok_message_id: str) -> Message | None:
        return await self.session.scalar(
            select(Message).where(
                Message.direction == Direction.OUTBOUND,
                Message.tiktok_message_id == tiktok_message_id,
            )
        )

    async def history(self, conversation_id: int, limit: int = 200) -> Sequence[Message]:
        result = await self.session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(limit)
        )
        return list(reversed(result.all()))


# The statements every reply runs through, built once: building them per call cost more
# CPU than PostgreSQL spent running them. On the tables, not the mapped classes: with
# parameters, an ORM insert or update would be taken for a bulk one.
_messages = cast(Table, Message.__table__)
_outbox = cast(Table, OutboxEntry.__table__)

# A DM is recorded on every turn: its statement is built once, not per message.
_new_inbound = (
    insert(_messages)
    .values(
        conversation_id=bindparam("inbound_conversation_id"),
        event_id=bindparam("inbound_event_id"),
        direction=Direction.INBOUND,
        message_type=bindparam("inbound_message_type"),
        text=bindparam("inbound_text"),
        payload=bindparam("inbound_payload", type_=_messages.c.payload.type),
        entities={},
        status=MessageStatus.RECEIVED,
        sent_at=bindparam("inbound_sent_at", type_=_messages.c.sent_at.type),
    )
    .on_conflict_do_nothing(index_elements=[_messages.c.event_id])
    .returning(*_messages.c)
    .cte("new_message")
)
_others_waiting = (
    select(_messages.c.id)
    .where(
        _messages.c.conversation_id == bindparam("inbound_conversation_id"),
        _messages.c.direction == Direction.INBOUND,
        _messages.c.status == MessageStatus.RECEIVED,
    )
    .exists()
)
_conversations = cast(Table, Conversation.__table__)
_customers = cast(Table, Customer.__table__)
_window_end = bindparam("inbound_window_end", type_=_conversations.c.window_expires_at.type)
# Forward only, as in Redis (`WindowService`): a message delivered late must neither shorten
# the window nor hand back a quota spent after a newer message.
_window_opened = (
    update(_conversations)
    .where(
        _conversations.c.id == bindparam("inbound_conversation_id"),
        _window_end.is_not(None),
        or_(
            _conversations.c.window_expires_at.is_(None),
            _conversations.c.window_expires_at < _window_end,
        ),
        exists(select(_new_inbound.c.id)),
    )
    .values(
        window_expires_at=_window_end,
        last_customer_message_at=bindparam("inbound_sent_at"),
        replies_in_window=0,
    )
    .returning(_conversations.c.id)
    .cte("window_opened")
)
_MESSAGE_COLUMNS = [f"message_{column.key}" for column in _messages.c]
# Columns, not an aliased Message: the ORM's loading of an entity cost more than the
# statement; the row becomes the session's Message as the lock statement's rows do.
_RECORD_INBOUND = select(
    *(column.label(name) for column, name in zip(_new_inbound.c, _MESSAGE_COLUMNS, strict=True)),
    _others_waiting.label("others"),
    exists(select(_window_opened.c.id)).label("window_opened"),
)


@dataclass(frozen=True)
class SettledTurn:
    """A turn's customer messages, handled: `processed`, with why nothing was said
    (`reason`) or what the brain read in them (intent, router layer, entities; None leaves
    each as it was). Written by the statement that queues the turn's first reply, or by
    `MessageRepository.settle` when there is none; so is the conversation's context when
    the turn changed it (`of_turn`)."""

    messages: Sequence[Message]
    reason: str | None = None
    intent: str | None = None
    router_source: str | None = None
    entities: dict[str, Any] | None = None
    conversation: Conversation | None = None  # whose changed context is written too

    @classmethod
    def of_turn(
        cls,
        conversation: Conversation,
        messages: Sequence[Message],
        reason: str | None = None,
        *,
        intent: str | None = None,
        router_source: str | None = None,
        entities: dict[str, Any] | None = None,
    ) -> SettledTurn:
        """The turn's settling, with the conversation's context if the turn changed it
        (any other change of the conversation is left to the session's flush)."""
        context_changed = _changed(conversation, "context")
        return cls(
            messages,
            reason,
            intent,
            router_source,
            entities,
            conversation if context_changed else None,
        )

    def parameters(self) -> dict[str, Any]:
        return {
            "settled_ids": [message.id for message in self.messages],
            "settled_reason": self.reason,
            "settled_intent": self.intent,
            "settled_router_source": self.router_source,
            "settled_entities": self.entities,
            "context_conversation_id": self.conversation.id if self.conversation else None,
            "context_saved": self.conversation.context if self.conversation else None,
        }

    def tell_loaded(self) -> None:
        """The objects in the session, as the statement left their rows: nothing to flush."""
        if self.conversation is not None:
            set_committed_value(self.conversation, "context", self.conversation.context)
        for message in self.messages:
            set_committed_value(message, "status", MessageStatus.PROCESSED)
            set_committed_value(message, "status_reason", self.reason)
            if self.intent is not None:
                set_committed_value(message, "intent", self.intent)
            if self.router_source is not None:
                set_committed_value(message, "router_source", self.router_source)
            if self.entities is not None:
                set_committed_value(message, "entities", self.entities)


_SETTLE = (
    update(_messages)
    .where(_messages.c.id == any_(bindparam("settled_ids", type_=ARRAY(BigInteger))))
    .values(
        status=MessageStatus.PROCESSED,
        status_reason=bindparam("settled_reason", type_=_messages.c.status_reason.type),
        intent=func.coalesce(bindparam("settled_intent", type_=String), _messages.c.intent),
        router_source=func.coalesce(
            bindparam("settled_router_source", type_=String), _messages.c.router_source
        ),
        # A JSONB parameter of None is JSON's null unless told otherwise: SQL's NULL here.
        entities=func.coalesce(
            bindparam("settled_entities", type_=JSONB(none_as_null=True)),
            _messages.c.entities,
        ),
    )
)
_queue_message = insert(_messages).values(
    conversation_id=bindparam("queued_conversation_id"),
    direction=Direction.OUTBOUND,
    message_type=bindparam("queued_message_type"),
    text=bindparam("queued_text"),
    payload=bindparam("queued_payload", type_=Message.payload.type),
    entities={},
    status=MessageStatus.PENDING,
    sent_by=bindparam("queued_sent_by"),
    proactive_kind=bindparam("queued_proactive_kind", type_=Message.proactive_kind.type),
)
_queued_message = _queue_message.returning(_messages.c.id).cte("queued_message")
_QUEUE = (
    insert(_outbox)
    .from_select(
        ["message_id", "status", "attempts"],
        select(
            _queued_message.c.id,
            literal(OutboxStatus.PENDING, OutboxEntry.status.type),
            literal(0),
        ),
    )
    .returning(_outbox.c.id)
)
_context_saved = bindparam("context_saved", type_=JSONB(none_as_null=True))
_CONTEXT_SAVED = (
    update(_conversations)
    .where(_conversations.c.id == bindparam("context_conversation_id"), _context_saved.is_not(None))
    .values(context=_context_saved)
)
# A turn's first reply, its settled messages and the context it changed: one statement.
# (PostgreSQL takes data-modifying WITHs only at the top: each is added there.)
_QUEUE_SETTLING = _QUEUE.add_cte(_SETTLE.cte("settled"), _CONTEXT_SAVED.cte("context_saved"))
_SETTLE_ALONE = _SETTLE.add_cte(_CONTEXT_SAVED.cte("context_saved"))

_earlier_entry = _outbox.alias("earlier_entry")
_earlier_message = _messages.alias("earlier_message")


_CONVERSATION_COLUMNS = [f"conversation_{column.key}" for column in _conversations.c]
_CUSTOMER_COLUMNS = [f"customer_{column.key}" for column in _customers.c]


def _both_rows(conversations: Any, customers: Any) -> list[ColumnElement[Any]]:
    pairs = [
        *zip(conversations, _CONVERSATION_COLUMNS, strict=True),
        *zip(customers, _CUSTOMER_COLUMNS, strict=True),
    ]
    return [column.label(name) for column, name in pairs]


# Every customer message starts by locking its conversation, and the first one of a
# conversation creates it (and its customer, unless they wrote from another conversation):
# one statement for both cases. The inserts run only when there is no such conversation.
# Their rows are returned as inserted (the statement's own snapshot does not see them);
# a row this transaction inserted is as good as locked: a concurrent first delivery waits
# for it to commit, then inserts nothing and locks it in a statement of its own.
_existing = (
    select(*_both_rows(_conversations.c, _customers.c))
    .select_from(_conversations)
    .join(_customers, _customers.c.id == _conversations.c.customer_id)
    .where(_conversations.c.tiktok_conversation_id == bindparam("lock_conversation"))
    .with_for_update(of=_conversations)
    .cte("existing")
)
_new_customer_values = insert(_customers).from_select(
    ["tiktok_user_id", "username"],
    select(
        bindparam("new_user_id", type_=_customers.c.tiktok_user_id.type),
        bindparam("new_username", type_=_customers.c.username.type),
    ).where(~exists(select(_existing.c.conversation_id))),
)
# DO UPDATE (a no-op) rather than DO NOTHING, so that RETURNING gives the customer's row
# when they exist already.
_new_customer = (
    _new_customer_values.on_conflict_do_update(
        index_elements=[_customers.c.tiktok_user_id],
        set_={"tiktok_user_id": _new_customer_values.excluded.tiktok_user_id},
    )
    .returning(*_customers.c)
    .cte("new_customer")
)
_new_conversation = (
    insert(_conversations)
    .from_select(
        [
            "tiktok_conversation_id",
            "customer_id",
            "mode",
            "replies_in_window",
            "last_inbound_sequence",
            "context",
        ],
        select(
            bindparam("lock_conversation", type_=_conversations.c.tiktok_conversation_id.type),
            _new_customer.c.id,
            literal(ConversationMode.BOT, _conversations.c.mode.type),
            literal(0),
            literal(0),
            literal({}, _conversations.c.context.type),
        ),
    )
    .on_conflict_do_nothing(index_elements=[_conversations.c.tiktok_conversation_id])
    .returning(*_conversations.c)
    .cte("new_conversation")
)
_LOCKED_OR_CREATED = select(*_existing.c, literal(False).label("created")).union_all(
    select(*_both_rows(_new_conversation.c, _new_customer.c), literal(True))
    .select_from(_new_conversation)
    .join(_new_customer, _new_customer.c.id == _new_conversation.c.customer_id)
)

ModelT = TypeVar("ModelT", Conversation, Customer, Message)


def _loaded(
    session: AsyncSession, model: type[ModelT], names: list[str], row: Mapping[str, Any]
) -> ModelT:
    """A row read by a Core statement, as the session's persistent object (as if the ORM
    had loaded it: nothing to flush, in the identity map)."""
    table = cast(Table, model.__table__)
    # Made as the ORM's loading makes objects: no constructor, whose attribute events
    # cost more than the rest of this together. The constructor would also have set the
    # mappers up, which in a fresh process nothing else may have done yet.
    configure_mappers()
    instance: ModelT = manager_of_class(model).new_instance()
    instance_state(instance).dict.update(
        {column.key: row[name] for column, name in zip(table.c, names, strict=True)}
    )
    make_transient_to_detached(instance)
    known = session.identity_map.get(identity_key(instance=instance))
    if known is not None:
        # Already in the session: it takes the row's values, which the statement read
        # under the row's lock (merge copies them over).
        return session.sync_session.merge(instance, load=False)
    # Attached as it is: merge would build a second copy for the same result.
    session.sync_session.add(instance)
    return instance


def _changed(instance: object, attribute: str) -> bool:
    """Whether the session holds a change of `attribute` not yet written."""
    return bool(instance_state(instance).attrs[attribute].history.has_changes())


def _of_earlier_replies(column: ColumnElement[Any], *, queued: bool = True) -> ScalarSelect[Any]:
    """`column` over the replies of the claimed row's conversation that were queued before
    it (`queued`: the row `outbox_id` exists; else every reply is earlier than the one the
    statement queues) and have not gone out yet."""
    earlier_than_the_row = (_earlier_entry.c.id < bindparam("outbox_id"),) if queued else ()
    return (
        select(column)
        .select_from(_earlier_entry)
        .join(_earlier_message, _earlier_message.c.id == _earlier_entry.c.message_id)
        .where(
            _earlier_message.c.conversation_id == _conversations.c.id,
            *earlier_than_the_row,
            # Not IN (...): an IN list is rendered again at every execution (SQLAlchemy's
            # "post-compile" parameters), a third of this statement's cost in Python.
            or_(
                _earlier_entry.c.status == OutboxStatus.PENDING,
                _earlier_entry.c.status == OutboxStatus.SENDING,
            ),
        )
        .correlate(_conversations)
        .scalar_subquery()
    )


# Rows, not mapped objects: the claim is on every reply's path, and loading four entities
# into the identity map cost more than the statement. One statement reads the row (locked,
# or skipped when another worker holds it) with what its delivery needs, and when it may go
# now (pending, no earlier reply of its conversation still to go) makes it `sending` and
# counts the slot in the conversation's mirror of the quota.
_claimable = (
    select(
        _outbox.c.id.label("outbox_id"),
        _outbox.c.status,
        _outbox.c.attempts,
        _messages.c.id.label("message_id"),
        _messages.c.message_type,
        _messages.c.text,
        _messages.c.payload,
        _conversations.c.id.label("conversation_id"),
        _conversations.c.tiktok_conversation_id,
        _conversations.c.window_expires_at,
        _conversations.c.replies_in_window,
        _customers.c.tiktok_user_id,
        _of_earlier_replies(func.count()).label("earlier_waiting"),
        _of_earlier_replies(func.max(_earlier_entry.c.next_attempt_at)).label("earlier_due"),
    )
    .select_from(_outbox)
    .join(_messages, _messages.c.id == _outbox.c.message_id)
    .join(_conversations, _conversations.c.id == _messages.c.conversation_id)
    .join(_customers, _customers.c.id == _conversations.c.customer_id)
    .where(_outbox.c.id == bindparam("outbox_id"))
    .with_for_update(of=_outbox, skip_locked=True)
    .cte("claimable")
)
_sending = (
    update(_outbox)
    .where(
        _outbox.c.id == _claimable.c.outbox_id,
        _claimable.c.status == OutboxStatus.PENDING,
        _claimable.c.earlier_waiting == 0,
    )
    .values(
        status=OutboxStatus.SENDING,
        attempts=_outbox.c.attempts + 1,
        claimed_at=bindparam("claimed_at"),
        next_attempt_at=None,
    )
    .returning(_outbox.c.id)
    .cte("sending")
)
_slot_mirrored = (
    update(_conversations)
    .where(
        _conversations.c.id == _claimable.c.conversation_id,
        exists(select(_sending.c.id)),
    )
    .values(replies_in_window=_conversations.c.replies_in_window + 1)
    .returning(_conversations.c.id)
    .cte("slot_mirrored")
)
# The slot is mirrored exactly when the row was made `sending`: either says it was claimed.
_CLAIM = select(*_claimable.c, exists(select(_slot_mirrored.c.id)).label("claimed"))

# A turn's first reply queued already claimed (`OutboxRepository.queue_claiming`): the row is
# inserted `sending` when `_CLAIM` would have made it so (no earlier reply of the conversation
# still to go), instead of inserted `pending` and updated by a claim of its own. One
# statement and one version of the outbox row (with its three index entries) fewer per DM.
_queued_for_claim = _queue_message.returning(
    _messages.c.id, _messages.c.message_type, _messages.c.text, _messages.c.payload
).cte("queued_message")
_claim_target = (
    select(
        _conversations.c.id.label("conversation_id"),
        _conversations.c.tiktok_conversation_id,
        _conversations.c.window_expires_at,
        _conversations.c.replies_in_window,
        _customers.c.tiktok_user_id,
        _of_earlier_replies(func.count(), queued=False).label("earlier_waiting"),
        _of_earlier_replies(func.max(_earlier_entry.c.next_attempt_at), queued=False).label(
            "earlier_due"
        ),
    )
    .select_from(_conversations)
    .join(_customers, _customers.c.id == _conversations.c.customer_id)
    .where(_conversations.c.id == bindparam("queued_conversation_id"))
    .cte("claim_target")
)
_may_go_now = _claim_target.c.earlier_waiting == 0
_claimed_entry = (
    insert(_outbox)
    .from_select(
        ["message_id", "status", "attempts", "claimed_at"],
        select(
            _queued_for_claim.c.id,
            case(
                (_may_go_now, literal(OutboxStatus.SENDING, OutboxEntry.status.type)),
                else_=literal(OutboxStatus.PENDING, OutboxEntry.status.type),
            ),
            case((_may_go_now, literal(1)), else_=literal(0)),
            case((_may_go_now, bindparam("claimed_at", type_=_outbox.c.claimed_at.type))),
        )
        .select_from(_queued_for_claim)
        .join(_claim_target, true()),
    )
    .returning(_outbox.c.id, _outbox.c.status)
    .cte("claimed_entry")
)
_claimed_now = exists(
    select(_claimed_entry.c.id).where(_claimed_entry.c.status == OutboxStatus.SENDING)
)
# The context the turn changed and the slot the claim takes, in one UPDATE of the row: two
# data-modifying WITHs updating the same row in one statement would keep only one of them.
_conversation_written = (
    update(_conversations)
    .where(
        _conversations.c.id == bindparam("queued_conversation_id"),
        or_(_context_saved.is_not(None), _claimed_now),
    )
    .values(
        context=func.coalesce(_context_saved, _conversations.c.context),
        replies_in_window=_conversations.c.replies_in_window
        + case((_claimed_now, literal(1)), else_=literal(0)),
    )
    .cte("conversation_written")
)
_QUEUE_SETTLING_CLAIMING = (
    select(
        _claimed_entry.c.id.label("outbox_id"),
        # As `_CLAIM` reads the row: before its claim.
        literal(OutboxStatus.PENDING, OutboxEntry.status.type).label("status"),
        literal(0).label("attempts"),
        _queued_for_claim.c.id.label("message_id"),
        _queued_for_claim.c.message_type,
        _queued_for_claim.c.text,
        _queued_for_claim.c.payload,
        *_claim_target.c,
        (_claimed_entry.c.status == OutboxStatus.SENDING).label("claimed"),
    )
    .select_from(_claimed_entry)
    .join(_queued_for_claim, true())
    .join(_claim_target, true())
    .add_cte(_SETTLE.cte("settled"), _conversation_written)
)

_sent_entry = (
    update(_outbox)
    .where(_outbox.c.id == bindparam("outbox_id"))
    .values(status=OutboxStatus.SENT, last_error=None, updated_at=func.now())
    .returning(_outbox.c.id)
    .cte("sent")
)
_MARK_SENT = (
    update(_messages)
    .where(_messages.c.id == bindparam("sent_message_id"), exists(select(_sent_entry.c.id)))
    .values(
        status=MessageStatus.SENT,
        tiktok_message_id=bindparam("sent_tiktok_message_id"),
        sent_at=bindparam("sent_at_tiktok"),
    )
)


@dataclass
class Claimable:
    """An outbox row locked for its claim, with what its delivery needs to know of its
    message, conversation and customer."""

    outbox_id: int
    status: OutboxStatus
    attempts: int
    message_id: int
    message_type: str
    text: str | None
    payload: dict[str, Any] | None
    conversation_id: int
    tiktok_conversation_id: str
    # The conversation's mirror of its window and quota (WindowService reads and sets it).
    window_expires_at: datetime | None
    replies_in_window: int
    tiktok_user_id: str
    earlier_waiting: int  # earlier replies of the conversation not yet delivered
    earlier_due: datetime | None  # the soonest any of them is due
    # Made `sending` by the claim, its slot counted in `conversations.replies_in_window`
    # (`replies_in_window` above is the count before it).
    claimed: bool


def _queued(
    conversation_id: int,
    message_type: str,
    text: str | None,
    payload: dict[str, Any],
    sent_by: str,
    proactive_kind: ProactiveKind | None,
) -> dict[str, Any]:
    """The parameters of the message and outbox row a queueing statement inserts."""
    return {
        "queued_conversation_id": conversation_id,
        "queued_message_type": message_type,
        "queued_text": text,
        "queued_payload": payload,
        "queued_sent_by": sent_by,
        "queued_proactive_kind": proactive_kind,
    }


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count_in(
        self, statuses: Iterable[OutboxStatus], *, conversation_id: int | None = None
    ) -> int:
        statement = (
            select(func.count()).select_from(OutboxEntry).where(OutboxEntry.status.in_(statuses))
        )
        if conversation_id is not None:
            statement = statement.join(Message, Message.id == OutboxEntry.message_id).where(
                Message.conversation_id == conversation_id
            )
        return int(await self.session.scalar(statement) or 0)

    async def queue(
        self,
        conversation_id: int,
        message_type: str,
        text: str | None,
        payload: dict[str, Any],
        sent_by: str,
        proactive_kind: ProactiveKind | None = None,
        settling: SettledTurn | None = None,
    ) -> int:
        """An outbound message and its outbox row, in one statement (a CTE): every reply
        of every turn comes through here. Returns the outbox row's id. `settling`: the turn
        the reply answers, settled by the same statement."""
        values = _queued(conversation_id, message_type, text, payload, sent_by, proactive_kind)
        if settling is None:
            return int(await _queue.scalar_one(self.session, values))
        queued = await _queue_settling.scalar_one(self.session, values | settling.parameters())
        settling.tell_loaded()
        return int(queued)

    async def claim(self, outbox_id: int, claimed_at: datetime) -> Claimable | None:
        """Lock one row and, when it may go now, claim it (see `transitions.claim`): one
        statement. None if another worker holds the row right now (or it does not exist);
        else the row as it was, with what its delivery needs to know and whether it was
        claimed: a row not pending, or behind an earlier reply of its conversation still
        to go out (a reply never overtakes one), is left as it was.

        In a transaction that changed the conversation (a turn claiming its first reply
        ahead), those changes are written first, and the conversation loaded in the session
        is told of the slot counted: its next write must neither undo the count nor be
        undone by it."""
        await self.session.flush()
        row = await _claim.one_or_none(
            self.session, {"outbox_id": outbox_id, "claimed_at": claimed_at}
        )
        if row is None:
            return None
        claimable = Claimable(**row)
        self._tell_slot_counted(claimable)
        return claimable

    async def queue_claiming(
        self,
        conversation_id: int,
        message_type: str,
        text: str | None,
        payload: dict[str, Any],
        sent_by: str,
        settling: SettledTurn,
        claimed_at: datetime,
    ) -> Claimable:
        """`queue` a turn's first reply, settling its turn, and claim the new row as `claim`
        would (it is `sending` when no earlier reply of the conversation is still to go, its
        slot counted in the conversation's mirror): one statement, for the worker that
        sends the reply as soon as the turn commits. `Claimable.claimed` says whether it
        was claimed."""
        if settling.conversation is not None and settling.conversation.id != conversation_id:
            # The statement writes the turn's context to the reply's conversation.
            raise ValueError("a turn is settled with a reply in its own conversation")
        conversation = self.session.identity_map.get(identity_key(Conversation, conversation_id))
        if conversation is not None and _changed(conversation, "replies_in_window"):
            # The statement counts the slot on the row as it is in the database: a change
            # still in the session is written first, as `claim` writes it, not lost.
            await self.session.flush()
        values = _queued(conversation_id, message_type, text, payload, sent_by, None)
        row = await _queue_settling_claiming.one_or_none(
            self.session, values | settling.parameters() | {"claimed_at": claimed_at}
        )
        if row is None:  # the conversation was locked by the caller: it exists
            raise LookupError(f"conversation {conversation_id} not found to queue a reply in")
        settling.tell_loaded()
        claimable = Claimable(**row)
        self._tell_slot_counted(claimable)
        return claimable

    def _tell_slot_counted(self, claimable: Claimable) -> None:
        """The conversation loaded in the session learns of the slot a claim counted: its
        next write must neither undo the count nor be undone by it."""
        if not claimable.claimed:
            return
        loaded = self.session.identity_map.get(
            identity_key(Conversation, claimable.conversation_id)
        )
        if loaded is not None:
            set_committed_value(loaded, "replies_in_window", claimable.replies_in_window + 1)

    async def mark_sent(
        self, outbox_id: int, message_id: int, tiktok_message_id: str, sent_at: datetime
    ) -> None:
        await _mark_sent.execute(
            self.session,
            {
                "outbox_id": outbox_id,
                "sent_message_id": message_id,
                "sent_tiktok_message_id": tiktok_message_id,
                "sent_at_tiktok": sent_at,
            },
        )

    async def get_for_update(self, outbox_id: int) -> OutboxEntry | None:
        return await self.session.scalar(
            select(OutboxEntry).where(OutboxEntry.id == outbox_id).with_for_update()
        )

    async def due(self, now: datetime, enqueued_before: datetime, limit: int) -> Sequence[int]:
        result = await self.session.scalars(
            select(OutboxEntry.id)
            .where(
                OutboxEntry.status == OutboxStatus.PENDING,
                (OutboxEntry.next_attempt_at.is_(None)) | (OutboxEntry.next_attempt_at <= now),
                OutboxEntry.updated_at < enqueued_before,
            )
            .order_by(OutboxEntry.id)
            .limit(limit)
        )
        return result.all()

    async def stuck_sending(self, claimed_before: datetime) -> Sequence[OutboxEntry]:
        result = await self.session.scalars(
            select(OutboxEntry)
            .where(
                OutboxEntry.status == OutboxStatus.SENDING,
                OutboxEntry.claimed_at < claimed_before,
            )
            .with_for_update(skip_locked=True)
        )
        return result.all()

    async def in_flight_for(self, conversation_id: int) -> Sequence[OutboxEntry]:
        result = await self.session.scalars(
            select(OutboxEntry)
            .join(Message, Message.id == OutboxEntry.message_id)
            .where(
                Message.conversation_id == conversation_id,
                OutboxEntry.status.in_([OutboxStatus.SENDING, OutboxStatus.UNKNOWN]),
            )
            .with_for_update(of=OutboxEntry)
        )
        return result.all()


class DeadLetterRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def last_error_of_event(self, event_id: str) -> str | None:
        return await self.session.scalar(
            select(DeadLetter.error)
            .where(DeadLetter.event_id == event_id)
            .order_by(DeadLetter.id.desc())
            .limit(1)
        )

    async def park(
        self,
        kind: str,
        error: str,
        *,
        event_id: str | None = None,
        conversation_id: str | None = None,
        payload: dict[str, Any] | None = None,
        attempts: int = 0,
    ) -> DeadLetter:
        letter = DeadLetter(
            kind=kind,
            error=error[:4000],
            event_id=event_id,
            conversation_id=conversation_id,
            payload=payload or {},
            attempts=attempts,
            status="parked",
        )
        self.session.add(letter)
        await self.session.flush()
        return letter

    async def list(self, include_retried: bool = False, limit: int = 100) -> Sequence[DeadLetter]:
        statement = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
        if not include_retried:
            statement = statement.where(DeadLetter.status == "parked")
        return (await self.session.scalars(statement)).all()

    async def get_for_update(self, letter_id: int) -> DeadLetter | None:
        return await self.session.scalar(
            select(DeadLetter).where(DeadLetter.id == letter_id).with_for_update()
        )


# The statements of every customer message and reply, sent by the session's driver
# (app/db/driver.py): SQLAlchemy's execution would cost more CPU than PostgreSQL spends
# running them.
_lock_or_create = DriverStatement(_LOCKED_OR_CREATED)
_record_inbound = DriverStatement(_RECORD_INBOUND)
_settle_alone = DriverStatement(_SETTLE_ALONE)
_queue = DriverStatement(_QUEUE)
_queue_settling = DriverStatement(_QUEUE_SETTLING)
_claim = DriverStatement(_CLAIM)
_queue_settling_claiming = DriverStatement(_QUEUE_SETTLING_CLAIMING)
_mark_sent = DriverStatement(_MARK_SENT)
