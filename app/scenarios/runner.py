"""Playing scenario files turn by turn through a running pipeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app.scenarios.checks import Observation, SentMessage, differences
from app.scenarios.model import Scenario, Turn
from app.scenarios.pipeline import PipelineError, ScenarioPipeline, TurnNotSettled

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
        # copies=N posts the same signed body N times at once: one message_id, as TikTok
        # does when it redelivers a webhook.
        sent = await pipeline.sandbox.play_customer(
            customer,
            text=turn.send,
            share_post_video_id=turn.share_post,
            image=bool(turn.image),
            copies=turn.duplicate,
        )
        if not any(d.status is not None and 200 <= d.status < 300 for d in sent.deliveries):
            statuses = ", ".join(str(d.status or d.error) for d in sent.deliveries)
            return report(None, [f"the webhook was refused ({statuses})"])
        try:
            settled = await pipeline.wait_settled(
                sent.message_id, sent.conversation_id, after_seq, self.turn_seconds
            )
        except TurnNotSettled as error:
            return report(None, [str(error)])
        observation = Observation(
            intent=settled.intent,
            replies=[SentMessage(m.message_type, m.text) for m in settled.replies],
        )
        return report(observation, differences(turn.expect, observation))
