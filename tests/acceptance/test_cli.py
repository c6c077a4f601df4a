"""The ``hookline`` command, run as a user runs it."""

from __future__ import annotations

import json
import time

from hookline.signing import peopleforce_signature

from ..receiver import Receiver
from ..versions import versions
from .conftest import HooklineProcess, run_cli


def cli_json(db: str, *args: str) -> object:
    result = run_cli(db, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_migrate_then_nothing_to_do(db):
    assert f"applied migrations: {versions('sqlite')}" in run_cli(db, "migrate").stdout
    assert "up to date" in run_cli(db, "migrate").stdout


def test_topics_list(db):
    topics = cli_json(db, "topics", "list")
    assert [t["name"] for t in topics][:2] == ["employee_create", "employee_update"]
    table = run_cli(db, "topics", "list").stdout
    assert "leave_request_withdraw" in table


def test_webhooks_add_list_rm(db):
    added = cli_json(
        db,
        "webhooks",
        "add",
        "--name",
        "HR",
        "--url",
        "https://example.com/h",
        "--topic",
        "employee_create",
        "--topic",
        "leave_request_create",
        "--generate-secret",
    )
    assert added["secret"].startswith("whsec_")
    assert added["topics"] == ["employee_create", "leave_request_create"]
    [listed] = cli_json(db, "webhooks", "list")
    assert listed["id"] == added["id"] and "secret" not in listed
    assert added["id"] in run_cli(db, "webhooks", "list").stdout
    assert run_cli(db, "webhooks", "rm", added["id"]).returncode == 0
    assert cli_json(db, "webhooks", "list") == []


def test_bad_input_is_a_clear_error(db):
    result = run_cli(
        db, "webhooks", "add", "--name", "x", "--url", "ftp://nope", "--topic", "employee_create"
    )
    assert result.returncode == 1 and "url: must start with http" in result.stderr
    result = run_cli(db, "events", "publish", "employee_fly", "{}")
    assert result.returncode == 1 and "unknown topic" in result.stderr
    result = run_cli(db, "events", "publish", "employee_create", "{oops")
    assert result.returncode == 2 and "not valid JSON" in result.stderr
    result = run_cli(db, "deliveries", "show", "dlv_missing")
    assert result.returncode == 1 and "no delivery" in result.stderr


def test_publish_from_the_shell_is_delivered_by_serve(db, tmp_path, receiver: Receiver):
    hook = cli_json(
        db,
        "webhooks",
        "add",
        "--name",
        "local",
        "--url",
        receiver.url("/ok"),
        "--topic",
        "employee_create",
        "--secret",
        "s3cret",
    )
    published = cli_json(db, "events", "publish", "employee_create", '{"id": 42}')
    assert published["deliveries"] == 1
    [pending] = cli_json(db, "deliveries", "list", "--webhook", hook["id"])
    assert pending["status"] == "pending"
    server = HooklineProcess(db, tmp_path).start()
    try:
        [got] = receiver.wait_for(1, "/ok")
        assert json.loads(got.body) == {"action": "employee_create", "data": {"id": 42}}
        deadline = time.monotonic() + 10
        while cli_json(db, "deliveries", "list", "--status", "succeeded") == []:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        shown = cli_json(db, "deliveries", "show", pending["id"])
        assert shown["attempts"][0]["response"]["status"] == 200
        table = run_cli(db, "deliveries", "show", pending["id"]).stdout
        assert "X-PeopleForce-Signature" in table and "200" in table
        assert run_cli(db, "deliveries", "redeliver", pending["id"]).returncode == 0
        receiver.wait_for(2, "/ok")
    finally:
        server.stop()


def test_verify_checks_a_signature_from_the_shell(db, tmp_path):
    body = tmp_path / "body.json"
    body.write_bytes(b'{"action": "employee_create", "data": {}}')
    good = peopleforce_signature("s3cret", body.read_bytes())
    ok = run_cli(db, "verify", "--secret", "s3cret", "--signature", good, "--body", str(body))
    assert ok.returncode == 0 and "valid" in ok.stdout
    piped = run_cli(
        db, "verify", "--secret", "s3cret", "--signature", good, input=body.read_bytes()
    )
    assert piped.returncode == 0
    bad = run_cli(db, "verify", "--secret", "other", "--signature", good, "--body", str(body))
    assert bad.returncode == 1 and "does not match" in bad.stderr


def test_tenants_keys_and_portal_links_from_the_shell(db):
    tenant = cli_json(db, "tenants", "add", "Acme")
    assert tenant["name"] == "Acme" and tenant["id"].startswith("ten_")
    assert [t["name"] for t in cli_json(db, "tenants", "list")] == ["Default", "Acme"]
    key = cli_json(db, "tenants", "key", tenant["id"], "--name", "deploy")
    assert key["key"].startswith("hk_")
    link = cli_json(db, "tenants", "portal-link", tenant["id"], "--expires", "10m")
    assert "/portal/" in link["url"]
    missing = run_cli(db, "tenants", "portal-link", "ten_nobody")
    assert missing.returncode == 1 and "no tenant" in missing.stderr


def test_settings_lists_every_variable(db):
    out = run_cli(db, "settings").stdout
    assert "HOOKLINE_DATABASE_URL" in out and "HOOKLINE_EGRESS_ALLOW" in out


def test_import_publishes_a_json_lines_file_and_stops_at_a_bad_line(db, tmp_path):
    cli_json(
        db,
        "webhooks",
        "add",
        "--name",
        "h",
        "--url",
        "https://example.com/h",
        "--topic",
        "employee_create",
    )
    good = tmp_path / "events.jsonl"
    good.write_text(
        "\n".join(f'{{"action": "employee_create", "data": {{"id": {i}}}}}' for i in range(25))
        + "\n"
    )
    assert cli_json(db, "events", "import", str(good)) == {"published": 25}
    assert len(cli_json(db, "deliveries", "list", "--limit", "100")) == 25
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"action": "employee_create", "data": {}}\n{"action": "nope", "data": {}}\n')
    result = run_cli(db, "events", "import", str(bad))
    assert result.returncode == 1
    assert "line 2:" in result.stderr and "1 published before it" in result.stderr
