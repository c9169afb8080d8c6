from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import TikTokCredential

# The shop has one TikTok connection, so the credential table holds exactly one row.
CREDENTIAL_ROW_ID = 1


class TikTokCredentialRepository:
    """The row as stored: the token columns hold whatever the caller passes, which is the
    sealed form (see `DbTokenStore`); this layer never sees a key."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self) -> TikTokCredential | None:
        return await self.session.scalar(
            select(TikTokCredential)
            .where(TikTokCredential.id == CREDENTIAL_ROW_ID)
            .execution_options(populate_existing=True)
        )

    async def seed(self, access_token: str, refresh_token: str) -> bool:
        """Create the row from the configured tokens unless it exists: ON CONFLICT keeps two
        workers that start together from failing, and never overwrites rotated tokens.
        True when this call created it."""
        inserted = await self.session.scalar(
            insert(TikTokCredential)
            .values(id=CREDENTIAL_ROW_ID, access_token=access_token, refresh_token=refresh_token)
            .on_conflict_do_nothing(index_elements=[TikTokCredential.id])
            .returning(TikTokCredential.id)
        )
        return inserted is not None

    async def save(
        self,
        *,
        access_token: str,
        access_expires_at: datetime | None,
        refresh_token: str,
        refresh_expires_at: datetime | None,
    ) -> None:
        await self._upsert(
            {
                "access_token": access_token,
                "access_expires_at": access_expires_at,
                "refresh_token": refresh_token,
                "refresh_expires_at": refresh_expires_at,
            }
        )

    async def connect(
        self,
        *,
        access_token: str,
        access_expires_at: datetime,
        refresh_token: str,
        refresh_expires_at: datetime,
        open_id: str,
        scope: str | None,
        connected_at: datetime,
    ) -> None:
        """The pair of a new authorisation, with the account it was granted for: replaces
        whatever was stored (another account's tokens included)."""
        await self._upsert(
            {
                "access_token": access_token,
                "access_expires_at": access_expires_at,
                "refresh_token": refresh_token,
                "refresh_expires_at": refresh_expires_at,
                "open_id": open_id,
                "scope": scope,
                "connected_at": connected_at,
            }
        )

    async def _upsert(self, values: dict[str, object]) -> None:
        """Write these columns of the one row, creating it if needed; others are kept."""
        statement = insert(TikTokCredential).values(id=CREDENTIAL_ROW_ID, **values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[TikTokCredential.id],
                set_={**values, "updated_at": func.now()},
            )
        )

    async def open_id(self) -> str | None:
        """The connected account's open_id; None when not connected through OAuth."""
        return await self.session.scalar(
            select(TikTokCredential.open_id).where(TikTokCredential.id == CREDENTIAL_ROW_ID)
        )

    async def replace_tokens_if_unchanged(
        self,
        *,
        access_token: str,
        refresh_token: str,
        expected_access_token: str,
        expected_refresh_token: str,
    ) -> bool:
        """Rewrite the two token columns only if they still hold the expected values: a
        legacy row is sealed without overwriting a pair another worker rotated meanwhile.
        True when the row was rewritten."""
        rewritten = await self.session.scalar(
            update(TikTokCredential)
            .where(
                TikTokCredential.id == CREDENTIAL_ROW_ID,
                TikTokCredential.access_token == expected_access_token,
                TikTokCredential.refresh_token == expected_refresh_token,
            )
            .values(access_token=access_token, refresh_token=refresh_token, updated_at=func.now())
            .returning(TikTokCredential.id)
        )
        return rewritten is not None
