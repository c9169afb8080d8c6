"""The thrift shop's domain: finding pieces, sizing, holds, the waitlist, orders, drops
and the FAQ, behind `ShopBrain` (the Brain the pipeline calls)."""

from app.services.shop.brain import ShopBrain
from app.services.shop.faq import import_faq, load_default_faq
from app.services.shop.holds import (
    ExpiryReport,
    expire_lapsed_holds,
    join_waitlist,
    place_hold,
    run_hold_expiry,
)

__all__ = [
    "ExpiryReport",
    "ShopBrain",
    "expire_lapsed_holds",
    "import_faq",
    "join_waitlist",
    "load_default_faq",
    "place_hold",
    "run_hold_expiry",
]
