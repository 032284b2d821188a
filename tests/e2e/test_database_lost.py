"""A node cut off from PostgreSQL (docs/CLUSTER.md, "When PostgreSQL is unreachable"): a real
`fleetgate serve` reaches its database through a TCP proxy in this test, which the test cuts
(every connection closed, new ones refused) and restores.

While cut: /readyz turns 503 naming the database, new devices are closed at once (their HELLO
unread, one admission_shed line with the reason), and after --database-lost-after seconds the
devices it held are closed (SERVER_SHUTDOWN) so they can move. Once restored: the node turns
ready, admits devices again and confirms their sessions, without a restart.

Needs FLEETGATE_TEST_DATABASE_URL (tests/cluster_pg.py: skipped without it, failed in CI without it).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote, urlsplit

import httpx
import psycopg
import pytest
import trio

from firmware_sim.device import DeviceClosed, DeviceRefused, DeviceSettings, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import CloseReason, Status
from protocol.errors import RemoteProtocolError
from protocol.noise import KeyPair
from tests.cluster_pg import fresh_database

from .cli_support import FLEETGATE

pytestmark = pytest.mark.postgres

LOST_AFTER = 2.0  # --database-lost-after, short for the test
P = 7301


@dataclass
class CuttableProxy:
    """TCP on loopback to the PostgreSQL server (its socket file or its TCP port), cut at will."""

    socket_path: str | None
    host: str
    port: int
    cut: bool = False
    accepted: int = 0
    _open: set[trio.CancelScope] = field(default_factory=set)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(int(listener.socket.getsockname()[1]))
        await trio.serve_listeners(self._relay, [listener])

    def sever(self) -> None:
        """Close every relayed connection and refuse new ones until `restore`."""
        self.cut = True
        for scope in self._open:
            scope.cancel()

    def restore(self) -> None:
        self.cut = False

    async def _relay(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        with trio.CancelScope() as scope:
            if self.cut:
                scope.cancel()
            self._open.add(scope)
            try:
                server: trio.abc.Stream = (
                    await trio.open_unix_socket(self.socket_path)
                    if self.socket_path is not None
                    else await trio.open_tcp_stream(self.host, self.port)
                )
                async with server, trio.open_nursery() as pumps:
                    pumps.start_soon(_pump, client, server, pumps.cancel_scope)
                    pumps.start_soon(_pump, server, client, pumps.cancel_scope)
            except OSError:
                pass
            finally:
                self._open.discard(scope)
        await trio.aclose_forcefully(client)


async def _pump(source: trio.abc.Stream, sink: trio.abc.Stream, done: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    done.cancel()


def proxied(database: str, proxy_port: int) -> tuple[str, CuttableProxy]:
    """The node's URL through the proxy, and the proxy to the server `database` is on."""
    with psycopg.connect(database) as conn:
        info = conn.info
        host, port, user, password, name = info.host, info.port, info.user, info.password, info.dbname
    socket_path = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else None
    credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    url = f"postgresql://{credentials}@127.0.0.1:{proxy_port}/{quote(name, safe='')}?sslmode=disable"
    assert urlsplit(url).port == proxy_port
    return url, CuttableProxy(socket_path, host, port)


@dataclass
class Node:
    proc: subprocess.Popen[str]
    api: str
    device_port: int
    server_key: bytes
    log: Path


def start_node(data: Path, database: str, log: IO[str]) -> tuple[subprocess.Popen[str], str]:
    """`fleetgate serve` on `database` (its stderr log to a file: a pipe nobody reads would fill);
    the banner it printed once serving."""
    key = KeyPair.generate()
    key_file = data.parent / "server.key"
    key_file.write_text(key.private.hex() + "\n")
    key_file.chmod(0o600)
    proc = subprocess.Popen(
        [*FLEETGATE, "serve", "--data-dir", str(data), "--device-port", "0", "--api-port", "0",
         "--database", database, "--node-id", "n1", "--server-key", str(key_file),
         "--database-lost-after", str(LOST_AFTER), "--log-level", "info"],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C" in line:
            break
    return proc, "".join(lines)


@asynccontextmanager
async def node_behind_proxy(tmp_path: Path) -> AsyncIterator[tuple[Node, CuttableProxy]]:
    with fresh_database() as database:
        async with trio.open_nursery() as nursery:
            url, proxy = proxied(database, 0)
            port = await nursery.start(proxy.serve)
            url, _ = proxied(database, port)
            log_path = tmp_path / "node.log"
            with log_path.open("w") as log:
                proc, banner = await trio.to_thread.run_sync(start_node, tmp_path / "n1", url, log)
                try:
                    device_port = re.search(r"devices connect to 127\.0\.0\.1:(\d+)", banner)
                    api = re.search(r"API at (http://127\.0\.0\.1:\d+)", banner)
                    key = re.search(r"server public key ([0-9a-f]{64})", banner)
                    assert device_port and api and key, banner + log_path.read_text()[-3000:]
                    yield (
                        Node(proc, api.group(1), int(device_port.group(1)), bytes.fromhex(key.group(1)), log_path),
                        proxy,
                    )
                finally:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGINT)
                        try:
                            await trio.to_thread.run_sync(proc.wait, 20)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            await trio.to_thread.run_sync(proc.wait)
                    if proc.stdout is not None:
                        proc.stdout.close()
            nursery.cancel_scope.cancel()


async def readiness(http: httpx.AsyncClient, node: Node) -> tuple[int, dict[str, object]]:
    response = await http.get(f"{node.api}/readyz")
    return response.status_code, response.json()


async def until_ready(http: httpx.AsyncClient, node: Node, ready: bool, within: float) -> dict[str, object]:
    with trio.fail_after(within):
        while True:
            status, body = await readiness(http, node)
            if (status == 200) is ready:
                return body
            await trio.sleep(0.1)


async def refused(node: Node, identity: DeviceIdentity) -> bool:
    """True if the node closed the connection before a session began (no WELCOME)."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", node.device_port)
        with trio.fail_after(5):
            async with connect_device(stream, identity, node.server_key, DeviceSettings(product_id=P)):
                return False
    except (OSError, DeviceRefused, DeviceClosed, RemoteProtocolError, trio.BrokenResourceError,
            trio.ClosedResourceError):  # fmt: skip
        return True


async def call(http: httpx.AsyncClient, url: str, answers: list[httpx.Response]) -> None:
    with trio.fail_after(20):
        answers.append(await http.get(url, timeout=20))


def shed_lines(log: Path) -> list[dict[str, object]]:
    lines = []
    for line in log.read_text().splitlines():
        if '"admission_shed"' in line:
            lines.append(json.loads(line))
    return lines


async def test_a_node_that_loses_its_database_turns_unready_refuses_devices_closes_its_own_and_recovers(
    tmp_path: Path,
) -> None:
    async with node_behind_proxy(tmp_path) as (node, proxy):
        token = (tmp_path / "n1" / "admin.token").read_text().strip()
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            assert await readiness(http, node) == (200, {"status": "ready", "failing": []})
            held, newcomer = DeviceIdentity.generate(), DeviceIdentity.generate()
            assert (await http.post(f"{node.api}/v1/products", json={"name": "Lost", "id": P})).status_code == 201
            for identity in (held, newcomer):
                body = {"public_key": identity.key.public.hex()}
                assert (await http.post(f"{node.api}/v1/provisioning/{identity.device_id_hex}", json=body)).is_success
                body = {"id": identity.device_id_hex}
                assert (await http.post(f"{node.api}/v1/products/{P}/devices", json=body)).is_success

            stream = await trio.open_tcp_stream("127.0.0.1", node.device_port)
            async with connect_device(stream, held, node.server_key, DeviceSettings(product_id=P)) as device:
                assert device.state.status is Status.OK
                await device.ping()

                cut_at = trio.current_time()
                proxy.sever()
                failing = (await until_ready(http, node, False, within=5))["failing"]
                assert isinstance(failing, list) and "database" in failing, failing
                text = json.dumps(await readiness(http, node))
                assert "127.0.0.1" not in text and "postgresql" not in text  # names what fails, not where

                assert await refused(node, newcomer)  # closed at accept while cut off
                assert device.closed is None  # the devices it holds keep their sessions for a while ...
                answers: list[httpx.Response] = []
                async with trio.open_nursery() as nursery:
                    # API calls fail until it is back: 503, not 500 (a read waits up to 10 s for a connection).
                    nursery.start_soon(lambda: call(http, f"{node.api}/v1/products", answers))
                    with trio.fail_after(LOST_AFTER + 8):
                        await device.closed_event.wait()  # ... then are closed so that they move elsewhere
                    closed_after = trio.current_time() - cut_at
                assert device.closed is not None and device.closed.reason is CloseReason.SERVER_SHUTDOWN
                assert LOST_AFTER - 0.5 <= closed_after <= LOST_AFTER + 6, closed_after
                assert await refused(node, newcomer)  # still cut: still refused
                (answer,) = answers
                assert answer.status_code == 503 and "database" in answer.json()["error"], answer.text
                assert "127.0.0.1" not in answer.text

            proxy.restore()
            assert (await until_ready(http, node, True, within=20)) == {"status": "ready", "failing": []}
            stream = await trio.open_tcp_stream("127.0.0.1", node.device_port)
            async with connect_device(stream, newcomer, node.server_key, DeviceSettings(product_id=P)) as device:
                assert device.state.status is Status.OK
                await device.ping()  # its READY was confirmed through the writer's new connection
            assert node.proc.poll() is None  # the node survived all of it

    shed = shed_lines(node.log)
    assert shed and sum(int(str(line["database_lost"])) for line in shed) >= 2, node.log.read_text()[-3000:]
