"""The one base of the app's domain errors, each with the HTTP status it means.

Services raise these (a conversation that does not exist, a reply the window refuses); one
handler (app.api.error_handlers) turns any of them into the answer: JSON for the API and
scripts, the staff error page for a browser. No route translates them by hand."""

from __future__ import annotations


class PhiliaError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.code.replace("_", " ")
        super().__init__(self.detail)


class Unauthorized(PhiliaError):
    status_code = 401
    code = "invalid_signature"


class NotAuthenticated(PhiliaError):
    status_code = 401
    code = "not_authenticated"


class BadPayload(PhiliaError):
    status_code = 400
    code = "bad_payload"


class PayloadTooLarge(PhiliaError):
    status_code = 413
    code = "payload_too_large"


class QueueUnavailable(PhiliaError):
    status_code = 503
    code = "queue_unavailable"


class NotFound(PhiliaError):
    status_code = 404
    code = "not_found"


class Conflict(PhiliaError):
    status_code = 409
    code = "conflict"
