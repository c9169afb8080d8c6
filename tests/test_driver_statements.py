"""`DriverStatement`: a Core statement sent by asyncpg itself must behave as if SQLAlchemy
had sent it: the same rows and types, inside the session's transaction (which it begins
when it is the first statement), seen by statement events, its errors SQLAlchemy's, a lost
connection invalidated."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import Float, String, bindparam, func, insert, literal, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.driver import DriverStatement
from app.db.models import Conversation, ConversationMode, Customer, Message
from app.db.session import create_session_factory, single_statement, transaction
from tests.statements import engine_of, in_transaction_block, statements_sent

_customers = Customer.__table__
_conversations = Conversation.__table__

_NEW_CUSTOMER = DriverStatement(
    insert(_customers)
    .values(tiktok_user_id=bindparam("user_id", type_=_customers.c.tiktok_user_id.type))
    .returning(_customers.c.id, _customers.c.tiktok_user_id)
)


async def customer_names(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(Customer.tiktok_user_id))).all())


async def test_rows_and_types_are_what_sqlalchemy_would_return(session: AsyncSession) -> None:
    customer = Customer(tiktok_user_id="u-types", username="ana")
    session.add(customer)
    await session.flush()
    conversation = Conversation(
        tiktok_conversation_id="c-types",
        customer_id=customer.id,
        mode=ConversationMode.HUMAN,
        replies_in_window=3,
        last_inbound_sequence=0,
        context={"size": "M"},
    )
    session.add(conversation)
    await session.flush()
    statement = select(
        _conversations.c.id.label("conversation"),
        _conversations.c.mode,
        _conversations.c.context,
        _conversations.c.created_at,
        bindparam("extra", type_=JSONB).label("extra"),
        literal(7).label("seven"),
    ).where(_conversations.c.tiktok_conversation_id == bindparam("name"))
    params: dict[str, Any] = {"name": "c-types", "extra": {"tags": ["vintage", 90]}}

    rows = await DriverStatement(statement).rows(session, params)

    expected = [dict(row) for row in (await session.execute(statement, params)).mappings()]
    assert rows == expected
    assert rows[0]["mode"] is ConversationMode.HUMAN  # the enum's type processing
    assert rows[0]["context"] == {"size": "M"}
    assert rows[0]["extra"] == {"tags": ["vintage", 90]}


async def test_one_or_none_and_scalar_one(session: AsyncSession) -> None:
    statement = DriverStatement(select(literal(1).label("one")).where(bindparam("go")))
    assert await statement.one_or_none(session, {"go": False}) is None
    assert await statement.one_or_none(session, {"go": True}) == {"one": 1}
    assert await statement.scalar_one(session, {"go": True}) == 1
    with pytest.raises(ValueError, match="0 rows"):
        await statement.scalar_one(session, {"go": False})


async def test_it_runs_in_the_sessions_transaction_and_begins_it(
    committed_db: AsyncEngine,
) -> None:
    sessions = create_session_factory(committed_db)
    with pytest.raises(RuntimeError):
        async with transaction(sessions) as session:
            # The first statement of the transaction: sent by the driver, it must BEGIN.
            await _NEW_CUSTOMER.rows(session, {"user_id": "rolled-back"})
            assert await in_transaction_block(session)
            raise RuntimeError("after the statement")
    async with transaction(sessions) as session:
        row = await _NEW_CUSTOMER.one_or_none(session, {"user_id": "committed"})
        assert row is not None and row["tiktok_user_id"] == "committed"
    async with sessions() as session:
        assert await customer_names(session) == ["committed"]


async def test_on_its_own_it_commits_by_itself(committed_db: AsyncEngine) -> None:
    sessions = create_session_factory(committed_db)
    with pytest.raises(RuntimeError):
        async with single_statement(sessions) as session:
            await _NEW_CUSTOMER.execute(session, {"user_id": "on-its-own"})
            assert not await in_transaction_block(session)
            raise RuntimeError("after the statement")
    async with sessions() as session:
        assert await customer_names(session) == ["on-its-own"]


async def test_statement_events_see_it(session: AsyncSession) -> None:
    with statements_sent(engine_of(session)) as seen:
        await _NEW_CUSTOMER.rows(session, {"user_id": "seen"})
    # (The test's session runs in a savepoint: SQLAlchemy sends that first.)
    assert [statement.split(" (")[0] for statement in seen] == [
        "SAVEPOINT sa_savepoint_1",
        "INSERT INTO customers",
    ]


async def test_its_errors_are_sqlalchemys_and_the_session_goes_on(
    committed_db: AsyncEngine,
) -> None:
    sessions = create_session_factory(committed_db)
    async with transaction(sessions) as session:
        await _NEW_CUSTOMER.execute(session, {"user_id": "twice"})
    with pytest.raises(IntegrityError):
        async with transaction(sessions) as session:
            await _NEW_CUSTOMER.execute(session, {"user_id": "twice"})
    async with transaction(sessions) as session:
        await _NEW_CUSTOMER.execute(session, {"user_id": "after"})
    async with sessions() as session:
        assert sorted(await customer_names(session)) == ["after", "twice"]


async def test_a_lost_connection_is_invalidated_and_replaced(committed_db: AsyncEngine) -> None:
    sessions = create_session_factory(committed_db)
    async with sessions() as victim:
        pid = await DriverStatement(select(func.pg_backend_pid().label("pid"))).scalar_one(
            victim, {}
        )
        async with sessions() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as lost:
            await _NEW_CUSTOMER.execute(victim, {"user_id": "never"})
        assert lost.value.connection_invalidated
    async with transaction(sessions) as session:
        await _NEW_CUSTOMER.execute(session, {"user_id": "next"})
    async with sessions() as session:
        assert await customer_names(session) == ["next"]


async def test_statements_rendered_at_execution_are_refused(session: AsyncSession) -> None:
    expanding = DriverStatement(
        select(_customers.c.id).where(_customers.c.id.in_(bindparam("ids", expanding=True)))
    )
    with pytest.raises(TypeError, match="render parameters at execution"):
        await expanding.rows(session, {"ids": [1, 2]})


async def test_python_side_defaults_are_refused(session: AsyncSession) -> None:
    # `messages.payload` defaults to {} in Python: only SQLAlchemy's execution fills it in.
    defaulted = DriverStatement(
        insert(Message.__table__).values(conversation_id=bindparam("conversation"))
    )
    with pytest.raises(TypeError, match="defaults from Python"):
        await defaulted.rows(session, {"conversation": 1})


async def test_bind_names_sql_must_escape(session: AsyncSession) -> None:
    dotted = DriverStatement(select(bindparam("size.tag", type_=String).label("size")))
    assert await dotted.rows(session, {"size.tag": "M"}) == [{"size": "M"}]


async def test_a_cancelled_statement_leaves_its_connection_invalidated(
    committed_db: AsyncEngine,
) -> None:
    sessions = create_session_factory(committed_db)
    slow = DriverStatement(select(func.pg_sleep(bindparam("seconds", type_=Float)).label("slept")))
    async with sessions() as session:
        connection = (await session.connection()).sync_connection
        assert connection is not None
        sleeping = asyncio.create_task(slow.rows(session, {"seconds": 30}))
        await asyncio.sleep(0.3)  # the statement is at PostgreSQL (not a timing assertion)
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping
        # Lent again as it is, it would still be inside the cancelled statement's
        # transaction, or waiting for its answer.
        assert connection.invalidated
        await session.rollback()
    async with transaction(sessions) as session:
        await _NEW_CUSTOMER.execute(session, {"user_id": "after-cancel"})
    async with sessions() as session:
        assert await customer_names(session) == ["after-cancel"]
