"""The business logic, one feature package each, over three neutral modules.

- `messaging/`: the pipeline of a DM: inbound events in order, windows and quotas, the
  outbox and its delivery, photos, the hand-off states.
- `tiktok/`: TikTok's side: webhook signature and parsing, the Business API client, its
  tokens, errors and text rules.
- `shop/`: the thrift shop: the brain (reading the turn, finding the piece, the answers),
  holds, sizing, the FAQ, catalogue import and export.
- `router/`: what a DM asks (menu, patterns, LLM, the local classifier), at run time only.
- `staff/`: staff accounts and sessions, the inbox, notifications.
- `turns.py` (Reply, TurnResult, the Brain protocol), `replies.py` (all wording a customer
  reads) and `identifiers.py` (SKUs, order numbers, sizes): shared by the packages.

Which package may import which is checked by `lint-imports` (pyproject.toml, AGENTS.md).
"""
