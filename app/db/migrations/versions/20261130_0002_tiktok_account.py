"""The connected TikTok account: open_id and granted scopes beside the tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tiktok_credentials", sa.Column("open_id", sa.String(length=255), nullable=True))
    op.add_column("tiktok_credentials", sa.Column("scope", sa.Text(), nullable=True))
    op.add_column(
        "tiktok_credentials",
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("tiktok_credentials", "connected_at")
    op.drop_column("tiktok_credentials", "scope")
    op.drop_column("tiktok_credentials", "open_id")
