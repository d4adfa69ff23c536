from __future__ import annotations

import json
import logging

from gistsync.logs import JsonFormatter


def test_log_lines_are_json_and_never_hold_a_secret() -> None:
    formatter = JsonFormatter("github_poller", secrets=["ghp_supersecret"])
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "auth failed with %s", ("ghp_supersecret",), None
    )
    record.url = "https://api.github.com/?t=ghp_supersecret"
    line = formatter.format(record)
    entry = json.loads(line)
    assert "ghp_supersecret" not in line
    assert entry["message"] == "auth failed with ***"
    assert entry["url"] == "https://api.github.com/?t=***"
    assert entry["service"] == "github_poller"
    assert entry["level"] == "warning"


SECRETS = [
    'quo"te-secret-1',
    "back\\slash\\secret-2",
    "n\u00f6n-\u00e4scii-s\u00e9cret-\u2603",
    "tab\tand\nnewline-secret",
    '\\"both\\"-\u00fc',
]


class Opaque:
    """An object with no JSON form, whose text holds a secret."""

    def __str__(self) -> str:
        return f"<Opaque token={SECRETS[2]}>"


def spellings(secret: str) -> set[str]:
    """Every way a secret could appear in a JSON line."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        secret.encode("unicode_escape").decode(),
    }


def test_secrets_with_quotes_backslashes_and_non_ascii_are_masked_everywhere() -> None:
    formatter = JsonFormatter("gateway", secrets=SECRETS)
    try:
        raise ValueError(f"refused {SECRETS[1]}")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "key %s and %r", (SECRETS[0], SECRETS[3]), exc_info
    )
    record.extra_text = f"Bearer {SECRETS[4]}"
    record.nested = {"headers": {"X-API-Key": SECRETS[2]}, SECRETS[0]: [SECRETS[1], 7, None]}
    record.tuple_of = (SECRETS[3], True, 1.5)
    record.opaque = Opaque()
    record.raw = SECRETS[2].encode()
    line = formatter.format(record)
    for secret in SECRETS:
        for spelling in spellings(secret):
            assert spelling not in line, (secret, spelling)
    entry = json.loads(line)
    assert entry["message"].startswith("key *** and ")
    assert entry["extra_text"] == "Bearer ***"
    assert entry["nested"] == {"headers": {"X-API-Key": "***"}, "***": ["***", 7, None]}
    assert entry["tuple_of"] == ["***", True, 1.5]
    assert entry["opaque"] == "<Opaque token=***>"
    assert entry["raw"] == "***"
    assert "refused ***" in entry["exception"]
