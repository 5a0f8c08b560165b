"""Hook validation (opensupp.hooks.validation): pure tables, no app, no database, no network."""

from __future__ import annotations

import base64
import ipaddress
import socket

import pytest

from opensupp.errors import FieldError
from opensupp.hooks.validation import (
    HOOK_NAMES,
    WEBHOOK_EVENTS,
    check_name,
    check_secret,
    check_url,
    is_internal_address,
    new_secret,
    validate_hook_config,
)

SECRET = "0123456789abcdef"

# ----------------------------------------------------------------------------- constants


def test_names_and_events():
    assert HOOK_NAMES == ("domain-stats-report", "conversation-export", "webhook")
    assert WEBHOOK_EVENTS == (
        "conversation.opened",
        "conversation.closed",
        "conversation.rated",
        "conversation.agent_joined",
        "conversation.agent_replied",
        "conversation.contact_replied",
        "offline_message.created",
    )


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_check_name_accepts_hook_names(name):
    assert check_name(name) is None


@pytest.mark.parametrize("name", ["", "Webhook", "hook", None, 1, ["webhook"]])
def test_check_name_refuses_anything_else(name):
    assert check_name(name) == "must be one of: domain-stats-report, conversation-export, webhook"


# ----------------------------------------------------------------------------- URLs: accepted


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "http://example.com",
        "https://hooks.example.com:8443/smartsupp?token=abc#x",
        "HTTPS://EXAMPLE.COM/Hook",
        "https://example.com./hook",
        "https://my_host.example.com/",
        "https://xn--bcher-kva.de/",
        "https://bücher.de/",
        "https://example.com:1/",
        "https://example.com:65535/",
        "https://example.com:/",
        "http://8.8.8.8/",
        "http://1.1.1.1:8080/hook",
        "http://93.184.216.34/",
        "http://[2606:4700:4700::1111]/",
        "http://[2001:4860:4860::8888]:443/x",
        "http://[::ffff:8.8.8.8]/",  # reaches 8.8.8.8
        "http://[64:ff9b::8.8.8.8]/",  # NAT64 to 8.8.8.8
        "http://localhost.example.com/",  # a name like any other: checked at delivery
        "http://127.0.0.1.nip.io/",  # likewise
        "https://example.com/" + "a" * (2000 - len("https://example.com/")),
        "https://example.com/a%20b",
    ],
)
def test_public_urls_are_accepted(url):
    assert check_url(url) is None


# ----------------------------------------------------------------------------- URLs: refused


@pytest.mark.parametrize(
    "url",
    [
        # loopback
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/hook",
        "http://127.255.255.254/",
        "http://127.0.0.1./",
        "http://[::1]/",
        "http://[::1]:8000/",
        "http://[0:0:0:0:0:0:0:1]/",
        # unspecified
        "http://0.0.0.0/",
        "http://0/",
        "http://[::]/",
        # private
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://172.31.255.255/",
        "http://192.168.1.1/",
        # link-local, cloud metadata
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[fe80::1%25eth0]/",
        # shared address space
        "http://100.64.0.1/",
        "http://100.127.255.255/",
        # multicast, broadcast, reserved
        "http://224.0.0.1/",
        "http://239.255.255.250/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://[ff02::1]/",
        # documentation and benchmarking
        "http://192.0.2.1/",
        "http://198.18.0.1/",
        "http://[2001:db8::1]/",
        # unique-local and site-local IPv6
        "http://[fc00::1]/",
        "http://[fd12:3456:789a::1]/",
        "http://[fec0::1]/",
        # IPv6 forms of internal IPv4 addresses
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::127.0.0.1]/",
        "http://[::8.8.8.8]/",  # IPv4-compatible: deprecated, never accepted
        "http://[64:ff9b::127.0.0.1]/",
        "http://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
        "http://[2002:a00:1::]/",  # 6to4 of 10.0.0.1
        # legacy IPv4 spellings
        "http://127.1/",
        "http://127.0.1/",
        "http://0x7f.0.0.1/",
        "http://0x7F.0x0.0x0.0x1/",
        "http://0177.0.0.1/",
        "http://0177.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://10.1/",
        "http://3232235777/",  # 192.168.1.1
        "http://0x0/",
        # the same, as a client's IDNA mapping would see them
        "http://１２７.０.０.１/",
        "http://127。0。0。1/",
        # localhost
        "http://localhost/",
        "http://LOCALHOST/",
        "http://localhost./",
        "http://localhost:8000/hook",
        "http://api.localhost/",
        "http://A.B.LocalHost./",
    ],
)
def test_internal_urls_are_refused(url):
    message = check_url(url)
    assert message in ("must not point at an internal address", "must not point at localhost"), (url, message)


@pytest.mark.parametrize(
    "url, message",
    [
        (None, "must be a string"),
        (1, "must be a string"),
        (b"https://example.com/", "must be a string"),
        (["https://example.com/"], "must be a string"),
        ("", "must not be empty"),
        ("https://example.com/" + "a" * (2001 - len("https://example.com/")), "must be at most 2000 characters"),
        ("ftp://example.com/", "must be an http:// or https:// URL"),
        ("javascript:alert(1)", "must be an http:// or https:// URL"),
        ("file:///etc/passwd", "must be an http:// or https:// URL"),
        ("example.com/hook", "must be an http:// or https:// URL"),
        ("//example.com/hook", "must be an http:// or https:// URL"),
        ("http:example.com", "must be an http:// or https:// URL"),
        ("http:/example.com", "must be an http:// or https:// URL"),
        ("https://user:pass@example.com/", "must not contain a user name or password"),
        ("https://user@example.com/", "must not contain a user name or password"),
        ("https://@example.com/", "must not contain a user name or password"),
        ("https://example.com@127.0.0.1/", "must not contain a user name or password"),
        ("https://exa mple.com/", "must not contain spaces, backslashes or control characters"),
        ("https://example.com/a b", "must not contain spaces, backslashes or control characters"),
        (" https://example.com/", "must not contain spaces, backslashes or control characters"),
        ("https://example.com/\n", "must not contain spaces, backslashes or control characters"),
        ("https://example.com/\t", "must not contain spaces, backslashes or control characters"),
        ("https://exam\x00ple.com/", "must not contain spaces, backslashes or control characters"),
        ("https://example.com/\x7f", "must not contain spaces, backslashes or control characters"),
        ("https://example.com/\x85", "must not contain spaces, backslashes or control characters"),
        ("https://example.com\u00a0/", "must not contain spaces, backslashes or control characters"),
        ("http://127.0.0.1\\@example.com/", "must not contain spaces, backslashes or control characters"),
        ("http://example.com:0/", "must have a port from 1 to 65535"),
        ("http://example.com:65536/", "must have a port from 1 to 65535"),
        ("http://example.com:99999999/", "must have a port from 1 to 65535"),
        ("http://example.com:-1/", "must have a port from 1 to 65535"),
        ("http://example.com:+80/", "must have a port from 1 to 65535"),
        ("http://example.com:http/", "must have a port from 1 to 65535"),
        ("http://example.com:\u0668\u0660/", "must have a port from 1 to 65535"),
        ("http://example.com:80:80/", "must have a port from 1 to 65535"),
        ("http:///hook", "must have a host"),
        ("http://:80/", "must have a host"),
        ("http://./", "must have a host"),
        ("http://[]/", "must be a valid URL"),
        ("http://[::1%/", "must be a valid URL"),
        ("http://a..b/", "must have a valid host name"),
        ("http://-example.com/", "must have a valid host name"),
        ("http://example-.com/", "must have a valid host name"),
        ("http://exa%6dple.com/", "must have a valid host name"),
        ("http://127.0.0.%31/", "must have a valid host name"),
        ("http://exa!mple.com/", "must have a valid host name"),
        ("http://" + "a" * 64 + ".com/", "must have a valid host name"),
        ("http://" + "a." * 127 + "com/", "must have a valid host name"),
        ("http://1.2.3.4.5/", "must have a valid host name or IP address"),
        ("http://1.2.3.09/", "must have a valid host name or IP address"),
        ("http://256.1.1.1/", "must have a valid host name or IP address"),
        ("http://4294967296/", "must have a valid host name or IP address"),
        ("http://example.123/", "must have a valid host name or IP address"),
        ("http://example.0x1/", "must have a valid host name or IP address"),
    ],
)
def test_malformed_urls_are_refused(url, message):
    assert check_url(url) == message


@pytest.mark.parametrize("url", ["http://[::1/", "http://[1.2.3.4]/", "http://[example.com]/", "http://[::1]x/"])
def test_bad_brackets_are_refused(url):
    assert check_url(url) is not None


@pytest.mark.parametrize(
    "spelling", ["127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433", "0x7f000001", "10.1", "0xa9.0xfe.0xa9.0xfe"]
)
def test_legacy_spellings_are_what_inet_aton_reads(spelling):
    # the C library reads these as addresses; so must we, and refuse them
    assert ipaddress.IPv4Address(socket.inet_aton(spelling)).is_global is False
    assert check_url(f"http://{spelling}/") == "must not point at an internal address"


# ----------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "0.0.0.0", "0.1.2.3", "10.20.30.40", "172.16.5.4", "192.168.0.1",
        "169.254.169.254", "100.64.0.1", "100.100.100.200", "224.0.0.251", "239.1.1.1", "240.0.0.1",
        "255.255.255.255", "192.0.0.8", "192.0.2.55", "198.51.100.1", "203.0.113.9", "198.19.0.1",
        "::", "::1", "fe80::1", "fe80::1%eth0", "fc00::1", "fd00::1", "fec0::1", "ff02::1", "ff0e::1",
        "2001:db8::1", "100::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:100.64.0.1",
        "::ffff:0.0.0.0", "::127.0.0.1", "::10.0.0.1", "64:ff9b::a00:1", "64:ff9b:1::1",
        "2002:7f00:1::", "2002:c0a8:101::1", "2001::1",
    ],
)
def test_internal_addresses(address):
    assert is_internal_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.0", "172.15.255.255",
        "172.32.0.0", "192.167.255.255", "223.255.255.255", "2606:4700:4700::1111",
        "2001:4860:4860::8888", "2a00:1450:4001:82a::200e", "::ffff:8.8.8.8", "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses(address):
    assert is_internal_address(ipaddress.ip_address(address)) is False


# ----------------------------------------------------------------------------- secrets


def test_new_secret_is_standard_webhooks_format():
    secret = new_secret()
    assert secret.startswith("whsec_")
    raw = base64.b64decode(secret[len("whsec_") :], validate=True)
    assert len(raw) == 32
    assert check_secret(secret) is None


def test_new_secrets_differ():
    assert len({new_secret() for _ in range(50)}) == 50


@pytest.mark.parametrize(
    "secret",
    ["a" * 16, "~" * 256, "!" * 16, SECRET, "whsec_" + "A" * 10, "p@ss:w0rd/with+sym=bols~"],
)
def test_good_secrets(secret):
    assert check_secret(secret) is None


@pytest.mark.parametrize(
    "secret, message",
    [
        (None, "must be a string"),
        (1234567890123456, "must be a string"),
        (["a" * 16], "must be a string"),
        ("", "must be 16 to 256 characters"),
        ("a" * 15, "must be 16 to 256 characters"),
        ("a" * 257, "must be 16 to 256 characters"),
        ("a" * 15 + " ", "must contain only printable ASCII characters (no spaces)"),
        ("a" * 15 + "\t", "must contain only printable ASCII characters (no spaces)"),
        ("a" * 15 + "\x00", "must contain only printable ASCII characters (no spaces)"),
        ("a" * 15 + "\x7f", "must contain only printable ASCII characters (no spaces)"),
        ("a" * 15 + "é", "must contain only printable ASCII characters (no spaces)"),
        ("ａ" * 16, "must contain only printable ASCII characters (no spaces)"),
    ],
)
def test_bad_secrets(secret, message):
    assert check_secret(secret) == message


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize("name", ["domain-stats-report", "conversation-export"])
def test_plain_hook_config(name):
    config, errors = validate_hook_config(name, {"url": "https://example.com/h", "secret": SECRET})
    assert errors == []
    assert config == {"url": "https://example.com/h", "secret": SECRET}


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_secret_is_generated_when_absent(name):
    config, errors = validate_hook_config(name, {"url": "https://example.com/h"})
    assert errors == []
    assert config["secret"].startswith("whsec_") and check_secret(config["secret"]) is None


def test_webhook_events_default_to_all_in_order():
    config, errors = validate_hook_config("webhook", {"url": "https://example.com/h"})
    assert errors == []
    assert config["events"] == list(WEBHOOK_EVENTS)
    assert list(config) == ["url", "secret", "events"]


def test_webhook_events_are_kept_as_sent():
    events = ["offline_message.created", "conversation.opened"]
    config, errors = validate_hook_config("webhook", {"url": "https://example.com/h", "events": events})
    assert errors == []
    assert config["events"] == events


def test_the_input_is_not_modified():
    given = {"url": "https://example.com/h"}
    validate_hook_config("webhook", given)
    assert given == {"url": "https://example.com/h"}


@pytest.mark.parametrize(
    "name, config, expected",
    [
        ("webhook", None, [FieldError("config", "must be an object")]),
        ("webhook", [], [FieldError("config", "must be an object")]),
        ("webhook", "https://example.com/", [FieldError("config", "must be an object")]),
        ("webhook", {}, [FieldError("config.url", "is required")]),
        ("domain-stats-report", {"secret": SECRET}, [FieldError("config.url", "is required")]),
        ("webhook", {"url": None}, [FieldError("config.url", "must be a string")]),
        ("webhook", {"url": "http://127.0.0.1/"}, [FieldError("config.url", "must not point at an internal address")]),
        ("webhook", {"url": "https://x.com/", "secret": "short"},
         [FieldError("config.secret", "must be 16 to 256 characters")]),
        ("webhook", {"url": "https://x.com/", "secret": None}, [FieldError("config.secret", "must be a string")]),
        ("webhook", {"url": "https://x.com/", "events": []},
         [FieldError("config.events", "must have at least one event")]),
        ("webhook", {"url": "https://x.com/", "events": "conversation.opened"},
         [FieldError("config.events", "must be a list")]),
        ("webhook", {"url": "https://x.com/", "events": None}, [FieldError("config.events", "must be a list")]),
        ("webhook", {"url": "https://x.com/", "events": list(WEBHOOK_EVENTS) + ["conversation.opened"]},
         [FieldError("config.events", "must have at most 7 items (each event once)")]),
        ("webhook", {"url": "https://x.com/", "events": ["conversation.opened", "conversation.opened"]},
         [FieldError("config.events[1]", "is listed twice (also config.events[0])")]),
        ("webhook", {"url": "https://x.com/", "events": ["conversation.opened", "chat.opened"]},
         [FieldError("config.events[1]", "must be one of: " + ", ".join(WEBHOOK_EVENTS))]),
        ("webhook", {"url": "https://x.com/", "events": [1]},
         [FieldError("config.events[0]", "must be one of: " + ", ".join(WEBHOOK_EVENTS))]),
        ("webhook", {"url": "https://x.com/", "events": ["Conversation.Opened"]},
         [FieldError("config.events[0]", "must be one of: " + ", ".join(WEBHOOK_EVENTS))]),
        ("domain-stats-report", {"url": "https://x.com/", "events": ["conversation.opened"]},
         [FieldError("config.events", "is not a known field for a domain-stats-report hook (allowed: url, secret)")]),
        ("conversation-export", {"url": "https://x.com/", "uri": "https://x.com/"},
         [FieldError("config.uri", "is not a known field for a conversation-export hook (allowed: url, secret)")]),
        ("webhook", {"url": "https://x.com/", "event": ["conversation.opened"]},
         [FieldError("config.event", "is not a known field for a webhook hook (allowed: url, secret, events)")]),
    ],
)
def test_config_errors(name, config, expected):
    _, errors = validate_hook_config(name, config)
    assert errors == expected


def test_every_problem_at_once():
    _, errors = validate_hook_config(
        "webhook",
        {"url": "http://[::1]/", "secret": "x", "events": ["nope", "conversation.rated", "conversation.rated"], "y": 1},
    )
    assert [e.field for e in errors] == [
        "config.y", "config.url", "config.secret", "config.events[0]", "config.events[2]"
    ]


def test_path_prefix_is_used():
    _, errors = validate_hook_config("webhook", {"events": [1]}, path="hooks[2].config")
    assert [e.field for e in errors] == ["hooks[2].config.url", "hooks[2].config.events[0]"]
    _, errors = validate_hook_config("webhook", 1, path="c")
    assert errors == [FieldError("c", "must be an object")]


def test_unknown_hook_name_checks_only_url_and_secret():
    config, errors = validate_hook_config("nope", {"url": "https://x.com/", "whatever": 1})
    assert errors == []
    assert set(config) == {"url", "secret"}
    _, errors = validate_hook_config("nope", {"url": "http://localhost/"})
    assert errors == [FieldError("config.url", "must not point at localhost")]
