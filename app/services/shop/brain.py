"""ShopBrain: the thrift shop's answers to a customer turn.

The router names the intent; this module finds the piece or order meant (by SKU, shared
video, the conversation, or words), acts (hold, waitlist) and says it with the words of
app/services/replies.py. Every fact comes from the database; nothing a customer writes
changes a price, an order or a hold except through the actions below.

The pipeline owns the transaction (and a row lock on the conversation): this module
reads and writes through repositories and flushes, and never commits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings, get_settings
from app.core.logging import get_logger
from app.db.models import (
    Conversation,
    Customer,
    HoldStatus,
    Item,
    ItemStatus,
    Message,
    Order,
    OrderStatus,
)
from app.db.repositories.shop import (
    CustomerOrderRepository,
    FaqRepository,
    ShopHoldRepository,
    ShopItemRepository,
)
from app.services import replies
from app.services.brain import Reply, TurnResult
from app.services.router import HybridRouter, Intent, RouterContext, RouteResult, get_router
from app.services.shop import describe
from app.services.shop.context import Offer, ShopContext, load_context, save_context
from app.services.shop.faq import FaqIndex, fill_answer
from app.services.shop.holds import HoldResult, end_hold, join_waitlist, place_hold
from app.services.shop.order_lookups import HANDOFF_REASON, OrderLookupThrottle
from app.services.shop.phrasing import FaqPhraser
from app.services.shop.sizing import (
    FitKind,
    OwnSize,
    compare,
    fit_distance,
    fit_of,
    kind_of_size,
    own_size,
)
from app.services.shop.words import (
    ItemMatcher,
    all_skus,
    asks_condition,
    asks_waitlist,
    browsed_category,
    content_words,
    haggles,
    has_action_word,
    is_no,
    is_yes,
    ordinal_choice,
    refers_back,
    releases_hold,
    simplify,
    stated_own_size,
    wants_photo,
)

log = get_logger(__name__)

# Intents whose answer is about one piece.
ITEM_INTENTS = frozenset({Intent.AVAILABILITY, Intent.SIZING, Intent.HOLD, Intent.PRICE})
# A "yes" never overrides these: the router recognised something else entirely.
_FIRM_INTENTS = frozenset({Intent.HUMAN, Intent.ORDER_STATUS, Intent.NEW_DROPS})
_MAX_LISTED = 6
_MAX_ALTERNATIVES = 3
_MAX_ORDERS = 5
# "how does the waitlist work?" is a question about the waitlist, not a request to join.
_QUESTION_START = re.compile(r"(?:how|what|whats|why|is there|do you have|does)\b")
_MAX_NOTES_CHARS = 200
_HOLD_IDIOM = re.compile(r"hold (?:on|up|that thought)\b")
_HOLD_QUESTION = re.compile(r"(?:how long|how many|how does|how do (?:holds|you hold)|what is)\b")
# "how long can you hold it for me" asks for the hold itself.
_FIRST_PERSON = re.compile(r"\b(?:i|me|my)\b")
# A message that asks something itself, not a bare "the pink hoodie" continuing a question.
_OWN_QUESTION = re.compile(
    r"(?:is|are|was|does|do|did|has|have|how|what|whats|which|can|could|would|will|any)\b"
)
_HOLD_WORDS = re.compile(r"\b(?:hold|reserve|take|buy|grab|want|get|purchase|keep|save)\b")


@dataclass
class _Found:
    items: list[Item] = field(default_factory=list)  # one: the piece; several: ask which
    missing_sku: str | None = None  # a SKU the shop does not have
    no_match: bool = False  # words that name no piece
    browse: str | None = None  # a whole category was asked for ("any jackets?")


class ShopBrain:
    """The Brain of the thrift shop (see app.services.brain.Brain)."""

    def __init__(
        self,
        settings: Settings | None = None,
        router: HybridRouter | None = None,
        phraser: FaqPhraser | None = None,
        redis: aioredis.Redis | None = None,
    ):
        self.settings = settings or get_settings()
        self._router = router
        self.phraser = phraser or FaqPhraser(self.settings)
        # Without Redis (brain-only tools and tests) order lookups are not throttled; the
        # worker always passes its client.
        self.order_lookups = OrderLookupThrottle(redis, self.settings) if redis else None

    @property
    def router(self) -> HybridRouter:
        return self._router or get_router()

    async def respond(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        turn: list[Message],
    ) -> TurnResult:
        try:
            # A savepoint: a bug half-way through (say, after joining a waitlist) leaves
            # nothing behind, and the pipeline still queues the fallback answer.
            async with session.begin_nested():
                result = await self._respond(session, conversation, customer, turn)
        except DBAPIError:
            raise  # the database itself failed: the pipeline's retry handles that
        except Exception:
            log.exception("shop_brain_failed", conversation_id=conversation.id)
            # The savepoint's rollback expired what the turn had changed; the pipeline
            # reads these two next, and an expired attribute cannot lazy-load in asyncio.
            await session.refresh(conversation)
            await session.refresh(customer)
            result = TurnResult(Intent.OTHER.value, "pattern", replies=[Reply(replies.SNAG)])
        result.replies = _one_message(result.replies, self.settings.max_text_chars)
        return result

    async def _respond(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        turn: list[Message],
    ) -> TurnResult:
        context = load_context(conversation)
        handler = _Turn(self.settings, session, customer, context, self.phraser, self.order_lookups)
        last = turn[-1]
        if last.message_type == "share_post":
            result = await handler.shared_post(last.payload or {})
        elif last.message_type != "text":
            result = TurnResult(
                Intent.OTHER.value, "pattern", replies=[Reply(replies.CANNOT_READ_MEDIA)]
            )
        else:
            text = "\n".join(m.text for m in turn if m.message_type == "text" and m.text)
            route = await self.router.route(text, RouterContext(last_intent=_intent(context)))
            result = await handler.text(text, route)
        save_context(conversation, context)
        result.other_outbox_ids.extend(handler.notices)
        if handler.handoff_reason is not None:
            result.handoff = True
            result.handoff_reason = handler.handoff_reason
        return result


def _intent(context: ShopContext) -> Intent | None:
    try:
        return Intent(context.last_intent) if context.last_intent else None
    except ValueError:
        return None


def _one_message(planned: Sequence[Reply], max_chars: int) -> list[Reply]:
    """One text (cut at a line under TikTok's limit) plus at most one image: the quota is
    ten messages a window, so a turn never spends more than two."""
    texts = [r.text for r in planned if r.text]
    images = [r.image_url for r in planned if r.image_url]
    out: list[Reply] = []
    if texts:
        text = "\n".join(texts)
        if len(text) > max_chars:
            text = text[:max_chars].rsplit("\n", 1)[0] or text[:max_chars]
        out.append(Reply(text))
    if images:
        out.append(Reply(image_url=images[0]))
    return out


class _Turn:
    """One customer turn: the state the answers need and one method per intent."""

    def __init__(
        self,
        settings: Settings,
        session: AsyncSession,
        customer: Customer,
        context: ShopContext,
        phraser: FaqPhraser | None = None,
        order_lookups: OrderLookupThrottle | None = None,
    ) -> None:
        self.settings = settings
        self.phraser = phraser
        self.order_lookups = order_lookups
        self.handoff_reason: str | None = None  # set when an answer needs a person
        self.session = session
        self.customer = customer
        self.context = context
        self.chart: list[Decimal] = list(settings.size_chart_pit_to_pit_in)
        self.items = ShopItemRepository(session)
        self.now = datetime.now(UTC)
        self.notices: list[int] = []  # outbox ids queued for other conversations
        self._item_matcher: ItemMatcher | None = None
        # The question the previous answer asked lives for this one turn only.
        self.offer = context.offer
        context.offer = None

    # --- entry points ------------------------------------------------------------------

    async def shared_post(self, payload: dict[str, Any]) -> TurnResult:
        share = payload.get("share_post")
        video_id = share.get("video_id") if isinstance(share, dict) else None
        found = await self.items.in_video(str(video_id)) if video_id else []
        self.context.last_intent = Intent.AVAILABILITY.value
        if not found:
            text = replies.VIDEO_UNKNOWN
        elif len(found) == 1:
            text = await self.availability(found[0])
        else:
            text = self._choose(found, Intent.AVAILABILITY, replies.VIDEO_CHOOSE)
        return TurnResult(Intent.AVAILABILITY.value, "pattern", replies=[Reply(text)])

    async def text(self, text: str, route: RouteResult) -> TurnResult:
        action = route.intent
        result = TurnResult(route.intent.value, route.source, route.entities.model_dump())
        offer = self.offer
        sizes_said = stated_own_size(text)
        if sizes_said is not None:
            self._remember_own_size(sizes_said)

        # The intent recorded for the turn is the one the brain acted on, as a person
        # reading the conversation would label it: "yes" to "want me to hold it?" or to
        # "want to join the waitlist?" is a hold; "cancel my hold" is a hold; "the second
        # one" after a list continues that list's question; "how long do you hold
        # pieces?" is policy; "hold up" is other. The router's `source` is kept.
        if offer is not None and offer.action != "choose" and action not in _FIRM_INTENTS:
            if is_yes(text):
                result.replies = [Reply(await self._accept(offer))]
                if offer.sku is not None:
                    result.intent = Intent.HOLD.value
                return result
            if is_no(text) and action in (Intent.OTHER, Intent.THANKS, Intent.MENU):
                result.replies = [Reply(replies.DECLINED)]
                self.context.last_intent = action.value
                return result
        if self._wants_release(text, action):
            result.replies = [Reply(await self.release(text, route))]
            self.context.last_intent = Intent.HOLD.value
            result.intent = Intent.HOLD.value
            return result
        if self._wants_waitlist(text, action):
            # Joining the waitlist is labelled `hold`: the customer asks to reserve the
            # piece the moment it frees up (the router is trained the same way).
            found = await self._find(text, route)
            result.replies = [Reply(await self._per_item(found, Intent.HOLD, waitlist=True))]
            result.intent = Intent.HOLD.value
            # A bare "and PT-0020?" next asks about that piece; it must not hold it.
            self.context.last_intent = Intent.AVAILABILITY.value
            return result
        if wants_photo(text) and action in (Intent.OTHER, Intent.AVAILABILITY, Intent.SIZING):
            result.replies = await self.photo(text, route)
            return result
        action = self._reread_hold(text, route, await self._chosen_intent(text, route))

        self.context.last_intent = action.value
        result.intent = action.value
        skus = all_skus(text)
        if action in ITEM_INTENTS and len(skus) > 1:
            result.replies = [Reply(await self._several_skus(skus, action, text))]
            return result
        reply: list[Reply]
        if action is Intent.MENU:
            reply = [Reply(replies.MENU)]
        elif action is Intent.THANKS:
            reply = [Reply(replies.THANKS)]
        elif action is Intent.HUMAN:
            reply = [Reply(replies.HANDOFF_CONFIRM)]
            result.handoff = True
        elif action is Intent.ORDER_STATUS:
            reply = [Reply(await self.order_status(route.entities.order_number))]
        elif action is Intent.NEW_DROPS:
            reply = await self.new_drops(route.entities.size)
        elif action is Intent.POLICY:
            reply = [Reply(await self.policy(text))]
        elif action in ITEM_INTENTS:
            found = await self._find(text, route)
            reply = [Reply(await self._per_item(found, action, text=text, route=route))]
        else:
            # `other`, including attempts to re-instruct the bot: no shop facts, no actions.
            reply = [Reply(replies.MENU_REDIRECT)]
        result.replies = reply
        return result

    # --- reading the turn -------------------------------------------------------------

    def _reread_hold(self, text: str, route: RouteResult, intent: Intent) -> Intent:
        """A hold changes the shop, so it is only placed on a request for one: "hold up"
        is not one, "how long do you hold pieces?" asks the policy, and a bare "and
        PT-0013?" after a hold (inherited by the router) asks about the piece."""
        if intent is not Intent.HOLD:
            return intent
        plain = simplify(text)
        if _HOLD_IDIOM.match(plain):
            return Intent.OTHER
        if _HOLD_QUESTION.match(plain) and not _FIRST_PERSON.search(plain):
            return Intent.POLICY
        if route.source == "pattern" and not _HOLD_WORDS.search(plain):
            return Intent.AVAILABILITY
        return intent

    def _wants_release(self, text: str, intent: Intent) -> bool:
        if not releases_hold(text):
            return False
        # "cancel my order" stays with a person; "cancel my hold" is the customer's own.
        names_hold = "hold" in simplify(text).split()
        return intent in (Intent.OTHER, Intent.HOLD) or (intent is Intent.HUMAN and names_hold)

    def _wants_waitlist(self, text: str, intent: Intent) -> bool:
        if intent not in (Intent.POLICY, Intent.OTHER, Intent.HOLD, Intent.AVAILABILITY):
            return False
        return asks_waitlist(text) and _QUESTION_START.match(simplify(text)) is None

    async def _chosen_intent(self, text: str, route: RouteResult) -> Intent:
        """A bare answer naming a piece ("the jacket", "the second one") continues the
        question it answers; a message with its own ask ("hold the jacket") keeps the
        router's intent. The router sees such fragments without the list they answer."""
        offer = self.offer
        choosing = offer is not None and offer.action == "choose" and offer.intent is not None
        previous = offer.intent if choosing and offer is not None else self.context.last_intent
        if previous is None or route.source == "menu" or has_action_word(text):
            return route.intent
        try:
            continued = Intent(previous)
        except ValueError:
            return route.intent
        if continued not in ITEM_INTENTS:
            return route.intent
        if choosing and ordinal_choice(text) is not None and route.intent is not Intent.HUMAN:
            return continued
        words = content_words(text)
        if route.entities.sku is not None or not words or len(words) > 3:
            return route.intent
        _, unmatched = (await self._matcher()).scores(text)
        if unmatched:
            return route.intent
        # Only pieces named: continue, even over a `human` guess ("the jacket please"),
        # `other` or another piece question ("the pink hoodie" after a sizing answer is
        # still about sizing), since nothing in the message asks for anything else. Orders
        # and drops are their own questions ("any new jackets?").
        if choosing or route.intent in (Intent.OTHER, Intent.HUMAN, Intent.THANKS):
            return continued
        if route.intent in (Intent.ORDER_STATUS, Intent.NEW_DROPS):
            return route.intent
        # A question of its own ("is it vintage?") keeps the router's reading.
        return route.intent if _OWN_QUESTION.match(simplify(text)) else continued

    def _remember_own_size(self, size: str) -> None:
        kind = kind_of_size(size)
        if kind is FitKind.UNKNOWN:
            return
        self.context.sizes = {**self.context.sizes, kind.value: size}
        self.customer.usual_size = size

    def _own_size(self, kind: FitKind) -> OwnSize | None:
        said = self.context.sizes.get(kind.value)
        if said:
            return OwnSize(kind, said)
        stored = own_size(self.customer.usual_size)
        return stored if stored is not None and stored.kind is kind else None

    async def _matcher(self) -> ItemMatcher:
        if self._item_matcher is None:
            self._item_matcher = ItemMatcher(await self.items.search_rows())
        return self._item_matcher

    async def _find(self, text: str, route: RouteResult) -> _Found:
        """The piece(s) the customer means: SKU, a pick from the list just shown, a whole
        category, their words (the conversation's pieces first), then the piece talked
        about last."""
        sku = route.entities.sku
        if sku is not None:
            item = await self.items.get(sku)
            return _Found([item]) if item is not None else _Found(missing_sku=sku)
        pick = ordinal_choice(text)
        shown = self.offer.skus if self.offer is not None and self.offer.skus else []
        shown = shown or self.context.last_list
        if pick is not None and shown and -len(shown) <= pick < len(shown):
            return _Found(await self.items.by_skus([shown[pick]]))
        category = browsed_category(text)
        if category is not None:
            available = await self.items.available(category)
            return _Found(
                self._narrow_by_size(available, route.entities.size, strict=True), browse=category
            )
        if content_words(text):
            match = (await self._matcher()).match(text, self.context.candidates())
            if match.skus:
                found = await self.items.by_skus(match.skus[:_MAX_LISTED])
                return _Found(self._narrow_by_size(found, route.entities.size))
            if match.unmatched and not refers_back(text):
                return _Found(no_match=True)
        if self.context.last_sku:
            item = await self.items.get(self.context.last_sku)
            if item is not None:
                return _Found([item])
        if self.context.last_list:
            return _Found(await self.items.by_skus(self.context.last_list[:_MAX_LISTED]))
        return _Found()

    def _narrow_by_size(
        self, found: list[Item], size: str | None, *, strict: bool = False
    ) -> list[Item]:
        """Keep the pieces that fit like `size`; when none does, all of them (or, for a
        browse, none: "shoes in size 10" must not list size 8s)."""
        if size is None or (len(found) < 2 and not strict):
            return found
        fitting = [item for item in found if fit_of(item, self.chart).size == size]
        return fitting if fitting or strict else found

    # --- pieces -------------------------------------------------------------------------

    async def _per_item(
        self,
        found: _Found,
        intent: Intent,
        *,
        text: str = "",
        route: RouteResult | None = None,
        waitlist: bool = False,
    ) -> str:
        if found.missing_sku is not None:
            return replies.SKU_NOT_FOUND.format(sku=found.missing_sku)
        if found.no_match:
            return replies.ITEM_NO_MATCH
        if found.browse is not None and intent is Intent.AVAILABILITY and found.items:
            return self._browse(found.items)
        if found.browse is not None and not found.items:
            return replies.BROWSE_NONE.format(category=found.browse)
        if len(found.items) > 1:
            return self._choose(found.items, intent, replies.ITEM_CHOOSE)
        if not found.items:
            return await self._no_item(intent, text, route)
        item = found.items[0]
        self.context.remember_item(item.sku)
        if waitlist:
            return await self.waitlist(item)
        if intent is Intent.AVAILABILITY:
            answer = await self.availability(item)
            return f"{answer}\n{self._condition(item)}" if asks_condition(text) else answer
        if intent is Intent.SIZING:
            return await self.sizing(item)
        if intent is Intent.HOLD:
            return await self.hold(item)
        return self.price(item, text)

    async def _no_item(self, intent: Intent, text: str, route: RouteResult | None) -> str:
        if intent is Intent.SIZING:
            said = stated_own_size(text)
            if said is not None:
                own = own_size(said)
                if own is not None:
                    return replies.SIZE_NOTED.format(size=describe.size_for_text(own.kind, said))
            return replies.SIZE_WHICH
        if intent is Intent.HOLD:
            return replies.HOLD_WHICH
        if intent is Intent.PRICE:
            return self.settings.offer_policy_text if haggles(text) else replies.PRICE_WHICH
        size = route.entities.size if route is not None else None
        if intent is Intent.AVAILABILITY and size is not None:
            return await self._browse_size(size)
        return replies.ITEM_WHICH

    async def _browse_size(self, size: str) -> str:
        """ "anything in M?": available pieces that fit like that size."""
        fitting = [i for i in await self.items.available() if fit_of(i, self.chart).size == size]
        kind = kind_of_size(size)
        shown = describe.size_for_text(kind, size) if kind is not FitKind.UNKNOWN else size
        if not fitting:
            return replies.SIZE_BROWSE_NONE.format(size=shown)
        fitting = fitting[:_MAX_LISTED]
        self.context.remember_list([item.sku for item in fitting])
        self.offer_choose(fitting, Intent.AVAILABILITY)
        lines = "\n".join(describe.item_line(item, self.chart) for item in fitting)
        return replies.SIZE_BROWSE.format(size=shown, lines=lines)

    def _browse(self, found: Sequence[Item]) -> str:
        listed = list(found)[:_MAX_LISTED]
        self.context.remember_list([item.sku for item in listed])
        self.offer_choose(listed, Intent.AVAILABILITY)
        lines = "\n".join(describe.item_line(item, self.chart) for item in listed)
        return replies.BROWSE.format(lines=lines)

    def _choose(self, found: Sequence[Item], intent: Intent, template: str) -> str:
        listed = list(found)[:_MAX_LISTED]
        self.context.remember_list([item.sku for item in listed])
        self.offer_choose(listed, intent)
        lines = "\n".join(describe.item_line(item, self.chart, with_status=True) for item in listed)
        return template.format(lines=lines, count=len(found))

    def offer_choose(self, items: Sequence[Item], intent: Intent) -> None:
        self.context.offer = Offer(
            action="choose", skus=[item.sku for item in items], intent=intent.value
        )

    def _for_you(self, item: Item) -> str:
        fit = fit_of(item, self.chart)
        own = self._own_size(fit.kind)
        verdict = compare(fit, own) if own is not None else None
        if verdict is None or own is None:
            return ""
        return describe.verdict_suffix(verdict, fit, own)

    async def availability(self, item: Item) -> str:
        self.context.remember_item(item.sku)
        name = describe.item_name(item)
        if item.status == ItemStatus.AVAILABLE.value:
            self.context.offer = Offer(action="hold", sku=item.sku)
            return replies.AVAILABLE.format(
                item=name,
                price=describe.price(item),
                fit=describe.fit_with_measure(item, self.chart),
                for_you=self._for_you(item),
                hold_hours=self.settings.hold_hours,
            )
        if item.status == ItemStatus.RESERVED.value:
            hold = await ShopHoldRepository(self.session).active_for_item(item.id)
            if hold is not None and hold.customer_id == self.customer.id:
                return self._yours(item, hold.expires_at)
            self.context.offer = Offer(action="waitlist", sku=item.sku)
            return replies.RESERVED_FOR_OTHER.format(item=name)
        return await self._sold(item)

    def _condition(self, item: Item) -> str:
        """ "any stains?": the condition grade and the seller's note, as catalogued."""
        lines = [replies.CONDITION.format(condition=item.condition)]
        if item.notes and len(item.notes) <= _MAX_NOTES_CHARS:
            lines.append(replies.SIZE_NOTE.format(notes=item.notes))
        return "\n".join(lines)

    def _yours(self, item: Item, expires_at: datetime | None) -> str:
        return replies.RESERVED_FOR_YOU.format(
            item=describe.item_name(item),
            until=describe.until(expires_at) if expires_at else "further notice",
            checkout=self.settings.checkout_text,
        )

    async def _sold(self, item: Item) -> str:
        text = replies.SOLD.format(item=describe.item_name(item))
        alternatives = await self.similar(item)
        if not alternatives:
            return f"{text}\n{replies.SOLD_NO_ALTERNATIVES}"
        self.context.last_list = [alt.sku for alt in alternatives]
        lines = "\n".join(describe.item_line(alt, self.chart) for alt in alternatives)
        return f"{text}\n{replies.SOLD_ALTERNATIVES.format(lines=lines)}"

    async def similar(self, item: Item) -> list[Item]:
        """Available pieces of the same category whose fit is at most a size away."""
        fit = fit_of(item, self.chart)
        ranked: list[tuple[float, str, Item]] = []
        for other in await self.items.available_in_category(item.category, item.sku):
            distance = fit_distance(fit, fit_of(other, self.chart))
            if distance is not None and distance <= 1:
                ranked.append((distance, other.sku, other))
        ranked.sort(key=lambda entry: (entry[0], entry[1]))
        return [other for _, _, other in ranked[:_MAX_ALTERNATIVES]]

    async def sizing(self, item: Item) -> str:
        fit = fit_of(item, self.chart)
        lines = [describe.sizing_sentence(item, fit)]
        own = self._own_size(fit.kind)
        verdict = compare(fit, own) if own is not None else None
        if verdict is not None and own is not None:
            lines.append(describe.verdict_sentence(verdict, own))
        if item.notes and len(item.notes) <= _MAX_NOTES_CHARS:
            lines.append(replies.SIZE_NOTE.format(notes=item.notes))
        if item.status == ItemStatus.SOLD.value:
            lines.append(replies.SIZE_HEADS_UP_SOLD)
        elif item.status == ItemStatus.RESERVED.value:
            hold = await ShopHoldRepository(self.session).active_for_item(item.id)
            if hold is None or hold.customer_id != self.customer.id:
                lines.append(replies.SIZE_HEADS_UP_RESERVED)
        elif item.status == ItemStatus.AVAILABLE.value:
            self.context.offer = Offer(action="hold", sku=item.sku)
            lines.append(replies.SIZE_HOLD_OFFER)
        return "\n".join(lines)

    async def hold(self, item: Item) -> str:
        outcome = await place_hold(self.session, self.settings, item, self.customer, self.now)
        name = describe.item_name(item)
        if outcome.result is HoldResult.HELD and outcome.hold is not None:
            return replies.HOLD_DONE.format(
                item=name,
                until=describe.until(outcome.hold.expires_at or self.now),
                price=describe.price(item),
                checkout=self.settings.checkout_text,
            )
        if outcome.result is HoldResult.ALREADY_YOURS and outcome.hold is not None:
            return self._yours(item, outcome.hold.expires_at)
        if outcome.result is HoldResult.LIMIT:
            return replies.HOLD_LIMIT.format(
                count=len(outcome.held_skus), skus=", ".join(outcome.held_skus)
            )
        if item.status == ItemStatus.SOLD.value:
            return await self._sold(item)
        # On hold for someone else: asking to hold it is asking to be next in line.
        _, position = await join_waitlist(self.session, item, self.customer)
        return replies.HOLD_TAKEN_WAITLISTED.format(item=name, position=position)

    async def waitlist(self, item: Item) -> str:
        if item.status != ItemStatus.RESERVED.value:
            return await self.availability(item)
        hold = await ShopHoldRepository(self.session).active_for_item(item.id)
        if hold is not None and hold.customer_id == self.customer.id:
            return self._yours(item, hold.expires_at)
        added, position = await join_waitlist(self.session, item, self.customer)
        template = replies.WAITLIST_JOINED if added else replies.WAITLIST_ALREADY
        return template.format(item=describe.item_name(item), position=position)

    def price(self, item: Item, text: str) -> str:
        name = describe.item_name(item)
        amount = describe.price(item)
        if haggles(text):
            # Offers are never accepted and no other price is ever quoted: the policy text.
            return replies.PRICE_OFFER.format(
                item=name, price=amount, offer_policy=self.settings.offer_policy_text
            )
        text_out = replies.PRICE.format(item=name, price=amount, status=describe.status_word(item))
        if item.status == ItemStatus.AVAILABLE.value:
            self.context.offer = Offer(action="hold", sku=item.sku)
            text_out += replies.PRICE_HOLD_OFFER
        return text_out

    async def _several_skus(self, skus: list[str], intent: Intent, text: str) -> str:
        """ "hold PT-0014 and PT-0015", "are PT-0001 and PT-0002 available?": each piece,
        in order, in one message."""
        answers: list[str] = []
        haggling = intent is Intent.PRICE and haggles(text)
        for sku in skus[:_MAX_LISTED]:
            item = await self.items.get(sku)
            if item is None:
                answers.append(replies.SKU_NOT_FOUND.format(sku=sku))
            elif haggling:
                answers.append(
                    replies.PRICE.format(
                        item=describe.item_name(item),
                        price=describe.price(item),
                        status=describe.status_word(item),
                    )
                )
            elif intent is Intent.HOLD:
                answers.append(await self.hold(item))
            elif intent is Intent.SIZING:
                answers.append(await self.sizing(item))
            elif intent is Intent.PRICE:
                answers.append(self.price(item, text))
            else:
                answers.append(await self.availability(item))
        self.context.remember_list(skus[:_MAX_LISTED])
        self.context.offer = None  # a "yes" after several pieces would be ambiguous
        if haggling:
            # The prices as they are, and the offer policy once: never a bundle price.
            return "\n".join([*answers, self.settings.offer_policy_text])
        return "\n\n".join(answers)

    async def release(self, text: str, route: RouteResult) -> str:
        """The customer lets one of their own holds go; the piece goes back on sale. With
        several holds it must be clear which: a SKU, or "it" right after talking of one."""
        mine = await ShopHoldRepository(self.session).active_for_customer(self.customer.id)
        if not mine:
            return replies.HOLD_RELEASE_NONE
        named = route.entities.sku
        if named is None and len(mine) > 1:
            named = self.context.last_sku if refers_back(text) else None
            if named not in {sku for _, sku in mine}:
                skus = ", ".join(sku for _, sku in mine)
                return replies.HOLD_RELEASE_WHICH.format(skus=skus)
        chosen = [(hold, sku) for hold, sku in mine if named is None or sku == named]
        if not chosen:
            return replies.HOLD_RELEASE_NOT_YOURS.format(sku=named)
        hold, sku = chosen[0]
        self.notices.extend(
            await end_hold(self.session, self.settings, hold, HoldStatus.RELEASED, self.now)
        )
        item = await self.items.get(sku)
        self.context.remember_item(sku)
        name = describe.item_name(item) if item is not None else sku
        return replies.HOLD_RELEASED.format(item=name)

    async def _accept(self, offer: Offer) -> str:
        """A bare "yes" to "want me to hold it?" or "want to join the waitlist?"."""
        item = await self.items.get(offer.sku) if offer.sku else None
        if item is None:
            self.context.last_intent = Intent.OTHER.value
            return replies.ITEM_WHICH
        self.context.last_intent = Intent.HOLD.value
        self.context.remember_item(item.sku)
        if offer.action == "waitlist":
            return await self.waitlist(item)
        return await self.hold(item)

    # --- orders, drops, policy ------------------------------------------------------------

    async def order_status(self, order_number: str | None) -> str:
        orders = CustomerOrderRepository(self.session)
        if order_number is not None:
            throttle = self.order_lookups
            if throttle is not None and not await throttle.begin(self.customer):
                # Nothing is looked up, so even the customer's own number gets this answer:
                # it cannot tell a prober which of their guesses was real.
                log.warning("order_lookup_throttled", customer_id=self.customer.id)
                self.handoff_reason = HANDOFF_REASON
                return replies.ORDER_LOOKUP_PAUSED
            # Scoped to this customer: someone else's order reads exactly like no order.
            order = await orders.by_number(self.customer.id, order_number)
            if order is None:
                return replies.ORDER_NOT_FOUND.format(number=order_number)
            if throttle is not None:
                await throttle.was_own(self.customer)
            return self._order_detail(order)
        recent = await orders.recent(self.customer.id, _MAX_ORDERS)
        if not recent:
            return replies.ORDER_NONE
        if len(recent) == 1:
            return self._order_detail(recent[0])
        lines = "\n".join(self._order_line(order) for order in recent)
        return replies.ORDER_LIST.format(lines=lines)

    def _tracking(self, order: Order) -> str:
        if order.carrier and order.tracking_number:
            return replies.ORDER_SHIPPED_TRACKING.format(
                carrier=order.carrier, tracking_number=order.tracking_number
            )
        return ""

    def _order_detail(self, order: Order) -> str:
        number = order.order_number
        status = order.status
        if status == OrderStatus.SHIPPED.value:
            shipped = describe.day(order.shipped_at) if order.shipped_at else "its way"
            text = replies.ORDER_SHIPPED.format(
                number=number, shipped=shipped, tracking=self._tracking(order)
            )
        elif status == OrderStatus.DELIVERED.value:
            delivered = describe.day(order.delivered_at) if order.delivered_at else "its way"
            text = replies.ORDER_DELIVERED.format(
                number=number, delivered=delivered, tracking=self._tracking(order)
            )
        elif status == OrderStatus.PROCESSING.value:
            text = replies.ORDER_PROCESSING.format(number=number)
        elif status == OrderStatus.CANCELLED.value:
            text = replies.ORDER_CANCELLED.format(number=number)
        else:
            text = replies.ORDER_PAID.format(number=number)
        items = ", ".join(describe.item_name(line.item) for line in order.lines)
        return f"{text}\n{replies.ORDER_ITEMS.format(items=items)}" if items else text

    def _order_line(self, order: Order) -> str:
        tracking = ""
        if order.status == OrderStatus.SHIPPED.value and order.carrier and order.tracking_number:
            tracking = f" — {order.carrier} {order.tracking_number}"
        return replies.ORDER_LIST_LINE.format(
            number=order.order_number,
            status=order.status,
            placed=describe.day(order.placed_at),
            tracking=tracking,
        )

    async def new_drops(self, size: str | None = None) -> list[Reply]:
        """The newest available pieces; "anything new in M?" keeps those that fit like M."""
        count = self.settings.new_drops_count
        if size is None:
            newest = await self.items.newest_available(count)
        else:
            fitting = [
                item
                for item in await self.items.newest_available()
                if fit_of(item, self.chart).size == size
            ]
            newest = fitting[:count]
        if not newest:
            if size is not None:
                kind = kind_of_size(size)
                shown = describe.size_for_text(kind, size) if kind is not FitKind.UNKNOWN else size
                return [Reply(replies.SIZE_BROWSE_NONE.format(size=shown))]
            return [Reply(replies.NEW_DROPS_NONE)]
        self.context.remember_list([item.sku for item in newest])
        self.offer_choose(newest, Intent.AVAILABILITY)
        lines = "\n".join(describe.item_line(item, self.chart) for item in newest)
        out = [Reply(replies.NEW_DROPS.format(lines=lines))]
        if self.settings.images_enabled and newest[0].images:
            out.append(Reply(image_url=newest[0].images[0].url))
        return out

    async def photo(self, text: str, route: RouteResult) -> list[Reply]:
        """ "can I see more pics?": the piece's main photo, when images can be sent."""
        self.context.last_intent = Intent.AVAILABILITY.value
        found = await self._find(text, route)
        if len(found.items) != 1:
            return [Reply(await self._per_item(found, Intent.AVAILABILITY, text=text))]
        item = found.items[0]
        self.context.remember_item(item.sku)
        name = describe.item_name(item)
        if not self.settings.images_enabled or not item.images:
            return [Reply(replies.PHOTO_NONE.format(item=name))]
        return [Reply(replies.PHOTO.format(item=name)), Reply(image_url=item.images[0].url)]

    async def policy(self, text: str) -> str:
        hit = FaqIndex(await FaqRepository(self.session).all()).search(text)
        if hit is None:
            log.info("faq_no_match")
            return replies.POLICY_UNKNOWN
        log.info("faq_answered", topic=hit.entry.topic, score=round(hit.score, 2))
        answer = fill_answer(hit.entry.answer, self.settings)
        if self.phraser is not None:
            phrased = await self.phraser.phrase(text, answer)
            if phrased is not None:
                return phrased
        return answer
