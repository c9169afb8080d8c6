"""The Celery application. Tasks are registered from app.worker.tasks."""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from app.core.config import Settings, get_settings

EVENTS_QUEUE = "events"
SENDS_QUEUE = "sends"
MAINTENANCE_QUEUE = "maintenance"


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
        broker_transport_options={
            # Must exceed the longest task and the longest retry countdown, or Redis would
            # hand a still-running task to a second worker.
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            "socket_timeout": 2.0,
            "socket_connect_timeout": 1.0,
        },
        task_default_queue=EVENTS_QUEUE,
        # Each queue its own exchange and key: with one shared default binding, the Redis
        # transport would copy every task into all three queues.
        task_queues=tuple(
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in (EVENTS_QUEUE, SENDS_QUEUE, MAINTENANCE_QUEUE)
        ),
        task_routes={
            "philia.deliver_outbox": {"queue": SENDS_QUEUE},
            "philia.sweep_outbox": {"queue": MAINTENANCE_QUEUE},
            "philia.release_idle_handoffs": {"queue": MAINTENANCE_QUEUE},
            "philia.expire_holds": {"queue": MAINTENANCE_QUEUE},
        },
        beat_schedule={
            "sweep-outbox": {
                "task": "philia.sweep_outbox",
                "schedule": settings.outbox_sweep_seconds,
            },
            "release-idle-handoffs": {"task": "philia.release_idle_handoffs", "schedule": 300.0},
            "expire-holds": {"task": "philia.expire_holds", "schedule": 60.0},
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


celery_app = create_celery(get_settings())
