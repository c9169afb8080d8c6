"""A local stand-in for the TikTok Business Messaging API (tiktok-api.md).

It answers the bot's egress calls with TikTok's shapes, auth header and error behaviour,
records what it accepted and every call it saw, and plays customers by posting signed
webhooks to the bot. State lives in memory, as it would on TikTok's side: one process, one
sandbox. The control API under `/_sandbox` lets tests, the scenario runner and benchmarks
steer it.

The parts:
    protocol      TikTok's endpoints, error codes, id shapes and response envelope
    config        SandboxConfig (fixed at start) and the settings changeable at run time
    state         the in-memory state and the records of what was sent and received
    faults        fault injection: scripted failures and RandomFaults
    multipart     the multipart/form-data reader the media upload needs
    business_api  TikTok's send, media upload, capabilities, token refresh and exchange,
                  and webhook registration endpoints
    portal        TikTok's authorisation page, where the shop owner grants the app
    webhooks      signing and posting webhooks to the bot, redelivery, send echoes
    players       customers, staff, TikTok's automations, another tool and other events,
                  played as webhooks
    control_api   the other `/_sandbox` routes: records, faults, capabilities, tokens...
    app           create_sandbox_app, which puts them together

This package exposes the names the rest of the code imports; the others live in their
part.
"""

from app.sandbox.tiktok.app import create_sandbox_app
from app.sandbox.tiktok.config import ConfigView, SandboxConfig
from app.sandbox.tiktok.control_api import (
    CallsView,
    CapabilitiesView,
    MessagesTally,
    MessagesView,
    WebhookDeliveriesView,
)
from app.sandbox.tiktok.faults import FailuresView, RandomFaults, RandomFaultsView
from app.sandbox.tiktok.players import AutoMessageType, ReactionOperation, SharePostForm
from app.sandbox.tiktok.protocol import CODE_RATE_LIMITED, Endpoint, conversation_id_for
from app.sandbox.tiktok.state import (
    RecordedCall,
    RecordedMessage,
    SandboxState,
    TokensView,
    WebhookDeliveryRecord,
)
from app.sandbox.tiktok.webhooks import EventResult, MessageSource, WebhookResult

__all__ = [
    "CODE_RATE_LIMITED",
    "AutoMessageType",
    "CallsView",
    "CapabilitiesView",
    "ConfigView",
    "Endpoint",
    "EventResult",
    "FailuresView",
    "MessageSource",
    "MessagesTally",
    "MessagesView",
    "RandomFaults",
    "RandomFaultsView",
    "ReactionOperation",
    "RecordedCall",
    "RecordedMessage",
    "SandboxConfig",
    "SandboxState",
    "SharePostForm",
    "TokensView",
    "WebhookDeliveriesView",
    "WebhookDeliveryRecord",
    "WebhookResult",
    "conversation_id_for",
    "create_sandbox_app",
]
