"""The shop's answer to what a turn asks (see reading.py), one method per intent: the
facts come from the database and the words from app/services/replies.py. The answers act
(place or release a hold, join a waitlist), remember in the conversation's context what a
bare follow-up will refer to, and leave the question a short answer completes in
`context.offer`. They flush through the repositories and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utc_now
from app.core.config import Settings
from app.core.logging import get_logger
from app.db.models import Category, Customer, HoldStatus, Item, ItemStatus, Order, OrderStatus
from app.db.repositories.alerts import AlertRepository
from app.db.repositories.faq import FaqRepository
from app.db.repositories.holds import HoldRepository
from app.db.repositories.items import ItemRepository
from app.db.repositories.orders import OrderRepository
from app.services import replies
from app.services.messaging.proactive import ProactivePolicy
from app.services.router import Intent, RouteResult
from app.services.shop import describe
from app.services.shop.context import Offer, ShopContext
from app.services.shop.faq import FaqIndex, fill_answer
from app.services.shop.finding import MAX_LISTED, Found, PieceFinder
from app.services.shop.holds import HoldResult, end_hold, join_waitlist, place_hold
from app.services.shop.order_lookups import HANDOFF_REASON, OrderLookupThrottle
from app.services.shop.phrasing import FaqPhraser
from app.services.shop.reading import ITEM_INTENTS, Ask, Reading, sounds_upset
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
    all_skus,
    asks_condition,
    haggles,
    named_category,
    refers_back,
    stated_own_size,
)
from app.services.turns import Reply

log = get_logger(__name__)

_MAX_ALTERNATIVES = 3
_MAX_ORDERS = 5
_MAX_NOTES_CHARS = 200


class Answers:
    """The answers of one customer turn, and what they leave for the pipeline: outbox ids
    queued for other conversations and whether a person should take over."""

    def __init__(
        self,
        settings: Settings,
        session: AsyncSession,
        customer: Customer,
        context: ShopContext,
        finder: PieceFinder,
        proactive: ProactivePolicy,
        phraser: FaqPhraser | None = None,
        order_lookups: OrderLookupThrottle | None = None,
    ) -> None:
        self.settings = settings
        self.session = session
        self.customer = customer
        self.context = context
        self.finder = finder
        self.proactive = proactive  # what another customer is told (a released piece's waitlist)
        self.phraser = phraser
        self.order_lookups = order_lookups
        self.chart: list[Decimal] = list(settings.size_chart_pit_to_pit_in)
        self.items = ItemRepository(session)
        self.now = utc_now()
        self.notices: list[int] = []  # outbox ids queued for other conversations
        self.handoff = False  # a person takes over: the customer asked, or an answer needs one
        self.handoff_reason: str | None = None  # what staff are told; None: the customer asked

    # --- what the turn asks ---------------------------------------------------------------

    async def shared_post(self, found: Sequence[Item]) -> str:
        """A shared video asks whether its piece is still there."""
        self.context.last_intent = Intent.AVAILABILITY.value
        if not found:
            return replies.VIDEO_UNKNOWN
        if len(found) == 1:
            return await self.availability(found[0])
        return self._choose(found, Intent.AVAILABILITY, replies.VIDEO_CHOOSE)

    async def answer_text(self, reading: Reading, text: str, route: RouteResult) -> list[Reply]:
        """The answer to a text turn, as `reading` understood it."""
        if reading.own_size is not None:
            self._remember_own_size(reading.own_size)
        if reading.ask is Ask.ACCEPT_OFFER and reading.offer is not None:
            return [Reply(await self._accept(reading.offer))]
        if reading.ask is Ask.DECLINE_OFFER:
            self.context.last_intent = reading.intent.value
            return [Reply(replies.DECLINED)]
        if reading.ask is Ask.RELEASE_HOLD:
            answer = await self.release(text, route)
            self.context.last_intent = Intent.HOLD.value
            return [Reply(answer)]
        if reading.ask is Ask.JOIN_WAITLIST:
            found = await self.finder.find(text, route)
            answer = await self._per_item(found, Intent.HOLD, waitlist=True)
            # A bare "and PT-0020?" next asks about that piece; it must not hold it.
            self.context.last_intent = Intent.AVAILABILITY.value
            return [Reply(answer)]
        if reading.ask is Ask.SEE_PHOTO:
            return await self.photo(text, route)
        if reading.ask is Ask.ALERTS_OFF:
            self.context.last_intent = reading.intent.value
            return [Reply(await self.alerts_off())]
        if reading.ask is Ask.ALERTS_ON:
            self.context.last_intent = reading.intent.value
            size = route.entities.size or reading.own_size or self.customer.usual_size
            return [Reply(await self.alerts_on(named_category(text), size))]
        self.context.last_intent = reading.intent.value
        return await self._answer_intent(reading.intent, text, route)

    async def _answer_intent(self, intent: Intent, text: str, route: RouteResult) -> list[Reply]:
        skus = all_skus(text)
        if intent in ITEM_INTENTS and len(skus) > 1:
            return [Reply(await self._several_skus(skus, intent, text))]
        if intent is Intent.MENU:
            return [Reply(replies.MENU)]
        if intent is Intent.THANKS:
            return [Reply(replies.THANKS)]
        if intent is Intent.HUMAN:
            self.handoff = True
            return [Reply(replies.HANDOFF_CONFIRM)]
        if intent is Intent.ORDER_STATUS:
            status = await self.order_status(route.entities.order_number)
            if sounds_upset(text) and not self.handoff:
                # The facts first, and a person within reach: one message, one quota slot.
                status = f"{status}\n\n{replies.UPSET_OFFER_PERSON}"
            return [Reply(status)]
        if intent is Intent.NEW_DROPS:
            return await self.new_drops(route.entities.size)
        if intent is Intent.POLICY:
            return [Reply(await self.policy(text))]
        if intent in ITEM_INTENTS:
            found = await self.finder.find(text, route)
            return [Reply(await self._per_item(found, intent, text=text, route=route))]
        # `other`, including attempts to re-instruct the bot: no shop facts, no actions.
        return [Reply(replies.MENU_REDIRECT)]

    # --- the customer's own size ----------------------------------------------------------

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

    # --- pieces -------------------------------------------------------------------------

    async def _per_item(
        self,
        found: Found,
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
        fits = [
            row.sku
            for row in await self.items.sizes_available()
            if fit_of(row, self.chart).size == size
        ]
        kind = kind_of_size(size)
        shown = describe.size_for_text(kind, size) if kind is not FitKind.UNKNOWN else size
        if not fits:
            return replies.SIZE_BROWSE_NONE.format(size=shown)
        fitting = await self.items.by_skus(fits[:MAX_LISTED])
        self.context.remember_list([item.sku for item in fitting])
        self.offer_choose(fitting, Intent.AVAILABILITY)
        lines = "\n".join(describe.item_line(item, self.chart) for item in fitting)
        return replies.SIZE_BROWSE.format(size=shown, lines=lines)

    def _browse(self, found: Sequence[Item]) -> str:
        listed = list(found)[:MAX_LISTED]
        self.context.remember_list([item.sku for item in listed])
        self.offer_choose(listed, Intent.AVAILABILITY)
        lines = "\n".join(describe.item_line(item, self.chart) for item in listed)
        return replies.BROWSE.format(lines=lines)

    def _choose(self, found: Sequence[Item], intent: Intent, template: str) -> str:
        listed = list(found)[:MAX_LISTED]
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
        if item.status == ItemStatus.AVAILABLE:
            self.context.offer = Offer(action="hold", sku=item.sku)
            return replies.AVAILABLE.format(
                item=name,
                price=describe.price(item),
                fit=describe.fit_with_measure(item, self.chart),
                for_you=self._for_you(item),
                hold_hours=self.settings.hold_hours,
            )
        if item.status == ItemStatus.RESERVED:
            hold = await HoldRepository(self.session).active_for_item(item.id)
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
        if fit.kind is FitKind.UNKNOWN:
            return []  # nothing is a size away from a fit nobody knows
        ranked: list[tuple[float, str]] = []
        for other in await self.items.sizes_available(item.category, item.sku):
            distance = fit_distance(fit, fit_of(other, self.chart))
            if distance is not None and distance <= 1:
                ranked.append((distance, other.sku))
        ranked.sort()
        return await self.items.by_skus([sku for _, sku in ranked[:_MAX_ALTERNATIVES]])

    async def sizing(self, item: Item) -> str:
        fit = fit_of(item, self.chart)
        lines = [describe.sizing_sentence(item, fit)]
        own = self._own_size(fit.kind)
        verdict = compare(fit, own) if own is not None else None
        if verdict is not None and own is not None:
            lines.append(describe.verdict_sentence(verdict, own))
        if item.notes and len(item.notes) <= _MAX_NOTES_CHARS:
            lines.append(replies.SIZE_NOTE.format(notes=item.notes))
        if item.status == ItemStatus.SOLD:
            lines.append(replies.SIZE_HEADS_UP_SOLD)
        elif item.status == ItemStatus.RESERVED:
            hold = await HoldRepository(self.session).active_for_item(item.id)
            if hold is None or hold.customer_id != self.customer.id:
                lines.append(replies.SIZE_HEADS_UP_RESERVED)
        elif item.status == ItemStatus.AVAILABLE:
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
        if item.status == ItemStatus.SOLD:
            return await self._sold(item)
        # On hold for someone else: asking to hold it is asking to be next in line.
        _, position = await join_waitlist(self.session, item, self.customer)
        return replies.HOLD_TAKEN_WAITLISTED.format(item=name, position=position)

    async def waitlist(self, item: Item) -> str:
        if item.status != ItemStatus.RESERVED:
            return await self.availability(item)
        hold = await HoldRepository(self.session).active_for_item(item.id)
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
        if item.status == ItemStatus.AVAILABLE:
            self.context.offer = Offer(action="hold", sku=item.sku)
            text_out += replies.PRICE_HOLD_OFFER
        return text_out

    async def _several_skus(self, skus: list[str], intent: Intent, text: str) -> str:
        """ "hold PT-0014 and PT-0015", "are PT-0001 and PT-0002 available?": each piece,
        in order, in one message."""
        answers: list[str] = []
        haggling = intent is Intent.PRICE and haggles(text)
        for sku in skus[:MAX_LISTED]:
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
        self.context.remember_list(skus[:MAX_LISTED])
        self.context.offer = None  # a "yes" after several pieces would be ambiguous
        if haggling:
            # The prices as they are, and the offer policy once: never a bundle price.
            return "\n".join([*answers, self.settings.offer_policy_text])
        return "\n\n".join(answers)

    async def release(self, text: str, route: RouteResult) -> str:
        """The customer lets one of their own holds go; the piece goes back on sale. With
        several holds it must be clear which: a SKU, or "it" right after talking of one."""
        mine = await HoldRepository(self.session).active_for_customer(self.customer.id)
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
            await end_hold(self.session, self.proactive, hold, HoldStatus.RELEASED, self.now)
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
        orders = OrderRepository(self.session)
        if order_number is not None:
            throttle = self.order_lookups
            if throttle is not None and not await throttle.begin(self.customer):
                # Nothing is looked up, so even the customer's own number gets this answer:
                # it cannot tell a prober which of their guesses was real.
                log.warning("order_lookup_throttled", customer_id=self.customer.id)
                self.handoff = True
                self.handoff_reason = HANDOFF_REASON
                return replies.ORDER_LOOKUP_PAUSED
            # Scoped to this customer: someone else's order reads exactly like no order.
            order = await orders.customers_order(self.customer.id, order_number)
            if order is None:
                return replies.ORDER_NOT_FOUND.format(number=order_number)
            if throttle is not None:
                await throttle.was_own(self.customer)
            return self._order_detail(order)
        recent = await orders.recent_of_customer(self.customer.id, _MAX_ORDERS)
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
        if status == OrderStatus.SHIPPED:
            shipped = describe.day(order.shipped_at) if order.shipped_at else "its way"
            text = replies.ORDER_SHIPPED.format(
                number=number, shipped=shipped, tracking=self._tracking(order)
            )
        elif status == OrderStatus.DELIVERED:
            delivered = describe.day(order.delivered_at) if order.delivered_at else "its way"
            text = replies.ORDER_DELIVERED.format(
                number=number, delivered=delivered, tracking=self._tracking(order)
            )
        elif status == OrderStatus.PROCESSING:
            text = replies.ORDER_PROCESSING.format(number=number)
        elif status == OrderStatus.CANCELLED:
            text = replies.ORDER_CANCELLED.format(number=number)
        else:
            text = replies.ORDER_PAID.format(number=number)
        items = ", ".join(describe.item_name(line.item) for line in order.lines)
        return f"{text}\n{replies.ORDER_ITEMS.format(items=items)}" if items else text

    def _order_line(self, order: Order) -> str:
        tracking = ""
        if order.status == OrderStatus.SHIPPED and order.carrier and order.tracking_number:
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
        text = replies.NEW_DROPS.format(lines=lines)
        if not await AlertRepository(self.session).has_active(self.customer.id):
            text += replies.NEW_DROPS_ALERTS_OFFER
        out = [Reply(text)]
        if self.settings.images_enabled and newest[0].images:
            out.append(Reply(image_url=newest[0].images[0].url))
        return out

    async def alerts_on(self, category: str | None, size: str | None) -> str:
        """Opt in to hear about new pieces (of a category, in a size: either may be any)."""
        kind = Category(category) if category is not None else None
        added = await AlertRepository(self.session).subscribe(
            self.customer.id, kind, size, self.now
        )
        log.info("alerts_subscribed", category=category, size=size, new=added)
        template = replies.ALERTS_ON if added else replies.ALERTS_ALREADY
        return template.format(what=describe.alert_subject(kind, size))

    async def alerts_off(self) -> str:
        stopped = await AlertRepository(self.session).stop_all(self.customer.id, self.now)
        log.info("alerts_stopped", subscriptions=stopped)
        return replies.ALERTS_OFF if stopped else replies.ALERTS_NONE

    async def photo(self, text: str, route: RouteResult) -> list[Reply]:
        """ "can I see more pics?": the piece's main photo, when images can be sent."""
        self.context.last_intent = Intent.AVAILABILITY.value
        found = await self.finder.find(text, route)
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
