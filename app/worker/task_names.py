"""The names of the Celery tasks: what producers (the webhook, the CLI, the bench) send and
the worker registers. Names are the wire contract with messages already queued: renaming one
strands those messages, so a rename keeps the old name registered until the queues drain."""

from __future__ import annotations

PROCESS_EVENT = "philia.process_event"
DELIVER_OUTBOX = "philia.deliver_outbox"
DRAIN_CONVERSATION = "philia.drain_conversation"
SWEEP_OUTBOX = "philia.sweep_outbox"
RELEASE_IDLE_HANDOFFS = "philia.release_idle_handoffs"
EXPIRE_HOLDS = "philia.expire_holds"
NOOP = "philia.noop"  # the benchmark's baseline task
