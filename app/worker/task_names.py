"""The names of the Celery tasks and queues: what producers (the webhook, the CLI, the
bench) send and the worker registers and consumes. Kept free of Celery itself, so the API
can publish without importing it. Names are the wire contract with messages already
queued: renaming one strands those messages, so a rename keeps the old name registered
until the queues drain."""

from __future__ import annotations

EVENTS_QUEUE = "events"
SENDS_QUEUE = "sends"
MAINTENANCE_QUEUE = "maintenance"

PROCESS_EVENTS = "philia.process_events"  # the webhook's events, handled in batches
PROCESS_EVENT = "philia.process_event"  # one event: its retries, a dead letter retried
DELIVER_OUTBOX = "philia.deliver_outbox"
DRAIN_CONVERSATION = "philia.drain_conversation"
SWEEP_OUTBOX = "philia.sweep_outbox"
RELEASE_IDLE_HANDOFFS = "philia.release_idle_handoffs"
EXPIRE_HOLDS = "philia.expire_holds"
NOOP = "philia.noop"  # the benchmark's baseline task
