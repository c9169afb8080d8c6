from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utc_now
from app.db.models import StaffUser


class StaffRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, staff_id: int) -> StaffUser | None:
        return await self.session.get(StaffUser, staff_id)

    async def get_by_email(self, email: str) -> StaffUser | None:
        if "\x00" in email:
            # PostgreSQL text cannot hold U+0000 (it refuses the query), so no account has it.
            return None
        # Emails are stored normalised (lower case), so an equality match is exact.
        return await self.session.scalar(select(StaffUser).where(StaffUser.email == email))

    async def create(self, email: str, display_name: str, password_hash: str) -> StaffUser:
        staff = StaffUser(
            email=email, display_name=display_name, password_hash=password_hash, is_active=True
        )
        self.session.add(staff)
        await self.session.flush()
        return staff

    async def all(self) -> Sequence[StaffUser]:
        return (await self.session.scalars(select(StaffUser).order_by(StaffUser.email))).all()

    async def set_password_hash(self, staff_id: int, password_hash: str) -> None:
        await self.session.execute(
            update(StaffUser).where(StaffUser.id == staff_id).values(password_hash=password_hash)
        )

    async def record_login(self, staff_id: int) -> None:
        await self.session.execute(
            update(StaffUser).where(StaffUser.id == staff_id).values(last_login_at=utc_now())
        )
