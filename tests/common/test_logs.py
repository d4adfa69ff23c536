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
