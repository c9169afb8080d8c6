"""The project's own demo shop, loaded by `make run` (idempotent: re-running updates)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import PROJECT_ROOT
from app.services.shop.catalog_io import ImportSummary, import_catalog, import_orders
from app.services.shop.faq import load_default_faq

DEMO_DIR = PROJECT_ROOT / "app" / "demo"


async def load_demo_shop(session: AsyncSession) -> tuple[ImportSummary, ImportSummary]:
    catalog = await import_catalog(session, (DEMO_DIR / "catalog.csv").read_text("utf-8"))
    orders = await import_orders(session, (DEMO_DIR / "orders.csv").read_text("utf-8"))
    await load_default_faq(session)
    return catalog, orders
