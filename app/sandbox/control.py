"""A typed client for the TikTok sandbox's control API (`/_sandbox/...`), for tests, the
scenario runner and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import httpx

from app.sandbox.tiktok import (
    AutoMessageType,
    CallsView,
    CapabilitiesView,
    ConfigView,
    Endpoint,
    EventResult,
    FailuresView,
    MessageSource,
    MessagesTally,
    MessagesView,
    RandomFaults,
    RandomFaultsView,
    ReactionOperation,
    RecordedCall,
    RecordedMessage,
    SharePostForm,
    TokensView,
    WebhookDeliveriesView,
    WebhookDeliveryRecord,
    WebhookResult,
)

_UNSET: Any = object()


class SandboxControl:
    def __init__(
        self, base_url: str, *, http: httpx.AsyncClient | None = None, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._own_http = http is None
        # Playing many duplicate deliveries waits for the bot; the timeout leaves room.
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> SandboxControl:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: object | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        response = await self._http.request(
            method, f"{self.base_url}/_sandbox{path}", json=json, params=params
        )
        response.raise_for_status()
        return response.json()

    async def health(self) -> bool:
        return bool((await self._request("GET", "/health")).get("ok"))

    async def reset(self) -> None:
        await self._request("POST", "/reset")

    async def messages(
        self, *, conversation_id: str | None = None, since: float | None = None
    ) -> list[RecordedMessage]:
        params = {"conversation_id": conversation_id, "since": since}
        data = await self._request("GET", "/messages", params=_present(params))
        return MessagesView.model_validate(data).messages

    async def tally(
        self, *, until_conversations: int | None = None, wait_seconds: float = 10.0
    ) -> MessagesTally:
        """How many messages were sent, and to how many conversations (none listed).
        `until_conversations`: the sandbox answers once that many conversations have a
        message, or after `wait_seconds` (at most 20) with the counts so far."""
        params = (
            {}
            if until_conversations is None
            else {"until_conversations": until_conversations, "wait_seconds": wait_seconds}
        )
        data = await self._request("GET", "/messages/tally", params=params)
        return MessagesTally.model_validate(data)

    async def until_conversations(self, count: int, limit_seconds: float) -> float:
        """Seconds until messages were sent to `count` conversations; TimeoutError past
        `limit_seconds`."""
        started = time.perf_counter()
        while True:
            left = limit_seconds - (time.perf_counter() - started)
            if left <= 0:
                raise TimeoutError(f"fewer than {count} conversations answered")
            tally = await self.tally(until_conversations=count, wait_seconds=min(left, 10.0))
            if tally.conversations >= count:
                return time.perf_counter() - started

    async def uploaded(self, media_id: str) -> tuple[bytes, str] | None:
        """An image uploaded through the media API (bytes, content type); None if unknown."""
        response = await self._http.get(f"{self.base_url}/_sandbox/uploads/{media_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.content, response.headers.get("content-type", "application/octet-stream")

    async def calls(
        self, *, endpoints: Sequence[Endpoint] | None = None, since: float | None = None
    ) -> list[RecordedCall]:
        params: dict[str, Any] = _present({"since": since})
        if endpoints is not None:
            params["endpoint"] = list(endpoints)
        data = await self._request("GET", "/calls", params=params)
        return CallsView.model_validate(data).calls

    async def fail_next(
        self,
        count: int,
        kind: str,
        *,
        seconds: float | None = None,
        endpoints: Sequence[Endpoint] | None = None,
    ) -> FailuresView:
        """Make the next `count` API calls (of `endpoints`, default any) fail with `kind`:
        `http_500` (any `http_4xx`/`http_5xx`), `code_40064` (any `code_NNNNN`), or
        `delay` (answer normally after `seconds`)."""
        body = {
            "count": count,
            "kind": kind,
            "seconds": seconds,
            "endpoints": list(endpoints) if endpoints is not None else None,
        }
        return FailuresView.model_validate(await self._request("POST", "/failures", json=body))

    async def pending_failures(self) -> FailuresView:
        return FailuresView.model_validate(await self._request("GET", "/failures"))

    async def clear_failures(self) -> None:
        await self._request("DELETE", "/failures")

    async def set_random_faults(self, faults: RandomFaults) -> RandomFaultsView:
        """From now on every API call may fail or lag at random (see RandomFaults)."""
        data = await self._request("PUT", "/faults/random", json=faults.model_dump(mode="json"))
        return RandomFaultsView.model_validate(data)

    async def random_faults(self) -> RandomFaultsView:
        return RandomFaultsView.model_validate(await self._request("GET", "/faults/random"))

    async def clear_random_faults(self) -> RandomFaultsView:
        return RandomFaultsView.model_validate(await self._request("DELETE", "/faults/random"))

    async def webhook_deliveries(self, *, event: str | None = None) -> list[WebhookDeliveryRecord]:
        """Every webhook the sandbox posted, with each attempt's status until acknowledged."""
        data = await self._request("GET", "/webhooks", params=_present({"event": event}))
        return WebhookDeliveriesView.model_validate(data).deliveries

    async def set_image_send(
        self, enabled: bool, *, conversation_id: str | None = None
    ) -> CapabilitiesView:
        body = {"image_send": enabled, "conversation_id": conversation_id}
        return CapabilitiesView.model_validate(
            await self._request("POST", "/capabilities", json=body)
        )

    async def tokens(self) -> TokensView:
        return TokensView.model_validate(await self._request("GET", "/tokens"))

    async def expire_access_token(self) -> TokensView:
        return TokensView.model_validate(await self._request("POST", "/tokens/expire"))

    async def configure(
        self,
        *,
        webhook_url: str | None = _UNSET,
        echo_sends: bool | None = None,
        rate_limit_per_second: int | None = _UNSET,
        webhook_redelivery_seconds: float | None = None,
        welcome_message: str | None = _UNSET,
    ) -> ConfigView:
        """Change only what is given; `None` clears webhook_url, the rate limit or the
        welcome message."""
        body: dict[str, Any] = {}
        if webhook_url is not _UNSET:
            body["webhook_url"] = webhook_url
        if echo_sends is not None:
            body["echo_sends"] = echo_sends
        if rate_limit_per_second is not _UNSET:
            body["rate_limit_per_second"] = rate_limit_per_second
        if webhook_redelivery_seconds is not None:
            body["webhook_redelivery_seconds"] = webhook_redelivery_seconds
        if welcome_message is not _UNSET:
            body["welcome_message"] = welcome_message
        return ConfigView.model_validate(await self._request("PATCH", "/config", json=body))

    async def play_customer(
        self,
        user_id: str,
        *,
        text: str | None = None,
        share_post_video_id: str | None = None,
        share_post_form: SharePostForm = "string",
        image: bool = False,
        image_media_id: str | None = None,
        image_media_url: str | None = None,
        image_url_top_level: bool = False,
        video: bool = False,
        video_media_id: str | None = None,
        sticker_url: str | None = None,
        emoji_url: str | None = None,
        button_text: str | None = None,
        button_id: str | None = None,
        reaction_emoji: str | None = None,
        reaction_operation: ReactionOperation = "ADD",
        reaction_to: str | None = None,
        unknown_type: str | None = None,
        with_extras: bool = False,
        omit_optional: bool = False,
        client_key: str | None = None,
        user_openid: str | None = None,
        conversation_id: str | None = None,
        username: str | None = None,
        message_id: str | None = None,
        timestamp_ms: int | None = None,
        referenced_message_id: str | None = None,
        copies: int = 1,
    ) -> WebhookResult:
        """A customer writes a DM: the sandbox signs an `im_receive_msg` webhook and posts
        it `copies` times concurrently to the bot, returning the bot's statuses.

        Give exactly one of `text`, `share_post_video_id` (`share_post_form` says how the
        id is carried), an image (`image`, or its `image_media_id` or `image_media_url`),
        a video (`video` or `video_media_id`), `sticker_url`, `emoji_url`, `button_text` (a
        tapped suggested question), `reaction_emoji` (to `reaction_to`, default the shop's
        last message) or `unknown_type`. `client_key`/`user_openid` make it another app's
        or another account's event."""
        body = _present(
            {
                "user_id": user_id,
                "text": text,
                "share_post_video_id": share_post_video_id,
                "share_post_form": share_post_form,
                "image": image or image_media_id is not None or image_media_url is not None,
                "image_media_id": image_media_id,
                "image_media_url": image_media_url,
                "image_url_top_level": image_url_top_level,
                "video": video or video_media_id is not None,
                "video_media_id": video_media_id,
                "sticker_url": sticker_url,
                "emoji_url": emoji_url,
                "button_text": button_text,
                "button_id": button_id,
                "reaction_emoji": reaction_emoji,
                "reaction_operation": reaction_operation,
                "reaction_to": reaction_to,
                "unknown_type": unknown_type,
                "with_extras": with_extras,
                "omit_optional": omit_optional,
                "client_key": client_key,
                "user_openid": user_openid,
                "conversation_id": conversation_id,
                "username": username,
                "message_id": message_id,
                "timestamp_ms": timestamp_ms,
                "referenced_message_id": referenced_message_id,
                "copies": copies,
            }
        )
        return WebhookResult.model_validate(
            await self._request("POST", "/customer/messages", json=body)
        )

    async def play_staff(
        self,
        conversation_id: str,
        text: str | None = None,
        *,
        user_id: str | None = None,
        source: MessageSource | None = "APP",
        reaction_emoji: str | None = None,
        reaction_operation: ReactionOperation = "ADD",
        reaction_to: str | None = None,
    ) -> WebhookResult:
        """Staff type `text` (or react with `reaction_emoji`) in the TikTok app (`source`
        APP), its web inbox (WEB), or a client too old to tag it (None): the sandbox posts
        the `im_send_msg` echo."""
        body = _present(
            {
                "conversation_id": conversation_id,
                "text": text,
                "user_id": user_id,
                "reaction_emoji": reaction_emoji,
                "reaction_operation": reaction_operation,
                "reaction_to": reaction_to,
            }
        )
        body["source"] = source  # None is meaningful: no message_tag at all
        return WebhookResult.model_validate(
            await self._request("POST", "/staff/messages", json=body)
        )

    async def play_automation(
        self,
        conversation_id: str,
        text: str,
        *,
        auto_message_type: AutoMessageType = "AUTO_REPLY",
        buttons: Sequence[str] | None = None,
        source: MessageSource | None = None,
        user_id: str | None = None,
    ) -> WebhookResult:
        """One of TikTok's automations writes for the shop (with `buttons`: a card of
        suggested questions titled `text`): the sandbox posts its `im_send_msg` echo."""
        body = _present(
            {
                "conversation_id": conversation_id,
                "text": text,
                "auto_message_type": auto_message_type,
                "buttons": list(buttons) if buttons is not None else None,
                "source": source,
                "user_id": user_id,
            }
        )
        return WebhookResult.model_validate(
            await self._request("POST", "/automation/messages", json=body)
        )

    async def play_other_tool(
        self, conversation_id: str, text: str, *, user_id: str | None = None
    ) -> WebhookResult:
        """Another tool on the account sends `text` through the API: an echo tagged API
        whose message the bot never sent."""
        body = _present({"conversation_id": conversation_id, "text": text, "user_id": user_id})
        return WebhookResult.model_validate(
            await self._request("POST", "/other_tool/messages", json=body)
        )

    async def play_event(
        self,
        event: str,
        *,
        content: dict[str, Any] | None = None,
        client_key: str | None = None,
        user_openid: str | None = None,
    ) -> EventResult:
        """Post the event named `event` (`authorization.removed`, `tiktok.ping`,
        `im_receive_msg_eu`, ...) with its usual content, or `content`."""
        body = _present(
            {
                "event": event,
                "content": content,
                "client_key": client_key,
                "user_openid": user_openid,
            }
        )
        return EventResult.model_validate(await self._request("POST", "/events", json=body))


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
