"""A baseline for `make bench`: the same server and framework, none of the work."""

from __future__ import annotations

from fastapi import APIRouter, Request

router = APIRouter(include_in_schema=False)


@router.post("/_bench/bare")
async def bare(request: Request) -> dict[str, str]:
    await request.body()
    return {"status": "ok"}
