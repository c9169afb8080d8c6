"""The import commands as the shop runs them: a subprocess, an exit code, one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.config import PROJECT_ROOT
from app.db.models import Item, Order
from tests.conftest import TestServices


def cli(services: TestServices, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def counts(engine: AsyncEngine) -> tuple[int, int]:
    async with AsyncSession(engine) as session:
        items = await session.scalar(select(func.count()).select_from(Item))
        orders = await session.scalar(select(func.count()).select_from(Order))
        return int(items or 0), int(orders or 0)


async def test_reference_shop_imports_and_exports(
    services: TestServices, committed_db: AsyncEngine, shared_dir: Path, tmp_path: Path
) -> None:
    catalog = shared_dir / "data" / "catalog.csv"
    first = cli(services, "catalog", "import", str(catalog))
    assert first.returncode == 0, first.stderr
    assert "24 created" in first.stdout
    again = cli(services, "catalog", "import", str(catalog))
    assert "0 created, 0 updated, 24 unchanged" in again.stdout
    orders = cli(services, "orders", "import", str(shared_dir / "data" / "orders.csv"))
    assert orders.returncode == 0 and "5 created" in orders.stdout
    assert await counts(committed_db) == (24, 5)
    exported = tmp_path / "export.csv"
    assert cli(services, "catalog", "export", "-o", str(exported)).returncode == 0
    assert exported.read_text() == catalog.read_text()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda text: text.replace(
                "PT-0007,The North Face Nuptse 700 Puffer", "PT-0007,x", 1
            ).replace("160.00", "1O0.00"),
            "column price: '1O0.00'",
        ),
        (
            lambda text: text.replace("PT-0009,", "PT-0008,", 1),
            "column sku: duplicate PT-0008",
        ),
        (
            lambda text: text.replace(",condition,", ",state,", 1),
            "row 1, column condition: missing column",
        ),
    ],
    ids=["bad-price", "duplicate-sku", "missing-column"],
)
async def test_bad_files_fail_with_one_clear_line_and_change_nothing(
    services: TestServices,
    committed_db: AsyncEngine,
    shared_dir: Path,
    tmp_path: Path,
    mutate: object,
    message: str,
) -> None:
    catalog = shared_dir / "data" / "catalog.csv"
    assert cli(services, "catalog", "import", str(catalog)).returncode == 0
    before = await counts(committed_db)
    bad = tmp_path / "bad.csv"
    bad.write_text(mutate(catalog.read_text().replace("120.00", "99.00")))  # type: ignore[operator]
    result = cli(services, "catalog", "import", str(bad))
    assert result.returncode == 1
    assert message in result.stderr and "nothing was imported" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert await counts(committed_db) == before
    async with AsyncSession(committed_db) as session:
        price = await session.scalar(select(Item.price).where(Item.sku == "PT-0001"))
    assert str(price) == "120.00"  # the good rows of the failed file were not kept either


def test_missing_file_is_a_clear_error(services: TestServices, tmp_path: Path) -> None:
    result = cli(services, "catalog", "import", str(tmp_path / "nope.csv"))
    assert result.returncode == 1 and "cannot read" in result.stderr
