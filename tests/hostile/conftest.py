"""Hostile-input fixtures: the shop-brain fixtures, re-exported for this package."""

from tests.services.shop.conftest import (  # noqa: F401
    make_chat,
    offline_router,
    shop,
    shop_settings,
)
