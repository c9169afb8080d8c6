"""Hand-offs: when the bot handed a conversation to a person and why, so the staff's
insights can time a person's first reply from every hand-off, not only from a customer's
asking. The customers' requests already in the history become hand-offs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "handoffs",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_handoffs_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoffs")),
    )
    op.create_index(
        op.f("ix_handoffs_conversation_id"), "handoffs", ["conversation_id"], unique=False
    )
    op.create_index(op.f("ix_handoffs_started_at"), "handoffs", ["started_at"], unique=False)
    op.execute(
        "INSERT INTO handoffs (conversation_id, started_at, reason) "
        "SELECT conversation_id, created_at, 'customer asked for a person' FROM messages "
        "WHERE direction = 'inbound' AND intent = 'human' ORDER BY created_at"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_handoffs_started_at"), table_name="handoffs")
    op.drop_index(op.f("ix_handoffs_conversation_id"), table_name="handoffs")
    op.drop_table("handoffs")
