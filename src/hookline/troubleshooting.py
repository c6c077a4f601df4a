"""What an attempt's outcome means, in plain words: the reference help page's troubleshooting
guide by response code, extended to every way a delivery can fail."""

from __future__ import annotations

from .models import Attempt, ErrorKind

_BY_STATUS = {
    200: "Success: the webhook was delivered.",
    400: "Bad Request: the receiver could not use the request. Check that it expects JSON with "
    "`action` and `data`, and reads the raw body.",
    401: "Unauthorized: the receiver refused the request. Check the secret it verifies "
    "signatures with.",
    403: "Forbidden: the receiver refused the request, often because the signature did not "
    "match. Check that it verifies the raw body with the webhook's secret.",
    404: "Not Found: nothing answers at that address. Check that the Payload URL is correct "
    "and that the server there accepts webhooks.",
    405: "Method Not Allowed: the receiver does not accept POST at that address. Check the "
    "Payload URL.",
    408: "Request Timeout: the receiver gave up reading the request. It will be retried.",
    410: "Gone: the receiver says this address is gone for good. Update or remove the webhook.",
    413: "Payload Too Large: the receiver refuses bodies this big. Raise its limit.",
    429: "Too Many Requests: the receiver asked hookline to slow down; the retry waits as long "
    "as it asked (Retry-After).",
    500: "Internal Server Error: there was a problem on the receiving server. It will be "
    "retried; check that the server is up and running and has no issues.",
    502: "Bad Gateway: a proxy in front of the receiver could not reach it. Check that the "
    "server is up; it will be retried.",
    503: "Service Unavailable: the receiving server is down or overloaded. It will be retried.",
    504: "Gateway Timeout: a proxy in front of the receiver waited too long for it. Answer "
    "faster; it will be retried.",
}


def explain(attempt: Attempt) -> str:
    """One or two sentences on what happened and what to do about it."""
    status = attempt.response_status
    if attempt.error_kind not in (None, ErrorKind.BAD_STATUS, ErrorKind.REDIRECT):
        assert attempt.error_kind is not None
        return attempt.error_kind.explanation
    if status is None:
        return "No answer was recorded."
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 200 <= status < 300:
        return f"Success ({status}): the webhook was delivered."
    if 300 <= status < 400:
        return ErrorKind.REDIRECT.explanation
    if 400 <= status < 500:
        return (
            f"The receiver rejected the request ({status}). Check the Payload URL and what "
            "the receiver expects; it will be retried."
        )
    return (
        f"The receiving server failed ({status}). It will be retried; check that the server "
        "is up and running."
    )
