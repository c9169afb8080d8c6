"""Catalogue and order CSV import/export, exactly the columns of the reference shop.

Every row is validated before anything is written, and the caller owns the single
transaction, so a failed import leaves the database as it was. Re-importing the same
file updates rows in place (keyed by SKU / order number) and never duplicates.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utc_now
from app.db.models import (
    Category,
    Condition,
    Gender,
    Hold,
    HoldStatus,
    Item,
    ItemImage,
    ItemStatus,
    ItemVideo,
    Order,
    OrderItem,
    OrderStatus,
)
from app.db.repositories.holds import HoldRepository
from app.db.repositories.items import DropRepository, ItemRepository
from app.db.repositories.orders import CustomerRepository, OrderRepository
from app.services.identifiers import ORDER_NUMBER_PATTERN, SKU_PATTERN, normalize_size

CATALOG_COLUMNS: tuple[str, ...] = (
    "sku",
    "title",
    "brand",
    "category",
    "gender",
    "color",
    "tag_size",
    "fits_like",
    "pit_to_pit_in",
    "length_in",
    "waist_in",
    "inseam_in",
    "shoe_size_us",
    "condition",
    "price",
    "currency",
    "status",
    "drop",
    "video_ids",
    "image_urls",
    "notes",
)
ORDER_COLUMNS: tuple[str, ...] = (
    "order_number",
    "customer_tiktok_id",
    "customer_username",
    "status",
    "items",
    "carrier",
    "tracking_number",
    "placed_at",
    "shipped_at",
    "delivered_at",
    "total",
    "currency",
)


class ImportFailed(Exception):
    """A row that cannot be imported; nothing of the import is kept."""

    def __init__(self, row: int | None, column: str | None, problem: str) -> None:
        self.row = row
        self.column = column
        self.problem = problem
        where = []
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column}")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


def _split_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split("|") if part.strip()]
    return value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _check_sku(value: str) -> str:
    if not SKU_PATTERN.fullmatch(value):
        raise ValueError(f"'{value}' is not a SKU like PT-0001")
    return value


def _check_order_number(value: str) -> str:
    if not ORDER_NUMBER_PATTERN.fullmatch(value):
        raise ValueError(f"'{value}' is not an order number like PH-10234")
    return value


def _check_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"'{value}' is not an http(s) URL")
    return value


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Sku = Annotated[str, BeforeValidator(_upper), AfterValidator(_check_sku)]
Measurement = Annotated[Decimal | None, Field(gt=0, max_digits=5, decimal_places=2)]
Money = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)]
Currency = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[A-Z]{3}$")]
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CatalogRow(_Row):
    sku: Sku
    title: str = Field(min_length=1, max_length=255)
    brand: str | None = Field(default=None, max_length=120)
    category: Category
    gender: Gender
    color: str | None = Field(default=None, max_length=80)
    tag_size: str | None = Field(default=None, max_length=32)
    fits_like: str | None = Field(default=None, max_length=16)
    pit_to_pit_in: Measurement = None
    length_in: Measurement = None
    waist_in: Measurement = None
    inseam_in: Measurement = None
    shoe_size_us: Annotated[Decimal | None, Field(gt=0, max_digits=4, decimal_places=1)] = None
    condition: Condition
    price: Money
    currency: Currency
    status: ItemStatus
    drop: str | None = Field(default=None, max_length=100)
    video_ids: Annotated[list[str], BeforeValidator(_split_list)] = []
    image_urls: Annotated[
        list[Annotated[str, AfterValidator(_check_url)]], BeforeValidator(_split_list)
    ] = []
    notes: str | None = None

    @field_validator("category", "gender", "condition", "status", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("fits_like")
    @classmethod
    def _fits_like(cls, value: str | None) -> str | None:
        return None if value is None else (normalize_size(value) or value)


class OrderRow(_Row):
    order_number: Annotated[str, BeforeValidator(_upper), AfterValidator(_check_order_number)]
    customer_tiktok_id: str = Field(min_length=1, max_length=255)
    customer_username: str | None = Field(default=None, max_length=255)
    status: OrderStatus
    items: Annotated[list[Sku], BeforeValidator(_split_list), Field(min_length=1)]
    carrier: str | None = Field(default=None, max_length=64)
    tracking_number: str | None = Field(default=None, max_length=128)
    placed_at: UtcDatetime
    shipped_at: UtcDatetime | None = None
    delivered_at: UtcDatetime | None = None
    total: Money
    currency: Currency

    @field_validator("status", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


RowModel = TypeVar("RowModel", bound=_Row)


def _describe(error: ValidationError, raw: Mapping[str, str | None]) -> tuple[str, str]:
    first = error.errors()[0]
    column = str(first["loc"][0]) if first["loc"] else "?"
    value = raw.get(column)
    message = str(first["msg"]).removeprefix("Value error, ")
    if value is None:
        return column, "is empty but required"
    return column, f"{value!r}: {message}"


def parse_rows(
    text: str, columns: Sequence[str], model: type[RowModel], key: str
) -> list[tuple[int, RowModel]]:
    """Validate a whole CSV document; rows are numbered as in a spreadsheet (header = 1)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in columns if name not in header]
    if missing:
        raise ImportFailed(1, missing[0], "missing column in the header")
    unexpected = [name for name in header if name not in columns]
    if unexpected:
        raise ImportFailed(1, unexpected[0], "unknown column in the header")
    parsed: list[tuple[int, RowModel]] = []
    first_seen: dict[str, int] = {}
    for index, raw_row in enumerate(reader, start=2):
        if None in raw_row:
            raise ImportFailed(index, None, "more cells than columns")
        cleaned: dict[str, str | None] = {
            name.strip(): (restore_formula_text(cell.strip()) or None)
            if isinstance(cell, str)
            else None
            for name, cell in raw_row.items()
        }
        if all(value is None for value in cleaned.values()):
            continue  # a blank line is not a row
        try:
            row = model.model_validate(cleaned)
        except ValidationError as error:
            column, problem = _describe(error, cleaned)
            raise ImportFailed(index, column, problem) from None
        identity = str(getattr(row, key))
        if identity in first_seen:
            raise ImportFailed(
                index, key, f"duplicate {identity} (first on row {first_seen[identity]})"
            )
        first_seen[identity] = index
        parsed.append((index, row))
    return parsed


def read_csv(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ImportFailed(None, None, f"cannot read {path}: {error}") from None


_ITEM_FIELDS = (
    "title",
    "brand",
    "category",
    "gender",
    "color",
    "tag_size",
    "fits_like",
    "pit_to_pit_in",
    "length_in",
    "waist_in",
    "inseam_in",
    "shoe_size_us",
    "condition",
    "price",
    "currency",
    "notes",
)


async def import_catalog(session: AsyncSession, text: str) -> ImportSummary:
    rows = parse_rows(text, CATALOG_COLUMNS, CatalogRow, "sku")
    items = ItemRepository(session)
    drops = DropRepository(session)
    holds = HoldRepository(session)
    existing = await items.by_skus_with_media([row.sku for _, row in rows])
    summary = ImportSummary()
    for _, row in rows:
        item = existing.get(row.sku)
        is_new = item is None
        if item is None:
            item = Item(sku=row.sku, videos=[], images=[])
            session.add(item)
        changed = is_new
        for name in _ITEM_FIELDS:
            value = getattr(row, name)
            value = value.value if hasattr(value, "value") else value
            if getattr(item, name) != value:
                setattr(item, name, value)
                changed = True
        drop_id = (await drops.get_or_create(row.drop)).id if row.drop else None
        if item.drop_id != drop_id:
            item.drop_id = drop_id
            changed = True
        if [video.video_id for video in item.videos] != row.video_ids:
            await _replace_children(session, item.videos)
            item.videos.extend(ItemVideo(video_id=video_id) for video_id in row.video_ids)
            changed = True
        if [image.url for image in item.images] != row.image_urls:
            await _replace_children(session, item.images)
            item.images.extend(
                ItemImage(position=position, url=url) for position, url in enumerate(row.image_urls)
            )
            changed = True
        await session.flush()
        if await _reconcile_status(session, holds, item, row.status):
            changed = True
        if is_new:
            summary.created += 1
        elif changed:
            summary.updated += 1
        else:
            summary.unchanged += 1
    await session.flush()
    return summary


async def _replace_children(session: AsyncSession, children: list[Any]) -> None:
    # Delete before insert: the unit of work would insert the new rows first and trip
    # the (item, video) / (item, position) unique constraints.
    children.clear()
    await session.flush()


async def _reconcile_status(
    session: AsyncSession, holds: HoldRepository, item: Item, wanted: ItemStatus
) -> bool:
    """Apply the CSV status without trampling live holds.

    `reserved` in the file is a hold made outside the bot (no customer, no expiry).
    `available` ends such an outside hold but never a customer's live hold: the piece
    stays reserved for them until the hold ends. `sold` ends any hold.
    """
    active = await holds.active_for_item(item.id)
    now = utc_now()
    status = wanted
    if wanted is ItemStatus.RESERVED and active is None:
        session.add(Hold(item_id=item.id, customer_id=None, status=HoldStatus.ACTIVE))
    elif wanted is ItemStatus.AVAILABLE and active is not None:
        if active.customer_id is None:
            active.status, active.ended_at = HoldStatus.RELEASED, now
        else:
            status = ItemStatus.RESERVED
    elif wanted is ItemStatus.SOLD and active is not None:
        active.status, active.ended_at = HoldStatus.CONVERTED, now
    if item.status != status:
        item.status = status
        return True
    return False


async def import_orders(session: AsyncSession, text: str) -> ImportSummary:
    rows = parse_rows(text, ORDER_COLUMNS, OrderRow, "order_number")
    items = await ItemRepository(session).by_skus_with_media(
        sorted({sku for _, row in rows for sku in row.items})
    )
    customers = CustomerRepository(session)
    orders = OrderRepository(session)
    summary = ImportSummary()
    for index, row in rows:
        unknown = [sku for sku in row.items if sku not in items]
        if unknown:
            raise ImportFailed(
                index, "items", f"unknown SKU {unknown[0]}: import the catalogue first"
            )
        customer = await customers.get_or_create(row.customer_tiktok_id, row.customer_username)
        order = await orders.get_by_number(row.order_number)
        is_new = order is None
        if order is None:
            order = Order(order_number=row.order_number, lines=[])
            session.add(order)
        values: dict[str, Any] = {
            "customer_id": customer.id,
            "status": row.status.value,
            "carrier": row.carrier,
            "tracking_number": row.tracking_number,
            "placed_at": row.placed_at,
            "shipped_at": row.shipped_at,
            "delivered_at": row.delivered_at,
            "total": row.total,
            "currency": row.currency,
        }
        changed = is_new
        for name, value in values.items():
            if getattr(order, name) != value:
                setattr(order, name, value)
                changed = True
        if [line.item_id for line in order.lines] != [items[sku].id for sku in row.items]:
            await _replace_children(session, order.lines)
            order.lines.extend(OrderItem(item_id=items[sku].id) for sku in row.items)
            changed = True
        await session.flush()
        if is_new:
            summary.created += 1
        elif changed:
            summary.updated += 1
        else:
            summary.unchanged += 1
    return summary


# What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def defuse_formula(text: str) -> str:
    """A text cell that a spreadsheet shows as text and never runs as a formula: text
    starting with =, +, -, @, a tab or a carriage return gets a leading apostrophe, so a
    title `=HYPERLINK("x")` is written `'=HYPERLINK("x")`. For text cells only: numbers
    are written as numbers (no catalogue number is negative).

    Every CSV the shop writes goes through here: the catalogue export (CLI) and the
    admin's CSV export. The importer undoes it (`restore_formula_text`), so an export
    imports back exactly: apostrophes already before one of those characters get one more,
    and "'90s tee" is left as the owner wrote it.
    """
    return f"'{text}" if text.lstrip("'").startswith(FORMULA_PREFIXES) else text


def restore_formula_text(text: str) -> str:
    """The text defuse_formula was given: one apostrophe before a formula character off."""
    if text.startswith("'") and text.lstrip("'").startswith(FORMULA_PREFIXES):
        return text[1:]
    return text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return defuse_formula(str(value))


def format_catalog(items: Iterable[Item]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CATALOG_COLUMNS)
    for item in items:
        row = {name: _cell(getattr(item, name)) for name in _ITEM_FIELDS}
        row["price"] = f"{item.price:.2f}"
        row["sku"] = _cell(item.sku)
        row["status"] = _cell(item.status)
        row["drop"] = _cell(item.drop.name if item.drop else None)
        row["video_ids"] = _cell("|".join(video.video_id for video in item.videos))
        row["image_urls"] = _cell("|".join(image.url for image in item.images))
        writer.writerow([row[name] for name in CATALOG_COLUMNS])
    return buffer.getvalue()


async def export_catalog(session: AsyncSession) -> str:
    return format_catalog(await ItemRepository(session).all_with_media())
