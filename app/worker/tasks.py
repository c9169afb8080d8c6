"""Celery tasks: thin, idempotent shells that run services on the worker's event loop."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from celery import Celery, Task
from celery.signals import worker_init, worker_process_init, worker_process_shutdown
from celery_batches import Batches, SimpleRequest
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utc_now
from app.core.config import Settings, get_settings
from app.core.counters import WorkerMetrics
from app.core.logging import configure_logging, get_logger
from app.db.repositories.conversations import (
    Claimable,
    ConversationRepository,
    DeadLetterRepository,
    OutboxRepository,
)
from app.db.session import transaction
from app.services.messaging import transitions
from app.services.messaging.delivery import ClaimOutcome, Delivery, DeliveryService
from app.services.messaging.inbound import InboundPipeline, Outcome
from app.services.messaging.media import CachedMediaResolver
from app.services.router import get_router
from app.services.shop import ShopBrain, run_followthrough
from app.services.staff.notify import StaffNotifier
from app.services.tiktok.client import TikTokClient
from app.services.tiktok.connection import disconnected_since
from app.services.tiktok.errors import backoff_delay
from app.services.tiktok.webhook import InvalidEnvelope, conversation_of, identify
from app.worker import accepted, task_names, turn_order
from app.worker.celery_app import celery_app, restore_tasks_of_dead_workers
from app.worker.metered_llm import meter_llm
from app.worker.runtime import WorkerRuntime, reset_after_fork, run_async, shutdown_runtime
from app.worker.task_names import EVENTS_QUEUE, SENDS_QUEUE
from app.worker.turn_order import TurnOrder

log = get_logger(__name__)


@worker_init.connect
def _check_configuration(**_: Any) -> None:
    settings = get_settings()
    configure_logging(settings)
    if settings.redis_url is None or settings.database_url is None:
        raise SystemExit("philia worker: DATABASE_URL and REDIS_URL must be set")
    # Load the local router once in the parent: the pool's children inherit it by fork
    # instead of each paying for it on its first message.
    get_router().warm_up()
    # What the parent loaded lives as long as the pool: out of the collector's sight, a
    # child's collections do not write to those pages, so they stay shared with the parent
    # instead of being copied into every child.
    gc.freeze()


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    configure_logging(get_settings())
    reset_after_fork()


@worker_process_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    shutdown_runtime()


def enqueue_deliveries(outbox_ids: Sequence[int], countdown: float | None = None) -> None:
    """One task for a turn's replies, delivered in order (the text before its photo)."""
    if outbox_ids:
        celery_app.send_task(
            task_names.DELIVER_OUTBOX,
            args=[list(outbox_ids)],
            queue=SENDS_QUEUE,
            countdown=countdown,
        )


async def deliver_in_order(
    runtime: WorkerRuntime,
    outbox_ids: Sequence[int],
    crash_countdown: float,
    first: ClaimOutcome | None = None,
) -> list[str]:
    """Deliver outbox rows in order; whatever cannot go now is queued again, in order.
    `first`: the first row's claim, when it was claimed ahead."""
    delivery = _delivery(runtime)
    outcomes: list[str] = []
    for index, outbox_id in enumerate(outbox_ids):
        try:
            result = await delivery.deliver(outbox_id, first if index == 0 else None)
        except Exception:
            log.exception("delivery_crashed", outbox_id=outbox_id)
            # The row is still pending (or stuck in sending, which the sweeper resolves).
            enqueue_deliveries(outbox_ids[index:], countdown=crash_countdown)
            break
        outcomes.append(result.outcome.value)
        if result.outcome in (Delivery.RETRY, Delivery.DEFERRED):
            enqueue_deliveries(outbox_ids[index:], countdown=result.retry_in)
            break
    return outcomes


@dataclass(frozen=True)
class _SentByTheTurnsTask:
    """A turn's replies go out from the task that wrote them, once its transaction has
    committed, instead of after a trip through the sends queue and a task of their own;
    the first is claimed by the statement that queues it (`DeliversNow`). What cannot go now
    (rate limit, an earlier reply first, an error, Redis failing before the call) is
    queued with its delay or left pending for the sweeper."""

    runtime: WorkerRuntime

    def claiming_at(self, disconnected: bool) -> datetime | None:
        return _delivery(self.runtime).claiming_at(disconnected)

    async def claimed_ahead(
        self, session: AsyncSession, claimable: Claimable, claimed_at: datetime
    ) -> ClaimOutcome:
        return await _delivery(self.runtime).claimed_ahead(session, claimable, claimed_at)

    async def give_back(self, claimed: ClaimOutcome) -> None:
        await _delivery(self.runtime).give_back(claimed)

    async def deliver(self, outbox_ids: Sequence[int], first: ClaimOutcome | None = None) -> None:
        crash_countdown = self.runtime.settings.retry_backoff_base_seconds
        await deliver_in_order(self.runtime, list(outbox_ids), crash_countdown, first)


def _pipeline(runtime: WorkerRuntime) -> InboundPipeline:
    sends = _SentByTheTurnsTask(runtime)
    meter_llm(get_router(), WorkerMetrics(runtime.redis))
    return InboundPipeline(
        settings=runtime.settings,
        session_factory=runtime.session_factory,
        redis=runtime.redis,
        brain=ShopBrain(runtime.settings, redis=runtime.redis),
        enqueue_deliveries=sends.deliver,
        notify_staff=StaffNotifier(runtime.settings, runtime.http),
        delivers_now=sends,
    )


def _delivery(runtime: WorkerRuntime) -> DeliveryService:
    return runtime.service("delivery", _build_delivery)


def _build_delivery(runtime: WorkerRuntime) -> DeliveryService:
    client = runtime.service(
        "tiktok",
        lambda built: TikTokClient.with_stored_tokens(
            built.settings, built.tiktok_http, built.redis, built.session_factory
        ),
    )
    return DeliveryService(
        settings=runtime.settings,
        session_factory=runtime.session_factory,
        redis=runtime.redis,
        tiktok=client,
        media=CachedMediaResolver(
            runtime.session_factory,
            runtime.http,
            client,
            runtime.settings.media_mirror_url,
            allowed_hosts=runtime.settings.media_host_suffixes,
        ),
    )


def _retry_countdown(task: Task[Any, Any]) -> float:
    return _backoff(get_settings(), task.request.retries + 1)


def _backoff(settings: Settings, attempt: int) -> float:
    """How long after its `attempt`-th failed attempt a task is tried again."""
    return backoff_delay(
        attempt, settings.retry_backoff_base_seconds, settings.retry_backoff_cap_seconds
    )


async def _park_event(
    runtime: WorkerRuntime, body: str, error: str, attempts: int, task_id: str | None
) -> None:
    """A person decides about the event now (`deadletters retry` queues it again): it is
    finished as far as the ledger of accepted events is concerned."""
    # The task bound them while handling the event; the sweeper, parking an event no task
    # finished, reads them from the body.
    bound = structlog.contextvars.get_contextvars()
    event_id, conversation_id = bound.get("event_id"), bound.get("conversation_id")
    if event_id is None:
        event_id, conversation_id = identify(body.encode("utf-8", errors="surrogateescape"))
    async with transaction(runtime.session_factory) as session:
        await DeadLetterRepository(session).park(
            "event",
            error,
            event_id=event_id,
            conversation_id=conversation_id,
            payload={"body": body},
            attempts=attempts,
        )
    if task_id is not None:
        await accepted.strike_off(runtime.redis, task_id)


# How long an event's handling waits out Redis being unreachable before it gives up the
# attempt. Giving up means queueing the event again, which is a publish to that same Redis:
# when it fails too, the event only comes back with the ledger of accepted events or the
# broker's visibility timeout (minutes). A Redis restart takes seconds, so it waits first.
REDIS_BLIP_PAUSES = (0.25, 0.5, 1.0, 2.0, 4.0)

T = TypeVar("T")


async def through_redis_blips(
    work: Callable[[], Awaitable[T]], pauses: Sequence[float] = REDIS_BLIP_PAUSES
) -> T:
    """`work()`, run again after each pause while Redis cannot be reached (it must be
    idempotent: an event's handling is). The last failure is raised."""
    for pause in pauses:
        try:
            return await work()
        except (RedisConnectionError, RedisTimeoutError) as error:
            log.warning("redis_unreachable_waiting", error=str(error), pause=pause)
            await asyncio.sleep(pause)
    return await work()


@dataclass(frozen=True)
class EventVerdict:
    """How one attempt at an event ended: what the task reports, and whether (in how many
    seconds) the event must be attempted again."""

    outcome: str
    retry_in: float | None = None


async def attempt_event(
    runtime: WorkerRuntime, body: str, task_id: str | None, attempts: int
) -> EventVerdict:
    """One attempt at a webhook event, whichever task carries it, once the events of its
    conversation accepted before it are finished (turn_order.py): handled; or to be tried
    again with a backoff; or, malformed or out of attempts, parked for a person."""
    settings = runtime.settings
    conversation_id = conversation_of(body.encode("utf-8", errors="surrogateescape"))
    # (conversation, task id): its place in the conversation's line, when it has one.
    place = None if task_id is None or conversation_id is None else (conversation_id, task_id)
    order = runtime.service("turn_order", lambda built: TurnOrder(built.redis))

    def finish(pipeline: Pipeline) -> None:
        if task_id is not None:
            accepted.strike_off_with(pipeline, task_id)
        if place is not None:
            turn_order.finished_with(pipeline, *place)

    async def in_turn() -> Outcome:
        if place is not None and not await order.wait_for_earlier(*place):
            log.warning("turn_order_gave_up_waiting", conversation_id=conversation_id)
        return await runtime.service("pipeline", _pipeline).handle(body, finish)

    try:
        outcome = await through_redis_blips(in_turn)
        return EventVerdict(outcome.value)
    except InvalidEnvelope as error:
        # Retrying cannot fix a malformed event: park it for a person straight away.
        log.error("event_invalid", error=str(error))
        reason, permanent = str(error), True
    except Exception as error:
        log.exception("event_failed", attempt=attempts)
        reason, permanent = repr(error), False
    if place is not None:
        try:
            await order.leave(*place)
        except RedisError as error:  # the wait's limit lets the later ones by
            log.warning("turn_order_leave_failed", error=str(error))
    if not permanent and attempts < settings.max_event_attempts:
        return EventVerdict("retry", retry_in=_backoff(settings, attempts))
    try:
        await _park_event(runtime, body, reason, attempts, task_id)
    except Exception:
        # Not even the dead-letter table takes it: keep retrying rather than lose it.
        log.exception("dead_letter_failed")
        return EventVerdict("retry", retry_in=settings.retry_backoff_cap_seconds)
    log.error("event_dead_lettered", attempts=attempts)
    return EventVerdict("dead_lettered")


@celery_app.task(name=task_names.PROCESS_EVENT, bind=True, max_retries=None, queue=EVENTS_QUEUE)
def process_event(self: Task[Any, Any], body: str, received_at: float) -> str:
    """One event: its retries, a dead letter's `deadletters retry`, and messages queued
    before events came in batches (`process_events`)."""
    structlog.contextvars.clear_contextvars()
    attempts = self.request.retries + 1
    verdict = run_async(lambda rt: attempt_event(rt, body, self.request.id, attempts))
    if verdict.retry_in is not None:
        raise self.retry(countdown=verdict.retry_in)
    return verdict.outcome


# Events a worker process handles at once, and how long the first of them waits for the
# others. A turn spends a third of its time waiting on PostgreSQL, Redis, TikTok, and with a
# model configured most turns wait about a second on it: one at a time, a process idles
# through all of that (2 DMs/s a worker with a model answering in 1 s; 6/s in batches). A
# batch holds at most one turn per database connection of the process. The wait is short:
# at 20 ms quick turns fill batches of 8 too, and 8 turns sharing one process's Redis
# connection and database pool cost more CPU each (115 against 181 DMs/s of "hi" here),
# though turns waiting on the model went faster still (13.5/s).
EVENT_BATCH = 8
EVENT_BATCH_WAIT_SECONDS = 0.005


@celery_app.task(
    name=task_names.PROCESS_EVENTS,
    base=Batches,
    flush_every=EVENT_BATCH,
    flush_interval=EVENT_BATCH_WAIT_SECONDS,
    queue=EVENTS_QUEUE,
)
def process_events(requests: Sequence[SimpleRequest]) -> list[str]:
    """The webhook's events, a batch at a time (`handle_events`)."""
    return run_async(lambda runtime: handle_events(runtime, requests, celery_app))


async def handle_events(
    runtime: WorkerRuntime, requests: Sequence[SimpleRequest], queue_again: Celery
) -> list[str]:
    """A batch of events, each on this process's loop concurrently with the others (a
    conversation's events still one after the other, in the order the webhook accepted
    them: `attempt_event`). Celery acknowledges them together once all have ended (late
    acks: a worker killed mid-batch leaves every one of them to be handed out again). An
    event that fails is queued again on its own through `queue_again`, as `process_event`,
    with its task id (the ledger of accepted events knows it by that) and its attempts
    counted."""

    async def one(request: SimpleRequest) -> str:
        structlog.contextvars.clear_contextvars()
        args = request.args
        if not (isinstance(args, list | tuple) and args and isinstance(args[0], str)):
            log.error("event_task_malformed", task_id=request.id)
            return "malformed"
        attempts = 1 + int((request.request_dict or {}).get("retries") or 0)
        verdict = await attempt_event(runtime, args[0], request.id, attempts)
        if verdict.retry_in is None:
            return verdict.outcome
        try:
            queue_again.send_task(
                task_names.PROCESS_EVENT,
                args=list(args),
                task_id=request.id,
                retries=attempts,
                countdown=verdict.retry_in,
                queue=EVENTS_QUEUE,
            )
        except Exception:
            # Still on the ledger of accepted events: the sweeper queues it again.
            log.exception("event_retry_not_queued", task_id=request.id)
        return verdict.outcome

    return list(await asyncio.gather(*(one(request) for request in requests)))


@celery_app.task(name=task_names.DELIVER_OUTBOX, bind=True, max_retries=None, queue=SENDS_QUEUE)
def deliver_outbox(self: Task[Any, Any], outbox_ids: list[int] | int) -> list[str]:
    """Deliver outbox rows in order; whatever cannot go now is queued again, in order."""
    structlog.contextvars.clear_contextvars()
    ids = [outbox_ids] if isinstance(outbox_ids, int) else list(outbox_ids)
    countdown = _retry_countdown(self)
    return run_async(lambda rt: deliver_in_order(rt, ids, countdown))


@celery_app.task(name=task_names.DRAIN_CONVERSATION, queue=EVENTS_QUEUE)
def drain_conversation(conversation_id: int) -> None:
    structlog.contextvars.clear_contextvars()
    run_async(lambda rt: rt.service("pipeline", _pipeline).drain(conversation_id))


async def _sweep(runtime: WorkerRuntime) -> dict[str, int]:
    settings = runtime.settings
    now = utc_now()
    grace = timedelta(
        seconds=max(settings.send_unknown_grace_seconds, settings.tiktok_http_timeout_seconds)
    )
    stuck = await _delivery(runtime).settle_stuck_sends(grace)
    try:
        await asyncio.to_thread(restore_tasks_of_dead_workers, settings)
        requeued_events = await _requeue_lost_events(runtime)
    except Exception:
        # The outbox's own work below must not wait for the queue's: next sweep.
        log.exception("lost_tasks_sweep_failed")
        requeued_events = 0
    # While TikTok is disconnected, replies wait in the outbox: queued now they would only
    # come back `waiting`. The first sweep after a reconnect sends them.
    disconnected = await disconnected_since(runtime.redis) is not None
    async with transaction(runtime.session_factory) as session:
        due = (
            []
            if disconnected
            else await OutboxRepository(session).due(now, now - timedelta(seconds=10), 500)
        )
        stale = await ConversationRepository(session).with_stale_inbound(
            now - timedelta(seconds=30)
        )
    for outbox_id in due:  # one task each: one conversation's backoff must not hold up others
        enqueue_deliveries([outbox_id])
    for conversation_id in stale:
        celery_app.send_task(task_names.DRAIN_CONVERSATION, args=[conversation_id])
    return {
        "confirmed": stuck.confirmed,
        "resent": stuck.resent,
        "unknown": stuck.unknown,
        "waiting_for_echo": stuck.waiting_for_echo,
        "requeued": len(due),
        "drained": len(stale),
        "events_requeued": requeued_events,
    }


async def _requeue_lost_events(runtime: WorkerRuntime) -> int:
    """Events acknowledged to TikTok whose task a killed worker took with it: pushed back
    to the queue, or parked for a person when that keeps happening (accepted.py)."""
    now = time.time()
    accepted_before = now - runtime.settings.broker_visibility_timeout_seconds
    lost = await accepted.take_lost(runtime.redis, EVENTS_QUEUE, accepted_before, now, limit=50)
    for event in lost:
        if event.pushed_back:
            log.warning("event_requeued", task_id=event.task_id, requeues=event.requeues)
            continue
        args = event.args()
        body = args[0] if args and isinstance(args[0], str) else ""
        reason = f"accepted but never finished, though queued again {accepted.MAX_REQUEUES} times"
        await _park_event(runtime, body, reason, event.requeues, event.task_id)
        log.error("event_dead_lettered", task_id=event.task_id, requeues=event.requeues)
    return len(lost)


@celery_app.task(name=task_names.SWEEP_OUTBOX)
def sweep_outbox() -> dict[str, int]:
    structlog.contextvars.clear_contextvars()
    counts = run_async(_sweep)
    if any(counts.values()):
        log.info("outbox_swept", **counts)
    return counts


async def _release_idle_handoffs(runtime: WorkerRuntime) -> int:
    idle_since = utc_now() - timedelta(hours=runtime.settings.human_inactivity_timeout_hours)
    async with transaction(runtime.session_factory) as session:
        idle = await ConversationRepository(session).idle_handoffs(idle_since)
        for conversation in idle:
            transitions.hand_back(conversation)
        return len(idle)


@celery_app.task(name=task_names.RELEASE_IDLE_HANDOFFS)
def release_idle_handoffs() -> int:
    structlog.contextvars.clear_contextvars()
    released = run_async(_release_idle_handoffs)
    if released:
        log.info("handoffs_released", count=released)
    return released


async def _expire_holds(runtime: WorkerRuntime) -> int:
    async def _enqueue(outbox_ids: Sequence[int]) -> None:
        enqueue_deliveries(outbox_ids)

    report = await run_followthrough(
        runtime.session_factory, runtime.settings, runtime.redis, _enqueue
    )
    if report.expired or report.sold or report.reminded or report.alerted or report.counted:
        log.info(
            "holds_followed_through",
            expired=report.expired,
            sold=report.sold,
            converted=report.converted,
            reminded=report.reminded,
            alerted=report.alerted,
            not_allowed=report.counted,
            messages=len(report.outbox_ids),
        )
    return report.expired


@celery_app.task(name=task_names.EXPIRE_HOLDS)
def expire_holds() -> int:
    """A hold's follow-through (`app/services/shop/followthrough.py`): pieces on recorded
    orders sold, lapsed holds ended (each freed piece's first waitlisted customer told),
    reminders before a hold lapses."""
    structlog.contextvars.clear_contextvars()
    return run_async(_expire_holds)


@celery_app.task(name=task_names.NOOP, queue=EVENTS_QUEUE)
def noop(counter_key: str) -> None:
    """The cheapest task that proves a round trip (benchmark baseline, smoke checks)."""
    run_async(lambda rt: rt.redis.incr(counter_key))
