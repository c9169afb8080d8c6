"""Every Redis key the app writes, built in one place, in one scheme:
`philia:<area>:<what>[:<id>]`, lower-case, so a `SCAN philia:staff:*` finds one concern.

The one exception is the window pair, named by the product spec (PRODUCT.md §2) and read by
other tools: `TIKTOK_WINDOW:{user_id}` and its companion `TIKTOK_QUOTA:{user_id}`.
Celery's own keys (the queues, `unacked`, ...) are Celery's and not built here.
"""

from __future__ import annotations

import hashlib

PREFIX = "philia"


def _digest(value: str) -> str:
    # Tokens and emails are not stored in key names as they are.
    return hashlib.sha256(value.encode()).hexdigest()


# Messaging: the customer's window and quota (the spec's names).
def window(user_id: str) -> str:
    return f"TIKTOK_WINDOW:{user_id}"


def quota(user_id: str) -> str:
    return f"TIKTOK_QUOTA:{user_id}"


# Messaging: evidence of what was handled and sent.
def event_handled(event_id: str) -> str:
    return f"{PREFIX}:event:{event_id}"


def sent_by_tiktok_id(tiktok_message_id: str) -> str:
    return f"{PREFIX}:sent:{tiktok_message_id}"


def outbox_sent(outbox_id: int) -> str:
    return f"{PREFIX}:outbox-sent:{outbox_id}"


# Events the webhook acknowledged and no worker has finished (app/worker/accepted.py): when
# each was accepted (or last looked at), its task's document, how often it was pushed back.
ACCEPTED_EVENTS_AT = f"{PREFIX}:events:accepted-at"
ACCEPTED_EVENTS_TASKS = f"{PREFIX}:events:accepted-tasks"
ACCEPTED_EVENTS_REQUEUES = f"{PREFIX}:events:accepted-requeues"
# Celery's, read only: where its Redis transport keeps the tasks workers hold (kombu's
# default name; the ledger's sweeper looks there before it calls a task lost).
CELERY_UNACKED = "unacked"


def queued_echoes(conversation_id: str) -> str:
    """Echoes of the shop's sends that reached the webhook and wait for a worker
    (services/messaging/echoes.py): a hash of TikTok message id -> when it arrived."""
    return f"{PREFIX}:queued-echoes:{conversation_id}"


def events_in_flight(conversation_id: str) -> str:
    """A conversation's events accepted by the webhook and not finished yet, by when they
    were accepted (app/worker/turn_order.py): a sorted set of task ids."""
    return f"{PREFIX}:events-in-flight:{conversation_id}"


# TikTok: the shared send rate, the tokens, capabilities.
TIKTOK_SEND_RATE = f"{PREFIX}:tiktok:send-rate"
TIKTOK_ACCESS_TOKEN = f"{PREFIX}:tiktok:access-token"
TIKTOK_TOKEN_REFRESH_LOCK = f"{PREFIX}:tiktok:token-refresh-lock"
TIKTOK_UNSAVED_TOKENS = f"{PREFIX}:tiktok:unsaved-tokens"


def tiktok_image_capability(conversation_id: str) -> str:
    return f"{PREFIX}:tiktok:image-capability:{conversation_id}"


# The last `user_openid` of a webhook event for an account other than TIKTOK_BUSINESS_ID.
TIKTOK_OTHER_ACCOUNT = f"{PREFIX}:tiktok:other-account"
# When the shop removed the app's authorisation (no TTL: only a reconnect clears it).
TIKTOK_DISCONNECTED = f"{PREFIX}:tiktok:disconnected"
# A copy of the connected account's open_id (PostgreSQL has the truth); "" for none.
TIKTOK_BUSINESS_ID = f"{PREFIX}:tiktok:business-id"


def tiktok_oauth_state(state: str) -> str:
    """An authorisation link handed out and not yet used: who asked for it."""
    return f"{PREFIX}:tiktok:oauth-state:{_digest(state)}"


# Staff: sessions and the login lock (see SECURITY.md).
def staff_session(token: str) -> str:
    return f"{PREFIX}:staff:session:{_digest(token)}"


def staff_sessions_of(staff_id: int) -> str:
    return f"{PREFIX}:staff:sessions:{staff_id}"


def login_fails_for_email_at(email: str, ip: str) -> str:
    return f"{PREFIX}:staff:login-fails:pair:{_digest(email)}:{ip}"


def login_fails_for_email(email: str) -> str:
    return f"{PREFIX}:staff:login-fails:email:{_digest(email)}"


def login_fails_from(ip: str) -> str:
    return f"{PREFIX}:staff:login-fails:ip:{ip}"


# Shop: a customer's order numbers that were not theirs.
def order_lookup_misses(tiktok_user_id: str) -> str:
    return f"{PREFIX}:shop:order-misses:{tiktok_user_id}"


# Counters the workers keep for /metrics.
METRICS_MESSAGES = f"{PREFIX}:metrics:messages"
METRICS_SENDS = f"{PREFIX}:metrics:sends"
METRICS_LLM_CALLS = f"{PREFIX}:metrics:llm_calls"
METRICS_LLM_LATENCY = f"{PREFIX}:metrics:llm_latency"
METRICS_OTHER_ACCOUNT_EVENTS = f"{PREFIX}:metrics:other_account_events"
