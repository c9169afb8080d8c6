"""The intent recorded for a turn is the one the brain acted on, as a person reading the
conversation would label it; the router's source is kept."""

from __future__ import annotations

from sqlalchemy import func, select

from app.db.models import Hold, WaitlistEntry
from tests.services.shop.conftest import Chat, MakeChat, reply_text


async def my_holds(chat: Chat, status: str | None = None) -> int:
    query = select(func.count()).select_from(Hold).where(Hold.customer_id == chat.customer.id)
    if status is not None:
        query = query.where(Hold.status == status)
    return await chat.session.scalar(query) or 0


async def test_yes_to_a_hold_offer_is_a_hold(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.say("is PT-0001 still available?")
    result = await chat.say("yes")
    assert result.intent == "hold" and result.router_source in ("local", "pattern")
    assert "on hold for you" in reply_text(result)


async def test_yes_to_a_waitlist_offer_is_a_hold(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.say("do you still have PT-0005")
    result = await chat.say("yes")
    assert result.intent == "hold" and "#1" in reply_text(result)


async def test_waitlist_request_is_a_hold_and_joins(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.say("is PT-0005 available?")
    result = await chat.say("can u add me to the wait list")
    assert result.intent == "hold" and "waitlist" in reply_text(result)
    joined = await chat.session.scalar(select(func.count()).select_from(WaitlistEntry))
    assert joined == 1


async def test_cancel_my_hold_is_a_hold(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.say("hold PT-0013 please")
    result = await chat.say("cancel my hold")
    assert result.intent == "hold"
    assert await my_holds(chat, "active") == 0


async def test_a_bare_piece_continues_the_question(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.share("7301000000000000001")
    picked = await chat.say("the jacket")
    assert picked.intent == "availability" and "PT-0001" in reply_text(picked)
    await chat.say("how does PT-0004 fit?")
    sizing = await chat.say("the pink hoodie")
    assert sizing.intent == "sizing" and "PT-0009" in reply_text(sizing)
    assert "pit to pit" in reply_text(sizing)


async def test_a_pick_from_the_alternatives_keeps_availability(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.say("is PT-0003 still available?")
    result = await chat.say("the second one")
    assert result.intent == "availability" and "PT-0015" in reply_text(result)
    assert await my_holds(chat) == 0


async def test_hold_idiom_and_hold_policy(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.say("is PT-0001 still available?")
    assert (await chat.say("hold up")).intent == "other"
    assert (await chat.say("how long will you hold it")).intent == "policy"
    assert await my_holds(chat) == 0


async def test_condition_question_gives_the_condition(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.say("is PT-0001 still available?")
    result = await chat.say("any stains?")
    text = reply_text(result)
    assert result.intent == "availability"
    assert "Condition: good" in text and "Light fading on the cuffs" in text


async def test_no_thanks_declines_the_offer(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.say("is PT-0001 still available?")
    result = await chat.say("no thanks")
    assert result.intent == "thanks"
    assert await my_holds(chat) == 0
