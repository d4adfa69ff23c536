"""`python -m gateway` as a real process: its public port and its ops port (GATEWAY_OPS_PORT),
which alone serves /metrics, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.processes


async def status(url: str) -> int:
    """The HTTP status of a GET, 0 when nothing answers."""
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(url)).status_code
    except httpx.TransportError:
        return 0


async def answers(url: str, expected: int) -> bool:
    return await status(url) == expected


def samples(text: str, name: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


async def test_metrics_are_served_on_the_ops_port_only(
    amqp_url: str, prefix: str, tmp_path: Path
) -> None:
    public, ops = free_port(), free_port()
    site, ops_site = f"http://127.0.0.1:{public}", f"http://127.0.0.1:{ops}"
    env = {
        **os.environ,
        "AMQP_URL": amqp_url,
        "AMQP_PREFIX": prefix,
        "PARTITIONS": "2",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(public),
        "GATEWAY_OPS_PORT": str(ops),
        "GATEWAY_API_KEY": "",
    }
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", env=env, stderr=out
        )
    try:
        await eventually(lambda: answers(f"{ops_site}/readyz", 200), 20, "ops port ready")
        assert await status(f"{ops_site}/healthz") == 200
        # The public port: the probes (for a load balancer in front of it), no metrics.
        assert await status(f"{site}/healthz") == 200
        assert await status(f"{site}/readyz") == 200
        assert await status(f"{site}/metrics") == 404
        assert await status(f"{site}/openapi.json") == 200
        # The ops port: the metrics and the probes, none of the application.
        assert await status(f"{ops_site}/openapi.json") == 404
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.get(f"{ops_site}/metrics")
        assert answer.status_code == 200
        requests = samples(answer.text, "gistsync_http_requests_total")
        assert {"route": "/openapi.json", "method": "GET", "status": "200"} in requests
        assert {"route": "unmatched", "method": "GET", "status": "404"} in requests  # /metrics
        [build] = samples(answer.text, "gistsync_build_info")
        assert build["version"] == metadata.version("gistsync")
        assert build["revision"]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
        assert await status(f"{ops_site}/healthz") == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        print(log.read_text(errors="replace")[-3000:])


async def test_one_port_for_both_stops_it_at_once_with_one_clear_line() -> None:
    port = str(free_port())
    env = {**os.environ, "GATEWAY_PORT": port, "GATEWAY_OPS_PORT": port}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 2
    assert stderr.decode() == (
        "gistsync: setting GATEWAY_OPS_PORT is invalid: Value error, must differ from "
        "GATEWAY_PORT\n"
    )
