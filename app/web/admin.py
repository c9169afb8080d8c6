"""The shop's admin under /admin: sqladmin views of the catalogue, orders, FAQ, holds and
waitlists, plus the catalogue CSV upload, all behind the staff session (AdminGate).

sqladmin is trusted with less than it offers: its file download/preview routes are not
mounted (they served any file under the working directory named by a text column), a
primary key or search that cannot reach PostgreSQL is a 4xx before it tries, and its CSV
export writes no cell a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import io
import types
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Literal, cast

from pydantic import BaseModel, Field, ValidationError
from sqladmin import Admin, BaseView, ModelView, expose
from sqladmin.authentication import AuthenticationBackend
from sqladmin.helpers import object_identifier_values, secure_filename
from sqlalchemy import BigInteger, Column, Integer, Select, SmallInteger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute
from wtforms import SelectField, TextAreaField

from app.core.clock import utc_now
from app.core.config import Settings
from app.core.logging import get_logger
from app.db.models import (
    Category,
    Condition,
    Drop,
    FaqEntry,
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
    WaitlistEntry,
)
from app.db.repositories.items import DropRepository
from app.db.session import transaction
from app.services.shop import policy_for, record_sales
from app.services.shop.catalog_io import (
    ImportFailed,
    ImportSummary,
    defuse_formula,
    import_catalog,
    import_orders,
)
from app.services.staff.auth import SignedIn
from app.web.guards import AdminGate
from app.web.templating import TEMPLATES_DIR
from app.worker.enqueue import delivery_enqueuer

log = get_logger(__name__)

MAX_UPLOAD_BYTES = 5 * 1024 * 1024


class _LateBoundSessionMaker(async_sessionmaker[AsyncSession]):
    """sqladmin takes its session maker when the app is built, but the engine only exists
    once the lifespan has started: bind each session to the app's engine when made."""

    def __init__(self, app: Starlette) -> None:
        super().__init__(class_=AsyncSession, expire_on_commit=False)
        self._app = app

    def __call__(self, **local_kw: Any) -> AsyncSession:
        local_kw.setdefault("bind", self._app.state.engine)
        return super().__call__(**local_kw)


class StaffAdminAuth(AuthenticationBackend):
    """sqladmin's hooks, answered from our session store. AdminGate has already refused
    anyone without a session, so this is the second lock, not the first."""

    def __init__(self) -> None:
        # Deliberately not calling super().__init__: it would add Starlette's cookie
        # SessionMiddleware, a second session system beside ours.
        self.middlewares: list[Middleware] = []

    async def login(self, request: Request) -> Response | bool:
        return RedirectResponse("/login?next=/admin/", status_code=303)

    async def logout(self, request: Request) -> Response | bool:
        return RedirectResponse("/logout", status_code=303)

    async def authenticate(self, request: Request) -> Response | bool:
        return isinstance(getattr(request.state, "staff", None), SignedIn)

    async def get_user_id(self, request: Request) -> Any:
        staff = getattr(request.state, "staff", None)
        return staff.staff_id if isinstance(staff, SignedIn) else None


# sqladmin's routes that send a file named by a column's value: not mounted.
_FILE_ROUTES = frozenset({"file_download", "file_preview"})


class ShopAdmin(Admin):
    """sqladmin's Admin without its file routes, and a delete naming no rows is a 400."""

    def __init__(self, app: Starlette, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        routes: list[BaseRoute] = self.admin.router.routes
        kept = [route for route in routes if getattr(route, "name", None) not in _FILE_ROUTES]
        # A sqladmin upgrade that renames them must fail here, not quietly serve files.
        if len(routes) - len(kept) != len(_FILE_ROUTES):
            raise RuntimeError("sqladmin's file download/preview routes were not found")
        self.admin.router.routes = kept

    async def delete(self, request: Request) -> Response:
        # sqladmin raises ValueError (a 500) when the pks parameter is absent.
        if "pks" not in request.query_params:
            raise HTTPException(status_code=400, detail="Choose the rows to delete.")
        response: Response = await super().delete(request)
        return response


def _integer_bounds(column: Column[Any]) -> tuple[int, int] | None:
    kind = column.type
    if isinstance(kind, BigInteger):
        bits = 64
    elif isinstance(kind, SmallInteger):
        bits = 16
    elif isinstance(kind, Integer):
        bits = 32
    else:
        return None
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _storable(column: Column[Any], value: Any) -> bool:
    """Whether PostgreSQL can compare the column with the value at all: a number beyond
    the column's integer type or a NUL in text is an error there, not a missing row."""
    if isinstance(value, str):
        return "\x00" not in value
    bounds = _integer_bounds(column)
    if bounds is not None and isinstance(value, int):
        return bounds[0] <= value <= bounds[1]
    return True


def _csv_line(cells: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue()


def _export_cell(value: Any) -> str:
    # Numbers are left as they are (a negative one is not a formula); everything else is
    # text that may have come from a customer or a hostile import.
    if isinstance(value, int | float | Decimal):
        return str(value)
    return defuse_formula(str(value))


class ShopModelView(ModelView):
    """Base of every model view of the admin: bad input is refused before PostgreSQL
    sees it, and the CSV export is safe to open in a spreadsheet."""

    def _stmt_by_identifier(self, identifier: str) -> Select[Any]:
        # The one place sqladmin turns a pk from a URL (details, edit, delete) into SQL.
        # A pk that cannot be a row's is a 404, not a ValueError or a DataError (500).
        if not identifier:
            raise HTTPException(status_code=404)
        try:
            values = object_identifier_values(identifier, self.model)
        except (ValueError, ArithmeticError):
            raise HTTPException(status_code=404) from None
        if not all(map(_storable, self.pk_columns, values)):
            raise HTTPException(status_code=404)
        statement: Select[Any] = super()._stmt_by_identifier(identifier)
        return statement

    def search_query(self, stmt: Select[Any], term: str) -> Select[Any]:
        if "\x00" in term:
            # PostgreSQL refuses NUL in text: an error mid-query, not "no match".
            raise HTTPException(status_code=400, detail="A search cannot contain a NUL.")
        statement: Select[Any] = super().search_query(stmt, term)
        return statement

    async def export_data(
        self,
        data: list[Any],
        export_type: str = "csv",
        request: Request | None = None,
    ) -> StreamingResponse:
        """sqladmin's plain CSV export (its `use_pretty_export` is not used), with every
        text cell through defuse_formula, the rule of the catalogue export."""
        if export_type != "csv":
            response: StreamingResponse = await super().export_data(
                data, export_type=export_type, request=request
            )
            return response
        names = self.get_export_columns()

        async def lines() -> AsyncIterator[str]:
            yield _csv_line(names)
            for row in data:
                yield _csv_line(
                    [_export_cell(await self.get_prop_value(row, name)) for name in names]
                )

        filename = secure_filename(self.get_export_name(export_type="csv"))
        return StreamingResponse(
            lines(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f"attachment;filename={filename}"},
        )


def _choices(enum: type[Any]) -> dict[str, Any]:
    # The columns are CHECK-constrained strings: offer exactly the allowed values.
    return {"choices": [(member.value, member.value) for member in enum]}


class ItemAdmin(ShopModelView, model=Item):
    name = "Item"
    name_plural = "Items"
    icon = "fa-solid fa-shirt"
    category = "Catalogue"
    column_list: ClassVar[Any] = [
        Item.sku,
        Item.title,
        Item.brand,
        Item.category,
        Item.tag_size,
        Item.fits_like,
        Item.pit_to_pit_in,
        Item.waist_in,
        Item.price,
        Item.status,
    ]
    column_searchable_list: ClassVar[Any] = [Item.sku, Item.title, Item.brand, Item.color]
    column_sortable_list: ClassVar[Any] = [Item.sku, Item.price, Item.status, Item.updated_at]
    column_default_sort: ClassVar[Any] = (Item.sku, False)
    form_excluded_columns: ClassVar[Any] = [
        Item.created_at,
        Item.updated_at,
        # Videos and images have their own views: sqladmin edits a one-to-many as a
        # multi-select of existing rows, which cannot add a new video id or URL.
        Item.videos,
        Item.images,
    ]
    form_overrides: ClassVar[Any] = {
        "status": SelectField,
        "category": SelectField,
        "gender": SelectField,
        "condition": SelectField,
        "notes": TextAreaField,
    }
    form_args: ClassVar[Any] = {
        "status": _choices(ItemStatus),
        "category": _choices(Category),
        "gender": _choices(Gender),
        "condition": _choices(Condition),
    }


class ItemVideoAdmin(ShopModelView, model=ItemVideo):
    name = "Item video"
    name_plural = "Item videos"
    icon = "fa-solid fa-video"
    category = "Catalogue"
    column_list: ClassVar[Any] = [ItemVideo.id, ItemVideo.item, ItemVideo.video_id]
    column_searchable_list: ClassVar[Any] = [ItemVideo.video_id]


class ItemImageAdmin(ShopModelView, model=ItemImage):
    name = "Item image"
    name_plural = "Item images"
    icon = "fa-solid fa-image"
    category = "Catalogue"
    column_list: ClassVar[Any] = [ItemImage.id, ItemImage.item, ItemImage.position, ItemImage.url]
    # The TikTok media cache is the sender's business, not something to type in.
    form_excluded_columns: ClassVar[Any] = [ItemImage.tiktok_media_id, ItemImage.media_uploaded_at]


class DropAdmin(ShopModelView, model=Drop):
    name = "Drop"
    name_plural = "Drops"
    icon = "fa-solid fa-box-open"
    category = "Catalogue"
    column_list: ClassVar[Any] = [Drop.id, Drop.name, Drop.released_at]
    column_sortable_list: ClassVar[Any] = [Drop.name, Drop.released_at]
    form_excluded_columns: ClassVar[Any] = [Drop.created_at, Drop.updated_at]


async def settle_sales(app: Starlette) -> None:
    """Pieces on the orders just recorded become sales (`record_sales`), and what their
    customers are told is queued once that is committed. Failing here loses nothing: the
    order is saved, and the beat task settles it within a minute."""
    state = app.state
    settings: Settings = state.settings
    try:
        async with transaction(state.session_factory) as session:
            report = await record_sales(
                session, settings, policy_for(settings, state.redis), utc_now()
            )
    except Exception as error:
        log.warning("sales_settle_deferred", error=repr(error))
        return
    enqueue = delivery_enqueuer(state.producer, settings.webhook_enqueue_timeout_seconds)
    await enqueue(report.outbox_ids)


class _SettlesSales(ShopModelView):
    """An order or order line saved in the admin settles its pieces as sales at once."""

    main_app: ClassVar[Starlette | None] = None  # set per app by install_admin

    async def after_model_change(
        self, data: dict[str, Any], model: Any, is_created: bool, request: Request
    ) -> None:
        if self.main_app is not None:
            await settle_sales(self.main_app)


class OrderAdmin(_SettlesSales, model=Order):
    name = "Order"
    name_plural = "Orders"
    icon = "fa-solid fa-receipt"
    category = "Orders"
    column_list: ClassVar[Any] = [
        Order.order_number,
        Order.customer,
        Order.status,
        Order.carrier,
        Order.tracking_number,
        Order.placed_at,
        Order.total,
        Order.currency,
    ]
    column_searchable_list: ClassVar[Any] = [Order.order_number, Order.tracking_number]
    column_sortable_list: ClassVar[Any] = [Order.order_number, Order.placed_at, Order.status]
    column_default_sort: ClassVar[Any] = (Order.placed_at, True)
    form_excluded_columns: ClassVar[Any] = [Order.created_at, Order.updated_at, Order.lines]
    form_overrides: ClassVar[Any] = {"status": SelectField}
    form_args: ClassVar[Any] = {
        "status": _choices(OrderStatus),
    }


class OrderLineAdmin(_SettlesSales, model=OrderItem):
    name = "Order line"
    name_plural = "Order lines"
    icon = "fa-solid fa-list"
    category = "Orders"
    column_list: ClassVar[Any] = [OrderItem.id, OrderItem.order, OrderItem.item]


class FaqAdmin(ShopModelView, model=FaqEntry):
    name = "FAQ entry"
    name_plural = "FAQ"
    icon = "fa-solid fa-circle-question"
    column_list: ClassVar[Any] = [FaqEntry.topic, FaqEntry.question, FaqEntry.keywords]
    column_searchable_list: ClassVar[Any] = [FaqEntry.topic, FaqEntry.question, FaqEntry.answer]
    form_excluded_columns: ClassVar[Any] = [FaqEntry.created_at, FaqEntry.updated_at]
    form_overrides: ClassVar[Any] = {"question": TextAreaField, "answer": TextAreaField}


class HoldAdmin(ShopModelView, model=Hold):
    name = "Hold"
    name_plural = "Holds"
    icon = "fa-solid fa-hand"
    category = "Customers"
    column_list: ClassVar[Any] = [
        Hold.id,
        Hold.item,
        Hold.customer,
        Hold.status,
        Hold.expires_at,
        Hold.ended_at,
    ]
    column_sortable_list: ClassVar[Any] = [Hold.status, Hold.expires_at, Hold.created_at]
    column_default_sort: ClassVar[Any] = (Hold.created_at, True)
    form_excluded_columns: ClassVar[Any] = [Hold.created_at, Hold.updated_at]
    form_overrides: ClassVar[Any] = {"status": SelectField}
    form_args: ClassVar[Any] = {
        "status": _choices(HoldStatus),
    }


class WaitlistAdmin(ShopModelView, model=WaitlistEntry):
    name = "Waitlist entry"
    name_plural = "Waitlist"
    icon = "fa-solid fa-clock"
    category = "Customers"
    column_list: ClassVar[Any] = [
        WaitlistEntry.id,
        WaitlistEntry.item,
        WaitlistEntry.customer,
        WaitlistEntry.created_at,
        WaitlistEntry.notified_at,
    ]
    column_default_sort: ClassVar[Any] = (WaitlistEntry.created_at, True)
    form_excluded_columns: ClassVar[Any] = [WaitlistEntry.created_at, WaitlistEntry.updated_at]


class ImportRequest(BaseModel):
    kind: Literal["catalog", "orders"] = "catalog"


def _import_view(main_app: Starlette) -> type[BaseView]:
    class CatalogImportView(BaseView):
        """The catalogue (or orders) CSV upload, through the same importer as the CLI."""

        name = "CSV import"
        icon = "fa-solid fa-file-csv"

        @expose("/import", methods=["GET", "POST"], identity="csv_import")
        async def import_page(self, request: Request) -> Response:
            context: dict[str, Any] = {"kind": "catalog"}
            status_code = 200
            if request.method == "POST":
                context, status_code = await self._run(request)
            return await self.templates.TemplateResponse(
                request, "philia/import.html", context, status_code=status_code
            )

        async def _run(self, request: Request) -> tuple[dict[str, Any], int]:
            async with request.form(max_part_size=MAX_UPLOAD_BYTES) as form:
                try:
                    wanted = ImportRequest.model_validate({"kind": form.get("kind", "catalog")})
                except ValidationError:
                    return {"kind": "catalog", "problem": "Choose what the file holds."}, 400
                upload = form.get("file")
                if not isinstance(upload, UploadFile) or not upload.filename:
                    return {"kind": wanted.kind, "problem": "Choose a CSV file."}, 400
                raw = await upload.read(MAX_UPLOAD_BYTES + 1)
                filename = upload.filename
            context: dict[str, Any] = {"kind": wanted.kind, "filename": filename}
            if len(raw) > MAX_UPLOAD_BYTES:
                context["problem"] = f"The file is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
                return context, 413
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                context["problem"] = "The file is not UTF-8 text; export it as CSV UTF-8."
                return context, 400
            importer = import_catalog if wanted.kind == "catalog" else import_orders
            try:
                # One transaction: a bad row rolls back every row before it.
                async with transaction(main_app.state.session_factory) as session:
                    summary: ImportSummary = await importer(session, text)
                if wanted.kind == "orders":
                    await settle_sales(main_app)
            except ImportFailed as failure:
                context["failure"] = failure
                log.info("csv_import_failed", kind=wanted.kind, row=failure.row)
                return context, 422
            context["summary"] = summary
            log.info("csv_imported", kind=wanted.kind, summary=str(summary))
            return context, 200

    return CatalogImportView


class PublishRequest(BaseModel):
    drop_id: int = Field(ge=1, le=2**63 - 1)


def _publish_view(main_app: Starlette) -> type[BaseView]:
    class PublishDropView(BaseView):
        """Publish a drop: its pieces on sale count as new from now on, so the customers
        who opted in to alerts hear about the ones that fit them (the beat task sends them
        within a minute, inside each customer's window)."""

        name = "Publish a drop"
        icon = "fa-solid fa-bullhorn"

        @expose("/publish-drop", methods=["GET", "POST"], identity="publish_drop")
        async def publish_page(self, request: Request) -> Response:
            context: dict[str, Any] = {}
            status_code = 200
            state = main_app.state
            if request.method == "POST":
                async with request.form() as form:
                    raw = form.get("drop_id")
                try:
                    wanted = PublishRequest.model_validate({"drop_id": raw})
                except ValidationError:
                    context["problem"], status_code = "Choose a drop to publish.", 400
                else:
                    async with transaction(state.session_factory) as session:
                        drop = await DropRepository(session).publish(wanted.drop_id, utc_now())
                        published = drop.name if drop is not None else None
                    if published is None:
                        context["problem"], status_code = "There is no such drop.", 404
                    else:
                        context["published"] = published
                        log.info("drop_published", drop=published)
            async with state.session_factory() as session:
                context["drops"] = await DropRepository(session).overview()
            return await self.templates.TemplateResponse(
                request, "philia/publish_drop.html", context, status_code=status_code
            )

    return PublishDropView


def _of_this_app(view: type[ShopModelView], app: Starlette) -> type[ShopModelView]:
    # sqladmin keeps the session maker, templates and Admin on the view *class*: a class
    # per app, or a second app built in the process (tests build many) would rebind the
    # views of the first to its own engine.
    own = types.new_class(
        view.__name__,
        (view,),
        exec_body=lambda ns: ns.update(__module__=view.__module__, main_app=app),
    )
    return cast(type[ShopModelView], own)


def install_admin(app: Starlette) -> Admin:
    """Mount the admin on the app; it stays on app.state.admin (its views, its routes)."""
    admin = ShopAdmin(
        app,
        session_maker=_LateBoundSessionMaker(app),
        base_url="/admin",
        title="Philia admin",
        templates_dir=str(TEMPLATES_DIR / "admin"),
        middlewares=[Middleware(AdminGate, main_app=app)],
        authentication_backend=StaffAdminAuth(),
    )
    for view in (
        ItemAdmin,
        ItemVideoAdmin,
        ItemImageAdmin,
        DropAdmin,
        OrderAdmin,
        OrderLineAdmin,
        FaqAdmin,
        HoldAdmin,
        WaitlistAdmin,
    ):
        admin.add_view(_of_this_app(view, app))
    admin.add_view(_import_view(app))
    admin.add_view(_publish_view(app))
    app.state.admin = admin
    return admin
