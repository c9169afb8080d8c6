"""The real bot, started once for a scenario run, and what a run needs around it.

Isolation: the run never touches the shop's own data. With DATABASE_URL set it works in a
scratch database created on that server and dropped at the end; with REDIS_URL set it
claims an empty database index on that server (an embedded Redis when none is free),
because flushing between files must not wipe the shop's queue or idempotency markers, and
the shop's own worker must not pick up the run's events. Without URLs the Stack starts
embedded servers that die with the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import redis.asyncio as aioredis
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.core import redis_keys
from app.core.clock import moved_by, utc_now
from app.core.config import Settings, normalize_database_url
from app.db.migrate import create_scratch_database, drop_database, truncate_all_tables
from app.db.models import Conversation, ConversationMode, MessageStatus, OutboxStatus
from app.db.repositories.conversations import (
    ConversationRepository,
    DeadLetterRepository,
    MessageRepository,
    OutboxRepository,
)
from app.db.repositories.holds import HoldRepository
from app.db.repositories.inbox import InboxRepository
from app.db.repositories.orders import CustomerRepository
from app.db.session import create_session_factory, transaction
from app.sandbox.control import SandboxControl
from app.sandbox.redis_claims import CLAIM_TTL_SECONDS, claim_key
from app.sandbox.stack import Stack, free_port
from app.sandbox.tiktok import RecordedMessage
from app.scenarios.model import Turn
from app.services.shop import HoldNotActive, load_default_faq, run_followthrough, sell_hold
from app.services.shop.catalog_io import ImportFailed, import_catalog, import_orders
from app.services.tiktok.signature import signature_header
from app.worker.enqueue import delivery_enqueuer
from app.worker.producer import AsyncTaskProducer
from app.worker.task_names import EVENTS_QUEUE, MAINTENANCE_QUEUE, SENDS_QUEUE

POLL_SECONDS = 0.05
# The whole condition must hold on this many polls in a row: a task that a worker has just
# popped from a queue list is, for an instant, neither in the list nor in `unacked`.
STABLE_POLLS = 2
# An event the worker ignores leaves no trace to wait for (no message row, no marker, no
# dead letter): only the empty queues say it is done, so they must stay empty longer.
QUIET_POLLS = 6
# Conversations a scenario file creates: a handful; the lookup reads them all.
MAX_CONVERSATIONS = 10_000
MAX_DEAD_LETTERS = 1_000
WEBHOOK_PATH = "/webhook/tiktok"
QUIESCE_SECONDS = 10.0
REDIS_CLAIM_KEY = "philia:converse:claim"
REDIS_CLAIM_TTL_SECONDS = 6 * 3600
# The children run against the sandbox whatever `.env` says: a scenario must never reach
# the real TikTok API, the shop's staff webhook, or refuse to start as "production".
SCENARIO_ENV = {
    "ENVIRONMENT": "development",
    "LOG_JSON": "true",
    "TIKTOK_ACCESS_TOKEN": "dev",
    "TIKTOK_REFRESH_TOKEN": "dev",
    "TIKTOK_CLIENT_SECRET": "converse-client-secret",
    "STAFF_WEBHOOK_URL": "",
}
# Which app and account the bot is: the environment's, so a scenario's raw bodies can name
# them; otherwise the defaults, whatever `.env` says, so the project's scenarios hold.
IDENTITY_ENV: dict[str, str] = {
    "TIKTOK_CLIENT_KEY": Settings.model_fields["tiktok_client_key"].default,
    "TIKTOK_BUSINESS_ID": Settings.model_fields["tiktok_business_id"].default,
}
# kombu's Redis transport: one list per queue and priority step, and the `unacked` hash
# holding every message a worker has taken and not acknowledged yet (acks are late, so
# that is until the task finished; a retry waiting for its countdown stays there too).
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
_QUEUES = (EVENTS_QUEUE, SENDS_QUEUE, MAINTENANCE_QUEUE)
_QUEUE_KEYS = tuple(
    key
    for queue in _QUEUES
    for key in (queue, *(f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS))
)
_UNACKED_KEY = "unacked"
# Kept when the shop is reset: the exchange-to-queue bindings. kombu declares them once
# per connection and caches that; a publisher whose binding key vanished would route its
# tasks to no queue. They hold no shop state, so keeping them costs nothing.
_KOMBU_PREFIX = "_kombu."
_OPEN_SENDS = (OutboxStatus.PENDING, OutboxStatus.SENDING)


def bot_identity(environ: Mapping[str, str]) -> dict[str, str]:
    """TIKTOK_CLIENT_KEY and TIKTOK_BUSINESS_ID for the children: the environment's when
    set (and not empty), else the defaults."""
    return {name: environ.get(name) or default for name, default in IDENTITY_ENV.items()}


class PipelineError(Exception):
    """The pipeline cannot go on (did not start, a process died, the shop did not load)."""


class TurnNotSettled(Exception):
    """The turn did not finish in time, or the worker gave up on its message."""


@dataclass(frozen=True)
class ShopData:
    catalog: Path
    orders: Path
    catalog_text: str
    orders_text: str


@dataclass(frozen=True)
class Posted:
    """How the bot answered one copy of a webhook: its status, or why there was none."""

    status: int | None
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class PlayedEvent:
    """The webhook a turn posted (every copy the same body), as the worker will see it."""

    event_id: str
    body: str
    conversation_id: str | None  # TikTok's; None when the body names none
    # Some copy was answered 2xx, so the event is in the queue. A refused body left
    # nothing behind: there is nothing to wait for.
    accepted: bool


@dataclass(frozen=True)
class DeadLetterSeen:
    kind: str
    error: str
    own: bool  # the turn's own event, parked


@dataclass(frozen=True)
class Settled:
    intent: str | None
    replies: list[RecordedMessage]
    # None when the turn's body names no conversation.
    mode: Literal["bot", "human"] | None = None
    dead_letters: list[DeadLetterSeen] = field(default_factory=list)

    @property
    def parked(self) -> DeadLetterSeen | None:
        return next((letter for letter in self.dead_letters if letter.own), None)


@dataclass(frozen=True)
class _Probe:
    settled: Settled | None
    waiting_for: str
    traced: bool = False  # the worker left a trace of the event: no need for QUIET_POLLS


@dataclass
class _ScratchRedis:
    url: str
    client: aioredis.Redis
    token: str
    index: int
    server_url: str


def _redis_url_with_db(url: str, index: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(index))]
        return urlunsplit((*parts[:3], urlencode(query), parts.fragment))
    return urlunsplit((parts.scheme, parts.netloc, f"/{index}", parts.query, parts.fragment))


async def _claim_redis_database(server_url: str) -> _ScratchRedis | None:
    """An empty database index on the server, marked as ours; None if none is free.

    Another run claims with SET NX on the same key, so two runs never share an index; an
    index holding any other key belongs to someone else and is left alone."""
    token = secrets.token_hex(8)
    candidates = list(range(1, 16))
    random.shuffle(candidates)
    claims: aioredis.Redis = aioredis.Redis.from_url(_redis_url_with_db(server_url, 0))
    try:
        for index in candidates:
            # The shared claim first (redis_claims): a test session's index is empty right
            # after each of its flushes, and must not look free.
            if not await claims.set(claim_key(index), token, nx=True, ex=CLAIM_TTL_SECONDS):
                continue
            url = _redis_url_with_db(server_url, index)
            client: aioredis.Redis = aioredis.Redis.from_url(url)
            try:
                if await client.set(REDIS_CLAIM_KEY, token, nx=True, ex=REDIS_CLAIM_TTL_SECONDS):
                    if await client.dbsize() == 1:
                        return _ScratchRedis(url, client, token, index, server_url)
                    await client.delete(REDIS_CLAIM_KEY)
            except aioredis.ResponseError:
                # "DB index is out of range": the server has fewer databases; try the others.
                pass
            await client.aclose()
            await claims.delete(claim_key(index))
        return None
    finally:
        await claims.aclose()


async def _release_claim(scratch: _ScratchRedis) -> None:
    claims: aioredis.Redis = aioredis.Redis.from_url(_redis_url_with_db(scratch.server_url, 0))
    try:
        if await claims.get(claim_key(scratch.index)) == scratch.token.encode():
            await claims.delete(claim_key(scratch.index))
    finally:
        await claims.aclose()


@dataclass
class ScenarioPipeline:
    """API, worker, beat and the TikTok sandbox as processes, started once per run."""

    settings: Settings
    shop: ShopData
    log_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    # The end of each process's log when the run failed, read before the logs are removed.
    failure_logs: dict[str, list[str]] = field(default_factory=dict)
    stack: Stack | None = None
    _work_dir: Path | None = None
    _scratch_database: str | None = None
    _scratch_redis: _ScratchRedis | None = None
    _engine: AsyncEngine | None = None
    _redis: aioredis.Redis | None = None
    _sandbox: SandboxControl | None = None
    _http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> ScenarioPipeline:
        try:
            await self._start()
        except BaseException:
            self._keep_failure_logs()
            await self._stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._keep_failure_logs()
        await self._stop()

    def _keep_failure_logs(self, lines: int = 15) -> None:
        logs = self.logs
        if logs is None or not logs.is_dir():
            return
        for log in sorted(logs.glob("*.log")):
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            self.failure_logs[log.name] = tail

    @property
    def logs(self) -> Path | None:
        return self.stack.log_dir if self.stack is not None else None

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "the pipeline is not running"
        return self._engine

    @property
    def redis(self) -> aioredis.Redis:
        assert self._redis is not None, "the pipeline is not running"
        return self._redis

    @property
    def sandbox(self) -> SandboxControl:
        assert self._sandbox is not None, "the pipeline is not running"
        return self._sandbox

    @property
    def client_secret(self) -> str:
        return SCENARIO_ENV["TIKTOK_CLIENT_SECRET"]

    async def _start(self) -> None:
        env = {**SCENARIO_ENV, **bot_identity(os.environ)}
        server_db = os.environ.get("DATABASE_URL")
        if server_db:
            try:
                self._scratch_database = await create_scratch_database(
                    normalize_database_url(server_db), "philia_converse"
                )
            except Exception as error:
                raise PipelineError(
                    f"cannot create a scratch database on the server of DATABASE_URL ({error}); "
                    "unset DATABASE_URL to use an embedded PostgreSQL"
                ) from error
            env["DATABASE_URL"] = self._scratch_database
        server_redis = os.environ.get("REDIS_URL")
        if server_redis:
            self._scratch_redis = await _claim_redis_database(server_redis)
            if self._scratch_redis is None:
                self.notes.append("no empty Redis database on REDIS_URL's server: embedded Redis")
            env["REDIS_URL"] = self._scratch_redis.url if self._scratch_redis else ""
        self._work_dir = Path(tempfile.mkdtemp(prefix="philia-converse-"))
        stack_settings = self.settings.model_copy(
            update={"tiktok_access_token": SecretStr(SCENARIO_ENV["TIKTOK_ACCESS_TOKEN"])}
        )
        self.stack = Stack(
            stack_settings,
            data_dir=self._work_dir,
            api_port=free_port(),
            log_dir=self.log_dir or self._work_dir / "logs",
            extra_env=env,
        )
        starting = asyncio.ensure_future(asyncio.to_thread(self._start_stack, self.stack))
        try:
            # Shielded: a cancelled run (Ctrl-C) must let the thread finish spawning before
            # stop() runs, or a process spawned after it would outlive the run.
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await starting
            raise
        except Exception as error:
            raise PipelineError(f"the pipeline did not start: {error}") from error
        assert self.stack.sandbox_url is not None  # the token is "dev": always the sandbox
        self._engine = create_async_engine(self.stack.env["DATABASE_URL"], pool_size=2)
        self._redis = aioredis.Redis.from_url(self.stack.env["REDIS_URL"])
        self._sandbox = SandboxControl(self.stack.sandbox_url)
        self._http = httpx.AsyncClient(timeout=30.0)

    @staticmethod
    def _start_stack(stack: Stack) -> None:
        stack.start_services()
        stack.start_processes()

    @staticmethod
    def _halt(stack: Stack) -> None:
        # No graceful shutdown: the run's database is dropped and its Redis index flushed
        # right after, and a warm Celery shutdown would add seconds to every run. kill()
        # signals the process group, so a dead worker's pool children go too.
        for name in list(stack.processes):
            stack.kill(name)
        stack.stop()  # closes the logs and stops embedded PostgreSQL/Redis

    async def _stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._sandbox is not None:
            await self._sandbox.aclose()
        if self._redis is not None:
            await self._redis.aclose()
        if self._engine is not None:
            await self._engine.dispose()
        if self.stack is not None:
            await asyncio.to_thread(self._halt, self.stack)
        if self._scratch_redis is not None:
            with contextlib.suppress(aioredis.RedisError):
                await self._scratch_redis.client.flushdb()  # leaves the index free again
                await _release_claim(self._scratch_redis)
            await self._scratch_redis.client.aclose()
        if self._scratch_database is not None:
            with contextlib.suppress(Exception):
                await drop_database(self._scratch_database)
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
        self._sandbox = self._redis = self._engine = self._http = None
        self._scratch_redis = self._scratch_database = self._work_dir = None

    def check_processes(self) -> None:
        assert self.stack is not None
        for name, process in self.stack.processes.items():
            code = process.poll()
            if code is not None:
                raise PipelineError(f"the {name} process exited with status {code}")

    # -- a fresh shop for every file -------------------------------------------------------

    async def reset_shop(self) -> None:
        """Nothing of the previous file survives: rows, Redis keys, sandbox recordings."""
        await self._quiesce()
        await self.sandbox.reset()
        await self._clear_redis()
        await self._truncate()
        await self._import_shop()

    async def _quiesce(self) -> None:
        """Wait for the workers to finish what the previous file left (a turn that timed
        out may still have a retry pending); a worker still busy after that is restarted,
        so that nothing it does lands in the next file's fresh shop."""
        deadline = time.monotonic() + QUIESCE_SECONDS
        while time.monotonic() < deadline:
            self.check_processes()
            async with AsyncSession(self.engine) as session:
                open_sends = await OutboxRepository(session).count_in(_OPEN_SENDS)
            if not open_sends and not await self.broker_backlog():
                return
            await asyncio.sleep(POLL_SECONDS)
        assert self.stack is not None
        self.notes.append("the worker was still busy between files: restarted it")
        await asyncio.to_thread(self.stack.kill, "worker")
        await asyncio.to_thread(self.stack.start_worker)

    async def _clear_redis(self) -> None:
        doomed: list[bytes] = []
        async for key in self.redis.scan_iter(count=1000):
            name = key.decode("utf-8", errors="replace")
            if not name.startswith(_KOMBU_PREFIX) and name != REDIS_CLAIM_KEY:
                doomed.append(key)
        for start in range(0, len(doomed), 500):
            await self.redis.unlink(*doomed[start : start + 500])
        if self._scratch_redis is not None:  # the claim expires: renew it while we run
            await self.redis.set(
                REDIS_CLAIM_KEY, self._scratch_redis.token, ex=REDIS_CLAIM_TTL_SECONDS
            )

    async def _truncate(self) -> None:
        await truncate_all_tables(self.engine)

    async def _import_shop(self) -> None:
        try:
            async with AsyncSession(self.engine) as session, session.begin():
                await import_catalog(session, self.shop.catalog_text)
                await import_orders(session, self.shop.orders_text)
                # The shop's policies: without them every policy question is deferred.
                await load_default_faq(session)
        except ImportFailed as error:
            raise PipelineError(
                f"cannot import the shop ({self.shop.catalog}, {self.shop.orders}): {error}"
            ) from error

    # -- raw webhooks -------------------------------------------------------------------

    async def post_raw(self, body: bytes, copies: int = 1) -> list[Posted]:
        """POST `body` to the bot's webhook `copies` times at once, unchanged, each copy
        signed with the configured client secret when it is sent, as TikTok does."""
        assert self.stack is not None and self._http is not None, "the pipeline is not running"
        http, url = self._http, f"{self.stack.api_url}{WEBHOOK_PATH}"

        async def post() -> Posted:
            headers = {
                "Content-Type": "application/json",
                "TikTok-Signature": signature_header(self.client_secret, body),
            }
            try:
                response = await http.post(url, content=body, headers=headers)
            except httpx.HTTPError as error:
                return Posted(status=None, error=repr(error))
            return Posted(status=response.status_code)

        return list(await asyncio.gather(*(post() for _ in range(copies))))

    # -- when is a turn over ---------------------------------------------------------------

    async def broker_backlog(self) -> int:
        """Tasks queued or taken and not yet finished, over every queue the worker reads."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in _QUEUE_KEYS:
                pipe.llen(key)
            pipe.hlen(_UNACKED_KEY)
            sizes: list[int] = await pipe.execute()
        return sum(sizes)

    async def last_seq(self) -> int:
        """The sandbox's newest message number: the replies of a turn are those after it."""
        messages = await self.sandbox.messages()
        return max((message.seq for message in messages), default=0)

    async def last_dead_letter(self) -> int:
        """The newest dead letter's id: the ones a turn creates come after it."""
        async with AsyncSession(self.engine) as session:
            newest = await DeadLetterRepository(session).list(include_retried=True, limit=1)
        return newest[0].id if newest else 0

    async def shop_action(self, turn: Turn, customer: str) -> None:
        """A `shop` turn, through the services the inbox and the beat task use, in this
        process: its clock moves for `after`, the bot's processes keep real time. Quiet
        hours are off for it, so that a file passes at any hour of the day."""
        settings = self.settings.model_copy(update={"quiet_hours_start": 0, "quiet_hours_end": 0})
        factory = create_session_factory(self.engine)
        enqueue = delivery_enqueuer(AsyncTaskProducer(self.redis), timeout_seconds=5.0)
        if turn.shop == "import_catalog":
            assert turn.csv is not None
            try:
                async with transaction(factory) as session:
                    await import_catalog(session, turn.csv)
            except ImportFailed as error:
                raise ShopActionFailed(f"the catalogue rows were refused: {error}") from None
            return
        if turn.shop == "mark_paid":
            hold_id, customer_id = await self._hold_of(customer, turn.sku)
            try:
                await sell_hold(
                    factory,
                    settings,
                    self.redis,
                    enqueue,
                    hold_id=hold_id,
                    customer_id=customer_id,
                )
            except HoldNotActive as error:
                raise ShopActionFailed(str(error)) from None
            return
        with moved_by(turn.after or timedelta(0)):
            await run_followthrough(factory, settings, self.redis, enqueue)

    async def _hold_of(self, customer: str, sku: str | None) -> tuple[int, int]:
        async with AsyncSession(self.engine) as session:
            found = await CustomerRepository(session).get_by_tiktok_id(customer)
            holds = (
                [] if found is None else await HoldRepository(session).active_for_customer(found.id)
            )
        chosen = [hold for hold, held_sku in holds if sku is None or held_sku == sku]
        if found is None or not chosen:
            raise ShopActionFailed(f"{customer} has no active hold{f' on {sku}' if sku else ''}")
        return chosen[-1].id, found.id

    async def wait_sends_settled(
        self, after_seq: int, limit_seconds: float
    ) -> list[RecordedMessage]:
        """Poll until what a shop turn queued is over: queues empty, no reply of any
        conversation pending or being sent, every echo handled. Returns what was sent."""
        deadline = time.monotonic() + limit_seconds
        stable = 0
        while True:
            self.check_processes()
            waiting, sent = await self._sends_waiting_for(after_seq)
            stable = stable + 1 if waiting is None else 0
            if stable >= STABLE_POLLS:
                return sent
            if time.monotonic() >= deadline:
                raise TurnNotSettled(f"timed out after {limit_seconds:g} s waiting for {waiting}")
            await asyncio.sleep(POLL_SECONDS)

    async def _sends_waiting_for(self, after_seq: int) -> tuple[str | None, list[RecordedMessage]]:
        if await self.broker_backlog():
            return "the queues to empty", []
        async with AsyncSession(self.engine) as session:
            open_sends = await OutboxRepository(session).count_in(_OPEN_SENDS)
        if open_sends:
            return f"{open_sends} messages still to send", []
        sent = [
            message
            for message in await self.sandbox.messages()
            if message.seq > after_seq and message.source == "api"
        ]
        if sent:
            async with self.redis.pipeline(transaction=False) as pipe:
                for message in sent:
                    pipe.exists(redis_keys.event_handled(message.message_id))
                if not all(await pipe.execute()):
                    return "the echoes of the messages to be handled", []
        return None, sent

    async def wait_settled(
        self, played: PlayedEvent, after_seq: int, after_dead_letter: int, limit_seconds: float
    ) -> Settled:
        """Poll until the turn is over: the worker has finished with the event (handled,
        ignored or parked it), no reply of the conversation is still pending or being sent
        (a retry waiting for its time counts as pending), every copy of the webhook and
        every echo of a reply has been handled, and the queues are empty. A webhook the
        bot refused left nothing to wait for. Returns what the turn did."""
        deadline = time.monotonic() + limit_seconds
        stable = 0
        while True:
            self.check_processes()
            probe = await self._probe(played, after_seq, after_dead_letter)
            if not played.accepted and probe.settled is not None:
                return probe.settled
            stable = stable + 1 if probe.settled is not None else 0
            needed = STABLE_POLLS if probe.traced else QUIET_POLLS
            if probe.settled is not None and stable >= needed:
                return probe.settled
            if time.monotonic() >= deadline:
                raise TurnNotSettled(
                    f"timed out after {limit_seconds:g} s waiting for {probe.waiting_for}"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def _probe(self, played: PlayedEvent, after_seq: int, after_dead_letter: int) -> _Probe:
        if played.accepted and await self.broker_backlog():
            return _Probe(None, "the worker to finish the event (queues not empty)")
        async with AsyncSession(self.engine) as session:
            row = await MessageRepository(session).by_event_id(played.event_id)
            letters = [
                DeadLetterSeen(
                    letter.kind,
                    letter.error,
                    own=letter.kind == "event"
                    and (
                        letter.event_id == played.event_id
                        or letter.payload.get("body") == played.body
                    ),
                )
                for letter in await DeadLetterRepository(session).list(
                    include_retried=True, limit=MAX_DEAD_LETTERS
                )
                if letter.id > after_dead_letter
            ]
            parked = any(letter.own for letter in letters)
            if (
                played.accepted
                and not parked
                and row is not None
                and row.status == MessageStatus.RECEIVED
            ):
                return _Probe(None, "the worker to finish the message (still received)")
            conversation: Conversation | None = None
            if row is not None:
                conversation = await ConversationRepository(session).get(row.conversation_id)
            elif played.conversation_id is not None:
                conversation = await _conversation_by_tiktok_id(session, played.conversation_id)
            open_sends = 0
            if conversation is not None:
                open_sends = await OutboxRepository(session).count_in(
                    _OPEN_SENDS, conversation_id=conversation.id
                )
        if played.accepted and open_sends:
            return _Probe(
                None, f"{open_sends} repl{'y' if open_sends == 1 else 'ies'} still to send"
            )
        replies = [
            message
            for message in await self.sandbox.messages(conversation_id=played.conversation_id)
            if message.seq > after_seq and message.source == "api"
        ]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(redis_keys.event_handled(played.event_id))
            for message in replies:
                pipe.exists(redis_keys.event_handled(message.message_id))
            marked, *echoes_handled = await pipe.execute()
        if played.accepted:
            if not all(echoes_handled):
                return _Probe(None, "the echoes of the replies to be handled")
            if await self.broker_backlog():
                return _Probe(None, "the queues to empty")
        mode: Literal["bot", "human"] | None = None
        if played.conversation_id is not None:
            human = conversation is not None and conversation.mode is ConversationMode.HUMAN
            mode = "human" if human else "bot"
        settled = Settled(
            intent=row.intent if row is not None else None,
            replies=replies,
            mode=mode,
            dead_letters=letters,
        )
        traced = parked or bool(marked) or (row is not None)
        return _Probe(settled, "the worker to finish the event", traced=traced)


class ShopActionFailed(Exception):
    """A shop turn that could not be done (no such hold, say); the message says why."""


async def _conversation_by_tiktok_id(
    session: AsyncSession, tiktok_conversation_id: str
) -> Conversation | None:
    # Read through the staff inbox's read model: the runner adds no query of its own.
    rows = await InboxRepository(session).conversations(utc_now(), limit=MAX_CONVERSATIONS)
    return next((c for c, _ in rows if c.tiktok_conversation_id == tiktok_conversation_id), None)
