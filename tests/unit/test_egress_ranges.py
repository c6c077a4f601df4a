from __future__ import annotations

import ipaddress

import pytest

from hookline.egress import EgressBlocked, EgressGuard, blocked_reason

BLOCKED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "198.18.0.1",
    "192.0.2.1",
    "168.63.129.16",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
    "2002:a9fe:a9fe::1",
    "64:ff9b:1::1",
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", BLOCKED)
def test_reserved_addresses_are_blocked(address):
    assert blocked_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_pass(address):
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_the_allowlist_reopens_a_range_and_only_that_range():
    allow = [ipaddress.ip_network("127.0.0.1/32")]
    assert blocked_reason(ipaddress.ip_address("127.0.0.1"), allow) is None
    assert blocked_reason(ipaddress.ip_address("::ffff:127.0.0.1"), allow) is None
    assert blocked_reason(ipaddress.ip_address("127.0.0.2"), allow) is not None


def test_a_blocked_literal_says_what_to_allow():
    with pytest.raises(EgressBlocked, match="HOOKLINE_EGRESS_ALLOW") as caught:
        EgressGuard().check_url("http://[::ffff:7f00:1]/hook")
    assert "loopback" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/",
        "http://[::ffff:7f00:1]/", "http://localhost/", "http://api.localhost./",
        "http://LOCALHOST:8080/", "http://0/", "http://[::]/", "http://017700000001/",
    ],
)  # fmt: skip
def test_every_spelling_of_a_blocked_address_is_caught(url):
    with pytest.raises(EgressBlocked):
        EgressGuard().check_url(url)


def test_names_are_left_to_resolution():
    EgressGuard().check_url("https://example.com/hook")
    EgressGuard().check_url("https://1example.com/hook")


def test_metadata_needs_its_own_setting_besides_the_allowlist():
    allow = [ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("10.0.0.0/8")]
    metadata = ipaddress.ip_address("169.254.169.254")
    assert blocked_reason(metadata, allow) is not None
    assert blocked_reason(metadata, allow, allow_metadata=True) is None
    assert blocked_reason(ipaddress.ip_address("10.1.1.1"), allow) is None
    with pytest.raises(EgressBlocked, match="HOOKLINE_EGRESS_ALLOW_METADATA"):
        EgressGuard(allow).check_url("http://169.254.169.254/latest/meta-data")


def test_https_only_refuses_plain_http():
    with pytest.raises(EgressBlocked, match="HTTPS_ONLY"):
        EgressGuard(https_only=True).check_url("http://example.com/hook")
    EgressGuard(https_only=True).check_url("https://example.com/hook")
