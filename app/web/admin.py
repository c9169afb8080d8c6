"""The shop's admin under /admin: sqladmin views of the catalogue, orders, FAQ, holds and
waitlists, plus the catalogue CSV upload, all behind the staff session (AdminGate)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ValidationError
from sqladmin import Admin, BaseView, ModelView, expose
from sqladmin.authentication import AuthenticationBackend
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from wtforms import SelectField, TextAreaField

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
from app.db.session import transaction
from app.services.catalog_io import ImportFailed, ImportSummary, import_catalog, import_orders
from app.services.staff_auth import SignedIn
from app.web.security import AdminGate
from app.web.templating import TEMPLATES_DIR

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


def _choices(enum: type[Any]) -> dict[str, Any]:
    # The columns are CHECK-constrained strings: offer exactly the allowed values.
    return {"choices": [(member.value, member.value) for member in enum]}


class ItemAdmin(ModelView, model=Item):
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


class ItemVideoAdmin(ModelView, model=ItemVideo):
    name = "Item video"
    name_plural = "Item videos"
    icon = "fa-solid fa-video"
    category = "Catalogue"
    column_list: ClassVar[Any] = [ItemVideo.id, ItemVideo.item, ItemVideo.video_id]
    column_searchable_list: ClassVar[Any] = [ItemVideo.video_id]


class ItemImageAdmin(ModelView, model=ItemImage):
    name = "Item image"
    name_plural = "Item images"
    icon = "fa-solid fa-image"
    category = "Catalogue"
    column_list: ClassVar[Any] = [ItemImage.id, ItemImage.item, ItemImage.position, ItemImage.url]
    # The TikTok media cache is the sender's business, not something to type in.
    form_excluded_columns: ClassVar[Any] = [ItemImage.tiktok_media_id, ItemImage.media_uploaded_at]


class DropAdmin(ModelView, model=Drop):
    name = "Drop"
    name_plural = "Drops"
    icon = "fa-solid fa-box-open"
    category = "Catalogue"
    column_list: ClassVar[Any] = [Drop.id, Drop.name, Drop.released_at]
    column_sortable_list: ClassVar[Any] = [Drop.name, Drop.released_at]
    form_excluded_columns: ClassVar[Any] = [Drop.created_at, Drop.updated_at]


class OrderAdmin(ModelView, model=Order):
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


class OrderLineAdmin(ModelView, model=OrderItem):
    name = "Order line"
    name_plural = "Order lines"
    icon = "fa-solid fa-list"
    category = "Orders"
    column_list: ClassVar[Any] = [OrderItem.id, OrderItem.order, OrderItem.item]


class FaqAdmin(ModelView, model=FaqEntry):
    name = "FAQ entry"
    name_plural = "FAQ"
    icon = "fa-solid fa-circle-question"
    column_list: ClassVar[Any] = [FaqEntry.topic, FaqEntry.question, FaqEntry.keywords]
    column_searchable_list: ClassVar[Any] = [FaqEntry.topic, FaqEntry.question, FaqEntry.answer]
    form_excluded_columns: ClassVar[Any] = [FaqEntry.created_at, FaqEntry.updated_at]
    form_overrides: ClassVar[Any] = {"question": TextAreaField, "answer": TextAreaField}


class HoldAdmin(ModelView, model=Hold):
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


class WaitlistAdmin(ModelView, model=WaitlistEntry):
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
            except ImportFailed as failure:
                context["failure"] = failure
                log.info("csv_import_failed", kind=wanted.kind, row=failure.row)
                return context, 422
            context["summary"] = summary
            log.info("csv_imported", kind=wanted.kind, summary=str(summary))
            return context, 200

    return CatalogImportView


def install_admin(app: Starlette) -> Admin:
    admin = Admin(
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
        admin.add_view(view)
    admin.add_view(_import_view(app))
    return admin
