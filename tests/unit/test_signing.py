from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import standardwebhooks

from hookline.signing import (
    generate_secret,
    peopleforce_signature,
    signature_headers,
    standard_key,
    standard_signature,
)
from hookline.verify import SignatureError, verify_signature, verify_standard_webhook

from ..vectors import GITHUB
from ..vectors import STANDARD_WEBHOOKS as SW


def test_signer_matches_the_github_vector():
    assert peopleforce_signature(GITHUB["secret"], GITHUB["body"]) == GITHUB["signature"]


def test_verifier_accepts_the_github_vector_as_bytes_and_as_text():
    verify_signature(GITHUB["body"], GITHUB["signature"], GITHUB["secret"])
    verify_signature(GITHUB["body"].decode(), GITHUB["signature"], GITHUB["secret"])


def test_signer_matches_the_standard_webhooks_vector():
    got = standard_signature(SW["secret"], SW["id"], SW["timestamp"], SW["body"])
    assert got == SW["signature"]


def test_verifier_accepts_the_standard_webhooks_vector():
    headers = {
        "webhook-id": SW["id"],
        "webhook-timestamp": str(SW["timestamp"]),
        "webhook-signature": SW["signature"],
    }
    verify_standard_webhook(SW["body"], headers, SW["secret"], now=SW["timestamp"] + 10)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing"),
        ("", "missing"),
        ("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "malformed"),
        ("sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "malformed"),
        ("sha256=" + "0" * 64, "does not match"),
    ],
)
def test_verifier_names_what_is_wrong(header, message):
    with pytest.raises(SignatureError, match=message):
        verify_signature(GITHUB["body"], header, GITHUB["secret"])


def test_verifier_rejects_a_body_changed_by_one_byte():
    with pytest.raises(SignatureError):
        verify_signature(b"Hello, World?", GITHUB["signature"], GITHUB["secret"])


def test_utf8_payloads_sign_as_their_utf8_bytes():
    body = '{"name": "Łukasz 🚀 שלום"}'
    signature = peopleforce_signature("s3cret", body.encode("utf-8"))
    verify_signature(body, signature, "s3cret")
    verify_signature(body.encode("utf-8"), signature, "s3cret")


def test_standard_verifier_refuses_old_timestamps_and_wrong_signatures():
    headers = {
        "webhook-id": SW["id"],
        "webhook-timestamp": str(SW["timestamp"]),
        "webhook-signature": SW["signature"],
    }
    with pytest.raises(SignatureError, match="tolerance"):
        verify_standard_webhook(SW["body"], headers, SW["secret"], now=SW["timestamp"] + 301)
    with pytest.raises(SignatureError, match="no webhook-signature"):
        verify_standard_webhook(b"{}", headers, SW["secret"], now=SW["timestamp"])
    with pytest.raises(SignatureError, match="missing"):
        verify_standard_webhook(SW["body"], {}, SW["secret"])


def test_standard_verifier_accepts_any_of_several_signatures():
    headers = {
        "Webhook-Id": SW["id"],
        "Webhook-Timestamp": str(SW["timestamp"]),
        "Webhook-Signature": "v1,bm90IGl0 " + SW["signature"],
    }
    verify_standard_webhook(SW["body"], headers, SW["secret"], now=SW["timestamp"])


def test_generated_secrets_are_whsec_with_32_random_bytes():
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert standard_key(first) == base64.b64decode(first.removeprefix("whsec_"))


def test_plain_secrets_use_their_utf8_bytes_as_the_standard_key():
    assert standard_key("It's a Secret") == b"It's a Secret"
    assert standard_key("whsec_not base64!") == b"whsec_not base64!"


@pytest.mark.parametrize("secret", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "plain secret ✓"])
def test_the_official_standardwebhooks_library_accepts_our_headers(secret):
    body = b'{"action": "employee_create", "data": {"id": 1}}'
    now = int(datetime.now(UTC).timestamp())
    headers = signature_headers(secret, "dlv_1", now, body, "X-PeopleForce-Signature")
    library_secret = (
        secret
        if secret.startswith("whsec_")
        else "whsec_" + base64.b64encode(secret.encode()).decode()
    )
    payload = standardwebhooks.Webhook(library_secret).verify(body, headers)
    assert payload == {"action": "employee_create", "data": {"id": 1}}
    verify_signature(body, headers["X-PeopleForce-Signature"], secret)


def test_without_a_secret_only_identity_headers_are_sent():
    headers = signature_headers(None, "dlv_1", 1, b"{}", "X-PeopleForce-Signature")
    assert headers == {"webhook-id": "dlv_1", "webhook-timestamp": "1"}
