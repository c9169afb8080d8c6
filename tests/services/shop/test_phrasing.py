"""Policy answers phrased by the LLM from the FAQ text only, through the real openai SDK
against a local OpenAI-compatible stand-in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.core.config import Settings, get_settings
from app.sandbox.openai_standin import Behaviour, StandinState, start_openai_standin
from app.sandbox.server import BackgroundServer
from app.services.shop.phrasing import FaqPhraser, is_faithful

FAQ = (
    "Yes! We ship to Canada, the UK, the EU and Australia. International shipping is "
    "calculated at checkout, and customs fees are paid by the buyer. Delivery takes 7-14 days."
)


@pytest.fixture(scope="module")
def standin() -> Iterator[tuple[BackgroundServer, StandinState]]:
    server, state = start_openai_standin()
    yield server, state
    server.stop()


def settings_for(server: BackgroundServer, **overrides: object) -> Settings:
    values = {
        **get_settings().model_dump(),
        "openai_api_key": "sk-test",
        "openai_base_url": server.url + "/v1",
        "openai_timeout_seconds": 1.0,
        "openai_max_retries": 0,
        **overrides,
    }
    return Settings(**values)


def test_faithfulness_check() -> None:
    assert is_faithful("Yep, 7-14 days to Canada 🇨🇦", FAQ)
    assert not is_faithful("Yep, 3 days to Canada", FAQ)
    assert not is_faithful("See https://example.com", FAQ)


async def test_good_answer_is_used_and_the_prompt_carries_the_faq(
    standin: tuple[BackgroundServer, StandinState],
) -> None:
    server, state = standin
    state.reset(Behaviour.GOOD)
    state.answer = {"answered": True, "answer": "Yes, we ship to Canada 🇨🇦 (7-14 days)."}
    phraser = FaqPhraser(settings_for(server))
    assert await phraser.phrase("do u ship to canada", FAQ) == (
        "Yes, we ship to Canada 🇨🇦 (7-14 days)."
    )
    (request,) = state.requests
    prompt = " ".join(str(m["content"]) for m in request["messages"])
    assert FAQ in prompt and "do u ship to canada" in prompt
    assert request["temperature"] == 0


@pytest.mark.parametrize(
    ("behaviour", "answer"),
    [
        (Behaviour.GOOD, {"answered": True, "answer": "Sure, 50% off for you!"}),
        (Behaviour.GOOD, {"answered": False, "answer": ""}),
        (Behaviour.GOOD, {"answered": True, "answer": "Check https://evil.example"}),
        (Behaviour.ERROR_500, None),
        (Behaviour.MALFORMED_JSON, None),
        (Behaviour.SLOW, None),
        (Behaviour.WRONG_SHAPE, None),
    ],
)
async def test_anything_unreliable_falls_back_to_the_faq_text(
    standin: tuple[BackgroundServer, StandinState],
    behaviour: Behaviour,
    answer: dict[str, object] | None,
) -> None:
    server, state = standin
    state.reset(behaviour)
    if answer is not None:
        state.answer = answer
    state.delay_seconds = 2.0
    assert await FaqPhraser(settings_for(server)).phrase("do you ship to canada", FAQ) is None


async def test_no_key_never_calls_out(standin: tuple[BackgroundServer, StandinState]) -> None:
    server, state = standin
    state.reset(Behaviour.GOOD)
    phraser = FaqPhraser(settings_for(server, openai_api_key=None))
    assert await phraser.phrase("returns?", FAQ) is None
    assert state.request_count == 0


async def test_breaker_opens_after_repeated_failures(
    standin: tuple[BackgroundServer, StandinState],
) -> None:
    server, state = standin
    state.reset(Behaviour.ERROR_500)
    phraser = FaqPhraser(settings_for(server, llm_breaker_failures=2, llm_breaker_reset_seconds=60))
    for _ in range(4):
        assert await phraser.phrase("returns?", FAQ) is None
    assert state.request_count == 2  # the breaker skipped the last two


async def test_brain_uses_the_phrased_answer_and_falls_back_when_it_fails(
    standin: tuple[BackgroundServer, StandinState],
    make_chat: object,
    shop: object,
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.services.shop import load_default_faq
    from tests.services.shop.conftest import reply_text

    assert isinstance(shop, AsyncSession)
    await load_default_faq(shop)
    server, state = standin
    chat = await make_chat()  # type: ignore[operator]
    chat.brain.phraser = FaqPhraser(settings_for(server))
    state.reset(Behaviour.GOOD)
    state.answer = {"answered": True, "answer": "We sure do ship to Canada 🇨🇦"}
    assert reply_text(await chat.say("do you ship to canada?")) == "We sure do ship to Canada 🇨🇦"
    state.reset(Behaviour.ERROR_500)
    fallback = reply_text(await chat.say("do you ship to canada?"))
    assert "Canada" in fallback and fallback != "We sure do ship to Canada 🇨🇦"
