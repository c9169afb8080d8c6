"""The catalogue's version: replaced by a trigger whenever pieces are added, removed or
renamed, so workers keep their word index of the catalogue until it changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# An upsert, not an update: the row may have been truncated away with the rest of the
# tables (a test reset, a restore), and the next change to the catalogue brings it back.
_BUMP = """
CREATE FUNCTION bump_catalog_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog_version (id, version) VALUES (1, gen_random_uuid())
    ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version;
    RETURN NULL;
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "catalog_version",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.Uuid(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_catalog_version_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_version")),
    )
    op.execute("INSERT INTO catalog_version (id, version) VALUES (1, gen_random_uuid())")
    op.execute(_BUMP)
    # Statement-level: an import of thousands of rows bumps the version once.
    op.execute(
        "CREATE TRIGGER items_catalog_version "
        "AFTER INSERT OR DELETE OR UPDATE OF sku, title, brand, color, category ON items "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version()"
    )
    op.execute(
        "CREATE TRIGGER items_catalog_version_truncate AFTER TRUNCATE ON items "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER items_catalog_version_truncate ON items")
    op.execute("DROP TRIGGER items_catalog_version ON items")
    op.execute("DROP FUNCTION bump_catalog_version()")
    op.drop_table("catalog_version")
