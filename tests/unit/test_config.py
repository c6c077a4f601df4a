from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from hookline.config import Settings, documented_settings

DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///hookline-data/hookline.db"
    assert settings.retry_schedule == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert settings.egress_allow == ()
    assert settings.attempt_timeout == 15
    assert settings.response_body_max == 65536
    assert settings.max_payload_bytes == 1048576


def test_environment_values_are_parsed_and_flags_win():
    settings = Settings.from_env(
        {
            "HOOKLINE_EGRESS_ALLOW": "127.0.0.1/32, ::1/128",
            "HOOKLINE_RETRY_SCHEDULE": "0,1s,1m",
            "HOOKLINE_VALIDATE_PAYLOADS": "yes",
            "HOOKLINE_PORT": "9000",
        },
        port=9100,
    )
    assert settings.egress_allow == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    assert settings.retry_schedule == (0, 1, 60)
    assert settings.validate_payloads is True
    assert settings.port == 9100


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HOOKLINE_PORT": "eighty"}, "HOOKLINE_PORT"),
        ({"HOOKLINE_EGRESS_ALLOW": "10.0.0.0/33"}, "HOOKLINE_EGRESS_ALLOW"),
        ({"HOOKLINE_VALIDATE_PAYLOADS": "maybe"}, "HOOKLINE_VALIDATE_PAYLOADS"),
        ({"HOOKLINE_LEASE": "5s"}, "HOOKLINE_LEASE must be longer"),
    ],
)
def test_bad_values_name_their_variable(env, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_every_setting_is_documented_with_its_default():
    text = DOCS.read_text()
    for variable, default, _ in documented_settings():
        assert f"| `{variable}` | `{default}` |" in text, variable
