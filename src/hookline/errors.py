"""The errors hookline raises to its callers.

Domain errors say why a request cannot be done; the API turns each into a status code and a
``{"code", "detail"}`` body, the CLI into a message. Delivery outcomes are not exceptions: a
failed attempt is data (see ``models.ErrorKind``).

    HooklineError
     ├── InvalidInput            a field is wrong (422)
     │    └── UnknownTopic       the topic is not in the catalog (422)
     ├── InvalidJSON             the body is not JSON (400)
     ├── PayloadTooLarge         the body is over the limit (413)
     ├── Unauthorized            no or wrong API key (401)
     ├── Forbidden               the key may not do this (403)
     ├── NotFound                no such object for this tenant (404)
     ├── RateLimited             too many requests for this key; try after a while (429)
     ├── Conflict                the request clashes with what is stored (409)
     │    └── IdempotencyConflict  an Idempotency-Key reused with another body (409)
     ├── StoreUnavailable        the database cannot be reached (503)
     └── ConfigurationError      a setting cannot work (the process does not start)
"""

from __future__ import annotations


class HooklineError(Exception):
    """hookline could not do what was asked."""

    code = "error"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or (self.__doc__ or self.code).strip()
        super().__init__(self.detail)


class InvalidInput(HooklineError):
    """A field has an invalid value."""

    code = "invalid_input"

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        super().__init__(f"{field}: {detail}")
        self.message = detail


class UnknownTopic(InvalidInput):
    """The topic is not in the catalog."""

    code = "unknown_topic"

    def __init__(self, field: str, topic: str, valid: list[str]) -> None:
        self.topic = topic
        self.valid = valid
        super().__init__(field, f"unknown topic {topic!r}; valid topics: {', '.join(valid)}")


class InvalidJSON(HooklineError):
    """The request body is not valid JSON."""

    code = "invalid_json"


class PayloadTooLarge(HooklineError):
    """The request body is larger than the configured limit."""

    code = "payload_too_large"


class Unauthorized(HooklineError):
    """A valid API key is required: send `Authorization: Bearer <api key>`."""

    code = "unauthorized"


class Forbidden(HooklineError):
    """This API key may not do that."""

    code = "forbidden"


class NotFound(HooklineError):
    """No such object."""

    code = "not_found"


class RateLimited(HooklineError):
    """Too many requests with this API key; try again after a moment."""

    code = "rate_limited"

    def __init__(self, detail: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Conflict(HooklineError):
    """The request conflicts with the current state."""

    code = "conflict"


class IdempotencyConflict(Conflict):
    """This Idempotency-Key was already used with a different request body."""

    code = "idempotency_conflict"


class StoreUnavailable(HooklineError):
    """The database cannot be reached; nothing was stored. Try again."""

    code = "store_unavailable"


class ConfigurationError(HooklineError):
    """A setting has a value hookline cannot work with."""

    code = "configuration_error"
