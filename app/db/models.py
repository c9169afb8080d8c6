"""The shop's state. Enumerations are CHECK-constrained strings so adding a value is a
migration of one constraint, not of a PostgreSQL type."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, EnumText, TimestampMixin


def _check_in(column: str, enum: type[StrEnum]) -> CheckConstraint:
    values = ", ".join(f"'{member.value}'" for member in enum)
    return CheckConstraint(f"{column} IN ({values})", name=f"{column}_valid")


class ItemStatus(StrEnum):
    AVAILABLE = "available"
    RESERVED = "reserved"
    SOLD = "sold"


class Category(StrEnum):
    TOPS = "tops"
    OUTERWEAR = "outerwear"
    BOTTOMS = "bottoms"
    DRESSES = "dresses"
    SHOES = "shoes"
    ACCESSORIES = "accessories"


class Gender(StrEnum):
    WOMEN = "women"
    MEN = "men"
    UNISEX = "unisex"


class Condition(StrEnum):
    EXCELLENT = "excellent"
    VERY_GOOD = "very good"
    GOOD = "good"
    FAIR = "fair"


class OrderStatus(StrEnum):
    PAID = "paid"
    PROCESSING = "processing"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class ConversationMode(StrEnum):
    BOT = "bot"
    HUMAN = "human"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(StrEnum):
    RECEIVED = "received"  # inbound, not yet handled
    PROCESSED = "processed"  # inbound, handled
    IGNORED = "ignored"  # inbound event that needs no answer (echo, read receipt)
    PENDING = "pending"  # outbound, waiting in the outbox
    SENT = "sent"
    NOT_SENT = "not_sent"  # outbound, refused by policy (window closed, quota spent)
    FAILED = "failed"  # outbound, TikTok refused it for good


class HoldStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    RELEASED = "released"
    CONVERTED = "converted"


class ProactiveKind(StrEnum):
    """What the shop says without being asked, so the shop can see what each kind earns."""

    HOLD_REMINDER = "hold_reminder"  # a hold lapses soon
    SALE_CONFIRMATION = "sale_confirmation"  # a held piece was paid for
    WAITLIST_BACK = "waitlist_back"  # a waited-for piece is on sale again
    WAITLIST_SOLD = "waitlist_sold"  # a waited-for piece sold
    DROP_ALERT = "drop_alert"  # new pieces in the customer's size


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed: a TikTok call may be in flight
    SENT = "sent"
    FAILED = "failed"
    NOT_SENT = "not_sent"
    UNKNOWN = "unknown"  # a worker died mid-call: never retried automatically


class DeadLetterStatus(StrEnum):
    PARKED = "parked"
    RETRIED = "retried"


class Customer(TimestampMixin, Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tiktok_user_id: Mapped[str] = mapped_column(String(255), unique=True)
    username: Mapped[str | None] = mapped_column(String(255))
    # The customer's own size, once stated ("I'm usually an M").
    usual_size: Mapped[str | None] = mapped_column(String(16))
    # The last reminder or alert the shop sent unasked: at most one a day per customer.
    last_proactive_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # How the admin names a row in lists and select boxes.
    def __str__(self) -> str:
        return f"@{self.username}" if self.username else self.tiktok_user_id


class Conversation(TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (_check_in("mode", ConversationMode),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tiktok_conversation_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    mode: Mapped[ConversationMode] = mapped_column(
        EnumText(ConversationMode, 16), default=ConversationMode.BOT
    )
    human_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Window and quota bookkeeping mirrors Redis so staff pages and audits can read it.
    last_customer_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replies_in_window: Mapped[int] = mapped_column(Integer, default=0)
    last_inbound_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)

    customer: Mapped[Customer] = relationship()


class Handoff(Base):
    """The bot handed a conversation to a person (the customer asked, an answer needed one,
    the quota ran low): when and why, so the shop can see how long a person took to reply.
    A person taking over by themselves is not one: they are already there."""

    __tablename__ = "handoffs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    reason: Mapped[str] = mapped_column(Text)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        _check_in("direction", Direction),
        _check_in("status", MessageStatus),
        _check_in("proactive_kind", ProactiveKind),
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        # The staff's insights read a period of messages.
        Index("ix_messages_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    direction: Mapped[Direction] = mapped_column(EnumText(Direction, 16))
    # Inbound: content.message_id (or a body hash). Unique so a redelivery cannot land twice.
    event_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    tiktok_message_id: Mapped[str | None] = mapped_column(String(255))
    message_type: Mapped[str] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    intent: Mapped[str | None] = mapped_column(String(32))
    router_source: Mapped[str | None] = mapped_column(String(16))
    # The router's entities (sku, size, order_number) and, on a customer's message, the
    # pieces the answer was about ("pieces": SKUs), however the customer named them.
    entities: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status: Mapped[MessageStatus] = mapped_column(EnumText(MessageStatus, 16))
    status_reason: Mapped[str | None] = mapped_column(Text)
    # Staff author for outbound messages typed in the inbox or the TikTok app.
    sent_by: Mapped[str | None] = mapped_column(String(32))
    # Set on what the shop sent unasked (a reminder, an alert, a notice); NULL on answers.
    proactive_kind: Mapped[ProactiveKind | None] = mapped_column(EnumText(ProactiveKind, 24))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Drop(TimestampMixin, Base):
    __tablename__ = "drops"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __str__(self) -> str:
        return self.name


class Item(TimestampMixin, Base):
    __tablename__ = "items"
    __table_args__ = (
        _check_in("status", ItemStatus),
        _check_in("category", Category),
        _check_in("gender", Gender),
        _check_in("condition", Condition),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("sku ~ '^PT-[0-9]{4}$'", name="sku_format"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sku: Mapped[str] = mapped_column(String(16), unique=True)
    title: Mapped[str] = mapped_column(String(255))
    brand: Mapped[str | None] = mapped_column(String(120))
    category: Mapped[Category] = mapped_column(EnumText(Category, 32))
    gender: Mapped[Gender] = mapped_column(EnumText(Gender, 16))
    color: Mapped[str | None] = mapped_column(String(80))
    tag_size: Mapped[str | None] = mapped_column(String(32))
    fits_like: Mapped[str | None] = mapped_column(String(16))
    pit_to_pit_in: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    length_in: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    waist_in: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    inseam_in: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    shoe_size_us: Mapped[Decimal | None] = mapped_column(Numeric(4, 1))
    condition: Mapped[Condition] = mapped_column(EnumText(Condition, 16))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[ItemStatus] = mapped_column(
        EnumText(ItemStatus, 16), default=ItemStatus.AVAILABLE
    )
    drop_id: Mapped[int | None] = mapped_column(ForeignKey("drops.id", ondelete="SET NULL"))
    notes: Mapped[str | None] = mapped_column(Text)

    drop: Mapped[Drop | None] = relationship()
    videos: Mapped[list[ItemVideo]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="ItemVideo.id"
    )
    images: Mapped[list[ItemImage]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="ItemImage.position"
    )

    def __str__(self) -> str:
        return f"{self.sku} {self.title}"


class CatalogVersion(Base):
    """One row whose version a trigger on `items` replaces whenever pieces are added,
    removed or renamed (not when they are held or sold): a process keeps its word index of
    the catalogue until the version changes instead of reading every piece per turn. The
    version is transactional, so a rolled-back import leaves the index it had valid."""

    __tablename__ = "catalog_version"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    version: Mapped[uuid.UUID] = mapped_column(Uuid)


class ItemVideo(Base):
    __tablename__ = "item_videos"
    __table_args__ = (UniqueConstraint("item_id", "video_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    video_id: Mapped[str] = mapped_column(String(64), index=True)

    item: Mapped[Item] = relationship(back_populates="videos")


class ItemImage(Base):
    __tablename__ = "item_images"
    __table_args__ = (UniqueConstraint("item_id", "position"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    # TikTok media ids live ~30 days; cached to avoid re-uploading every send.
    tiktok_media_id: Mapped[str | None] = mapped_column(String(255))
    media_uploaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    item: Mapped[Item] = relationship(back_populates="images")


class Hold(TimestampMixin, Base):
    __tablename__ = "holds"
    __table_args__ = (
        _check_in("status", HoldStatus),
        # The database, not the code, guarantees one active hold per unique piece.
        Index(
            "uq_holds_item_active",
            "item_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_holds_customer_status", "customer_id", "status"),
        Index("ix_holds_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    # NULL: held outside the bot (imported as reserved, or set by staff).
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    status: Mapped[HoldStatus] = mapped_column(EnumText(HoldStatus, 16), default=HoldStatus.ACTIVE)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the customer was reminded that it lapses soon: once per hold.
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The order that turned it into a sale (status `converted`).
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))

    # For the admin's lists and forms; the bot's code works with the ids.
    item: Mapped[Item] = relationship()
    customer: Mapped[Customer | None] = relationship()


class AlertSubscription(TimestampMixin, Base):
    """A customer's opt-in to hear about new pieces: of a category, in a size (each NULL:
    any). STOP ends every one of the customer's at once."""

    __tablename__ = "alert_subscriptions"
    __table_args__ = (
        _check_in("category", Category),
        Index(
            "ix_alert_subscriptions_active",
            "customer_id",
            postgresql_where=text("stopped_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    category: Mapped[Category | None] = mapped_column(EnumText(Category, 32))
    size: Mapped[str | None] = mapped_column(String(8))
    # Pieces listed up to this moment have been considered for this customer.
    seen_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    customer: Mapped[Customer] = relationship()


class WaitlistEntry(TimestampMixin, Base):
    __tablename__ = "waitlist"
    __table_args__ = (UniqueConstraint("item_id", "customer_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # For the admin's lists and forms; the bot's code works with the ids.
    item: Mapped[Item] = relationship()
    customer: Mapped[Customer] = relationship()


class Order(TimestampMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        _check_in("status", OrderStatus),
        CheckConstraint("order_number ~ '^PH-[0-9]{5}$'", name="order_number_format"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_number: Mapped[str] = mapped_column(String(16), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    status: Mapped[OrderStatus] = mapped_column(EnumText(OrderStatus, 16))
    carrier: Mapped[str | None] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(128))
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    total: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    currency: Mapped[str] = mapped_column(String(3))

    customer: Mapped[Customer] = relationship()
    lines: Mapped[list[OrderItem]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderItem.id"
    )

    def __str__(self) -> str:
        return self.order_number


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (
        UniqueConstraint("order_id", "item_id"),
        # What the follow-through looks for every minute: lines not applied yet.
        Index("ix_order_items_unsettled", "item_id", postgresql_where=text("settled_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="RESTRICT"))
    # When the sale this line records was applied to its piece (sold, holds ended, customers
    # told): once, so that a piece put back on sale later (a return) stays on sale.
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    order: Mapped[Order] = relationship(back_populates="lines")
    item: Mapped[Item] = relationship()


class StaffUser(TimestampMixin, Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FaqEntry(TimestampMixin, Base):
    __tablename__ = "faq_entries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), unique=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    keywords: Mapped[str] = mapped_column(Text, default="")


class OutboxEntry(TimestampMixin, Base):
    """One reply to deliver. Committed in the same transaction as the state change that
    caused it; a separate task delivers it, keyed on this row."""

    __tablename__ = "outbox"
    __table_args__ = (
        _check_in("status", OutboxStatus),
        Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[OutboxStatus] = mapped_column(
        EnumText(OutboxStatus, 16), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)

    message: Mapped[Message] = relationship()


class DeadLetter(TimestampMixin, Base):
    __tablename__ = "dead_letters"
    __table_args__ = (_check_in("status", DeadLetterStatus),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # "event" or "send"
    event_id: Mapped[str | None] = mapped_column(String(255), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[DeadLetterStatus] = mapped_column(
        EnumText(DeadLetterStatus, 16), default=DeadLetterStatus.PARKED
    )
    retried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TikTokCredential(TimestampMixin, Base):
    """The rotating OAuth pair. One row: TikTok may rotate the refresh token on every
    refresh, and losing it means re-authorising the shop by hand."""

    __tablename__ = "tiktok_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    access_token: Mapped[str] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refresh_token: Mapped[str] = mapped_column(Text)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The account the tokens were granted for (its OAuth open_id, the business id of every
    # send and the `user_openid` of its webhooks), the scopes it granted and when: set by
    # connecting through OAuth; None for tokens put in the environment by hand.
    open_id: Mapped[str | None] = mapped_column(String(255))
    scope: Mapped[str | None] = mapped_column(Text)
    connected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
