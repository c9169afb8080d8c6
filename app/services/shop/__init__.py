"""The thrift shop's domain: finding pieces, sizing, holds, the waitlist, orders, drops
and the FAQ, behind `ShopBrain` (the Brain the pipeline calls).

What other packages may import: the names in `__all__` below, from this package, and two
modules directly, `app.services.shop.catalog_io` (catalogue and order CSV import and
export, for the CLI and the admin) and `app.services.shop.demo` (the demo shop). The rest
is the package's own:

- brain.py: `ShopBrain`, which wires one turn through the three steps below;
- reading.py: what the turn asks (the router's intent re-read, hold cues, yes and no);
- finding.py: which piece is meant (SKU, shared video, conversation, words);
- answers.py: the answer per intent, and the actions (hold, waitlist, release);
- words.py, sizing.py, describe.py, context.py, holds.py, faq.py, phrasing.py and
  order_lookups.py: the vocabulary, fit, wording, memory, holds, FAQ and throttle they use;
- followthrough.py: holds that become sales, reminders before a hold lapses, lapsed holds
  (the beat task's `run_followthrough`, and `record_sales` for whoever records an order).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.services.shop.brain import ShopBrain
    from app.services.shop.faq import import_faq, load_default_faq
    from app.services.shop.followthrough import (
        FollowThrough,
        HoldNotActive,
        policy_for,
        record_sales,
        run_followthrough,
        sell_hold,
    )
    from app.services.shop.holds import (
        ExpiryReport,
        expire_lapsed_holds,
        join_waitlist,
        place_hold,
    )

# Each name is imported on first use: `catalog_io` (the admin's import and export) is a
# module of this package, and importing the brain with it would load the router and its
# model into the API process, which never routes a message.
_HOMES = {
    "ShopBrain": "brain",
    "import_faq": "faq",
    "load_default_faq": "faq",
    "ExpiryReport": "holds",
    "expire_lapsed_holds": "holds",
    "join_waitlist": "holds",
    "place_hold": "holds",
    "FollowThrough": "followthrough",
    "policy_for": "followthrough",
    "record_sales": "followthrough",
    "run_followthrough": "followthrough",
    "sell_hold": "followthrough",
    "HoldNotActive": "followthrough",
}

__all__ = [
    "ExpiryReport",
    "FollowThrough",
    "HoldNotActive",
    "ShopBrain",
    "expire_lapsed_holds",
    "import_faq",
    "join_waitlist",
    "load_default_faq",
    "place_hold",
    "policy_for",
    "record_sales",
    "run_followthrough",
    "sell_hold",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
