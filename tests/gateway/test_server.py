"""The connections around the application: a request's head and an idle connection are bounded
in time, and bytes that are not HTTP make one quiet WARNING line, not a traceback each."""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import time

import pytest
from prometheus_client import REGISTRY

from gateway.server import GatewayRunner, MalformedLog
from tests.gateway.conftest import Client, StartGateway
from tests.gateway.fakes import FakeServices, World
from tests.gateway.raw import build, exchange, failures

PATIENCE = 15.0  # far longer than any timeout set here: the connection must be gone by then


@pytest.fixture
def world(peers: FakeServices) -> World:
    return World().serve(peers)


def port_of(gateway: Client) -> int:
    assert gateway.server.port is not None
    return gateway.server.port


def closed_by_server(sock: socket.socket, trickle: bytes = b"") -> bool:
    """Whether the server closes the connection within PATIENCE, while we send `trickle` a
    byte at a time (or nothing)."""
    deadline = time.monotonic() + PATIENCE
    sock.settimeout(0.2)
    pending = bytearray(trickle)
    while time.monotonic() < deadline:
        try:
            if pending:
                sock.send(bytes([pending.pop(0)]))
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def connect(gateway: Client) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port_of(gateway)), timeout=PATIENCE)


async def test_a_request_head_must_arrive_in_time_even_trickled(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(
        gateway_header_timeout_seconds=0.5, gateway_idle_timeout_seconds=3600
    )
    with connect(gateway) as sock:
        sock.sendall(b"GET /api/users HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert await asyncio.to_thread(closed_by_server, sock)
    with connect(gateway) as sock:  # a byte now and then never completes the head
        sock.sendall(b"GET /api/users HTTP/1.1\r\n")
        trickle = b"X-Slow: " + b"a" * 4000
        assert await asyncio.to_thread(closed_by_server, sock, trickle)


async def test_idle_connections_are_closed(start_gateway: StartGateway, world: World) -> None:
    gateway = await start_gateway(
        gateway_header_timeout_seconds=300, gateway_idle_timeout_seconds=0.5
    )
    with connect(gateway) as sock:  # opened, nothing sent
        assert await asyncio.to_thread(closed_by_server, sock)
    with connect(gateway) as sock:  # one request answered, then quiet
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert await asyncio.to_thread(closed_by_server, sock)


def connections_we_can_hold(wanted: int) -> int:
    """`wanted`, or as many as the file descriptor limit allows (each connection costs this
    process two: the client's socket and the server's)."""
    needed = 2 * wanted + 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return wanted if soft == resource.RLIM_INFINITY else min(wanted, (soft - 512) // 2)


@pytest.mark.slow
async def test_two_thousand_half_open_connections_all_go(
    start_gateway: StartGateway, world: World
) -> None:
    gateway = await start_gateway(
        gateway_header_timeout_seconds=0.5, gateway_idle_timeout_seconds=1.0
    )
    count = connections_we_can_hold(2000)
    assert count >= 300, "raise the file descriptor limit (ulimit -n)"

    def open_many() -> list[socket.socket]:
        socks = [connect(gateway) for _ in range(count)]
        for sock in socks[::2]:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # half a head
        return socks

    socks = await asyncio.to_thread(open_many)  # the other half sends nothing
    try:
        closed = await asyncio.to_thread(lambda: [closed_by_server(s) for s in socks])
        assert all(closed)
        answer = await asyncio.to_thread(exchange, port_of(gateway), build("GET", "/api/users"))
        assert answer.status == 200
    finally:
        for sock in socks:
            sock.close()


async def test_only_the_head_is_bounded_not_a_slow_body(
    start_gateway: StartGateway, world: World, peers: FakeServices
) -> None:
    world.add_user("OctoCat")
    gateway = await start_gateway(
        gateway_header_timeout_seconds=0.3, gateway_body_timeout_seconds=30
    )
    body = b'{"login": "octocat"}'
    head = build("POST", "/api/users", [("Content-Type", "application/json")], body)
    head = head[: -len(body)]

    def slow_body() -> bytes:
        with connect(gateway) as sock:
            sock.sendall(head)
            for n in range(0, len(body), 5):
                time.sleep(0.2)  # the whole body takes longer than the head may
                sock.sendall(body[n : n + 5])
            return sock.recv(4096)

    answer = await asyncio.to_thread(slow_body)
    assert answer.startswith(b"HTTP/1.1 202"), answer


def malformed_total() -> float:
    return REGISTRY.get_sample_value("gistsync_http_malformed_requests_total") or 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


GARBAGE = [
    b"GARBAGE\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)),  # a TLS hello
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n",
    b"GET /\xff HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
]


def send_garbage(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


async def test_malformed_http_is_one_quiet_warning_per_interval(
    gateway: Client, caplog: pytest.LogCaptureFixture
) -> None:
    runner = gateway.server.runner
    assert isinstance(runner, GatewayRunner)
    clock = Clock()
    runner.malformed.clock = clock
    before = malformed_total()
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        for data in GARBAGE:
            answer = await asyncio.to_thread(send_garbage, port_of(gateway), data)
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
            assert b"Traceback" not in answer
    clock.now += runner.malformed.interval
    await asyncio.to_thread(send_garbage, port_of(gateway), GARBAGE[0])
    lines = [r for r in caplog.records if r.name == "gateway.server" and r.levelno >= logging.INFO]
    assert [r.levelname for r in lines] == ["WARNING", "WARNING"]
    assert getattr(lines[1], "left_out", None) == 5 * len(GARBAGE) - 1
    assert failures(caplog) == []
    assert malformed_total() - before == 5 * len(GARBAGE) + 1


def test_the_malformed_log_counts_what_it_leaves_out(caplog: pytest.LogCaptureFixture) -> None:
    from aiohttp.http_exceptions import BadHttpMessage

    clock = Clock()
    log = MalformedLog(interval=10, clock=clock)
    for _ in range(3):
        log.note("1.2.3.4", BadHttpMessage("Bad header:\n\n  b'x'"))
    clock.now += 10
    log.note("5.6.7.8", BadHttpMessage(""))
    records = [r for r in caplog.records if r.name == "gateway.server"]
    assert len(records) == 2
    assert getattr(records[0], "reason", None) == "Bad header:"
    assert getattr(records[1], "left_out", None) == 2
    assert getattr(records[1], "reason", None) == "BadHttpMessage"
    assert all(r.exc_info is None for r in records)
