from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def test_schema_is_built_by_alembic(session: AsyncSession) -> None:
    version = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    assert version == "0001"
