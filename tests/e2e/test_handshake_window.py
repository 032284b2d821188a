"""Review: an operator's Deny between a device's HELLO and its READY does not reach the session.

The admission decision is taken when the HELLO arrives (link/handshake.py), but the session
joins the registry, and so becomes visible to the re-decision an operator's action sends
(link/control.py), only at READY.
ConfirmSession then applies the decision from before the Deny. The device holds every product
privilege on a live connection while the store says it is Denied. The device chooses when to
send READY (up to the handshake timeout), so it can hold this window open.
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from protocol.codes import Privilege, Status
from protocol.connection import Connection, NeedData, Role
from protocol.messages import Hello, Ping, Pong, Ready, Welcome
from server.ops.operations import Operations
from server.rules.model import ListState, Policy
from tests.server.harness import start_harness

P = 7201


async def test_deny_during_the_handshake_reaches_the_session(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    h = await start_harness(tmp_path, nursery, devices=1)
    ops = Operations(h.ctx)
    identity = h.known[0]
    await ops.create_product("user:op", "Widget", product_id=P, policy=Policy.QUARANTINE)
    await ops.add_device("user:op", P, identity.device_id_hex)  # a member: fw == cloud is OK

    stream = h.open_stream()
    conn = Connection(Role.CLIENT, identity.key, server_public_key=h.server_public_key, rx_max_frame=65535)
    await stream.send_all(conn.send(Hello(identity.device_id, P, 1, 6, 1, 65535)))
    conn.receive_data(await stream.receive_some(65536))
    welcome = conn.next_event()
    assert isinstance(welcome, Welcome) and welcome.status is Status.OK

    # The operator denies the device before it confirms the session.
    assert await ops.remove_device("user:op", P, identity.device_id_hex, deny=True) == "denied"
    assert h.store.list_state(P, identity.device_id_hex) is ListState.DENIED

    await stream.send_all(conn.send(Ready()) + conn.send(Ping(1)))
    with trio.fail_after(5):
        while not isinstance(event := conn.next_event(), Pong):  # a STATUS update may come first
            if isinstance(event, NeedData):
                conn.receive_data(await stream.receive_some(65536))
    await h.ctx.store.flush()

    (session,) = h.sessions
    assert session.decision is not None
    assert h.store.list_state(P, identity.device_id_hex) is ListState.DENIED
    assert (session.decision.status, session.decision.privileges) == (Status.DENIED, Privilege.NONE)
