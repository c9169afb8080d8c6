from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.migrate import alembic_config


async def test_schema_is_built_by_alembic(session: AsyncSession) -> None:
    version = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    head = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()
    assert head is not None and version == head
