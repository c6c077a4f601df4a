"""Settings: one frozen object built from ``HOOKLINE_*`` environment variables and CLI flags.

Every setting, its variable and its default are declared here once; ``hookline settings``
prints them and ``docs/configuration.md`` is checked against them by the tests.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .retry import RetryPolicy, parse_duration, parse_schedule

DEFAULT_DATABASE_URL = "sqlite:///hookline-data/hookline.db"
DEFAULT_SCHEDULE = "0s,5s,5m,30m,2h,5h,10h,10h"


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


def _log_format(text: str) -> str:
    if text not in ("text", "json"):
        raise ValueError(f"not a log format: {text!r} (use text or json)")
    return text


def _log_level(text: str) -> str:
    if text.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"not a log level: {text!r} (use DEBUG, INFO, WARNING or ERROR)")
    return text.upper()


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(
        ipaddress.ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip()
    )


def _setting(default: Any, env: str, doc: str, parse: Callable[[str], Any] = str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc, "parse": parse})


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    database_url: str = _setting(
        DEFAULT_DATABASE_URL,
        "HOOKLINE_DATABASE_URL",
        "Where hookline keeps its data: sqlite:///path/to/file.db (the default, a file under "
        "./hookline-data).",
    )
    db_pool_size: int = _setting(
        10,
        "HOOKLINE_DB_POOL_SIZE",
        "PostgreSQL connections each process keeps at most (one more listens for work).",
        int,
    )
    host: str = _setting("127.0.0.1", "HOOKLINE_HOST", "Address `hookline serve` listens on.")
    port: int = _setting(8000, "HOOKLINE_PORT", "Port `hookline serve` listens on.", int)
    public_url: str | None = _setting(
        None,
        "HOOKLINE_PUBLIC_URL",
        "The address people and receivers use to reach hookline (test inbox URLs start with "
        "it). Unset: http://HOST:PORT.",
    )
    portal_origins: tuple[str, ...] = _setting(
        (),
        "HOOKLINE_PORTAL_ORIGINS",
        "Comma-separated origins (https://app.example.com) whose pages may embed portal links "
        "in a frame; no other page may frame hookline.",
        lambda text: tuple(part.strip() for part in text.split(",") if part.strip()),
    )
    session_ttl: float = _setting(
        12 * 3600.0,
        "HOOKLINE_SESSION_TTL",
        "How long a web UI sign-in lasts.",
        parse_duration,
    )
    inbox_ttl: float = _setting(
        86400.0, "HOOKLINE_INBOX_TTL", "How long a test inbox lives.", parse_duration
    )
    inbox_keep: int = _setting(
        100, "HOOKLINE_INBOX_KEEP", "Requests a test inbox keeps (the newest).", int
    )
    inbox_body_max: int = _setting(
        262144, "HOOKLINE_INBOX_BODY_MAX", "Largest request body a test inbox accepts.", int
    )
    secret_key: str | None = _setting(
        None,
        "HOOKLINE_SECRET_KEY",
        "Base64 AES-256 keys that seal webhook secrets in the database, comma-separated, the "
        "first one sealing. Unset: a key file is used (HOOKLINE_SECRET_KEY_FILE).",
    )
    secret_key_file: str | None = _setting(
        None,
        "HOOKLINE_SECRET_KEY_FILE",
        "The key file, created once with 0600 permissions. Unset: secret.key next to the SQLite "
        "file, or ./hookline-data/secret.key.",
    )
    api_key: str | None = _setting(
        None,
        "HOOKLINE_API_KEY",
        "The admin API key. Unset: one is generated on first start, stored hashed and printed "
        "once.",
    )
    egress_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = _setting(
        (),
        "HOOKLINE_EGRESS_ALLOW",
        "Comma-separated CIDRs the egress guard lets deliveries reach although they are "
        "private, loopback or reserved (e.g. 127.0.0.1/32 for a receiver on this machine).",
        _networks,
    )
    egress_allow_metadata: bool = _setting(
        False,
        "HOOKLINE_EGRESS_ALLOW_METADATA",
        "Also let HOOKLINE_EGRESS_ALLOW open link-local and cloud metadata addresses "
        "(169.254.0.0/16, fe80::/10, 168.63.129.16), which it never opens alone.",
        _bool,
    )
    egress_https_only: bool = _setting(
        False,
        "HOOKLINE_EGRESS_HTTPS_ONLY",
        "Refuse http:// Payload URLs: only https:// is delivered to.",
        _bool,
    )
    retry_schedule: tuple[float, ...] = _setting(
        parse_schedule(DEFAULT_SCHEDULE),
        "HOOKLINE_RETRY_SCHEDULE",
        f"Delay before each attempt, the first included: {DEFAULT_SCHEDULE}.",
        parse_schedule,
    )
    retry_jitter: float = _setting(
        0.2,
        "HOOKLINE_RETRY_JITTER",
        "Spread of each retry delay, as a fraction (0.2 = ±20 %).",
        float,
    )
    retry_after_max: float = _setting(
        3600.0,
        "HOOKLINE_RETRY_AFTER_MAX",
        "Longest Retry-After a receiver can ask for (a duration, e.g. 1h).",
        parse_duration,
    )
    attempt_timeout: float = _setting(
        15.0,
        "HOOKLINE_ATTEMPT_TIMEOUT",
        "Total deadline of one attempt: connect, send, headers and body together.",
        parse_duration,
    )
    response_body_max: int = _setting(
        65536,
        "HOOKLINE_RESPONSE_BODY_MAX",
        "Bytes of a receiver's response body that are read and stored; the rest is never read.",
        int,
    )
    max_payload_bytes: int = _setting(
        1048576, "HOOKLINE_MAX_PAYLOAD_BYTES", "Largest event body accepted on publish.", int
    )
    max_header_bytes: int = _setting(
        16384,
        "HOOKLINE_MAX_HEADER_BYTES",
        "Largest total size of a request's headers; more gets 431.",
        int,
    )
    max_json_depth: int = _setting(
        32, "HOOKLINE_MAX_JSON_DEPTH", "Deepest nesting of objects and arrays in an event.", int
    )
    max_webhooks: int = _setting(
        1000, "HOOKLINE_MAX_WEBHOOKS", "Webhooks one tenant may have at most.", int
    )
    publish_rate: float = _setting(
        0.0,
        "HOOKLINE_PUBLISH_RATE",
        "Events per second one API key may publish (per process); 0: no limit.",
        float,
    )
    secret_overlap: float = _setting(
        86400.0,
        "HOOKLINE_SECRET_OVERLAP",
        "After a secret rotation, how long the old secret keeps signing beside the new one.",
        parse_duration,
    )
    signature_header: str = _setting(
        "X-PeopleForce-Signature",
        "HOOKLINE_SIGNATURE_HEADER",
        "Name of the header that carries sha256=<hex HMAC-SHA256(secret, body)>.",
    )
    validate_payloads: bool = _setting(
        False,
        "HOOKLINE_VALIDATE_PAYLOADS",
        "Reject published events whose data does not match the topic's JSON Schema.",
        _bool,
    )
    topics_file: str | None = _setting(
        None,
        "HOOKLINE_TOPICS_FILE",
        "A JSON file of extra topics ([{name, description, group, schema, example}]) added to "
        "the packaged catalog.",
    )
    concurrency: int = _setting(
        128,
        "HOOKLINE_CONCURRENCY",
        "First attempts a dispatcher keeps in flight at most.",
        int,
    )
    retry_concurrency: int = _setting(
        16,
        "HOOKLINE_RETRY_CONCURRENCY",
        "Retries a dispatcher keeps in flight at most, in slots of their own: a wave of "
        "retries never delays fresh events.",
        int,
    )
    max_in_flight: int = _setting(
        8,
        "HOOKLINE_MAX_IN_FLIGHT",
        "Requests in flight to one webhook at most, unless the webhook sets its own: a slow "
        "receiver cannot take every slot.",
        int,
    )
    disable_after: float = _setting(
        5 * 86400.0,
        "HOOKLINE_DISABLE_AFTER",
        "A webhook whose every attempt has failed for this long is disabled (410 Gone "
        "disables at once).",
        parse_duration,
    )
    failing_alert_after: int = _setting(
        10,
        "HOOKLINE_FAILING_ALERT_AFTER",
        "Consecutive failed attempts after which hookline.webhook_failing is published.",
        int,
    )
    replay_rate: float = _setting(
        50.0,
        "HOOKLINE_REPLAY_RATE",
        "Replayed deliveries are made due at most this many per second.",
        float,
    )
    ordered_failed_blocks: bool = _setting(
        False,
        "HOOKLINE_ORDERED_FAILED_BLOCKS",
        "For ordered webhooks: a delivery that failed for good holds back the ones after it "
        "until it is redelivered (default: it lets them go).",
        _bool,
    )
    log_format: str = _setting(
        "text", "HOOKLINE_LOG_FORMAT", "text, or json for one JSON object a line.", _log_format
    )
    log_level: str = _setting(
        "INFO", "HOOKLINE_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR.", _log_level
    )
    claim_batch: int = _setting(
        200, "HOOKLINE_CLAIM_BATCH", "Due deliveries a dispatcher claims at once at most.", int
    )
    lease_seconds: float = _setting(
        60.0,
        "HOOKLINE_LEASE",
        "How long a claimed delivery stays leased; a crashed dispatcher's deliveries are sent "
        "again after it. Must exceed the attempt timeout.",
        parse_duration,
    )
    poll_interval: float = _setting(
        1.0,
        "HOOKLINE_POLL_INTERVAL",
        "Longest a dispatcher sleeps before looking for due deliveries that nothing announced.",
        parse_duration,
    )
    retention: float = _setting(
        30 * 86400.0,
        "HOOKLINE_RETENTION",
        "How long events, their deliveries and attempts are kept (e.g. 30d).",
        parse_duration,
    )
    purge_interval: float = _setting(
        600.0,
        "HOOKLINE_PURGE_INTERVAL",
        "How often a dispatching process deletes what is older than the retention window.",
        parse_duration,
    )
    purge_batch: int = _setting(
        500,
        "HOOKLINE_PURGE_BATCH",
        "Events deleted per transaction when purging, so delivery never waits long behind it.",
        int,
    )
    idempotency_ttl: float = _setting(
        86400.0,
        "HOOKLINE_IDEMPOTENCY_TTL",
        "How long a publish's Idempotency-Key is remembered.",
        parse_duration,
    )

    def __post_init__(self) -> None:
        if self.lease_seconds <= self.attempt_timeout:
            raise ValueError(
                "HOOKLINE_LEASE must be longer than HOOKLINE_ATTEMPT_TIMEOUT, or deliveries "
                "still in flight would be sent twice"
            )
        for name in (
            "concurrency",
            "claim_batch",
            "max_payload_bytes",
            "response_body_max",
            "db_pool_size",
            "purge_batch",
            "inbox_keep",
            "inbox_body_max",
            "retry_concurrency",
            "max_in_flight",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        """Settings from ``env`` (e.g. ``os.environ``); ``overrides`` (CLI flags) win."""
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = env.get(spec.metadata["env"])
            if raw is not None and raw != "":
                try:
                    values[spec.name] = spec.metadata["parse"](raw)
                except ValueError as exc:
                    raise ValueError(f"{spec.metadata['env']}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def key_file(self) -> Path:
        if self.secret_key_file:
            return Path(self.secret_key_file)
        if self.database_url.startswith("sqlite:///"):
            database = self.database_url.removeprefix("sqlite:///")
            return Path(database).parent / "secret.key"
        return Path("hookline-data") / "secret.key"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def inbox_prefix(self) -> str:
        """Webhooks whose URL starts with this are delivered to a test inbox, in-process."""
        return f"{self.base_url}/inbox/"

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.retry_schedule, self.retry_jitter, self.retry_after_max)


def redacted(url: str) -> str:
    """The URL without its password, for logs and banners."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def documented_settings() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting."""
    rows = []
    for spec in fields(Settings):
        default = spec.default
        if spec.name == "retry_schedule":
            default = DEFAULT_SCHEDULE
        elif default is None or default == ():
            default = "(unset)"
        rows.append((spec.metadata["env"], str(default), spec.metadata["doc"]))
    return rows
