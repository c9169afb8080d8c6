"""The Celery application. Tasks are registered from app.worker.tasks."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

from celery import Celery
from celery.signals import celeryd_after_setup, celeryd_init, setup_logging
from kombu import Connection, Exchange, Queue

from app.core.config import Settings, get_settings
from app.core.logging import configure_logging, get_logger, json_logs
from app.worker import task_names
from app.worker.task_names import EVENTS_QUEUE, MAINTENANCE_QUEUE, SENDS_QUEUE

log = get_logger(__name__)


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    return {
        # Must exceed the longest task and the longest retry countdown, or Redis would
        # hand a still-running task to a second worker.
        "visibility_timeout": settings.broker_visibility_timeout_seconds,
        "socket_timeout": 2.0,
        "socket_connect_timeout": 1.0,
    }


def create_celery(settings: Settings) -> Celery:
    # No REDIS_URL: the worker refuses to start (app.worker.tasks), the API answers 503.
    app = Celery("philia", broker=settings.redis_url or "redis://redis-url-not-set:6379/0")
    app.conf.include = ["app.worker.tasks"]
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        # At-least-once: a task is acknowledged only after it finished, and a task whose
        # worker died is handed out again instead of being forgotten.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=settings.worker_prefetch_multiplier,
        task_time_limit=settings.task_time_limit_seconds,
        task_soft_time_limit=settings.task_time_limit_seconds - 10,
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_transport_options(settings),
        task_default_queue=EVENTS_QUEUE,
        # Each queue its own exchange and key: with one shared default binding, the Redis
        # transport would copy every task into all three queues.
        task_queues=tuple(
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in (EVENTS_QUEUE, SENDS_QUEUE, MAINTENANCE_QUEUE)
        ),
        task_routes={
            task_names.DELIVER_OUTBOX: {"queue": SENDS_QUEUE},
            task_names.SWEEP_OUTBOX: {"queue": MAINTENANCE_QUEUE},
            task_names.RELEASE_IDLE_HANDOFFS: {"queue": MAINTENANCE_QUEUE},
            task_names.EXPIRE_HOLDS: {"queue": MAINTENANCE_QUEUE},
        },
        beat_schedule={
            "sweep-outbox": {
                "task": task_names.SWEEP_OUTBOX,
                "schedule": settings.outbox_sweep_seconds,
            },
            "release-idle-handoffs": {"task": task_names.RELEASE_IDLE_HANDOFFS, "schedule": 300.0},
            "expire-holds": {"task": task_names.EXPIRE_HOLDS, "schedule": 60.0},
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


celery_app = create_celery(get_settings())

# Tasks that dead workers held and that one call gives back: enough for a few workers' pools.
_RESTORED_AT_ONCE = 100


def restore_tasks_of_dead_workers(settings: Settings) -> None:
    """Give back to their queues the tasks held past the visibility timeout (their worker
    died without acknowledging them), as Celery's Redis transport does by itself, but only
    when a worker starts and every hundred seconds or so: a DM whose task a killed worker
    held waited that long for its answer. Called by the sweeper; the transport's own lock
    keeps two callers from restoring the same task. Blocking (kombu)."""
    if settings.redis_url is None:
        return
    with Connection(
        settings.redis_url, transport_options=broker_transport_options(settings)
    ) as connection:
        channel: Any = connection.default_channel  # the Redis transport's, with its QoS
        # interval=1: this call restores; the transport's own calls skip nine in ten.
        channel.qos.restore_visible(num=_RESTORED_AT_ONCE, interval=1)


def _say_as_a_json_line(message: str, stream: IO[str] | None = sys.__stderr__) -> None:
    # Celery's signal handlers announce a shutdown ("worker: Warm shutdown (MainProcess)")
    # with one os.write of plain text: no logging, whose locks a signal handler could find
    # taken. The same single write, as a JSON line.
    if stream is None:
        return
    record = {
        "event": message,
        "level": "warning",
        "logger": "celery.apps.worker",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    os.write(stream.fileno(), json.dumps(record).encode() + b"\n")


@celeryd_init.connect
def _worker_logs_from_the_start(**_: Any) -> None:
    # Sent before the worker's first output (its warning when run as root), long before
    # worker_init: without this, those lines are plain text on stderr.
    settings = get_settings()
    configure_logging(settings)
    if json_logs(settings):
        import celery.apps.worker

        celery.apps.worker.safe_say = _say_as_a_json_line  # type: ignore[attr-defined]


@setup_logging.connect
def _logging_is_ours(loglevel: int | None = None, **_: Any) -> None:
    # With a receiver connected Celery leaves logging alone. Without one (the worker and
    # beat alike) it gives its task logger and billiard's logger plain-text stderr handlers
    # that do not propagate: outside the JSON and the scrubber.
    configure_logging(get_settings(), level=loglevel or None)
    # What Celery would have done itself: a stray print() or a traceback written to stderr
    # becomes a record through the same handler. The handler writes to sys.__stdout__.
    if celery_app.conf.worker_redirect_stdouts:
        celery_app.log.redirect_stdouts(celery_app.conf.worker_redirect_stdouts_level)


@celeryd_after_setup.connect
def _banner_as_a_log_line(sender: str, instance: Any, **_: Any) -> None:
    # The worker prints its banner, twenty lines of plain text, straight to sys.__stdout__:
    # in the JSON logs it is one record instead (sent just before the banner would be).
    if json_logs(get_settings()) and not instance.quiet:
        instance.quiet = True
        log.info("worker_starting", hostname=sender, banner=instance.startup_info(artlines=False))
