"""The shop's numbers over a period (the staff's /insights): read-only aggregates, each one
statement over indexed columns (messages by `created_at`, a conversation's messages by
`(conversation_id, created_at)`, holds by `created_at`). Days and hours are the shop's
(`tz`, an IANA name); the period is [start, end) in UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# The intents that ask about one piece: the funnel's "asked about a piece".
PIECE_INTENTS = ("availability", "sizing", "price", "hold")


@dataclass(frozen=True)
class VolumeRow:
    """One tally: by day or by hour, by intent or by layer (the other two are None)."""

    day: date | None
    hour: int | None
    intent: str | None
    layer: str | None
    messages: int


@dataclass(frozen=True)
class SpeedRow:
    day: date
    answered: int
    p50_seconds: float
    p90_seconds: float


@dataclass(frozen=True)
class HandoffSpeed:
    reason: str | None  # None: every hand-off
    handed_over: int
    answered: int
    p50_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True)
class Funnel:
    conversations: int
    asked_about_piece: int
    holds: int
    sales: int
    expired: int


@dataclass(frozen=True)
class ProactiveRow:
    kind: str
    sent: int
    not_sent: int
    replied: int
    holds: int
    sales: int


@dataclass(frozen=True)
class PieceDemand:
    sku: str
    title: str
    status: str
    asked: int
    holds: int
    waitlist: int
    listed_at: datetime


@dataclass(frozen=True)
class Missed:
    window_closed: int  # what the shop would have sent, refused: the window had closed
    quota: int  # refused: the window's reply quota was spent
    other_not_sent: int
    dead_letters: int
    unanswered: int  # customer messages handled only after their window had closed


@dataclass(frozen=True)
class WaitingHandoff:
    conversation_id: int
    customer: str
    since: datetime


# Four tallies in one pass (GROUPING SETS): a row per day and intent, day and layer, hour
# and intent, hour and layer; the columns a row is not grouped by are NULL.
_VOLUME = text("""
SELECT (timezone(:tz, m.created_at))::date AS day,
       extract(hour FROM timezone(:tz, m.created_at))::int AS hour,
       coalesce(m.intent, 'unrouted') AS intent,
       coalesce(m.router_source, 'none') AS layer,
       count(*) AS messages
FROM messages m
WHERE m.direction = 'inbound' AND m.created_at >= :start AND m.created_at < :end
GROUP BY GROUPING SETS ((1, 3), (1, 4), (2, 3), (2, 4))
""")

# A customer message's reply time: until TikTok took the bot's next answer in the
# conversation (not a staff reply, not a message the shop sent unasked). One pass over the
# period's messages (and a day after it, for the answers to its last ones), in conversation
# order: for each message, the earliest answer created at or after it. An ARRAY of the
# answer's creation and sending times, so that min() picks the first answer and keeps when
# it was sent (an answer never sent ends up last, and the message counts as unanswered).
_SPEED = text("""
SELECT day, count(*) AS answered,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90
FROM (
    SELECT (timezone(:tz, created_at))::date AS day,
           greatest(0, extract(epoch FROM reply[2] - asked_at)) AS seconds
    FROM (
        SELECT m.direction, m.created_at, coalesce(m.sent_at, m.created_at) AS asked_at,
               min(CASE WHEN m.direction = 'outbound' THEN ARRAY[m.created_at, m.sent_at] END)
                   -- Latest first, so that "from here on" is a running minimum: one pass.
                   OVER (PARTITION BY m.conversation_id ORDER BY m.created_at DESC, m.id DESC
                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS reply
        FROM messages m
        WHERE m.created_at >= :start
          AND m.created_at < CAST(:end AS timestamptz) + interval '1 day'
          AND (m.direction = 'inbound'
               OR (m.sent_by = 'bot' AND m.proactive_kind IS NULL))
    ) ordered
    WHERE direction = 'inbound' AND created_at < :end AND reply[2] IS NOT NULL
) answered
GROUP BY day
ORDER BY day
""")

# From each hand-off (the bot handing a conversation to a person) to a person's first reply
# in that conversation, for every hand-off and per reason.
_HANDOFF = text("""
SELECT h.reason, GROUPING(h.reason) AS every,
       count(*) AS handed_over, count(reply.sent_at) AS answered,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM reply.sent_at - h.started_at)) AS p50,
       percentile_cont(0.9) WITHIN GROUP (
           ORDER BY extract(epoch FROM reply.sent_at - h.started_at)) AS p90
FROM handoffs h
LEFT JOIN LATERAL (
    SELECT coalesce(o.sent_at, o.created_at) AS sent_at FROM messages o
    WHERE o.conversation_id = h.conversation_id AND o.created_at >= h.started_at
      AND o.direction = 'outbound' AND o.sent_by = 'staff'
    ORDER BY o.created_at, o.id
    LIMIT 1
) reply ON true
WHERE h.started_at >= :start AND h.started_at < :end
GROUP BY GROUPING SETS ((), (h.reason))
ORDER BY GROUPING(h.reason) DESC, count(*) DESC, h.reason
""")

_FUNNEL = text("""
SELECT
  (SELECT count(DISTINCT m.conversation_id) FROM messages m
     WHERE m.direction = 'inbound'
       AND m.created_at >= :start AND m.created_at < :end) AS conversations,
  (SELECT count(DISTINCT m.conversation_id) FROM messages m
     WHERE m.direction = 'inbound'
       AND m.created_at >= :start AND m.created_at < :end AND m.intent = ANY(:piece_intents))
     AS asked_about_piece,
  (SELECT count(*) FROM holds h WHERE h.customer_id IS NOT NULL
     AND h.created_at >= :start AND h.created_at < :end) AS holds,
  (SELECT count(*) FROM holds h WHERE h.customer_id IS NOT NULL AND h.status = 'converted'
     AND h.created_at >= :start AND h.created_at < :end) AS sales,
  (SELECT count(*) FROM holds h WHERE h.customer_id IS NOT NULL AND h.status = 'expired'
     AND h.created_at >= :start AND h.created_at < :end) AS expired
""")

# What each kind of unasked message led to: a reply from the customer within a day, a
# hold of theirs within two days, and that hold becoming a sale.
_PROACTIVE = text("""
SELECT m.proactive_kind AS kind,
       count(*) FILTER (WHERE m.status = 'sent') AS sent,
       count(*) FILTER (WHERE m.status IN ('not_sent', 'failed')) AS not_sent,
       count(*) FILTER (WHERE m.status = 'sent' AND EXISTS (
           SELECT 1 FROM messages r
           WHERE r.conversation_id = m.conversation_id AND r.direction = 'inbound'
             AND r.created_at > m.created_at
             AND r.created_at <= m.created_at + interval '1 day')) AS replied,
       count(*) FILTER (WHERE m.status = 'sent' AND EXISTS (
           SELECT 1 FROM holds h
           WHERE h.customer_id = c.customer_id AND h.created_at > m.created_at
             AND h.created_at <= m.created_at + interval '2 days')) AS holds,
       count(*) FILTER (WHERE m.status = 'sent' AND EXISTS (
           SELECT 1 FROM holds h
           WHERE h.customer_id = c.customer_id AND h.created_at > m.created_at
             AND h.created_at <= m.created_at + interval '2 days'
             AND h.status = 'converted')) AS sales
FROM messages m
JOIN conversations c ON c.id = m.conversation_id
WHERE m.direction = 'outbound' AND m.proactive_kind IS NOT NULL
  AND m.created_at >= :start AND m.created_at < :end
  AND m.message_type = 'text'
GROUP BY m.proactive_kind
ORDER BY m.proactive_kind
""")

# Demand per piece: the DMs that asked about it (named by SKU, or the piece the answer was
# about however it was named), its holds in the period, the customers waiting for it now.
_DEMAND = text("""
WITH asked AS (
    SELECT piece.sku, count(DISTINCT m.id) AS asked
    FROM messages m
    CROSS JOIN LATERAL (
        SELECT m.entities ->> 'sku'
        UNION
        SELECT jsonb_array_elements_text(
            CASE WHEN jsonb_typeof(m.entities -> 'pieces') = 'array'
                 THEN m.entities -> 'pieces' ELSE '[]'::jsonb END)
    ) AS piece(sku)
    WHERE m.direction = 'inbound'
      AND m.created_at >= :start AND m.created_at < :end
      AND (m.entities ? 'sku' OR m.entities ? 'pieces') AND piece.sku IS NOT NULL
    GROUP BY 1
), held AS (
    SELECT h.item_id, count(*) AS holds FROM holds h
    WHERE h.customer_id IS NOT NULL AND h.created_at >= :start AND h.created_at < :end
    GROUP BY 1
)
SELECT i.sku, i.title, i.status, coalesce(asked.asked, 0) AS asked,
       coalesce(held.holds, 0) AS holds,
       (SELECT count(*) FROM waitlist w WHERE w.item_id = i.id AND w.notified_at IS NULL)
           AS waitlist,
       i.created_at AS listed_at
FROM items i
LEFT JOIN asked ON asked.sku = i.sku
LEFT JOIN held ON held.item_id = i.id
WHERE asked.asked IS NOT NULL OR held.holds IS NOT NULL
ORDER BY coalesce(asked.asked, 0) DESC, coalesce(held.holds, 0) DESC, i.sku
LIMIT :limit
""")

_SIZES_ASKED = text("""
SELECT m.entities ->> 'size' AS size, count(*) AS asked
FROM messages m
WHERE m.direction = 'inbound'
  AND m.created_at >= :start AND m.created_at < :end AND m.entities ? 'size'
GROUP BY 1
ORDER BY 2 DESC, 1
""")

_MISSED = text("""
SELECT
  count(*) FILTER (WHERE m.status_reason LIKE 'window closed%') AS window_closed,
  count(*) FILTER (WHERE m.status_reason LIKE 'reply quota%') AS quota,
  count(*) FILTER (WHERE m.status_reason IS NULL OR (m.status_reason NOT LIKE 'window closed%'
                   AND m.status_reason NOT LIKE 'reply quota%')) AS other,
  (SELECT count(*) FROM dead_letters d WHERE d.created_at >= :start AND d.created_at < :end)
      AS dead_letters,
  -- Customer messages the worker reached only after their window had closed (a backlog,
  -- TikTok delivering late): recorded, never answered.
  (SELECT count(*) FROM messages i
     WHERE i.direction = 'inbound' AND i.status_reason LIKE 'window closed%'
       AND i.created_at >= :start AND i.created_at < :end) AS unanswered
FROM messages m
WHERE m.direction = 'outbound' AND m.status IN ('not_sent', 'failed')
  AND m.created_at >= :start AND m.created_at < :end
""")

# Conversations a person has taken and not yet answered since.
_WAITING = text("""
SELECT c.id, coalesce('@' || cu.username, cu.tiktok_user_id) AS customer, c.human_since
FROM conversations c
JOIN customers cu ON cu.id = c.customer_id
WHERE c.mode = 'human' AND c.human_since IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM messages o
      WHERE o.conversation_id = c.id AND o.direction = 'outbound' AND o.sent_by = 'staff'
        AND o.created_at >= c.human_since)
ORDER BY c.human_since
LIMIT :limit
""")


class InsightsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def with_room_to_sort(self) -> None:
        """A month of messages is sorted and grouped in memory: PostgreSQL's default 4 MB
        per sort would spill it to disk. For this transaction only."""
        await self.session.execute(text("SET LOCAL work_mem = '64MB'"))

    def _period(self, start: datetime, end: datetime, tz: str) -> dict[str, Any]:
        return {"start": start, "end": end, "tz": tz}

    async def volume(self, start: datetime, end: datetime, tz: str) -> list[VolumeRow]:
        rows = await self.session.execute(_VOLUME, self._period(start, end, tz))
        return [VolumeRow(*row) for row in rows.all()]

    async def speed(self, start: datetime, end: datetime, tz: str) -> list[SpeedRow]:
        rows = await self.session.execute(_SPEED, self._period(start, end, tz))
        return [
            SpeedRow(day, int(answered), float(p50), float(p90))
            for day, answered, p50, p90 in rows.all()
        ]

    async def handoff_speed(self, start: datetime, end: datetime, tz: str) -> list[HandoffSpeed]:
        """Every hand-off first, then each reason, most frequent first."""
        rows = await self.session.execute(_HANDOFF, self._period(start, end, tz))
        return [
            HandoffSpeed(
                None if every else reason,
                int(handed_over),
                int(answered),
                float(p50) if p50 is not None else None,
                float(p90) if p90 is not None else None,
            )
            for reason, every, handed_over, answered, p50, p90 in rows.all()
        ]

    async def funnel(self, start: datetime, end: datetime, tz: str) -> Funnel:
        values = {**self._period(start, end, tz), "piece_intents": list(PIECE_INTENTS)}
        row = (await self.session.execute(_FUNNEL, values)).one()
        return Funnel(*(int(value) for value in row))

    async def proactive(self, start: datetime, end: datetime, tz: str) -> list[ProactiveRow]:
        rows = await self.session.execute(_PROACTIVE, self._period(start, end, tz))
        return [ProactiveRow(kind, *(int(v) for v in rest)) for kind, *rest in rows.all()]

    async def demand(
        self, start: datetime, end: datetime, tz: str, limit: int = 20
    ) -> list[PieceDemand]:
        rows = await self.session.execute(_DEMAND, {**self._period(start, end, tz), "limit": limit})
        return [
            PieceDemand(sku, title, status, int(asked), int(holds), int(waitlist), listed_at)
            for sku, title, status, asked, holds, waitlist, listed_at in rows.all()
        ]

    async def sizes_asked(self, start: datetime, end: datetime, tz: str) -> list[tuple[str, int]]:
        rows = await self.session.execute(_SIZES_ASKED, self._period(start, end, tz))
        return [(size, int(asked)) for size, asked in rows.all()]

    async def missed(self, start: datetime, end: datetime, tz: str) -> Missed:
        row = (await self.session.execute(_MISSED, self._period(start, end, tz))).one()
        return Missed(*(int(value) for value in row))

    async def waiting_handoffs(self, limit: int = 50) -> list[WaitingHandoff]:
        rows = await self.session.execute(_WAITING, {"limit": limit})
        return [WaitingHandoff(*row) for row in rows.all()]
