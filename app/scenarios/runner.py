"""Playing scenario files turn by turn through a running pipeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app.scenarios.checks import Observation, SentMessage, differences, quote
from app.scenarios.model import Scenario, Turn
from app.scenarios.pipeline import (
    PipelineError,
    PlayedEvent,
    Posted,
    ScenarioPipeline,
    ShopActionFailed,
    TurnNotSettled,
)
from app.scenarios.raw import read_webhook

DEFAULT_TURN_SECONDS = 30.0


@dataclass(frozen=True)
class TurnReport:
    label: str  # the file as the user named it
    number: int  # 1-based, as in the failure lines
    turn: Turn
    customer: str
    seconds: float
    observation: Observation | None = None  # None: the turn never settled
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass
class ScenarioRunner:
    pipeline: ScenarioPipeline
    turn_seconds: float = DEFAULT_TURN_SECONDS

    async def run(
        self, label: str, scenario: Scenario, on_turn: Callable[[TurnReport], None]
    ) -> list[TurnReport]:
        """Play one file against a freshly reset shop; state carries from turn to turn."""
        reports: list[TurnReport] = []
        try:
            await self.pipeline.reset_shop()
            for number, turn in enumerate(scenario.turns, start=1):
                report = await self._play(label, number, scenario, turn)
                on_turn(report)
                reports.append(report)
        except (httpx.HTTPError, RedisError, SQLAlchemyError, OSError) as error:
            # The sandbox, PostgreSQL or Redis went away: no later turn can say anything.
            self.pipeline.check_processes()  # a dead process is the better explanation
            raise PipelineError(f"lost the pipeline: {error!r}") from error
        return reports

    async def _play(self, label: str, number: int, scenario: Scenario, turn: Turn) -> TurnReport:
        customer = scenario.customer_for(turn)
        started = time.monotonic()

        def report(observation: Observation | None, problems: list[str]) -> TurnReport:
            seconds = time.monotonic() - started
            return TurnReport(label, number, turn, customer, seconds, observation, problems)

        pipeline = self.pipeline
        after_seq = await pipeline.last_seq()
        after_dead_letter = await pipeline.last_dead_letter()
        if turn.shop is not None:
            try:
                await pipeline.shop_action(turn, customer)
                shop_sent = await pipeline.wait_sends_settled(after_seq, self.turn_seconds)
            except (ShopActionFailed, TurnNotSettled) as error:
                return report(None, [str(error)])
            # Every message the action caused, whoever it went to (a sale tells the buyer
            # and the piece's waitlist).
            observation = Observation(
                intent=None, replies=[SentMessage(m.message_type, m.text) for m in shop_sent]
            )
            return report(observation, differences(turn.expect, observation))
        if turn.raw is not None:
            body = turn.raw_body()
            facts = read_webhook(body)
            customer = facts.sender or "(raw)"
            posted = await pipeline.post_raw(body, turn.duplicate)
            # As the API queues it: the worker parks it under this text.
            text = body.decode("utf-8", "surrogateescape")
            event_id, conversation_id = facts.event_id, facts.conversation_id
        else:
            # copies=N posts the same signed body N times at once: one message_id, as
            # TikTok does when it redelivers a webhook.
            sent = await pipeline.sandbox.play_customer(
                customer,
                text=turn.send,
                share_post_video_id=turn.share_post,
                image=bool(turn.image),
                copies=turn.duplicate,
            )
            posted = [Posted(d.status, d.error) for d in sent.deliveries]
            text, event_id, conversation_id = sent.body, sent.message_id, sent.conversation_id
        accepted = any(p.accepted for p in posted)
        if not accepted and turn.expect.status is None:
            statuses = ", ".join(str(p.status or p.error) for p in posted)
            return report(None, [f"the webhook was refused ({statuses})"])
        played = PlayedEvent(event_id, text, conversation_id, accepted)
        try:
            settled = await pipeline.wait_settled(
                played, after_seq, after_dead_letter, self.turn_seconds
            )
        except TurnNotSettled as error:
            return report(None, [str(error)])
        observation = Observation(
            intent=settled.intent,
            replies=[SentMessage(m.message_type, m.text) for m in settled.replies],
            statuses=[p.status for p in posted],
            mode=settled.mode,
            dead_letters=[f"{letter.kind}: {letter.error}" for letter in settled.dead_letters],
        )
        problems = differences(turn.expect, observation)
        parked = settled.parked
        if parked is not None and turn.expect.dead_letters is None:
            # Parking is an outcome a scenario may expect (`dead_letters`); unannounced, it
            # means the worker gave up, whatever else the turn shows.
            problems.insert(0, f"the worker gave up on the event: {quote(parked.error)}")
        return report(observation, problems)
