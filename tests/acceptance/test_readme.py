"""The README's receiver snippets do what they say, in each framework."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from hookline.signing import peopleforce_signature

from ..live import LiveServer

README = (Path(__file__).parents[2] / "README.md").read_text()
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = '{"action": "employee_create", "data": {"first_name": "Łukasz"}}'.encode()
GOOD = peopleforce_signature(SECRET, BODY)
BAD = peopleforce_signature("another secret", BODY)


def snippet(framework: str) -> dict:
    match = re.search(rf"^{framework}:\n\n```python\n(.*?)```", README, re.S | re.M)
    assert match, f"no {framework} snippet in the README"
    namespace: dict = {"__name__": f"readme_{framework.lower()}"}
    exec(match.group(1).replace('"whsec_..."', repr(SECRET)), namespace)
    return namespace


def test_the_quick_start_is_two_commands():
    start = README.index("## Quick start")
    blocks = re.findall(
        r"```sh\n(.*?)```", README[start : README.index("## A first webhook")], re.S
    )
    assert [b.strip().splitlines() for b in blocks] == [
        ["python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/hookline serve"],
        ["python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/pytest"],
    ]


def test_fastapi_receiver():
    app = snippet("FastAPI")["app"]
    with LiveServer(app) as server:
        ok = httpx.post(
            f"{server.url}/hooks", content=BODY, headers={"X-PeopleForce-Signature": GOOD}
        )
        assert ok.status_code == 200 and ok.json() == {"received": "employee_create"}
        forged = httpx.post(
            f"{server.url}/hooks", content=BODY, headers={"X-PeopleForce-Signature": BAD}
        )
        assert forged.status_code == 403
        assert httpx.post(f"{server.url}/hooks", content=BODY).status_code == 403


def test_flask_receiver():
    client = snippet("Flask")["app"].test_client()
    ok = client.post(
        "/hooks",
        data=BODY,
        headers={"X-PeopleForce-Signature": GOOD},
        content_type="application/json",
    )
    assert ok.status_code == 200 and ok.get_json() == {"received": "employee_create"}
    assert (
        client.post("/hooks", data=BODY, headers={"X-PeopleForce-Signature": BAD}).status_code
        == 403
    )
    assert client.post("/hooks", data=BODY).status_code == 403


def test_django_receiver():
    from django.conf import settings

    if not settings.configured:
        settings.configure(DEBUG=False, ALLOWED_HOSTS=["testserver"], ROOT_URLCONF=[], USE_TZ=True)
    import django
    from django.test import RequestFactory

    django.setup()
    view = snippet("Django")["receive"]
    factory = RequestFactory()

    def post(signature: str | None):
        headers = {"X-PeopleForce-Signature": signature} if signature else {}
        return view(factory.post("/hooks", BODY, content_type="application/json", headers=headers))

    ok = post(GOOD)
    assert ok.status_code == 200 and b"employee_create" in ok.content
    assert post(BAD).status_code == 403
    assert post(None).status_code == 403
    assert view(factory.get("/hooks")).status_code == 405
