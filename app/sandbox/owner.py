"""Playing the shop owner on the sandbox's authorisation page, as a browser would: open the
link the bot made, answer the form, and read where TikTok sends the browser back to. The
bot's callback is then opened with that address (by the test or the CLI), exactly as the
owner's browser would open it."""

from __future__ import annotations

from urllib.parse import urljoin

import httpx


class AuthorisationPageError(Exception):
    pass


async def authorise_as_owner(
    http: httpx.AsyncClient,
    link: str,
    *,
    decision: str = "authorise",
    scopes: list[str] | None = None,
    code_parameter: str = "auth_code",
) -> str:
    """The address TikTok's page redirects the owner to after their answer. `scopes`: the
    boxes left ticked (None: all that were asked for)."""
    page = await http.get(link)
    if page.status_code != 200:
        raise AuthorisationPageError(f"authorisation page answered {page.status_code}")
    query = httpx.URL(link).params
    form: dict[str, str | list[str]] = {
        "app_id": query.get("app_id", ""),
        "redirect_uri": query.get("redirect_uri", ""),
        "state": query.get("state", ""),
        "decision": decision,
        "code_parameter": code_parameter,
        "scope": scopes
        if scopes is not None
        else [part for part in query.get("scope", "").split(",") if part],
    }
    answer = await http.post(urljoin(link, "/portal/auth"), data=form, follow_redirects=False)
    if answer.status_code not in (302, 303) or "location" not in answer.headers:
        raise AuthorisationPageError(f"authorisation answered {answer.status_code}")
    return answer.headers["location"]
