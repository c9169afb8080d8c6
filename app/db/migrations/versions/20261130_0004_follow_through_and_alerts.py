"""Follow-through and alerts: a hold remembers its reminder and the order that made it a
sale, a message says which kind of unasked message it was, a customer when they last got
one, an order line when its sale was applied, and customers can opt in to hear about new
pieces (alert_subscriptions); messages and
holds are indexed by when they were made, for the staff's insights over a period.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = "'hold_reminder', 'sale_confirmation', 'waitlist_back', 'waitlist_sold', 'drop_alert'"
_CATEGORIES = "'tops', 'outerwear', 'bottoms', 'dresses', 'shoes', 'accessories'"


def upgrade() -> None:
    op.add_column(
        "customers", sa.Column("last_proactive_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("holds", sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("holds", sa.Column("order_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_holds_order_id_orders"),
        "holds",
        "orders",
        ["order_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column("messages", sa.Column("proactive_kind", sa.String(length=24), nullable=True))
    op.create_check_constraint(
        op.f("ck_messages_proactive_kind_valid"), "messages", f"proactive_kind IN ({_KINDS})"
    )
    op.create_table(
        "alert_subscriptions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("size", sa.String(length=8), nullable=True),
        sa.Column("seen_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            f"category IN ({_CATEGORIES})", name=op.f("ck_alert_subscriptions_category_valid")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_alert_subscriptions_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_subscriptions")),
    )
    op.add_column("order_items", sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True))
    # The lines already there are history: their pieces are as the shop left them.
    op.execute("UPDATE order_items SET settled_at = now() WHERE settled_at IS NULL")
    op.create_index(
        "ix_order_items_unsettled",
        "order_items",
        ["item_id"],
        unique=False,
        postgresql_where=sa.text("settled_at IS NULL"),
    )
    op.create_index("ix_messages_created_at", "messages", ["created_at"], unique=False)
    op.create_index("ix_holds_created_at", "holds", ["created_at"], unique=False)
    op.create_index(
        "ix_alert_subscriptions_active",
        "alert_subscriptions",
        ["customer_id"],
        unique=False,
        postgresql_where=sa.text("stopped_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_order_items_unsettled", table_name="order_items")
    op.drop_column("order_items", "settled_at")
    op.drop_index("ix_holds_created_at", table_name="holds")
    op.drop_index("ix_messages_created_at", table_name="messages")
    op.drop_index("ix_alert_subscriptions_active", table_name="alert_subscriptions")
    op.drop_table("alert_subscriptions")
    op.drop_constraint(op.f("ck_messages_proactive_kind_valid"), "messages", type_="check")
    op.drop_column("messages", "proactive_kind")
    op.drop_constraint(op.f("fk_holds_order_id_orders"), "holds", type_="foreignkey")
    op.drop_column("holds", "order_id")
    op.drop_column("holds", "reminded_at")
    op.drop_column("customers", "last_proactive_at")
