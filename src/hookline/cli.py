"""The ``hookline`` command: run the service, and manage it from a shell.

Management commands call the service directly on the database (``--db`` or
``HOOKLINE_DATABASE_URL``); a running ``hookline serve`` picks up what they change.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.progress import Progress
from rich.syntax import Syntax
from rich.table import Column, Table

from .__about__ import __version__
from .api.schemas import (
    delivery_detail_json,
    delivery_json,
    event_accepted_json,
    iso,
    tenant_json,
    topic_json,
    webhook_json,
)
from .config import Settings, documented_settings, redacted
from .errors import HooklineError
from .logs import configure_logging
from .models import DEFAULT_TENANT, DeliveryFilter, DeliveryStatus
from .retry import parse_duration
from .runtime import Runtime, first_key_notice
from .secretbox import encode_key, new_key
from .service import GENERATE, Service
from .verify import SignatureError, verify_signature

T = TypeVar("T")
out = Console()
err = Console(stderr=True)

_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "pending": "yellow",
    "delivering": "cyan",
    "skipped": "dim",
}


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    try:
        return Settings.from_env(os.environ, database_url=ctx.obj.get("db"), **overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _guarded(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; a hookline error ends the command with its message and status 1."""
    try:
        return asyncio.run(work)
    except HooklineError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        sys.exit(1)


def _run(ctx: click.Context, use: Callable[[Service], Awaitable[T]]) -> T:
    """Run a use case against the database, as a management command does."""
    settings = _settings(ctx)

    async def main() -> T:
        async with Runtime(settings, dispatch=False) as runtime:
            return await use(runtime.service)

    return _guarded(main())


def _id_column(header: str = "id") -> Column:
    """Ids are copied into the next command: never wrapped or cut, however narrow the screen."""
    return Column(header, no_wrap=True, min_width=29)


def _emit_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@click.group()
@click.version_option(__version__, prog_name="hookline")
@click.option(
    "--db",
    metavar="URL",
    help="Database URL (default: HOOKLINE_DATABASE_URL or sqlite:///hookline-data/hookline.db).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def main(ctx: click.Context, db: str | None, as_json: bool) -> None:
    """hookline: self-hosted webhook delivery."""
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    ctx.obj["json"] = as_json


_HOST = click.option("--host", help="Address to listen on (default 127.0.0.1, HOOKLINE_HOST).")
_PORT = click.option("--port", type=int, help="Port to listen on (default 8000, HOOKLINE_PORT).")


@main.command()
@_HOST
@_PORT
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the API and the dispatcher in one process."""
    _serve_http(_settings(ctx, host=host, port=port), dispatch=True)


@main.command()
@_HOST
@_PORT
@click.pass_context
def api(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the API only; `hookline worker` processes deliver."""
    _serve_http(_settings(ctx, host=host, port=port), dispatch=False)


@main.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Deliver only, no HTTP. On PostgreSQL run as many as you like, on any machine."""
    settings = _settings(ctx)
    _preflight(settings, dispatch=True)
    err.print(f"hookline {__version__} worker delivering from {redacted(settings.database_url)}")

    async def deliver_until_signalled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for handled in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(handled, stop.set)
        async with Runtime(settings, dispatch=True):
            await stop.wait()

    _event_loop_run(deliver_until_signalled())


def _settle_heap() -> None:
    """Before a long-running process starts its work: what is loaded by now (modules, the app,
    its routes) lives as long as the process, so the cyclic collector stops walking it, and
    young objects are collected less often. Without this, profiles of publishing and
    delivering spent about a tenth of the CPU in the collector."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


_GC_THRESHOLDS = (20_000, 20, 20)


def _event_loop_run(main: Coroutine[Any, Any, None]) -> None:
    _settle_heap()
    if sys.platform == "win32":
        asyncio.run(main)
    else:
        import uvloop

        uvloop.run(main)


def _preflight(settings: Settings, *, dispatch: bool) -> None:
    """Before serving: migrate, show a first admin key, and check that this process may
    dispatch, so that a problem reads as one sentence rather than a server's traceback."""
    configure_logging(settings)

    async def check() -> None:
        runtime = Runtime(settings, dispatch=False)
        generated = await runtime.start()
        try:
            if dispatch:
                await runtime.store.reserve_dispatch()
        finally:
            await runtime.stop()
        if generated:
            err.print(first_key_notice(generated))

    _guarded(check())


def _serve_http(settings: Settings, *, dispatch: bool) -> None:
    import uvicorn

    from .api import create_app

    _preflight(settings, dispatch=dispatch)
    role = "API and dispatcher" if dispatch else "API"
    err.print(
        f"hookline {__version__} {role} on http://{settings.host}:{settings.port} "
        f"(docs at /docs), data in {redacted(settings.database_url)}"
    )
    config = uvicorn.Config(
        create_app(settings, dispatch=dispatch),
        host=settings.host,
        port=settings.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        log_level="warning",
        lifespan="on",
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the
    # handler that was there before it: make that handler a clean exit, status 0
    for handled in (signal.SIGTERM, signal.SIGINT):
        signal.signal(handled, _exit_cleanly)
    server = uvicorn.Server(config)
    _settle_heap()
    server.run()


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the database schema."""
    settings = _settings(ctx)

    async def apply() -> list[int]:
        runtime = Runtime(settings, dispatch=False)
        try:
            return await runtime.store.migrate()
        finally:
            await runtime.store.close()

    applied = _guarded(apply())
    click.echo(f"applied migrations: {applied}" if applied else "the schema is up to date")


@main.command("rotate-key")
@click.pass_context
def rotate_key(ctx: click.Context) -> None:
    """Seal every webhook secret under a new key, while hookline keeps running.

    With a key file: a new key is written first in it (the old ones stay, to read what is not
    resealed yet), then every secret is sealed again; running processes read the file again
    when they meet the new key. With HOOKLINE_SECRET_KEY: put the new key first in it on every
    process, then run this to reseal what the old keys sealed.
    """
    settings = _settings(ctx)
    if not settings.secret_key:
        path = settings.key_file
        old = path.read_text() if path.exists() else ""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".new")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(encode_key(new_key()) + "\n" + old)
        temporary.replace(path)  # atomic: a reader sees the old file or the new, never half

    async def reseal() -> int:
        runtime = Runtime(settings, dispatch=False)
        try:
            await runtime.store.migrate()
            return await runtime.store.reseal_secrets()
        finally:
            await runtime.store.close()

    count = _guarded(reseal())
    out.print(f"resealed {count} webhook secret(s) under the new key")


@main.command("settings")
@click.option("--markdown", is_flag=True, help="As the table in docs/configuration.md.")
def show_settings(markdown: bool) -> None:
    """List every setting, its environment variable and default."""
    if markdown:
        click.echo("| variable | default | meaning |\n| --- | --- | --- |")
        for variable, default, doc in documented_settings():
            click.echo(f"| `{variable}` | `{default}` | {doc} |")
        return
    table = Table("variable", "default", "meaning")
    for variable, default, doc in documented_settings():
        table.add_row(variable, default, doc)
    out.print(table)


# -- topics ------------------------------------------------------------------------------------


@main.group()
def topics() -> None:
    """The topic catalog."""


@topics.command("list")
@click.pass_context
def topics_list(ctx: click.Context) -> None:
    """List the topics webhooks can subscribe to."""
    catalog = _run(ctx, _topics)
    if ctx.obj["json"]:
        _emit_json([topic_json(topic) for topic in catalog])
        return
    table = Table("topic", "group", "description")
    for topic in catalog:
        table.add_row(topic.name, topic.group, topic.description)
    out.print(table)


async def _topics(svc: Service) -> list[Any]:
    return svc.topics()


# -- webhooks ----------------------------------------------------------------------------------


@main.group()
def webhooks() -> None:
    """Add, list and remove webhooks."""


@webhooks.command("add")
@click.option("--name", required=True, help="A name to find the webhook by.")
@click.option("--url", required=True, help="The Payload URL.")
@click.option("--topic", "topic_names", multiple=True, required=True, help="Repeat for several.")
@click.option("--secret", help="A secret to sign payloads with.")
@click.option("--generate-secret", is_flag=True, help="Generate a strong secret, shown once.")
@click.option("--disabled", is_flag=True, help="Create it disabled.")
@click.option("--max-in-flight", type=int, help="Requests in flight at most (default 8).")
@click.option("--rate-limit", type=float, help="Requests per second at most.")
@click.option("--ordered", is_flag=True, help="One delivery at a time, in publish order.")
@click.pass_context
def webhooks_add(
    ctx: click.Context,
    name: str,
    url: str,
    topic_names: tuple[str, ...],
    secret: str | None,
    generate_secret: bool,
    disabled: bool,
    max_in_flight: int | None,
    rate_limit: float | None,
    ordered: bool,
) -> None:
    """Add a webhook."""
    if secret and generate_secret:
        raise click.UsageError("give --secret or --generate-secret, not both")
    saved = _run(
        ctx,
        lambda svc: svc.create_webhook(
            DEFAULT_TENANT,
            name=name,
            url=url,
            topics=list(topic_names),
            secret=GENERATE if generate_secret else secret,
            enabled=not disabled,
            max_in_flight=max_in_flight,
            rate_limit=rate_limit,
            ordered=ordered,
        ),
    )
    if ctx.obj["json"]:
        _emit_json(webhook_json(saved.webhook, saved.generated_secret))
        return
    out.print(
        f"[green]added[/green] webhook [bold]{saved.webhook.id}[/bold] ({saved.webhook.name})"
    )
    if saved.generated_secret:
        out.print(f"secret (shown once): [bold]{saved.generated_secret}[/bold]")


@webhooks.command("list")
@click.pass_context
def webhooks_list(ctx: click.Context) -> None:
    """List webhooks, newest first."""
    page = _run(ctx, lambda svc: svc.list_webhooks(DEFAULT_TENANT, None, 500))
    if ctx.obj["json"]:
        _emit_json([webhook_json(w) for w in page.items])
        return
    table = Table(_id_column(), "name", "payload URL", "topics", "enabled", "secret")
    for w in page.items:
        table.add_row(
            w.id,
            w.name,
            w.url,
            ", ".join(w.topics),
            "yes" if w.enabled else "[red]no[/red]",
            "yes" if w.has_secret else "no",
        )
    out.print(table)


@webhooks.command("rm")
@click.argument("webhook_id")
@click.pass_context
def webhooks_rm(ctx: click.Context, webhook_id: str) -> None:
    """Remove a webhook with its history."""
    _run(ctx, lambda svc: svc.delete_webhook(DEFAULT_TENANT, webhook_id))
    out.print(f"removed {webhook_id}")


@webhooks.command("enable")
@click.argument("webhook_id")
@click.pass_context
def webhooks_enable(ctx: click.Context, webhook_id: str) -> None:
    """Enable a webhook (held deliveries go out; `replay` sends what was skipped)."""
    _run(ctx, lambda svc: svc.update_webhook(DEFAULT_TENANT, webhook_id, enabled=True))
    out.print(f"enabled {webhook_id}")


@webhooks.command("disable")
@click.argument("webhook_id")
@click.pass_context
def webhooks_disable(ctx: click.Context, webhook_id: str) -> None:
    """Disable a webhook: events published meanwhile are recorded as skipped."""
    _run(ctx, lambda svc: svc.update_webhook(DEFAULT_TENANT, webhook_id, enabled=False))
    out.print(f"disabled {webhook_id}")


@webhooks.command("rotate-secret")
@click.argument("webhook_id")
@click.option("--overlap", default="24h", show_default=True, help="How long the old one signs.")
@click.pass_context
def webhooks_rotate_secret(ctx: click.Context, webhook_id: str, overlap: str) -> None:
    """Give a webhook a new generated secret; the old one keeps signing during the overlap."""
    try:
        seconds = parse_duration(overlap)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    saved = _run(ctx, lambda svc: svc.rotate_secret(DEFAULT_TENANT, webhook_id, GENERATE, seconds))
    if ctx.obj["json"]:
        _emit_json(webhook_json(saved.webhook, saved.generated_secret))
        return
    out.print(f"new secret (shown once): [bold]{saved.generated_secret}[/bold]")
    if saved.webhook.previous_secret_until:
        out.print(f"the old secret signs too until {iso(saved.webhook.previous_secret_until)}")


@webhooks.command("replay")
@click.argument("webhook_id")
@click.option("--since", type=click.DateTime(), help="Created at or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Created before (UTC).")
@click.option(
    "--status",
    type=click.Choice(["failed", "skipped", "all"]),
    default="failed",
    show_default=True,
    help="failed: failed and skipped deliveries.",
)
@click.pass_context
def webhooks_replay(
    ctx: click.Context,
    webhook_id: str,
    since: datetime | None,
    until: datetime | None,
    status: str,
) -> None:
    """Send a webhook's deliveries again, at a bounded rate."""
    count = _run(
        ctx,
        lambda svc: svc.replay(
            DEFAULT_TENANT,
            webhook_id,
            since=since.replace(tzinfo=UTC) if since else None,
            until=until.replace(tzinfo=UTC) if until else None,
            status=status,
        ),
    )
    if ctx.obj["json"]:
        _emit_json({"replayed": count})
        return
    out.print(f"[green]replaying[/green] {count} deliveries")


# -- tenants -----------------------------------------------------------------------------------


@main.group()
def tenants() -> None:
    """Tenants, their API keys and portal links (the operator's commands)."""


@tenants.command("add")
@click.argument("name")
@click.pass_context
def tenants_add(ctx: click.Context, name: str) -> None:
    """Create a tenant."""
    tenant = _run(ctx, lambda svc: svc.create_tenant(name))
    if ctx.obj["json"]:
        _emit_json(tenant_json(tenant))
        return
    out.print(f"[green]added[/green] tenant [bold]{tenant.id}[/bold] ({tenant.name})")


@tenants.command("list")
@click.pass_context
def tenants_list(ctx: click.Context) -> None:
    """List tenants, oldest first."""
    found = _run(ctx, lambda svc: svc.list_tenants())
    if ctx.obj["json"]:
        _emit_json([tenant_json(t) for t in found])
        return
    table = Table(_id_column(), "name", "created")
    for tenant in found:
        table.add_row(tenant.id, tenant.name, iso(tenant.created_at))
    out.print(table)


@tenants.command("key")
@click.argument("tenant_id")
@click.option("--name", default="", help="To recognise it later.")
@click.pass_context
def tenants_key(ctx: click.Context, tenant_id: str, name: str) -> None:
    """Make an API key that acts for this tenant alone (shown once)."""
    created, key = _run(ctx, lambda svc: svc.create_api_key(tenant_id, name))
    if ctx.obj["json"]:
        _emit_json({"id": created.id, "key": key, "created_at": iso(created.created_at)})
        return
    out.print(f"key [bold]{created.id}[/bold] (shown once): [bold]{key}[/bold]")


@tenants.command("portal-link")
@click.argument("tenant_id")
@click.option("--expires", default="1h", show_default=True, help="How long the link works.")
@click.pass_context
def tenants_portal_link(ctx: click.Context, tenant_id: str, expires: str) -> None:
    """A signed link that opens this tenant's Settings → Webhooks, and nothing else."""
    try:
        seconds = parse_duration(expires)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    url, until = _run(ctx, lambda svc: svc.sessions.portal_link(tenant_id, seconds))
    if ctx.obj["json"]:
        _emit_json({"url": url, "expires_at": iso(until)})
        return
    out.print(url)


# -- events ------------------------------------------------------------------------------------


@main.group()
def events() -> None:
    """Publish events."""


@events.command("publish")
@click.argument("action")
@click.argument("data", required=False)
@click.option("--file", "data_file", type=click.File("rb"), help="Read data from a file (- stdin).")
@click.option("--idempotency-key", help="Publishing again with this key stores nothing new.")
@click.pass_context
def events_publish(
    ctx: click.Context,
    action: str,
    data: str | None,
    data_file: Any,
    idempotency_key: str | None,
) -> None:
    """Publish an ACTION (topic) with DATA, a JSON object (default: {})."""
    raw = data_file.read() if data_file is not None else (data or "{}").encode()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise click.UsageError(f"DATA is not valid JSON: {exc}") from None
    stored = _run(ctx, lambda svc: svc.publish_data(DEFAULT_TENANT, action, value, idempotency_key))
    if ctx.obj["json"]:
        _emit_json(event_accepted_json(stored.event))
        return
    event = stored.event
    out.print(
        f"[green]published[/green] {event.id} ({event.action}) to "
        f"{event.deliveries_count} webhook(s)"
        + (" [dim](replayed)[/dim]" if stored.replayed else "")
    )


@events.command("import")
@click.argument("lines_file", type=click.File("rb"))
@click.pass_context
def events_import(ctx: click.Context, lines_file: Any) -> None:
    """Publish every event in a JSON Lines file, one {"action", "data"} per line."""
    lines = [line for line in lines_file.read().splitlines() if line.strip()]

    async def publish_all(svc: Service) -> int:
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("publishing", total=len(lines))
            for number, line in enumerate(lines, 1):
                try:
                    await svc.publish(DEFAULT_TENANT, line)
                except HooklineError as exc:
                    where = f"line {number}: {exc.detail} ({number - 1} published before it)"
                    raise HooklineError(where) from exc
                progress.advance(task)
        return len(lines)

    count = _run(ctx, publish_all)
    if ctx.obj["json"]:
        _emit_json({"published": count})
        return
    out.print(f"[green]published[/green] {count} event(s)")


# -- deliveries --------------------------------------------------------------------------------


@main.group()
def deliveries() -> None:
    """Read the execution history and redeliver."""


@deliveries.command("list")
@click.option("--webhook", "webhook_id", help="Only this webhook's deliveries.")
@click.option("--status", type=click.Choice([status.value for status in DeliveryStatus]))
@click.option("--topic")
@click.option("--event", "event_id")
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def deliveries_list(
    ctx: click.Context,
    webhook_id: str | None,
    status: str | None,
    topic: str | None,
    event_id: str | None,
    limit: int,
) -> None:
    """List deliveries, newest first."""
    query = DeliveryFilter(
        tenant_id=DEFAULT_TENANT,
        webhook_id=webhook_id,
        status=DeliveryStatus(status) if status else None,
        topic=topic,
        event_id=event_id,
    )
    page = _run(ctx, lambda svc: svc.list_deliveries(query, None, limit))
    if ctx.obj["json"]:
        _emit_json([delivery_json(d) for d in page.items])
        return
    table = Table(
        _id_column(), "topic", _id_column("webhook"), "status", "code", "attempts", "created"
    )
    for d in page.items:
        style = _STATUS_STYLE[d.status.value]
        table.add_row(
            d.id,
            d.topic,
            d.webhook_id,
            f"[{style}]{d.status.value}[/{style}]",
            str(d.last_status_code or ""),
            str(d.attempts_count),
            iso(d.created_at),
        )
    out.print(table)


@deliveries.command("show")
@click.argument("delivery_id")
@click.pass_context
def deliveries_show(ctx: click.Context, delivery_id: str) -> None:
    """Show a delivery with the raw request and response of every attempt."""
    detail = _run(ctx, lambda svc: svc.get_delivery(DEFAULT_TENANT, delivery_id))
    document = delivery_detail_json(detail)
    if ctx.obj["json"]:
        _emit_json(document)
        return
    d = detail.delivery
    style = _STATUS_STYLE[d.status.value]
    out.print(f"[bold]{d.topic}[/bold] {d.id}: [{style}]{d.status.value}[/{style}]")
    out.print(f"event {d.event_id} → webhook {d.webhook_id}, {d.attempts_count} attempt(s)")
    if d.next_attempt_at and d.status is DeliveryStatus.PENDING:
        out.print(f"next attempt at {iso(d.next_attempt_at)}")
    for attempt in document["attempts"]:
        out.rule(f"attempt {attempt['number']} at {attempt['started_at']}")
        request = attempt["request"]
        out.print(f"POST {request['url']}")
        for name, value in request["headers"].items():
            out.print(f"[dim]{name}:[/dim] {value}")
        out.print(Syntax(_pretty(request["body"]), "json", word_wrap=True))
        if attempt["response"]:
            response = attempt["response"]
            out.print(f"← [bold]{response['status']}[/bold] in {attempt['duration_ms']} ms")
            out.print(response["body"][:2000])
        if attempt["error"]:
            error = attempt["error"]
            out.print(f"[red]{error['kind']}[/red]: {error['message']}")
            out.print(f"[dim]{error['explanation']}[/dim]")


def _pretty(body: str) -> str:
    try:
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return body


@deliveries.command("redeliver")
@click.argument("delivery_id")
@click.pass_context
def deliveries_redeliver(ctx: click.Context, delivery_id: str) -> None:
    """Send a delivery again now (same payload, same webhook-id)."""
    delivery = _run(ctx, lambda svc: svc.redeliver(DEFAULT_TENANT, delivery_id))
    if ctx.obj["json"]:
        _emit_json(delivery_json(delivery))
        return
    out.print(f"[green]queued[/green] {delivery.id} for redelivery")


# -- verify ------------------------------------------------------------------------------------


@main.command()
@click.option("--secret", required=True, envvar="WEBHOOK_SECRET", help="Or WEBHOOK_SECRET.")
@click.option("--signature", required=True, help="The X-PeopleForce-Signature header value.")
@click.option(
    "--body",
    "body_file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    default="-",
    help="File with the raw body (default: standard input).",
)
def verify(secret: str, signature: str, body_file: str) -> None:
    """Check a body against an X-PeopleForce-Signature header; exit 1 if it does not match."""
    body = sys.stdin.buffer.read() if body_file == "-" else Path(body_file).read_bytes()
    try:
        verify_signature(body, signature, secret)
    except SignatureError as exc:
        err.print(f"[red]invalid:[/red] {exc}")
        sys.exit(1)
    out.print("[green]valid[/green]: the signature matches the body and secret")
